/* Helpers shared between lib's own files; not part of the public interface. */
#ifndef WR_LIB_INTERNAL_H
#define WR_LIB_INTERNAL_H

#include "lib/lib.h"

/* Reads an already opened file (a regular file, checked) to its end, into a
 * NUL-terminated buffer, refusing more than max_bytes; path is for errors.
 * Does not close fd. */
int wr_read_fd(int fd, const char *path, size_t max_bytes, char **buf, size_t *len, wr_error *err);

/* Appends "/" and key to the JSON pointer in ptr (RFC 6901 escaping of '~'
 * and '/'), truncating at cap. */
void wr_json_ptr_append(char *ptr, size_t cap, const char *key);

/* SHA-256 of a || b || c (any length may be 0) with h (may be NULL, see
 * wr_hasher); libsodium if OpenSSL fails (only on allocation failure). */
void wr_sha256_parts(wr_hasher *h, const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                     unsigned char out[32]);

#endif
