/* The canonical JSON form every hash and signature is taken over
 * (design.md "Canonical JSON and hashes"): byte-identical to Python's
 * json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
 * which is what the CSC reference runner hashes and signs. */
#include "lib/lib_internal.h"

#include <json-c/printbuf.h>
#include <openssl/evp.h>

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper trees than this only come from code building objects by hand
 * (parsed documents are limited far below); it keeps the recursion bounded. */
#define CANON_MAX_DEPTH 1000
/* An integral double written out: DBL_MAX has 309 digits, plus sign and NUL. */
#define CANON_INTEGRAL_DIGITS 320

/* A text's first block: a check's answer fits, one block under the 1 KiB
 * from which glibc's malloc consolidates its fast bins. */
#define TEXT_FIRST_BLOCK 512

/* Hashing streams the canonical text through a window of this size
 * instead of building it whole: no heap block grows with the document. */
#define CANON_HASH_WINDOW 4096

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
    EVP_MD_CTX *md; /* hashing: p is a window of cap bytes, flushed into md */
} buf;

/* put's slow path: flushes the hash window, or grows the text (room is
 * kept for the NUL that wr_canonical_json writes at the end). */
static void put_slow(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->md) {
        while (n > 0) {
            size_t k = b->cap - b->len < n ? b->cap - b->len : n;
            memcpy(b->p + b->len, s, k);
            b->len += k;
            s += k;
            n -= k;
            if (b->len == b->cap) {
                b->oom |= EVP_DigestUpdate(b->md, b->p, b->len) != 1;
                b->len = 0;
            }
        }
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : TEXT_FIRST_BLOCK;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A canonical form is some 200 small pieces: most fit where the text ends. */
static inline void put(buf *b, const char *s, size_t n)
{
    if (b->len + n < b->cap && !b->oom) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    } else {
        put_slow(b, s, n);
    }
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Python's json encoder with ensure_ascii=False: the two mandatory escapes,
 * short forms for \b \f \n \r \t, \u00xx (lower-case hex) for the other C0
 * controls, and everything else (DEL, "/", non-ASCII) literal. */
static void put_string(buf *b, const char *s, size_t n)
{
    put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = wr_json_plain_run(s, 0, n); i < n; i = wr_json_plain_run(s, i + 1, n)) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc)
            continue;
        put(b, s + run, i - run);
        puts_(b, esc);
        run = i + 1;
    }
    put(b, s + run, n - run);
    put(b, "\"", 1);
}

/* A decimal D.DDD x 10^exp with nd significant digits. */
typedef struct decimal {
    char digits[20];
    int nd, exp;
} decimal;

static double decimal_value(const decimal *x)
{
    char s[48];
    snprintf(s, sizeof s, "%c.%.*se%d", x->digits[0], x->nd - 1, x->digits + 1, x->exp);
    return strtod(s, NULL);
}

/* Moves x one unit in its last digit up (dir 1) or down (dir -1), keeping nd
 * digits (999 -> 100 with exp + 1, 100 -> 999 with exp - 1). */
static decimal decimal_step(decimal x, int dir)
{
    int i = x.nd - 1;
    while (i >= 0 && x.digits[i] == (dir > 0 ? '9' : '0'))
        x.digits[i--] = dir > 0 ? '0' : '9';
    if (i >= 0)
        x.digits[i] = (char)(x.digits[i] + dir);
    if (dir > 0 && i < 0) { /* all nines rolled over */
        x.digits[0] = '1';
        x.exp++;
    } else if (dir < 0 && x.digits[0] == '0') { /* 100 -> 099: renormalise */
        memmove(x.digits, x.digits + 1, (size_t)x.nd - 1);
        x.digits[x.nd - 1] = '9';
        x.exp--;
    }
    return x;
}

/* The shortest decimal that reads back as d (d > 0, finite), and of those
 * the nearest to d, as Python's repr (David Gay's mode 0) chooses. printf's
 * correctly rounded nd-digit value is the nearest nd-digit decimal, but just
 * above a power of two the interval that rounds to d is lopsided, so a
 * neighbour may read back as d where the nearest does not. */
