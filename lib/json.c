/* Bounded, strict JSON parsing on top of json-c, and whole-file I/O.
 *
 * json-c is lenient where a security tool must not be: it keeps the last of
 * duplicate keys, accepts NaN, "1.", raw control characters in strings,
 * saturates out-of-range integers and turns lone surrogates into U+FFFD. Any
 * of these is a parser differential (another CSC implementation would read a
 * different document than we hash or check). So before json-c builds the
 * tree, a pass over the bytes (`scan_*`) enforces the RFC 8259 grammar for
 * tokens, the depth limit, and counts each object's keys; json-c then checks
 * the structure, and comparing the key counts with json-c's objects finds
 * duplicate keys. The same pass tells whether the text is already in the
 * canonical form (lib/canonical.c), so that signed documents stored that way
 * are hashed and verified as read, without being serialised again. */
#include "lib/lib.h"
#include "lib/lib_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void wr_json_ptr_append(char *ptr, size_t cap, const char *key)
{
    size_t n = strlen(ptr);
    if (n + 1 >= cap)
        return;
    ptr[n++] = '/';
    /* RFC 6901: '~' and '/' are escaped as ~0 and ~1 */
    for (; *key && n + 2 < cap; key++) {
        if (*key == '~' || *key == '/') {
            ptr[n++] = '~';
            ptr[n++] = *key == '~' ? '0' : '1';
        } else {
            ptr[n++] = *key;
        }
    }
    ptr[n] = '\0';
}

/* Eight bytes at a time while they are ASCII (high bits clear), the bulk of
 * any JSON text. */
#define ASCII_WORD_HIGH_BITS 0x8080808080808080ull

bool wr_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        uint64_t word;
        for (; end - p >= (ptrdiff_t)sizeof word; p += sizeof word) {
            memcpy(&word, p, sizeof word);
            if (word & ASCII_WORD_HIGH_BITS)
                break;
        }
        if (p == end)
            break;
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned min, cp;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, min = 0x80, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            n = 2, min = 0x800, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, min = 0x10000, cp = c & 0x07;
        else
            return false;
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        /* overlong forms, UTF-16 surrogates and code points past U+10FFFF */
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        p += n + 1;
    }
    return true;
}

/* ---- the token pass ---------------------------------------------------- */
#define SCAN_LEVELS 8 /* nesting levels the token pass allocates first */
/* Per nesting level: is it an object, and is the next string a key? */
typedef struct scan_level {
    bool object, want_key;
    size_t obj;
    size_t key_at, key_len; /* the object's previous key; key_at 0 before the first (no key starts at 0) */
    size_t span_base;       /* where the object's keys start in scan.spans */
} scan_level;

/* A key as written: its bytes are in[at, at + len). */
typedef struct key_span {
    size_t at, len;
} key_span;

/* Keys of one object compared pairwise in the token pass; an object with
 * more is left to check_tree (a walk of json-c's tree), so that the pass
 * stays linear in the document. */
#define DISTINCT_MAX_KEYS 16

/* A document's token pass. Its buffers belong to the parser that runs it
 * (wr_json_parser) and are kept for the next document. */
typedef struct scan {
    const char *in; /* the text, read from only */
    char *buf;      /* the compacted text, once it differs from in[0, out) (NULL before), see emit() */
    char *spare;    /* where buf goes when it is needed (the parser's, grown to len + 1) */
    size_t spare_cap;
    scan_level *levels;
    int levels_cap;
    size_t len, pos;
    size_t out;   /* end of the compacted text, never beyond pos */
    size_t *keys; /* key count per object, in order of their '{' */
    size_t nobj, cap;
    /* Still possibly byte for byte wr_canonical_json(document, false)?
     * Cleared at the first token that shows otherwise, and conservatively
     * at some that would need decoding to tell (a fraction or an exponent,
     * an escape in a key): a false "no" only costs a re-serialisation, a
     * false "yes" would hash bytes other than the canonical ones. */
    bool canonical;
    /* Every object's keys proven distinct as written (none with an escape,
     * none with more than DISTINCT_MAX_KEYS), and no number with a fraction
     * or an exponent: then check_tree has nothing to find. */
    bool keys_distinct, fraction;
    key_span *spans; /* the keys of the objects open, outermost first */
    size_t nspans, spans_cap;
    int deepest; /* nesting reached */
    wr_error *err;
} scan;

