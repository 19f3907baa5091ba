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
#define SCAN_LEVELS  8  /* nesting levels the token pass allocates first */
#define SCAN_OBJECTS 16 /* objects' key counts it allocates first */
/* Per nesting level: is it an object, and is the next string a key? */
typedef struct scan_level {
    bool object, want_key;
    size_t obj;
    size_t key_at, key_len; /* the object's previous key; key_at 0 before the first (no key starts at 0) */
    size_t span_base;       /* where the object's keys start in scan_bufs.spans */
} scan_level;

/* A key as written: its bytes are in[at, at + len). */
typedef struct key_span {
    size_t at, len;
} key_span;

/* Keys of one object compared pairwise in the token pass; an object with
 * more is left to check_tree (a walk of json-c's tree), so that the pass
 * stays linear in the document. */
#define DISTINCT_MAX_KEYS 16

/* The token pass's buffers: the parser's (wr_json_parser), kept for its
 * next document. */
typedef struct scan_bufs {
    char *copy; /* a document's compacted text, when it needed one (grown to len + 1) */
    size_t copy_cap;
    size_t *keys; /* key count per object, in order of their '{' */
    size_t keys_cap;
    scan_level *levels; /* per nesting level */
    size_t levels_cap;
    key_span *spans; /* the keys of the objects open, outermost first */
    size_t spans_cap;
} scan_bufs;

/* The block p of *cap elements of elem bytes, doubled (first elements when
 * empty) with *cap updated; NULL without memory, p then unchanged. */
static void *grow(void *p, size_t *cap, size_t elem, size_t first)
{
    size_t ncap = *cap ? 2 * *cap : first;
    void *more = realloc(p, ncap * elem);
    if (more)
        *cap = ncap;
    return more;
}

/* A document's token pass, in the buffers of the parser that runs it. */
typedef struct scan {
    const char *in; /* the text, read from only */
    char *buf;      /* the compacted text, once it differs from in[0, out) (NULL before), see emit() */
    scan_bufs *b;
    size_t len, pos;
    size_t out;  /* end of the compacted text, never beyond pos */
    size_t nobj; /* objects opened, counted in b->keys */
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
    size_t nspans; /* in b->spans */
    int deepest;   /* nesting reached */
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
    if (sc->b->copy_cap < sc->len + 1) {
        char *more = realloc(sc->b->copy, sc->len + 1);
        if (!more)
            return wr_errorf(sc->err, WR_E_NOMEM, "", "out of memory");
        sc->b->copy = more;
        sc->b->copy_cap = sc->len + 1;
    }
    sc->buf = sc->b->copy;
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
    scan_bufs *bf = sc->b;
    for (size_t i = top->span_base; i < sc->nspans; i++)
        if (bf->spans[i].len == len && memcmp(sc->in + bf->spans[i].at, sc->in + at, len) == 0)
            return false;
    if (sc->nspans == bf->spans_cap) { /* at most DISTINCT_MAX_KEYS per level open */
        key_span *more = grow(bf->spans, &bf->spans_cap, sizeof *more, 2 * DISTINCT_MAX_KEYS);
        if (!more)
            return false;
        bf->spans = more;
    }
    bf->spans[sc->nspans++] = (key_span){at, len};
    return true;
}

