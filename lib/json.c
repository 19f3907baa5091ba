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
 * duplicate keys. */
#include "lib/lib.h"
#include "lib/lib_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
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

bool wr_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            /* ASCII, the common case: eight bytes at a time */
            for (uint64_t w; end - p >= (ptrdiff_t)sizeof w; p += sizeof w) {
                memcpy(&w, p, sizeof w);
                if (w & UINT64_C(0x8080808080808080))
                    break;
            }
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
typedef struct scan {
    char *buf; /* a private copy: compacted in place, see emit() */
    size_t len, pos;
    size_t out;   /* end of the compacted text, never beyond pos */
    size_t *keys; /* key count per object, in order of their '{' */
    size_t nobj, cap;
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

/* Moves buf[from, to) to the end of the compacted text (in place until
 * something was dropped, which is the common case: no move then). */
static void emit(scan *sc, size_t from, size_t to)
{
    if (sc->out != from)
        memmove(sc->buf + sc->out, sc->buf + from, to - from);
    sc->out += to - from;
}

/* At the opening quote; leaves pos after the closing one. A surrogate pair
 * escape is replaced by the UTF-8 of its code point, because json-c 0.16
 * decodes some valid pairs (e.g. \udab6\udec7) to U+FFFD. */
static int scan_string(scan *sc)
{
    const char *b = sc->buf;
    size_t seg = sc->pos;
    sc->pos++;
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
            sc->pos += 2;
            continue;
        }
        int u = sc->pos + 6 <= sc->len ? hex4(b + sc->pos + 2) : -1;
        if (u < 0)
            return scan_fail(sc, "bad \\u escape");
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
    while (sc->pos < sc->len && sc->buf[sc->pos] >= '0' && sc->buf[sc->pos] <= '9')
        sc->pos++;
    return sc->pos - start;
}

/* RFC 8259 number grammar; integers must fit json-c's int64/uint64, which
 * would otherwise saturate silently. */
static int scan_number(scan *sc)
{
    size_t start = sc->pos;
    bool neg = sc->buf[sc->pos] == '-', integer = true;
    if (neg)
        sc->pos++;
    size_t int_start = sc->pos, nd = scan_digits(sc);
    if (nd == 0 || (nd > 1 && sc->buf[int_start] == '0'))
        return scan_fail(sc, "malformed number");
    if (sc->pos < sc->len && sc->buf[sc->pos] == '.') {
        sc->pos++;
        integer = false;
        if (scan_digits(sc) == 0)
            return scan_fail(sc, "malformed number");
    }
    if (sc->pos < sc->len && (sc->buf[sc->pos] == 'e' || sc->buf[sc->pos] == 'E')) {
        sc->pos++;
        integer = false;
        if (sc->pos < sc->len && (sc->buf[sc->pos] == '+' || sc->buf[sc->pos] == '-'))
            sc->pos++;
        if (scan_digits(sc) == 0)
            return scan_fail(sc, "malformed number");
    }
    if (integer) {
        const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
        size_t ll = strlen(lim);
        if (nd > ll || (nd == ll && memcmp(sc->buf + int_start, lim, ll) > 0)) {
            sc->pos = start;
            return wr_errorf(sc->err, WR_E_LIMIT, "", "integer at byte %zu is out of the 64-bit range", start);
        }
    }
    return WR_OK;
}

/* Per nesting level: is it an object, and is the next string a key? */
typedef struct scan_level {
    bool object, want_key;
    size_t obj;
} scan_level;