static int scan_fail(scan *sc, const char *what)
{
    return wr_errorf(sc->err, WR_E_INVALID, "", "invalid JSON at byte %zu: %s", sc->pos, what);
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Appends in[from, to) to the compacted text. Until the first rewrite
 * (a surrogate pair) that text is in[0, out) itself and nothing is copied. */
static void emit(scan *sc, size_t from, size_t to)
{
    if (sc->buf)
        memcpy(sc->buf + sc->out, sc->in + from, to - from);
    sc->out += to - from;
}

/* Before the first rewrite: the compacted text so far into a copy. */
static int own_copy(scan *sc)
{
    if (sc->spare_cap < sc->len + 1) {
        char *more = realloc(sc->spare, sc->len + 1);
        if (!more)
            return wr_errorf(sc->err, WR_E_NOMEM, "", "out of memory");
        sc->spare = more;
        sc->spare_cap = sc->len + 1;
    }
    sc->buf = sc->spare;
    if (sc->out)
        memcpy(sc->buf, sc->in, sc->out);
    return WR_OK;
}

/* Is the escape at p (a backslash, with at least 6 bytes when it is \u)
 * the one the canonical form writes? It escapes only '"', '\\' and the C0
 * controls: \b \f \n \r \t short, the others as \u00xx in lower case. */
static bool canonical_escape(const char *p, int u)
{
    if (p[1] != 'u')
        return p[1] && strchr("\"\\bfnrt", p[1]);
    if (u <= 0 || u >= 0x20 || strchr("\b\f\n\r\t", u))
        return false;
    char want[8];
    snprintf(want, sizeof want, "\\u%04x", (unsigned)u & 0x1f);
    return memcmp(p, want, 6) == 0;
}

/* At the opening quote; leaves pos after the closing one. A surrogate pair
 * escape is replaced by the UTF-8 of its code point, because json-c 0.16
 * decodes some valid pairs (e.g. \udab6\udec7) to U+FFFD. */
static int scan_string(scan *sc)
{
    const char *b = sc->in;
    size_t seg = sc->pos;
    sc->pos = wr_json_plain_run(b, sc->pos + 1, sc->len);
    while (sc->pos < sc->len && b[sc->pos] != '"') {
        unsigned char c = (unsigned char)b[sc->pos];
        if (c < 0x20)
            return scan_fail(sc, "unescaped control character in string");
        if (c != '\\') {
            sc->pos++;
            continue;
        }
        if (sc->pos + 1 >= sc->len)
            return scan_fail(sc, "truncated escape");
        if (b[sc->pos + 1] != 'u') {
            sc->canonical = sc->canonical && canonical_escape(b + sc->pos, 0);
            sc->pos += 2;
            continue;
        }
        int u = sc->pos + 6 <= sc->len ? hex4(b + sc->pos + 2) : -1;
        if (u < 0)
            return scan_fail(sc, "bad \\u escape");
        sc->canonical = sc->canonical && canonical_escape(b + sc->pos, u);
        /* A NUL would silently cut the string wherever C code reads it. */
        if (u == 0)
            return scan_fail(sc, "string contains \\u0000");
        if (u >= 0xDC00 && u <= 0xDFFF)
            return scan_fail(sc, "lone low surrogate escape");
        if (u < 0xD800 || u > 0xDBFF) {
            sc->pos += 6;
            continue;
        }
        int lo =
            sc->pos + 12 <= sc->len && b[sc->pos + 6] == '\\' && b[sc->pos + 7] == 'u' ? hex4(b + sc->pos + 8) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return scan_fail(sc, "lone high surrogate escape");
        unsigned cp = 0x10000 + ((unsigned)(u - 0xD800) << 10) + (unsigned)(lo - 0xDC00);
        emit(sc, seg, sc->pos);
        char utf8[4] = {(char)(0xF0 | cp >> 18), (char)(0x80 | (cp >> 12 & 0x3F)), (char)(0x80 | (cp >> 6 & 0x3F)),
                        (char)(0x80 | (cp & 0x3F))};
        if (!sc->buf && own_copy(sc) != WR_OK)
            return WR_E_NOMEM;
        memcpy(sc->buf + sc->out, utf8, 4); /* 12 bytes read, 4 written: out stays behind pos */
        sc->out += 4;
        sc->pos += 12;
        seg = sc->pos;
    }
    if (sc->pos >= sc->len)
        return scan_fail(sc, "unterminated string");
    sc->pos++;
    emit(sc, seg, sc->pos);
    return WR_OK;
}

static size_t scan_digits(scan *sc)
{
    size_t start = sc->pos;
    while (sc->pos < sc->len && sc->in[sc->pos] >= '0' && sc->in[sc->pos] <= '9')
        sc->pos++;
    return sc->pos - start;
}

/* RFC 8259 number grammar; integers must fit json-c's int64/uint64, which
 * would otherwise saturate silently. */
static int scan_number(scan *sc)
{
    size_t start = sc->pos;
    bool neg = sc->in[sc->pos] == '-', integer = true;
    if (neg)
        sc->pos++;
    size_t int_start = sc->pos, nd = scan_digits(sc);
    if (nd == 0 || (nd > 1 && sc->in[int_start] == '0'))
        return scan_fail(sc, "malformed number");
    if (sc->pos < sc->len && sc->in[sc->pos] == '.') {
        sc->pos++;
        integer = false;
        if (scan_digits(sc) == 0)
            return scan_fail(sc, "malformed number");
    }
    if (sc->pos < sc->len && (sc->in[sc->pos] == 'e' || sc->in[sc->pos] == 'E')) {
        sc->pos++;
        integer = false;
        if (sc->pos < sc->len && (sc->in[sc->pos] == '+' || sc->in[sc->pos] == '-'))
            sc->pos++;
        if (scan_digits(sc) == 0)
            return scan_fail(sc, "malformed number");
    }
    /* Integers print as they read, except -0 (json-c's 0). */
    sc->canonical = sc->canonical && integer && !(neg && sc->in[int_start] == '0');
    sc->fraction |= !integer;
    if (integer) {
        const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
        size_t ll = strlen(lim);
        if (nd > ll || (nd == ll && memcmp(sc->in + int_start, lim, ll) > 0)) {
            sc->pos = start;
            return wr_errorf(sc->err, WR_E_LIMIT, "", "integer at byte %zu is out of the 64-bit range", start);
        }
    }
    return WR_OK;
}

/* The canonical form sorts an object's keys by code point, which is the
 * byte order of their UTF-8 (strcmp). Compared as written, so a key with
 * an escape is not vouched for. The key just scanned starts at the quote
 * at start; while the text is canonical nothing was compacted, so offsets
 * are the same in buf and the original. */
static bool key_in_order(const scan *sc, size_t *prev_at, size_t *prev_len, size_t start)
{
    size_t at = start + 1, len = sc->pos - 1 - at;
    const char *k = sc->in + at;
    if (memchr(k, '\\', len))
        return false;
    if (*prev_at != 0) {
        size_t n = len < *prev_len ? len : *prev_len;
        int c = memcmp(sc->in + *prev_at, k, n);
        if (c > 0 || (c == 0 && *prev_len >= len))
            return false;
    }
    *prev_at = at;
    *prev_len = len;
    return true;
}

/* Is the key just scanned (its quote at start) unlike the object's earlier
 * ones? Compared as written, so only a key without escapes is vouched for;
 * a "no" only means check_tree looks. */
static bool key_distinct(scan *sc, const scan_level *top, size_t start)
{
    size_t at = start + 1, len = sc->pos - 1 - at;
    if (sc->nspans - top->span_base >= DISTINCT_MAX_KEYS || memchr(sc->in + at, '\\', len))
        return false;
    for (size_t i = top->span_base; i < sc->nspans; i++)
        if (sc->spans[i].len == len && memcmp(sc->in + sc->spans[i].at, sc->in + at, len) == 0)
            return false;
    if (sc->nspans == sc->spans_cap) { /* at most DISTINCT_MAX_KEYS per level open */
        size_t ncap = sc->spans_cap ? 2 * sc->spans_cap : 2 * DISTINCT_MAX_KEYS;
        key_span *more = realloc(sc->spans, ncap * sizeof *more);
        if (!more)
            return false;
        sc->spans = more;
        sc->spans_cap = ncap;
    }
    sc->spans[sc->nspans++] = (key_span){at, len};
    return true;
}

static int scan_doc(scan *sc, int max_depth)
{
    int depth = 0, rc = WR_OK;
    const char *b = sc->in;
    while (rc == WR_OK && sc->pos < sc->len) {
        char c = b[sc->pos];
        size_t start = sc->pos;
        scan_level *top = depth > 0 ? &sc->levels[depth - 1] : NULL;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            sc->canonical = false;
            sc->pos++;
        } else if (c == '{' || c == '[') {
            if (depth >= max_depth) { /* json-c lets an object's value nest one deeper */
                rc = wr_errorf(sc->err, WR_E_LIMIT, "", "JSON nesting deeper than %d levels", max_depth);
                break;
            }
            if (depth == sc->levels_cap) { /* grown as documents nest, most hardly at all */
                int ncap = sc->levels_cap ? 2 * sc->levels_cap : SCAN_LEVELS;
                void *more = realloc(sc->levels, (size_t)ncap * sizeof *sc->levels);
                if (!more) {
                    rc = wr_errorf(sc->err, WR_E_NOMEM, "", "out of memory");
                    break;
                }
                sc->levels = more;
                sc->levels_cap = ncap;
            }
            sc->levels[depth] =
                (scan_level){.object = c == '{', .want_key = c == '{', .obj = sc->nobj, .span_base = sc->nspans};
            if (c == '{') {
                if (sc->nobj == sc->cap) {
                    size_t ncap = sc->cap ? sc->cap * 2 : 16;
                    size_t *nk = realloc(sc->keys, ncap * sizeof *nk);
                    if (!nk) {
                        rc = wr_errorf(sc->err, WR_E_NOMEM, "", "out of memory");
                        break;
                    }
                    sc->keys = nk;
                    sc->cap = ncap;
                }
                sc->keys[sc->nobj++] = 0;
            }
            if (++depth > sc->deepest)
                sc->deepest = depth;
            sc->pos++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                rc = scan_fail(sc, "unbalanced bracket");
            else if (top->object)
                sc->nspans = top->span_base;
            depth--;
            sc->pos++;
        } else if (c == ',' || c == ':') {
            if (top && top->object)
                top->want_key = c == ',';
            sc->pos++;
        } else if (c == '"') {
            bool key = top && top->object && top->want_key;
            if (key)
                sc->keys[top->obj]++;
            rc = scan_string(sc);
            if (key && rc == WR_OK && sc->canonical)
                sc->canonical = key_in_order(sc, &top->key_at, &top->key_len, start);
            if (key && rc == WR_OK && sc->keys_distinct)
                sc->keys_distinct = key_distinct(sc, top, start);
            continue; /* emitted its own text */
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            rc = scan_number(sc);
        } else {
            static const char *const lits[] = {"true", "false", "null"};
            size_t i = 0;
            for (; i < 3; i++) {
                size_t n = strlen(lits[i]);
                if (sc->len - sc->pos >= n && memcmp(b + sc->pos, lits[i], n) == 0) {
                    sc->pos += n;
                    break;
                }
            }
            if (i == 3)
                rc = scan_fail(sc, "unexpected token");
        }
        emit(sc, start, sc->pos);
    }
    return rc;
}