static decimal shortest_decimal(double d)
{
    decimal best = {0};
    for (int nd = 1; nd <= 17; nd++) {
        char sci[40];
        snprintf(sci, sizeof sci, "%.*e", nd - 1, d);
        decimal x = {.nd = nd};
        int k = 0;
        for (const char *p = sci; *p != 'e'; p++)
            if (*p != '.')
                x.digits[k++] = *p;
        x.exp = atoi(strchr(sci, 'e') + 1);
        if (decimal_value(&x) == d)
            return x;
        decimal up = decimal_step(x, 1), down = decimal_step(x, -1);
        bool up_ok = decimal_value(&up) == d, down_ok = decimal_value(&down) == d;
        if (up_ok && down_ok) {
            char su[48], sd[48];
            snprintf(su, sizeof su, "%c.%.*se%d", up.digits[0], nd - 1, up.digits + 1, up.exp);
            snprintf(sd, sizeof sd, "%c.%.*se%d", down.digits[0], nd - 1, down.digits + 1, down.exp);
            return fabsl(strtold(su, NULL) - d) <= fabsl(strtold(sd, NULL) - d) ? up : down;
        }
        if (up_ok)
            return up;
        if (down_ok)
            return down;
        best = x;
    }
    return best; /* 17 digits always read back; not reached */
}

/* Python's float repr: the shortest round-tripping digits, positional for
 * 1e-4 <= |x| < 1e16 (with ".0" when it has no fraction), else
 * d[.ddd]e±XX with at least two exponent digits. */
static int put_double(buf *b, double d)
{
    if (!isfinite(d))
        return -1;
    bool neg = signbit(d);
    decimal x = {.digits = "0", .nd = 1};
    if (d != 0)
        x = shortest_decimal(fabs(d));
    char digits[24];
    size_t nd = (size_t)x.nd;
    memcpy(digits, x.digits, nd);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int exp = x.exp;
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (exp >= -4 && exp < 16) { /* repr switches to exponent below 1e-4 and from 1e16 */
        if (exp < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -exp - 1; i++)
                out[o++] = '0';
            memcpy(out + o, digits, nd);
            o += nd;
        } else {
            for (int i = 0; i <= exp; i++)
                out[o++] = (size_t)i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > (size_t)exp + 1) {
                memcpy(out + o, digits + exp + 1, nd - (size_t)exp - 1);
                o += nd - (size_t)exp - 1;
            } else {
                out[o++] = '0';
            }
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    puts_(b, out);
    return 0;
}

/* An object's member, sorted by key (keys are unique: the parser refuses duplicates). */
typedef struct member {
    const char *key;
    json_object *val;
} member;

static int cmp_members(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: UTF-8 byte order is code point order */
    return strcmp(((const member *)a)->key, ((const member *)b)->key);
}

/* Most objects have a handful of members: those are sorted on the stack
 * by insertion (no allocation, no qsort call per comparison); larger ones
 * by qsort, which stays O(n log n) whatever the document. */
#define CANON_FEW_MEMBERS 16

static void sort_members(member *m, size_t n)
{
    if (n > CANON_FEW_MEMBERS) {
        qsort(m, n, sizeof *m, cmp_members);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        member x = m[i];
        size_t j = i;
        for (; j > 0 && strcmp(m[j - 1].key, x.key) > 0; j--)
            m[j] = m[j - 1];
        m[j] = x;
    }
}