/* stack: max_depth + 1 levels */
static int scan_doc(scan *sc, int max_depth, scan_level *stack)
{
    int depth = 0, rc = WR_OK;
    const char *b = sc->buf;
    while (rc == WR_OK && sc->pos < sc->len) {
        char c = b[sc->pos];
        size_t start = sc->pos;
        scan_level *top = depth > 0 ? &stack[depth - 1] : NULL;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            sc->pos++;
        } else if (c == '{' || c == '[') {
            if (depth >= max_depth) { /* json-c lets an object's value nest one deeper */
                rc = wr_errorf(sc->err, WR_E_LIMIT, "", "JSON nesting deeper than %d levels", max_depth);
                break;
            }
            stack[depth] = (scan_level){.object = c == '{', .want_key = c == '{', .obj = sc->nobj};
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
            depth++;
            sc->pos++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                rc = scan_fail(sc, "unbalanced bracket");
            depth--;
            sc->pos++;
        } else if (c == ',' || c == ':') {
            if (top && top->object)
                top->want_key = c == ',';
            sc->pos++;
        } else if (c == '"') {
            if (top && top->object && top->want_key)
                sc->keys[top->obj]++;
            rc = scan_string(sc);
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
 * every message with one parser, without a heap allocation of its own
 * per message (large ones made malloc consolidate its free lists). */
/* Buffers above this are not kept for the next document: one huge message
 * must not stay resident. */
#define PARSER_KEEP_BYTES (64u * 1024u)

struct wr_json_parser {
    size_t max_bytes;
    int max_depth;
    struct json_tokener *tok;
    scan_level *stack; /* max_depth + 1 */
    char *copy;        /* the document, compacted by the token pass */
    size_t copy_cap;
    size_t *keys; /* key count per object */
    size_t keys_cap;
};

wr_json_parser *wr_json_parser_new(const wr_json_limits *limits, wr_error *err)
{
    size_t max_bytes = limits ? limits->max_bytes : WR_JSON_DEFAULT_MAX_BYTES;
    int max_depth = limits ? limits->max_depth : WR_JSON_DEFAULT_MAX_DEPTH;
    if (max_depth < 1 || max_depth > 100000) {
        wr_errorf(err, WR_E_LIMIT, "", "JSON limits out of range");
        return NULL;
    }
    wr_json_parser *p = calloc(1, sizeof *p);
    if (p) {
        p->max_bytes = max_bytes;
        p->max_depth = max_depth;
        p->stack = calloc((size_t)max_depth + 1, sizeof *p->stack);
    }
    if (!p || !p->stack) {
        wr_json_parser_free(p);
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    return p;
}

void wr_json_parser_free(wr_json_parser *p)
{
    if (!p)
        return;
    if (p->tok)
        json_tokener_free(p->tok);
    free(p->stack);
    free(p->copy);
    free(p->keys);
    free(p);
}

/* json-c builds the tree of the scanned text; duplicate keys are refused. */
static json_object *tree_of(wr_json_parser *p, const scan *sc, wr_error *err)
{
    p->copy[sc->out] = '\0';
    /* json-c counts the top-level value as one level of its depth. */
    if (!p->tok && (p->tok = json_tokener_new_ex(p->max_depth + 1)))
        json_tokener_set_flags(p->tok, JSON_TOKENER_STRICT);
    if (!p->tok) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    json_tokener_reset(p->tok);
    /* Feeding the terminating NUL tells json-c the text ends here (a bare
     * number at the end is otherwise "continue"). */
    json_object *obj = json_tokener_parse_ex(p->tok, p->copy, (int)sc->out + 1);
    enum json_tokener_error jerr = json_tokener_get_error(p->tok);
    size_t end = json_tokener_get_parse_end(p->tok);
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
    } else {
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

json_object *wr_json_parser_parse(wr_json_parser *p, const char *buf, size_t len, wr_error *err)
{
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
    if (len + 1 > p->copy_cap) {
        char *nc = realloc(p->copy, len + 1);
        if (!nc) {
            wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            return NULL;
        }
        p->copy = nc;
        p->copy_cap = len + 1;
    }
    memcpy(p->copy, buf, len);
    scan sc = {.buf = p->copy, .len = len, .err = err, .keys = p->keys, .cap = p->keys_cap};
    int rc = scan_doc(&sc, p->max_depth, p->stack);
    p->keys = sc.keys; /* grown or not, kept for the next document */
    p->keys_cap = sc.cap;
    json_object *obj = rc == WR_OK ? tree_of(p, &sc, err) : NULL;
    if (p->copy_cap > PARSER_KEEP_BYTES) {
        free(p->copy);
        p->copy = NULL;
        p->copy_cap = 0;
        if (p->tok) { /* its string buffer grew with the document's strings */
            json_tokener_free(p->tok);
            p->tok = NULL;
        }
    }
    if (p->keys_cap * sizeof *p->keys > PARSER_KEEP_BYTES) {
        free(p->keys);
        p->keys = NULL;
        p->keys_cap = 0;
    }
    return obj;
}

json_object *wr_json_parse(const char *buf, size_t len, const wr_json_limits *limits, wr_error *err)
{
    size_t max_bytes = limits ? limits->max_bytes : WR_JSON_DEFAULT_MAX_BYTES;
    if (len > max_bytes) { /* before allocating a parser for it */
        wr_errorf(err, WR_E_LIMIT, "", "JSON document of %zu bytes exceeds the limit of %zu", len, max_bytes);
        return NULL;
    }
    wr_json_parser *p = wr_json_parser_new(limits, err);
    json_object *obj = p ? wr_json_parser_parse(p, buf, len, err) : NULL;
    wr_json_parser_free(p);
    return obj;
}

int wr_read_fd(int fd, const char *path, size_t max_bytes, char **buf, size_t *len, wr_error *err)
{
    *buf = NULL;
    *len = 0;
    struct stat st;
    /* a FIFO or device could block forever or never end */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return wr_errorf(err, WR_E_INVALID, path, "%s is not a regular file", path);
    if ((uintmax_t)st.st_size > max_bytes)
        return wr_errorf(err, WR_E_LIMIT, path, "%s is %jd bytes, over the limit of %zu", path, (intmax_t)st.st_size,
                         max_bytes);
    /* The size may change while we read: read up to one byte past the limit. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = malloc(cap + 1);
    if (!b)
        return wr_errorf(err, WR_E_NOMEM, path, "out of memory reading %s", path);
    for (;;) {
        if (n == cap) {
            if (n > max_bytes)
                break;
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *nb = realloc(b, ncap + 1);
            if (!nb) {
                free(b);
                return wr_errorf(err, WR_E_NOMEM, path, "out of memory reading %s", path);
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(b);
            return wr_errorf(err, WR_E_IO, path, "cannot read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max_bytes) {
        free(b);
        return wr_errorf(err, WR_E_LIMIT, path, "%s exceeds the limit of %zu bytes", path, max_bytes);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return WR_OK;
}

int wr_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, wr_error *err)
{
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO with no writer must not hang before the
     * regular-file check can refuse it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return wr_errorf(err, errno == ENOENT ? WR_E_NOTFOUND : WR_E_IO, path, "cannot open %s: %s", path,
                         strerror(errno));
    int rc = wr_read_fd(fd, path, max_bytes, buf, len, err);
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