/* Walks json-c's tree in document order beside the scanned key counts: the
 * first object whose member count is lower than its key count holds a
 * duplicate (every object before it matched, so the two orders agree). */
/* ptr == NULL checks quietly (no pointer bookkeeping): the caller re-runs
 * with a pointer buffer only when something failed, to name the place. */
static int check_tree(json_object *o, const scan *sc, size_t *next, char *ptr, size_t cap, wr_error *err)
{
    size_t plen = ptr ? strlen(ptr) : 0;
    int rc = WR_OK;
    switch (json_object_get_type(o)) {
    case json_type_object: {
        size_t idx = (*next)++;
        if (idx >= sc->nobj || sc->keys[idx] != (size_t)json_object_object_length(o))
            return wr_errorf(err, WR_E_INVALID, ptr ? ptr : "", "duplicate key in the object at %s",
                             ptr && ptr[0] ? ptr : "(root)");
        json_object_object_foreach(o, k, v)
        {
            if (ptr)
                wr_json_ptr_append(ptr, cap, k);
            rc = check_tree(v, sc, next, ptr, cap, err);
            if (ptr)
                ptr[plen] = '\0';
            if (rc != WR_OK)
                return rc;
        }
        break;
    }
    case json_type_array:
        for (size_t i = 0, n = json_object_array_length(o); i < n && rc == WR_OK; i++) {
            if (ptr) {
                char idx[24];
                snprintf(idx, sizeof idx, "%zu", i);
                wr_json_ptr_append(ptr, cap, idx);
            }
            rc = check_tree(json_object_array_get_idx(o, i), sc, next, ptr, cap, err);
            if (ptr)
                ptr[plen] = '\0';
        }
        break;
    case json_type_double:
        if (!isfinite(json_object_get_double(o)))
            return wr_errorf(err, WR_E_INVALID, ptr ? ptr : "", "number at %s is out of the double range",
                             ptr && ptr[0] ? ptr : "(root)");
        break;
    default:
        break;
    }
    return rc;
}

