/* The error type every fallible function fills: a code, the JSON pointer or
 * file path of the failing item, and one human line. */
#include "lib/lib.h"

#include <stdio.h>
#include <string.h>

int wr_errorf(wr_error *err, int code, const char *path, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

void wr_error_clear(wr_error *err)
{
    if (!err)
        return;
    err->code = WR_OK;
    err->path[0] = '\0';
    err->message[0] = '\0';
}

void wr_error_prefix(wr_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * sizeof err->message + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->message);
    snprintf(err->message, sizeof err->message, "%.*s", (int)sizeof err->message - 1, joined);
}

const char *wr_code_name(int code)
{
    switch (code) {
    case WR_OK:
        return "ok";
    case WR_E_INVALID:
        return "invalid";
    case WR_E_NOMEM:
        return "nomem";
    case WR_E_IO:
        return "io";
    case WR_E_NOTFOUND:
        return "notfound";
    case WR_E_DENIED:
        return "denied";
    case WR_E_CONFLICT:
        return "conflict";
    case WR_E_LIMIT:
        return "limit";
    case WR_E_CRYPTO:
        return "crypto";
    case WR_E_VERSION:
        return "version";
    case WR_E_INTERNAL:
        return "internal";
    default:
        return "unknown";
    }
}