static int emit(buf *b, json_object *o, bool drop_nulls, int depth, wr_error *err)
{
    if (depth > CANON_MAX_DEPTH)
        return wr_errorf(err, WR_E_LIMIT, "", "JSON nesting deeper than %d levels", CANON_MAX_DEPTH);
    char num[32];
    switch (json_object_get_type(o)) {
    case json_type_null:
        puts_(b, "null");
        break;
    case json_type_boolean:
        puts_(b, json_object_get_boolean(o) ? "true" : "false");
        break;
    case json_type_int: {
        /* json-c holds integers above INT64_MAX as uint64; get_int64 then
         * saturates at INT64_MAX, where get_uint64 gives the exact value. */
        int64_t v = json_object_get_int64(o);
        if (v == INT64_MAX)
            snprintf(num, sizeof num, "%llu", (unsigned long long)json_object_get_uint64(o));
        else
            snprintf(num, sizeof num, "%lld", (long long)v);
        puts_(b, num);
        break;
    }
    case json_type_double: {
        /* 10.0, 1e1 and 1E+1 are the integer 10 to JSON Schema and to the
         * CSC models (pydantic int fields), so every document is hashed
         * the way CSC hashes its filled-in model: an integral value is
         * written as that integer, exactly ("%.0f" of an integral double is
         * exact, like Python's int()); -0.0 is 0. */
        double d = json_object_get_double(o);
        if (isfinite(d) && d == trunc(d)) {
            char num[CANON_INTEGRAL_DIGITS];
            snprintf(num, sizeof num, "%.0f", d == 0 ? 0.0 : d);
            puts_(b, num);
            break;
        }
        if (put_double(b, d) != 0)
            return wr_errorf(err, WR_E_INVALID, "", "NaN or infinity has no JSON form");
        break;
    }
    case json_type_string:
        /* Only wr_json_raw sets a string's userdata: its string is "", its
         * text is not the value's, so it is never hashed or signed. */
        if (json_object_get_userdata(o))
            return wr_errorf(err, WR_E_INVALID, "", "a raw JSON text (wr_json_raw) has no canonical form");
        put_string(b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
        break;
    case json_type_array: {
        put(b, "[", 1);
        for (size_t i = 0, n = json_object_array_length(o); i < n; i++) {
            if (i)
                put(b, ",", 1);
            int rc = emit(b, json_object_array_get_idx(o, i), drop_nulls, depth + 1, err);
            if (rc != WR_OK)
                return rc;
        }
        put(b, "]", 1);
        break;
    }
    case json_type_object: {
        size_t n = (size_t)json_object_object_length(o), k = 0;
        member few[CANON_FEW_MEMBERS];
        member *m = n <= CANON_FEW_MEMBERS ? few : malloc(n * sizeof *m);
        if (!m)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        json_object_object_foreach(o, key, val)
        {
            if (!(drop_nulls && val == NULL))
                m[k++] = (member){key, val};
        }
        sort_members(m, k);
        put(b, "{", 1);
        int rc = WR_OK;
        for (size_t i = 0; i < k && rc == WR_OK; i++) {
            if (i)
                put(b, ",", 1);
            put_string(b, m[i].key, strlen(m[i].key));
            put(b, ":", 1);
            rc = emit(b, m[i].val, drop_nulls, depth + 1, err);
        }
        if (m != few)
            free(m);
        if (rc != WR_OK)
            return rc;
        put(b, "}", 1);
        break;
    }
    }
    return WR_OK;
}

char *wr_canonical_json(json_object *obj, bool drop_nulls, size_t *len_out, wr_error *err)
{
    buf b = {0};
    int rc = emit(&b, obj, drop_nulls, 0, err);
    if (rc == WR_OK && b.oom)
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc != WR_OK) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = '\0'; /* every value wrote something, and put keeps room for this */
    if (len_out)
        *len_out = b.len;
    return b.p;
}

/* OpenSSL's SHA-256 uses the CPU's SHA extensions where present: about 3x
 * libsodium's portable code on a contract-sized input, and every check,
 * receipt and artifact hashes. */
struct wr_hasher {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
};

wr_hasher *wr_hasher_new(void)
{
    wr_hasher *h = calloc(1, sizeof *h);
    if (h) {
        h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
        h->ctx = EVP_MD_CTX_new();
    }
    if (h && (!h->md || !h->ctx)) {
        wr_hasher_free(h);
        h = NULL;
    }
    return h;
}

void wr_hasher_free(wr_hasher *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
    free(h);
}

void wr_sha256_parts(wr_hasher *h, const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                     unsigned char out[32])
{
    EVP_MD_CTX *ctx = h ? h->ctx : EVP_MD_CTX_new();
    unsigned int n = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, h ? h->md : EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, a, alen) == 1 && (!blen || EVP_DigestUpdate(ctx, b, blen) == 1) &&
              (!clen || EVP_DigestUpdate(ctx, c, clen) == 1) && EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == 32;
    if (!h)
        EVP_MD_CTX_free(ctx);
    if (ok)
        return;
    /* Never return garbage. */
    crypto_hash_sha256_state s;
    crypto_hash_sha256_init(&s);
    crypto_hash_sha256_update(&s, a, alen);
    if (blen)
        crypto_hash_sha256_update(&s, b, blen);
    if (clen)
        crypto_hash_sha256_update(&s, c, clen);
    crypto_hash_sha256_final(&s, out);
}