/* What one document's parse needs, kept for the next: a session parses
 * every message with one parser, without heap allocations of its own per
 * message (large ones made malloc consolidate its free lists). */
struct wr_json_parser {
    size_t max_bytes;
    int max_depth;
    struct json_tokener *tok;
    int tok_depth; /* the nesting tok was made for */
    char *copy;    /* a document's compacted text, when it needed one */
    size_t copy_cap;
    size_t *keys; /* key count per object */
    size_t keys_cap;
    scan_level *levels; /* the token pass's nesting */
    int levels_cap;
    key_span *spans; /* the token pass's keys of open objects */
    size_t spans_cap;
};

/* Buffers above this are not kept for the next document: one huge message
 * must not stay resident. */
#define PARSER_KEEP_BYTES (64u * 1024u)

static int parser_init(wr_json_parser *p, const wr_json_limits *limits, wr_error *err)
{
    *p = (wr_json_parser){
        .max_bytes = limits ? limits->max_bytes : WR_JSON_DEFAULT_MAX_BYTES,
        .max_depth = limits ? limits->max_depth : WR_JSON_DEFAULT_MAX_DEPTH,
    };
    if (p->max_depth < 1 || p->max_depth > 100000)
        return wr_errorf(err, WR_E_LIMIT, "", "JSON limits out of range");
    return WR_OK;
}

