/* JSON-RPC 2.0 envelopes and UTF-8 hygiene for everything we send. */
#include "server/core.h"

#include <stdlib.h>
#include <string.h>

/* The n parts one after the other, in one new string (every response
 * passes here: no printf). */
static char *join(const char *const *parts, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(parts[i]);
    char *s = malloc(total);
    if (!s)
        return NULL;
    char *p = s;
    for (size_t i = 0; i < n; i++)
        p = stpcpy(p, parts[i]);
    return s;
}

char *wr_rpc_result_msg(const char *id_json, const char *result_json)
{
    /* Built as text so worker threads never share json-c objects. */
    const char *parts[] = {"{\"jsonrpc\":\"2.0\",\"id\":", id_json, ",\"result\":", result_json, "}"};
    return join(parts, sizeof parts / sizeof parts[0]);
}

char *wr_rpc_error_msg(const char *id_json, int code, const char *message, json_object *data)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_int(code));
    char *clean = wr_utf8_sanitize((const unsigned char *)message, strlen(message));
    json_object_object_add(e, "message", json_object_new_string(clean ? clean : "error"));
    free(clean);
    if (data)
        json_object_object_add(e, "data", json_object_get(data));
    const char *etext = wr_json_compact(e);
    char *s;
    if (id_json) {
        const char *parts[] = {"{\"jsonrpc\":\"2.0\",\"id\":", id_json, ",\"error\":", etext, "}"};
        s = join(parts, sizeof parts / sizeof parts[0]);
    } else {
        /* SA makes id optional when it could not be read; the SDK rejects null. */
        const char *parts[] = {"{\"jsonrpc\":\"2.0\",\"error\":", etext, "}"};
        s = join(parts, sizeof parts / sizeof parts[0]);
    }
    json_object_put(e);
    return s;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid or cut. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else
        return 0;
    if (n < need)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

char *wr_utf8_sanitize(const unsigned char *buf, size_t len)
{
    /* Worst case every byte becomes the 3-byte U+FFFD. */
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(buf + i, len - i);
        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, buf + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return out;
}

size_t wr_utf8_cut(const unsigned char *buf, size_t len)
{
    /* Back up over at most 3 continuation bytes to a lead byte; keep the
     * sequence only if it is complete. */
    size_t i = len;
    size_t back = 0;
    while (i > 0 && back < 4 && (buf[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return len;
    unsigned char c = buf[i - 1];
    size_t need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return (len - (i - 1) >= need) ? len : i - 1;
}