static int scan_doc(scan *sc, int max_depth)
{
    int depth = 0, rc = WR_OK;
    const char *b = sc->in;
    scan_bufs *bf = sc->b;
    while (rc == WR_OK && sc->pos < sc->len) {
        char c = b[sc->pos];
        size_t start = sc->pos;
        scan_level *top = depth > 0 ? &bf->levels[depth - 1] : NULL;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            sc->canonical = false;
            sc->pos++;
        } else if (c == '{' || c == '[') {
            if (depth >= max_depth) { /* json-c lets an object's value nest one deeper */
                rc = wr_errorf(sc->err, WR_E_LIMIT, "", "JSON nesting deeper than %d levels", max_depth);
                break;
            }
            if ((size_t)depth == bf->levels_cap) { /* grown as documents nest, most hardly at all */
                scan_level *more = grow(bf->levels, &bf->levels_cap, sizeof *more, SCAN_LEVELS);
                if (!more) {
                    rc = wr_errorf(sc->err, WR_E_NOMEM, "", "out of memory");
                    break;
                }
                bf->levels = more;
            }
            bf->levels[depth] =
                (scan_level){.object = c == '{', .want_key = c == '{', .obj = sc->nobj, .span_base = sc->nspans};
            if (c == '{') {
                if (sc->nobj == bf->keys_cap) {
                    size_t *more = grow(bf->keys, &bf->keys_cap, sizeof *more, SCAN_OBJECTS);
                    if (!more) {
                        rc = wr_errorf(sc->err, WR_E_NOMEM, "", "out of memory");
                        break;
                    }
                    bf->keys = more;
                }
                bf->keys[sc->nobj++] = 0;
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
                bf->keys[top->obj]++;
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
        if (idx >= sc->nobj || sc->b->keys[idx] != (size_t)json_object_object_length(o))
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
    scan_bufs bufs;
    json_object *spare; /* a tree given back (wr_json_parser_recycle), for the next document */
};

/* Buffers above this are not kept for the next document: one huge message
 * must not stay resident. */
#define PARSER_KEEP_BYTES (64u * 1024u)

/* p (of *cap elements of elem bytes), or NULL (freed, *cap 0) when it is
 * over PARSER_KEEP_BYTES. */
static void *kept_small(void *p, size_t *cap, size_t elem)
{
    if (*cap * elem <= PARSER_KEEP_BYTES)
        return p;
    free(p);
    *cap = 0;
    return NULL;
}

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
    free(p->bufs.copy);
    free(p->bufs.keys);
    free(p->bufs.levels);
    json_object_put(p->spare);
    free(p->bufs.spans);
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

void wr_json_parser_recycle(wr_json_parser *p, json_object *tree)
{
    if (!p) {
        json_object_put(tree);
        return;
    }
    json_object_put(p->spare);
    p->spare = tree;
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

/* ---- canonical text, without json-c's tokenizer -------------------------
 * Text the token pass found canonical, and that holds no escape, needs no
 * tokenizing: its strings are their bytes (valid UTF-8 without controls),
 * its numbers integers in range and its keys sorted, so distinct. Its tree
 * is built with json-c's constructors directly, members added without a
 * lookup for an earlier one with the same key. (json-c's tokenizer copies
 * every byte through a buffer, one at a time: this halves the parse of an
 * exported receipt in a chain walk.) The token pass checks tokens, not the
 * order they come in: anything out of place there, an escape or nesting
 * deeper than BUILD_MAX_DEPTH gives up (NULL) and json-c parses the text
 * as it does any other, so json-c's verdict and message stand for every
 * text this does not build. */
#define BUILD_MAX_DEPTH 32 /* bounds the recursion (a receipt nests a few levels) */
#define BUILD_KEY_MAX   256

typedef struct build {
    const char *b;
    size_t len, pos;
} build;

static bool build_value(build *bd, int depth, json_object **out);

static bool build_at(const build *bd, char c)
{
    return bd->pos < bd->len && bd->b[bd->pos] == c;
}

/* The string whose opening quote is at pos: its bytes, unless it holds an
 * escape (the token pass found the quote that closes it). */
static bool build_string(build *bd, const char **s, size_t *n)
{
    const char *start = bd->b + bd->pos + 1, *q = memchr(start, '"', bd->len - bd->pos - 1);
    if (!q || memchr(start, '\\', (size_t)(q - start)))
        return false;
    *s = start;
    *n = (size_t)(q - start);
    bd->pos = (size_t)(q - bd->b) + 1;
    return true;
}

/* An integer whose range the token pass checked: its sign and magnitude. */
static bool build_integer(build *bd, bool *neg, uint64_t *v)
{
    *neg = bd->b[bd->pos] == '-';
    *v = 0;
    size_t digits = bd->pos += *neg;
    for (; bd->pos < bd->len && bd->b[bd->pos] >= '0' && bd->b[bd->pos] <= '9'; bd->pos++)
        *v = *v * 10 + (uint64_t)(bd->b[bd->pos] - '0');
    return bd->pos > digits; /* none: not a number where a value belongs, e.g. "[1,]" */
}

/* json-c's types for an integer: int64, uint64 above INT64_MAX. */
static bool is_uint64(bool neg, uint64_t v)
{
    return !neg && v > (uint64_t)INT64_MAX;
}

static int64_t as_int64(bool neg, uint64_t v)
{
    return !neg ? (int64_t)v : v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v;
}

static bool build_number(build *bd, json_object **out)
{
    bool neg;
    uint64_t v;
    if (!build_integer(bd, &neg, &v))
        return false;
    *out = is_uint64(neg, v) ? json_object_new_uint64(v) : json_object_new_int64(as_int64(neg, v));
    return *out != NULL;
}

static bool build_word(build *bd, const char *word)
{
    size_t n = strlen(word);
    if (bd->len - bd->pos < n || memcmp(bd->b + bd->pos, word, n) != 0)
        return false;
    bd->pos += n;
    return true;
}

/* After a member or element: true at ',' (another follows), false at the
 * closing bracket or anything else (*ok tells which). */
static bool build_next(build *bd, char close, bool *ok)
{
    char c = bd->pos < bd->len ? bd->b[bd->pos++] : '\0';
    *ok = c == close;
    return c == ',';
}

/* A member's key and its colon, the key NUL-terminated for json-c. */
static bool build_key(build *bd, char key[BUILD_KEY_MAX])
{
    const char *k;
    size_t n;
    if (!build_at(bd, '"') || !build_string(bd, &k, &n) || n >= BUILD_KEY_MAX || !build_at(bd, ':'))
        return false;
    memcpy(key, k, n);
    key[n] = '\0';
    bd->pos++;
    return true;
}

/* An object or an array, at its opening bracket. Keys come sorted and so
 * distinct (the token pass vouched for it): json-c need not look for an
 * earlier member with the same key. */
static bool build_container(build *bd, int depth, json_object **out)
{
    bool object = bd->b[bd->pos++] == '{';
    char close = object ? '}' : ']';
    json_object *c = *out = object ? json_object_new_object() : json_object_new_array();
    bool ok = c != NULL, more = ok;
    if (ok && build_at(bd, close)) {
        bd->pos++;
        return true;
    }
    while (more) {
        char key[BUILD_KEY_MAX];
        json_object *v = NULL;
        ok = (!object || build_key(bd, key)) && build_value(bd, depth + 1, &v);
        if (ok && (object ? json_object_object_add_ex(c, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW)
                          : json_object_array_add(c, v)) != 0) {
            json_object_put(v);
            ok = false;
        }
        more = ok && build_next(bd, close, &ok);
    }
    if (!ok) {
        json_object_put(c);
        *out = NULL;
    }
    return ok;
}

/* On false *out is NULL: what was built is freed. */
static bool build_value(build *bd, int depth, json_object **out)
{
    *out = NULL;
    if (bd->pos >= bd->len || depth >= BUILD_MAX_DEPTH)
        return false;
    const char *s;
    size_t n;
    switch (bd->b[bd->pos]) {
    case '{':
    case '[':
        return build_container(bd, depth, out);
    case '"':
        return build_string(bd, &s, &n) && (*out = json_object_new_string_len(s, (int)n)) != NULL;
    case 't':
        return build_word(bd, "true") && (*out = json_object_new_boolean(1)) != NULL;
    case 'f':
        return build_word(bd, "false") && (*out = json_object_new_boolean(0)) != NULL;
    case 'n':
        return build_word(bd, "null");
    default:
        return build_number(bd, out);
    }
}

/* Reading a document into the tree of the one before it (a tree given back
 * with wr_json_parser_recycle): where the two have the same shape, the
 * values are set in place, so no json-c object is allocated or freed. A
 * value of another type is built and put in place of the old one; an
 * object with other keys or an array of another length is built whole. */
typedef enum fill_rc {
    FILL_OK,
    FILL_REPLACE,
    FILL_FAIL
} fill_rc;

static fill_rc fill_value(build *bd, int depth, json_object *old);

/* The key at pos is want (then past its colon). */
static bool fill_key(build *bd, const char *want)
{
    const char *k;
    size_t n;
    if (!build_at(bd, '"') || !build_string(bd, &k, &n) || strncmp(want, k, n) != 0 || want[n] != '\0' ||
        !build_at(bd, ':'))
        return false;
    bd->pos++;
    return true;
}

/* The member or element of old that the next one of the text replaces. */
static bool fill_replace(build *bd, int depth, json_object *old, struct lh_entry *e, size_t i)
{
    json_object *v;
    if (!build_value(bd, depth, &v))
        return false;
    if ((e ? json_object_object_add_ex(old, lh_entry_k(e), v, 0) : json_object_array_put_idx(old, i, v)) == 0)
        return true;
    json_object_put(v);
    return false;
}

static fill_rc fill_container(build *bd, int depth, json_object *old)
{
    size_t start = bd->pos;
    bool object = bd->b[bd->pos++] == '{', ok = true;
    char close = object ? '}' : ']';
    if (!json_object_is_type(old, object ? json_type_object : json_type_array))
        return bd->pos = start, FILL_REPLACE;
    struct lh_entry *e = object ? lh_table_head(json_object_get_object(old)) : NULL;
    size_t i = 0, n = object ? 0 : json_object_array_length(old);
    bool more = !build_at(bd, close);
    bd->pos += !more;
    for (; more; i++) {
        if (object ? !e || !fill_key(bd, lh_entry_k(e)) : i >= n)
            return bd->pos = start, FILL_REPLACE; /* another key, or more elements */
        json_object *cur = object ? (json_object *)lh_entry_v(e) : json_object_array_get_idx(old, i);
        size_t at = bd->pos;
        fill_rc rc = fill_value(bd, depth + 1, cur);
        if (rc == FILL_REPLACE && (bd->pos = at, !fill_replace(bd, depth + 1, old, e, i)))
            rc = FILL_FAIL;
        if (rc == FILL_FAIL)
            return FILL_FAIL;
        e = object ? lh_entry_next(e) : NULL;
        if (!(more = build_next(bd, close, &ok)) && !ok)
            return FILL_FAIL;
    }
    if (object ? e != NULL : i != n) /* fewer members or elements */
        return bd->pos = start, FILL_REPLACE;
    return FILL_OK;
}

static fill_rc fill_value(build *bd, int depth, json_object *old)
{
    if (bd->pos >= bd->len || depth >= BUILD_MAX_DEPTH)
        return FILL_FAIL;
    const char *s;
    size_t n;
    bool neg, t;
    uint64_t v;
    switch (bd->b[bd->pos]) {
    case '{':
    case '[':
        return fill_container(bd, depth, old);
    case '"':
        if (!json_object_is_type(old, json_type_string))
            return FILL_REPLACE;
        if (!build_string(bd, &s, &n))
            return FILL_FAIL;
        /* json-c 0.16 loses (leaks) a string's own buffer when it is set
         * to "" (a length of 0 reads as "stored inline") */
        if (n == 0)
            return bd->pos -= 2, FILL_REPLACE;
        return json_object_set_string_len(old, s, (int)n) ? FILL_OK : FILL_FAIL;
    case 't':
    case 'f':
        if (!json_object_is_type(old, json_type_boolean))
            return FILL_REPLACE;
        t = bd->b[bd->pos] == 't';
        return build_word(bd, t ? "true" : "false") && json_object_set_boolean(old, t) ? FILL_OK : FILL_FAIL;
    case 'n':
        return old ? FILL_REPLACE : build_word(bd, "null") ? FILL_OK : FILL_FAIL;
    default:
        if (!json_object_is_type(old, json_type_int))
            return FILL_REPLACE;
        if (!build_integer(bd, &neg, &v))
            return FILL_FAIL;
        return (is_uint64(neg, v) ? json_object_set_uint64(old, v) : json_object_set_int64(old, as_int64(neg, v)))
                   ? FILL_OK
                   : FILL_FAIL;
    }
}

/* The tree of canonical text, in spare (then consumed) when it has the
 * same shape. */
static json_object *build_canonical(const char *text, size_t len, json_object *spare)
{
    build bd = {text, len, 0};
    if (spare) {
        fill_rc rc = fill_value(&bd, 0, spare);
        if (rc == FILL_OK && bd.pos == len)
            return spare;
        json_object_put(spare);
        if (rc == FILL_FAIL)
            return NULL;
        bd.pos = 0;
    }
    json_object *obj;
    if (build_value(&bd, 0, &obj) && bd.pos == len)
        return obj;
    json_object_put(obj);
    return NULL;
}

/* The tree of the scanned text, built directly when it is canonical, else
 * by json-c; duplicate keys are refused. */
static json_object *tree_of(wr_json_parser *p, const char *buf, scan *sc, wr_error *err)
{
    const char *text = sc->buf ? sc->buf : buf;
    json_object *spare = p->spare;
    p->spare = NULL; /* consumed by any parse */
    json_object *built = sc->canonical ? build_canonical(text, sc->out, spare) : (json_object_put(spare), NULL);
    if (built)
        return built;
    struct json_tokener *tok = tokener_for(p, sc->deepest, err);
    if (!tok)
        return NULL;
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
        wr_errorf(err, WR_E_LIMIT, "", "JSON document of %zu bytes exceeds json-c's limit of %d", len, INT_MAX - 1);
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
    scan sc = {.in = buf, .b = &p->bufs, .len = len, .canonical = true, .keys_distinct = true, .err = err};
    int rc = scan_doc(&sc, p->max_depth);
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
    json_object_put(p->spare); /* unused when the text was refused before its tree */
    p->spare = NULL;
    if (p->tok && len > PARSER_KEEP_BYTES) { /* its string buffer grew with the document's strings */
        json_tokener_free(p->tok);
        p->tok = NULL;
    }
    scan_bufs *b = &p->bufs; /* levels stay: max_depth bounds them */
    b->copy = kept_small(b->copy, &b->copy_cap, sizeof *b->copy);
    b->keys = kept_small(b->keys, &b->keys_cap, sizeof *b->keys);
    b->spans = kept_small(b->spans, &b->spans_cap, sizeof *b->spans); /* DISTINCT_MAX_KEYS per level of a deep one */
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