static void parser_release(wr_json_parser *p)
{
    if (p->tok)
        json_tokener_free(p->tok);
    free(p->copy);
    free(p->keys);
    free(p->levels);
    free(p->spans);
}

wr_json_parser *wr_json_parser_new(const wr_json_limits *limits, wr_error *err)
{
    wr_json_parser *p = malloc(sizeof *p);
    if (!p) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    if (parser_init(p, limits, err) != WR_OK) {
        free(p);
        return NULL;
    }
    return p;
}

void wr_json_parser_free(wr_json_parser *p)
{
    if (!p)
        return;
    parser_release(p);
    free(p);
}

/* A tokener for a document nesting `deepest` levels. json-c allocates its
 * stack whole, so it is sized to the documents seen, within the limit, and
 * counts the top-level value as one level of its depth. */
static struct json_tokener *tokener_for(wr_json_parser *p, int deepest, wr_error *err)
{
    int want = deepest + 2 < p->max_depth + 1 ? deepest + 2 : p->max_depth + 1;
    if (p->tok && p->tok_depth < want) {
        json_tokener_free(p->tok);
        p->tok = NULL;
    }
    if (!p->tok) {
        if (!(p->tok = json_tokener_new_ex(want))) {
            wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            return NULL;
        }
        json_tokener_set_flags(p->tok, JSON_TOKENER_STRICT);
        p->tok_depth = want;
    }
    json_tokener_reset(p->tok);
    return p->tok;
}