void wr_hasher_sha256_hex(wr_hasher *h, const void *data, size_t len, char out[WR_SHA256_HEX_LEN])
{
    unsigned char d[32];
    wr_sha256_parts(h, data, len, NULL, 0, NULL, 0, d);
    sodium_bin2hex(out, WR_SHA256_HEX_LEN, d, sizeof d);
}

void wr_sha256_hex(const void *data, size_t len, char out[WR_SHA256_HEX_LEN])
{
    wr_hasher_sha256_hex(NULL, data, len, out);
}

int wr_canonical_sha256(json_object *obj, bool drop_nulls, char out[WR_SHA256_HEX_LEN], wr_error *err)
{
    char window[CANON_HASH_WINDOW];
    buf b = {.p = window, .cap = sizeof window, .md = EVP_MD_CTX_new()};
    unsigned char h[32];
    unsigned int hl = 0;
    int rc = b.md && EVP_DigestInit_ex(b.md, EVP_sha256(), NULL) == 1 ? emit(&b, obj, drop_nulls, 0, err) : WR_E_NOMEM;
    if (rc == WR_OK && !b.oom && EVP_DigestUpdate(b.md, b.p, b.len) == 1 && EVP_DigestFinal_ex(b.md, h, &hl) == 1 &&
        hl == sizeof h) {
        sodium_bin2hex(out, WR_SHA256_HEX_LEN, h, sizeof h);
    } else if (rc == WR_OK || rc == WR_E_NOMEM) {
        /* OpenSSL failed (only on allocation failure): the text whole, then
         * wr_sha256_hex with its own fallback. */
        size_t len;
        char *c = wr_canonical_json(obj, drop_nulls, &len, err);
        rc = c ? WR_OK : err ? err->code : WR_E_INVALID;
        if (c)
            wr_sha256_hex(c, len, out);
        free(c);
    }
    EVP_MD_CTX_free(b.md);
    return rc;
}

const char *wr_json_compact(json_object *obj)
{
    /* A raw value (wr_json_raw) is its text: not copied through a printbuf.
     * json-c gives no string userdata of its own (only doubles carry some). */
    const char *raw = json_object_is_type(obj, json_type_string) ? json_object_get_userdata(obj) : NULL;
    return raw ? raw : json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ---- JSON text written directly ---------------------------------------- */

/* A wr_jtext is a buf that never hashes: the same growth and escaping. */
static buf jtext_buf(const wr_jtext *t)
{
    return (buf){.p = t->p, .len = t->len, .cap = t->cap, .oom = t->oom};
}

static void jtext_keep(wr_jtext *t, const buf *b)
{
    *t = (wr_jtext){.p = b->p, .len = b->len, .cap = b->cap, .oom = b->oom};
}

void wr_jtext_put(wr_jtext *t, const char *s, size_t n)
{
    buf b = jtext_buf(t);
    put(&b, s, n);
    jtext_keep(t, &b);
}

void wr_jtext_lit(wr_jtext *t, const char *s)
{
    wr_jtext_put(t, s, strlen(s));
}

void wr_jtext_str(wr_jtext *t, const char *s)
{
    buf b = jtext_buf(t);
    put_string(&b, s, strlen(s));
    jtext_keep(t, &b);
}

char *wr_jtext_take(wr_jtext *t)
{
    char *p = t->p;
    if (t->oom || !p) { /* nothing written is no text either */
        free(p);
        p = NULL;
    } else {
        p[t->len] = '\0'; /* put keeps room for it */
    }
    *t = (wr_jtext){0};
    return p;
}

static int raw_to_json_string(json_object *o, struct printbuf *pb, int level, int flags)
{
    (void)level;
    (void)flags;
    const char *text = json_object_get_userdata(o);
    return printbuf_memappend(pb, text, (int)strlen(text)) < 0 ? -1 : 0;
}

json_object *wr_json_raw(char *text)
{
    json_object *o = json_object_new_string("");
    if (!o) {
        free(text);
        return NULL;
    }
    json_object_set_serializer(o, raw_to_json_string, text, json_object_free_userdata);
    return o;
}
