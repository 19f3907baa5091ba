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

#endif