/* json-c builds the tree of the scanned text; duplicate keys are refused. */
static json_object *tree_of(wr_json_parser *p, const char *buf, scan *sc, wr_error *err)
{
    struct json_tokener *tok = tokener_for(p, sc->deepest, err);
    if (!tok)
        return NULL;
    const char *text = sc->buf ? sc->buf : buf;
    json_object *obj = json_tokener_parse_ex(tok, text, (int)sc->out);
    size_t end = json_tokener_get_parse_end(tok);
    if (!obj && json_tokener_get_error(tok) == json_tokener_continue) {
        /* A NUL tells json-c the text ends here (a bare number at the end
         * is otherwise "continue"). */
        obj = json_tokener_parse_ex(tok, "", 1);
        end = sc->out + json_tokener_get_parse_end(tok);
    }
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (obj && end < sc->out) { /* json-c's strict mode already refuses this */
        json_object_put(obj);
        obj = NULL;
        jerr = json_tokener_error_parse_unexpected;
    }
    if (!obj && jerr == json_tokener_success) {
        /* NULL is our error return, so a bare null cannot be returned. */
        wr_errorf(err, WR_E_INVALID, "", "JSON document is null");
    } else if (!obj && jerr == json_tokener_error_depth) {
        wr_errorf(err, WR_E_LIMIT, "", "JSON nesting deeper than %d levels", p->max_depth);
    } else if (!obj) {
        wr_errorf(err, WR_E_INVALID, "", "invalid JSON near byte %zu: %s", end, json_tokener_error_desc(jerr));
    } else if (!sc->canonical && (!sc->keys_distinct || sc->fraction)) {
        /* canonical text has sorted, so distinct, keys and no fractions */
        char ptr[sizeof err->path] = "";
        size_t next = 0;
        if (check_tree(obj, sc, &next, NULL, 0, NULL) != WR_OK &&
            (next = 0, check_tree(obj, sc, &next, ptr, sizeof ptr, err)) != WR_OK) {
            json_object_put(obj);
            obj = NULL;
        }
    }
    return obj;
}

