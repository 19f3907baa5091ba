/* Helpers shared between lib's own files; not part of the public interface. */
#ifndef WR_LIB_INTERNAL_H
#define WR_LIB_INTERNAL_H

#include "lib/lib.h"

#include <stdint.h>
#include <string.h>

/* Reads an already opened file (a regular file, checked) to its end, into a
 * NUL-terminated buffer, refusing more than max_bytes; path is for errors.
 * Does not close fd. */
int wr_read_fd(int fd, const char *path, size_t max_bytes, char **buf, size_t *len, wr_error *err);

/* Appends "/" and key to the JSON pointer in ptr (RFC 6901 escaping of '~'
 * and '/'), truncating at cap. */
void wr_json_ptr_append(char *ptr, size_t cap, const char *key);

/* Skips, eight bytes at a time, the words of a JSON string's text from
 * pos that hold no byte a scan or escape must look at ('"', '\\', a
 * control character); returns where the first word holding one, or the
 * tail shorter than a word, starts (at most len). */
static inline size_t wr_json_plain_run(const char *b, size_t pos, size_t len)
{
    /* A byte equal to c is zero in w ^ c, and subtracting 0x20 borrows
     * from a byte only when it is below 0x20. */
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t w;
    for (; len - pos >= sizeof w; pos += sizeof w) {
        memcpy(&w, b + pos, sizeof w);
        uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
        uint64_t hit = ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) | ((w - ones * 0x20) & ~w);
        if (hit & high)
            break;
    }
    return pos;
}

/* SHA-256 of a || b || c (any length may be 0) with h (may be NULL, see
 * wr_hasher); libsodium if OpenSSL fails (only on allocation failure). */
void wr_sha256_parts(wr_hasher *h, const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                     unsigned char out[32]);

#endif
