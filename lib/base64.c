/* Standard base64 (RFC 4648 section 4) through libsodium. */
#include "lib/lib.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

char *wr_base64_encode(const unsigned char *data, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    sodium_bin2base64(out, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

int wr_base64_decode(const char *b64, unsigned char *out, size_t outmax, size_t *outlen, wr_error *err)
{
    size_t n = strlen(b64), bin_len = 0;
    /* Padding is optional on input, so pick the variant by its presence:
     * libsodium's padded variant insists on it, the unpadded refuses it. */
    int variant =
        n > 0 && b64[n - 1] == '=' ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    const char *end = NULL;
    if (sodium_base642bin(out, outmax, b64, n, NULL, &bin_len, &end, variant) != 0 || end != b64 + n)
        return wr_errorf(err, WR_E_INVALID, "", "invalid base64 (or longer than %zu bytes)", outmax);
    if (outlen)
        *outlen = bin_len;
    return WR_OK;
}