static json_object *parse_with(wr_json_parser *p, const char *buf, size_t len, bool *canonical, wr_error *err)
{
    if (canonical)
        *canonical = false;
    if (len > p->max_bytes) {
        wr_errorf(err, WR_E_LIMIT, "", "JSON document of %zu bytes exceeds the limit of %zu", len, p->max_bytes);
        return NULL;
    }
    if (len > INT_MAX - 1) { /* json-c takes an int length */
        wr_errorf(err, WR_E_LIMIT, "", "JSON limits out of range");
        return NULL;
    }
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        wr_errorf(err, WR_E_INVALID, "", "JSON text contains a NUL byte at offset %zu", (size_t)(nul - buf));
        return NULL;
    }
    if (!wr_utf8_valid(buf, len)) {
        wr_errorf(err, WR_E_INVALID, "", "JSON text is not valid UTF-8");
        return NULL;
    }
    scan sc = {.in = buf,
               .len = len,
               .canonical = true,
               .keys_distinct = true,
               .spans = p->spans,
               .spans_cap = p->spans_cap,
               .err = err,
               .spare = p->copy,
               .spare_cap = p->copy_cap,
               .keys = p->keys,
               .cap = p->keys_cap,
               .levels = p->levels,
               .levels_cap = p->levels_cap};
    int rc = scan_doc(&sc, p->max_depth);
    /* grown or not, kept for the next document */
    p->copy = sc.spare;
    p->copy_cap = sc.spare_cap;
    p->keys = sc.keys;
    p->keys_cap = sc.cap;
    p->levels = sc.levels;
    p->levels_cap = sc.levels_cap;
    p->spans = sc.spans;
    p->spans_cap = sc.spans_cap;
    json_object *obj = rc == WR_OK ? tree_of(p, buf, &sc, err) : NULL;
    if (obj && canonical)
        *canonical = sc.canonical;
    return obj;
}

json_object *wr_json_parser_parse(wr_json_parser *p, const char *buf, size_t len, wr_error *err)
{
    return wr_json_parser_parse_canonical(p, buf, len, NULL, err);
}

json_object *wr_json_parser_parse_canonical(wr_json_parser *p, const char *buf, size_t len, bool *canonical,
                                            wr_error *err)
{
    json_object *obj = parse_with(p, buf, len, canonical, err);
    if (p->copy_cap > PARSER_KEEP_BYTES) {
        free(p->copy);
        p->copy = NULL;
        p->copy_cap = 0;
    }
    if (p->tok && len > PARSER_KEEP_BYTES) { /* its string buffer grew with the document's strings */
        json_tokener_free(p->tok);
        p->tok = NULL;
    }
    if (p->keys_cap * sizeof *p->keys > PARSER_KEEP_BYTES) {
        free(p->keys);
        p->keys = NULL;
        p->keys_cap = 0;
    }
    if (p->spans_cap * sizeof *p->spans > PARSER_KEEP_BYTES) { /* DISTINCT_MAX_KEYS per level of a deep one */
        free(p->spans);
        p->spans = NULL;
        p->spans_cap = 0;
    }
    return obj;
}

json_object *wr_json_parse(const char *buf, size_t len, const wr_json_limits *limits, wr_error *err)
{
    wr_json_parser p;
    if (parser_init(&p, limits, err) != WR_OK)
        return NULL;
    json_object *obj = parse_with(&p, buf, len, NULL, err);
    parser_release(&p);
    return obj;
}

/* Reads fd whole into *buf (of *cap bytes, grown as needed and kept for
 * the next file: a walk over many files allocates once per size, not per
 * file). The buffer is the caller's to free, whatever the outcome. */
