/* Output capture: every byte a command writes is redacted of secret values,
 * hashed (OpenSSL SHA-256: the whole stream), delivered to the callback, and
 * kept only up to the cap, so a flood costs CPU time but never memory. */
#include "executor/executor_internal.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define REDACTED "[REDACTED]"

int wr_capture_init(wr_capture *c, wr_exec_stream *st, int stream, const wr_exec_request *req, wr_error *err)
{
    memset(c, 0, sizeof *c);
    c->st = st;
    c->stream = stream;
    c->cap = req->limits && req->limits->output_cap_bytes > 0 ? (size_t)req->limits->output_cap_bytes : 1024u * 1024u;
    c->fn = req->on_output;
    c->ud = req->ud;
    for (size_t i = 0; i < req->nsecrets; i++) {
        size_t n = req->secrets[i].value ? strlen(req->secrets[i].value) : 0;
        if (n == 0)
            continue;
        if (n > c->maxsecret)
            c->maxsecret = n;
    }
    c->secrets = req->secrets;
    c->nsecrets = req->nsecrets;
    if (c->maxsecret) {
        c->hold = malloc(c->maxsecret);
        if (!c->hold)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        free(c->hold);
        EVP_MD_CTX_free(c->md);
        c->md = NULL;
        c->hold = NULL;
        return wr_errorf(err, WR_E_INTERNAL, "", "OpenSSL SHA-256 unavailable");
    }
    return WR_OK;
}

/* Delivers redacted bytes: hash, count, capture up to the cap, callback. */
static int emit(wr_capture *c, const unsigned char *d, size_t n, wr_error *err)
{
    if (n == 0)
        return WR_OK;
    EVP_DigestUpdate(c->md, d, n);
    c->st->total_bytes += n;
    if (c->st->captured_len < c->cap) {
        size_t take = c->cap - c->st->captured_len;
        if (take > n)
            take = n;
        if (!c->st->captured && !(c->st->captured = malloc(c->cap)))
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        memcpy(c->st->captured + c->st->captured_len, d, take);
        c->st->captured_len += take;
        if (take < n)
            c->st->truncated = true;
    } else {
        c->st->truncated = true;
    }
    if (c->fn)
        c->fn(c->ud, c->command_id, c->stream, d, n);
    return WR_OK;
}

/* Length of the secret matching at d (0: none). partial: d[0..n) is a
 * proper prefix of some secret, so the decision needs more bytes. */
static size_t match(const wr_capture *c, const unsigned char *d, size_t n, bool *partial)
{
    *partial = false;
    for (size_t i = 0; i < c->nsecrets; i++) {
        const char *v = c->secrets[i].value;
        size_t len = v ? strlen(v) : 0;
        if (len == 0 || (unsigned char)v[0] != d[0])
            continue;
        if (n >= len) {
            if (memcmp(d, v, len) == 0)
                return len;
        } else if (memcmp(d, v, n) == 0) {
            *partial = true;
        }
    }
    return 0;
}

/* Redacts buf[0..n): emits everything that is decided, keeps in c->hold the
 * tail that may still become a secret once more bytes arrive. */
static int redact(wr_capture *c, const unsigned char *buf, size_t n, bool final, wr_error *err)
{
    size_t start = 0, i = 0;
    while (i < n) {
        bool partial;
        size_t m = match(c, buf + i, n - i, &partial);
        if (m) {
            int rc = emit(c, buf + start, i - start, err);
            if (rc == WR_OK)
                rc = emit(c, (const unsigned char *)REDACTED, sizeof REDACTED - 1, err);
            if (rc != WR_OK)
                return rc;
            i += m;
            start = i;
        } else if (partial && !final) {
            break;
        } else {
            i++;
        }
    }
    int rc = emit(c, buf + start, i - start, err);
    c->nhold = n - i; /* < maxsecret: a proper prefix of a secret */
    if (c->nhold)
        memmove(c->hold, buf + i, c->nhold);
    return rc;
}

int wr_capture_feed(wr_capture *c, const unsigned char *data, size_t len, wr_error *err)
{
    c->cmd_raw_bytes += len;
    if (!c->maxsecret)
        return emit(c, data, len, err);
    /* Join the held tail with the new chunk so a secret split across two
     * reads is still found. */
    size_t n = c->nhold + len;
    unsigned char *buf = malloc(n);
    if (!buf)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    memcpy(buf, c->hold, c->nhold);
    memcpy(buf + c->nhold, data, len);
    int rc = redact(c, buf, n, false, err);
    explicit_bzero(buf, n);
    free(buf);
    return rc;
}

int wr_capture_flush(wr_capture *c, wr_error *err)
{
    c->cmd_raw_bytes = 0;
    if (!c->nhold)
        return WR_OK;
    unsigned char tmp[c->nhold];
    size_t n = c->nhold;
    memcpy(tmp, c->hold, n);
    c->nhold = 0;
    int rc = redact(c, tmp, n, true, err);
    explicit_bzero(tmp, n);
    return rc;
}

void wr_exec_md_hex(void *md, char out[WR_SHA256_HEX_LEN])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < dl && i < 32; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = 0;
}

void wr_capture_finish(wr_capture *c)
{
    wr_exec_md_hex(c->md, c->st->stream_sha256);
    wr_sha256_hex(c->st->captured ? c->st->captured : (const unsigned char *)"", c->st->captured_len,
                  c->st->captured_sha256);
}

void wr_capture_free(wr_capture *c)
{
    if (c->hold)
        explicit_bzero(c->hold, c->maxsecret);
    free(c->hold);
    EVP_MD_CTX_free(c->md);
    memset(c, 0, sizeof *c);
}
