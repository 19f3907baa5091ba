/* Private to capsules/: the tree walk shared by packing and by checking an
 * unpacked copy, and streaming SHA-256. */
#ifndef WR_CAPSULES_INTERNAL_H
#define WR_CAPSULES_INTERNAL_H

#include <openssl/evp.h>

#include "capsules/capsules.h"

/* Every regular file below dir, sorted by relative path, hashed. Refuses
 * symlinks (naming those that point outside dir), devices, FIFOs, sockets,
 * bad names and files or totals over the limits. */
int wr__capsule_scan(const char *dir, wr_capsule_file **files, size_t *n, wr_error *err);
void wr__capsule_files_free(wr_capsule_file *files, size_t n);

/* SHA-256 of everything readable from fd. */
int wr__sha256_fd(int fd, char out[WR_SHA256_HEX_LEN], wr_error *err);
void wr__sha256_final(EVP_MD_CTX *md, char out[WR_SHA256_HEX_LEN]);

/* A name from an archive or a directory, fit for a one-line message:
 * control bytes (and, in invalid UTF-8, every non-ASCII byte) as \xNN,
 * cut to the buffer. Returns buf. */
#define WR__SHOWN_MAX 256
const char *wr__capsule_shown(const char *s, char buf[WR__SHOWN_MAX]);

/* Removes a tree this process created, also where it was made read-only. */
void wr__capsule_remove_tree(const char *path);

#endif