static int read_fd_into(int fd, const char *path, size_t max_bytes, char **buf, size_t *cap, size_t *len, wr_error *err)
{
    *len = 0;
    struct stat st;
    /* a FIFO or device could block forever or never end */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return wr_errorf(err, WR_E_INVALID, path, "%s is not a regular file", path);
    if ((uintmax_t)st.st_size > max_bytes)
        return wr_errorf(err, WR_E_LIMIT, path, "%s is %jd bytes, over the limit of %zu", path, (intmax_t)st.st_size,
                         max_bytes);
    /* The size may change while we read: read up to one byte past the
     * limit. Room for st_size + 1 bytes lets the read that meets the end
     * tell a file that grew; one more byte holds the NUL. */
    size_t want = (size_t)st.st_size + 1, n = 0;
    for (;;) {
        if (n == want) {
            if (n > max_bytes)
                break;
            want = want * 2 > max_bytes + 1 ? max_bytes + 1 : want * 2;
        }
        if (*cap < want + 1) {
            char *nb = realloc(*buf, want + 1);
            if (!nb)
                return wr_errorf(err, WR_E_NOMEM, path, "out of memory reading %s", path);
            *buf = nb;
            *cap = want + 1;
        }
        size_t asked = want - n;
        ssize_t r = read(fd, *buf + n, asked);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return wr_errorf(err, WR_E_IO, path, "cannot read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        n += (size_t)r;
        /* A read of a regular file returns less than asked only at its end:
         * the size fstat gave, met short of the byte past it, needs no
         * second read to find the end (one syscall of five per receipt in
         * a chain walk). A file that grew fills the request: read on. */
        if ((size_t)r < asked && n == (size_t)st.st_size)
            break;
    }
    if (n > max_bytes)
        return wr_errorf(err, WR_E_LIMIT, path, "%s exceeds the limit of %zu bytes", path, max_bytes);
    (*buf)[n] = '\0';
    *len = n;
    return WR_OK;
}

int wr_read_fd(int fd, const char *path, size_t max_bytes, char **buf, size_t *len, wr_error *err)
{
    size_t cap = 0;
    *buf = NULL;
    int rc = read_fd_into(fd, path, max_bytes, buf, &cap, len, err);
    if (rc) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* O_NONBLOCK: opening a FIFO with no writer must not hang before the
 * regular-file check can refuse it. */
static int open_at(int dirfd, const char *name, const char *path, int *fd, wr_error *err)
{
    *fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    return *fd >= 0 ? WR_OK
                    : wr_errorf(err, errno == ENOENT ? WR_E_NOTFOUND : WR_E_IO, path, "cannot open %s: %s", path,
                                strerror(errno));
}

int wr_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, wr_error *err)
{
    *buf = NULL;
    *len = 0;
    int fd, rc = open_at(AT_FDCWD, path, path, &fd, err);
    if (rc)
        return rc;
    rc = wr_read_fd(fd, path, max_bytes, buf, len, err);
    close(fd);
    return rc;
}

int wr_read_file_into(int dirfd, const char *name, const char *path, size_t max_bytes, char **buf, size_t *cap,
                      size_t *len, wr_error *err)
{
    *len = 0;
    int fd, rc = open_at(dirfd, name, path, &fd, err);
    if (rc)
        return rc;
    rc = read_fd_into(fd, path, max_bytes, buf, cap, len, err);
    close(fd);
    return rc;
}

json_object *wr_json_read_file(const char *path, const wr_json_limits *limits, wr_error *err)
{
    char *buf;
    size_t len;
    size_t max = limits ? limits->max_bytes : WR_JSON_DEFAULT_MAX_BYTES;
    if (wr_read_file(path, max, &buf, &len, err) != WR_OK)
        return NULL;
    json_object *obj = wr_json_parse(buf, len, limits, err);
    free(buf);
    if (!obj && err) {
        snprintf(err->path, sizeof err->path, "%s", path);
        wr_error_prefix(err, "%s", path);
    }
    return obj;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

int wr_write_file_atomic(const char *path, const void *buf, size_t len, unsigned mode, wr_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return wr_errorf(err, WR_E_NOMEM, path, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    /* mkostemp creates the file 0600, so it is never more open than mode. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return wr_errorf(err, WR_E_IO, path, "cannot create a temporary file for %s: %s", path, strerror(e));
    }
    const char *p = buf;
    size_t left = len;
    int e = 0;
    while (left > 0 && !e) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            e = errno;
        else
            p += w, left -= (size_t)w;
    }
    if (!e && fchmod(fd, (mode_t)mode) != 0)
        e = errno;
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        free(tmp);
        return wr_errorf(err, WR_E_IO, path, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    if (fsync_dir_of(path) != 0)
        return wr_errorf(err, WR_E_IO, path, "cannot sync the directory of %s: %s", path, strerror(errno));
    return WR_OK;
}
