/* JSON Schema validation, the draft 2020-12 subset that CSC v0.1 and
 * warrant's own schemas use (the keyword list is in lib.h).
 *
 * wr_schema_new checks the whole schema once: every keyword value has the
 * right shape, every $ref resolves inside the document, and every pattern is
 * compiled with PCRE2 in UTF mode with the ECMA-262 readings of "$" (only at
 * the very end) and of \uhhhh (PCRE2_ALT_BSUX).
 * Assertion keywords of the standard that are not implemented here (e.g.
 * contains, multipleOf, unevaluatedProperties) make wr_schema_new fail rather
 * than being silently ignored, which would accept documents the schema's
 * author meant to refuse. Annotation keywords (title, description, default,
 * examples, $comment, ...) and unknown keywords are ignored; "format" asserts
 * only date-time (RFC 3339 via wr_time_parse).
 *
 * $ref is evaluated with 2020-12 semantics (its sibling keywords apply too)
 * and must resolve inside the document: "#<JSON pointer>" against the
 * current resource (a subschema with "$id" is a resource of its own, so a
 * whole schema embedded in another keeps resolving its own "#/$defs/..."),
 * or "URI#<pointer>" where URI is exactly some subschema's $id. Nothing is
 * ever fetched and relative URIs are not resolved. Evaluation
 * depth is bounded, so a schema that refers to itself without consuming
 * the instance ("$ref": "#" at the root) fails cleanly.
 *
 * The conformance runner in tests/lib/test_schema_suite.c runs this against
 * the official JSON-Schema-Test-Suite; see the comment there for which files. */
#include "lib/lib.h"
#include "lib/lib_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <stddef.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCHEMA_DEPTH 128 /* nesting of the schema document itself */
#define MAX_EVAL_DEPTH   256 /* instance depth plus $ref hops while validating */
/* Backtracking budget per match, far below PCRE2's default, so a hostile
 * string against a schema pattern cannot pin a core (ReDoS). */
#define PCRE2_MATCH_LIMIT 1000000
#define PCRE2_DEPTH_LIMIT 10000

typedef struct pat {
    const void *key; /* the pattern's json string, or a patternProperties key */
    pcre2_code *code;
} pat;

/* The keywords validation reads. Each schema object's values for them are
 * looked up once at compile time (cnode), so validating does one binary
 * search per schema node instead of a hash lookup per keyword. */
enum kw {
    KW_REF,
    KW_TYPE,
    KW_CONST,
    KW_ENUM,
    KW_MINLENGTH,
    KW_MAXLENGTH,
    KW_PATTERN,
    KW_FORMAT,
    KW_MULTIPLEOF,
    KW_MINIMUM,
    KW_MAXIMUM,
    KW_XMINIMUM,
    KW_XMAXIMUM,
    KW_MINITEMS,
    KW_MAXITEMS,
    KW_UNIQUEITEMS,
    KW_PREFIXITEMS,
    KW_ITEMS,
    KW_MINPROPERTIES,
    KW_MAXPROPERTIES,
    KW_REQUIRED,
    KW_PROPERTIES,
    KW_PATTERNPROPERTIES,
    KW_ADDITIONALPROPERTIES,
    KW_ALLOF,
    KW_ANYOF,
    KW_ONEOF,
    KW_NOT,
    KW_IF,
    KW_THEN,
    KW_ELSE,
    KW_COUNT
};
static const char *const kw_names[KW_COUNT] = {
    "$ref",
    "type",
    "const",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "multipleOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "uniqueItems",
    "prefixItems",
    "items",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
};

#define REQ_BY_SUB_MAX 32

typedef struct cnode {
    json_object *schema;       /* key: the schema object */
    json_object *resource;     /* the resource it resolves "#..." in when it has its own $id, else NULL */
    json_object *kw[KW_COUNT]; /* keyword values (json-c's NULL is also JSON null) */
    uint32_t present;          /* bit k: keyword k is present */
    unsigned types;            /* "type" as a set of type_bit()s: no name compared per value */
    /* Compiled nodes whose required names are all properties, each with a
     * subschema of its own: those subschemas, so that a quiet check counts
     * the required members while matching members to properties instead
     * of looking every name up again (compile_required). */
    bool req_by_sub;
    unsigned nreq_subs;
    json_object *req_subs[REQ_BY_SUB_MAX];
    /* Compiled nodes: "properties" sorted by name (NULL when empty or not
     * compiled). An instance's members come in name order when its text was
     * canonical, so each is found by resuming where the last one matched,
     * one or two strcmp, instead of hashing the name (find_property). */
    struct prop {
        const char *name;
        json_object *sub;
        const struct cnode *node; /* sub's compiled node, NULL for a boolean */
    } * props;
    size_t nprops;
    /* Compiled nodes with "$ref": where it led from the resource the node
     * was compiled in, so that evaluating it in that resource (always, bar
     * a node reached from two resources) looks nothing up (link_nodes). */
    json_object *lexical;
    json_object *ref_target, *ref_base;
    const struct cnode *ref_node;
} cnode;

_Static_assert(KW_COUNT <= 32, "present is a 32-bit set");

static bool kw_get(const cnode *sn, enum kw k, json_object **v)
{
    *v = sn->kw[k];
    return (sn->present >> k) & 1u;
}

struct wr_schema {
    json_object *root;
    cnode *nodes;               /* sorted by schema pointer after compiling */
    const json_object **by_ptr; /* their schema pointers, in the same order: searched in place of
                                   the nodes themselves, 8 bytes a probe instead of a whole cnode */
    size_t nnodes, nodecap;
    pat *pats;
    size_t npats, cap;
    pcre2_match_context *mctx;
    struct id {
        const char *uri; /* a subschema's "$id" */
        json_object *node;
    } * ids;
    size_t nids, idcap;
    /* compile time only: schema nodes already checked, the current resource */
    json_object **seen;
    size_t nseen, seencap;
    json_object *resource;
};

/* ---- JSON values --------------------------------------------------------- */

static bool is_number(json_object *o)
{
    return json_object_is_type(o, json_type_int) || json_object_is_type(o, json_type_double);
}

/* json-c keeps integers above INT64_MAX as uint64; long double holds both
 * exactly on x86-64, so comparisons with schema bounds stay exact there. */
static long double num(json_object *o)
{
    if (json_object_is_type(o, json_type_double))
        return json_object_get_double(o);
    int64_t v = json_object_get_int64(o);
    return v == INT64_MAX ? (long double)json_object_get_uint64(o) : (long double)v;
}

static bool is_integer(json_object *o)
{
    if (json_object_is_type(o, json_type_int))
        return true;
    if (!json_object_is_type(o, json_type_double))
        return false;
    double d = json_object_get_double(o);
    return isfinite(d) && d == floor(d); /* 2020-12: 1.0 is an integer */
}

static int type_rank(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null:
        return 0;
    case json_type_boolean:
        return 1;
    case json_type_int:
    case json_type_double:
        return 2;
    case json_type_string:
        return 3;
    case json_type_array:
        return 4;
    case json_type_object:
        return 5;
    }
    return 6;
}

static const char *type_name(json_object *o)
{
    static const char *const names[] = {"null", "boolean", "number", "string", "array", "object"};
    if (is_integer(o) && json_object_is_type(o, json_type_int))
        return "integer";
    int r = type_rank(o);
    return r < 6 ? names[r] : "unknown";
}

/* JSON Schema's type names as bits, in the order of type_names. */
enum {
    T_NULL = 1u << 0,
    T_BOOLEAN = 1u << 1,
    T_INTEGER = 1u << 2,
    T_NUMBER = 1u << 3,
    T_STRING = 1u << 4,
    T_ARRAY = 1u << 5,
    T_OBJECT = 1u << 6,
};

/* A type name as its bit; a name that is no JSON Schema type matches nothing. */
static unsigned type_bit(const char *name)
{
    static const char *const type_names[] = {"null", "boolean", "integer", "number", "string", "array", "object"};
    for (unsigned i = 0; name && i < sizeof type_names / sizeof type_names[0]; i++)
        if (!strcmp(name, type_names[i]))
            return 1u << i;
    return 0;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int json_cmp(json_object *a, json_object *b);

/* Objects compare by member count, then sorted keys, then values. */
static int object_cmp(json_object *a, json_object *b)
{
    size_t na = (size_t)json_object_object_length(a), nb = (size_t)json_object_object_length(b);
    if (na != nb)
        return na < nb ? -1 : 1;
    const char **ka = malloc((na ? na : 1) * sizeof *ka), **kb = malloc((nb ? nb : 1) * sizeof *kb);
    int c = 0;
    if (!ka || !kb) {
        /* Out of memory: distinct addresses keep the order total, at worst
         * calling two equal objects different. */
        c = a < b ? -1 : a > b;
    } else {
        size_t i = 0, j = 0;
        json_object_object_foreach(a, k1, v1)
        {
            (void)v1;
            ka[i++] = k1;
        }
        json_object_object_foreach(b, k2, v2)
        {
            (void)v2;
            kb[j++] = k2;
        }
        qsort(ka, na, sizeof *ka, cmp_strp);
        qsort(kb, nb, sizeof *kb, cmp_strp);
        for (i = 0; i < na && c == 0; i++)
            c = strcmp(ka[i], kb[i]);
        for (i = 0; i < na && c == 0; i++)
            c = json_cmp(json_object_object_get(a, ka[i]), json_object_object_get(b, ka[i]));
    }
    free(ka);
    free(kb);
    return c;
}

/* A total order consistent with JSON Schema equality (1 == 1.0, member
 * order irrelevant), so uniqueItems can sort instead of comparing all pairs. */
static int json_cmp(json_object *a, json_object *b)
{
    int ra = type_rank(a), rb = type_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (json_object_get_type(a)) {
    case json_type_null:
        return 0;
    case json_type_boolean:
        return json_object_get_boolean(a) - json_object_get_boolean(b);
    case json_type_int:
    case json_type_double: {
        long double x = num(a), y = num(b);
        return x < y ? -1 : x > y;
    }
    case json_type_string: {
        size_t la = (size_t)json_object_get_string_len(a), lb = (size_t)json_object_get_string_len(b);
        int c = memcmp(json_object_get_string(a), json_object_get_string(b), la < lb ? la : lb);
        return c ? c : la < lb ? -1 : la > lb;
    }
    case json_type_array: {
        size_t la = json_object_array_length(a), lb = json_object_array_length(b);
        if (la != lb)
            return la < lb ? -1 : 1;
        for (size_t i = 0; i < la; i++) {
            int c = json_cmp(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i));
            if (c)
                return c;
        }
        return 0;
    }
    case json_type_object:
        return object_cmp(a, b);
    }
    return 0;
}

/* A count keyword's value (checked non-negative integral at compile time). */
static size_t count_of(json_object *v)
{
    long double d = num(v);
    return d >= (long double)SIZE_MAX ? SIZE_MAX : (size_t)d;
}

/* Characters (code points) in s, counted up to `enough`: a length limit
 * needs no more, and every contract string has one. */
static size_t utf8_chars(const char *s, size_t len, size_t enough)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < enough; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* A short rendering of a value for error messages. */
static void describe(json_object *o, char *out, size_t cap)
{
    size_t len;
    char *c = wr_canonical_json(o, false, &len, NULL);
    if (!c) {
        snprintf(out, cap, "(%s)", type_name(o));
        return;
    }
    if (len + 1 > cap && cap > 4)
        snprintf(out, cap, "%.*s...", (int)(cap - 4), c);
    else
        snprintf(out, cap, "%s", c);
    free(c);
}

/* ---- $ref ------------------------------------------------------------------ */

/* Resolves a fragment "<JSON pointer>" (RFC 6901, URI-fragment form so %XX
 * escapes are decoded too) inside base. NULL when it does not resolve. */
static json_object *resolve_pointer(json_object *base, const char *frag)
{
    const char *p = frag;
    json_object *cur = base;
    if (*p == '\0')
        return base;
    if (*p != '/')
        return NULL; /* "#name" anchors are not supported */
    char tok[256];
    while (*p == '/' && cur) {
        p++;
        size_t n = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '%' && p[0] && p[1]) {
                char hex[3] = {p[0], p[1], 0};
                char *end;
                long v = strtol(hex, &end, 16);
                if (*end || v <= 0)
                    return NULL;
                c = (char)v;
                p += 2;
            } else if (c == '~') {
                if (*p != '0' && *p != '1')
                    return NULL;
                c = *p++ == '0' ? '~' : '/';
            }
            if (n + 1 >= sizeof tok)
                return NULL;
            tok[n++] = c;
        }
        tok[n] = '\0';
        if (json_object_is_type(cur, json_type_object)) {
            if (!json_object_object_get_ex(cur, tok, &cur))
                return NULL;
        } else if (json_object_is_type(cur, json_type_array)) {
            char *end;
            unsigned long idx = strtoul(tok, &end, 10);
            if (!n || *end || (n > 1 && tok[0] == '0') || idx >= json_object_array_length(cur))
                return NULL;
            cur = json_object_array_get_idx(cur, idx);
        } else {
            return NULL;
        }
    }
    return *p ? NULL : cur;
}

/* 2020-12 section 8.2.1: a subschema with "$id" is a resource of its own, and
 * "#..." references inside it resolve against it. This is what lets a
 * complete schema (with its own $id and $defs) be embedded in another one. */
static json_object *resource_of(json_object *node, json_object *current)
{
    json_object *id;
    return json_object_is_type(node, json_type_object) && json_object_object_get_ex(node, "$id", &id) &&
                   json_object_is_type(id, json_type_string)
               ? node
               : current;
}

/* "#frag" resolves in the current resource, "URI#frag" in the embedded
 * resource whose $id is exactly URI. Nothing else: no relative URI
 * resolution, no fetching. */
static json_object *find_ref(const wr_schema *s, json_object *resource, const char *ref, json_object **base_out)
{
    const char *hash = strchr(ref, '#');
    size_t ulen = hash ? (size_t)(hash - ref) : strlen(ref);
    json_object *base = resource;
    if (ulen > 0) {
        base = NULL;
        for (size_t i = 0; i < s->nids && !base; i++) {
            const char *u = s->ids[i].uri;
            size_t n = strlen(u);
            if (n > 0 && u[n - 1] == '#')
                n--; /* "$id": "...#" names the same resource */
            if (n == ulen && memcmp(u, ref, n) == 0)
                base = s->ids[i].node;
        }
        if (!base)
            return NULL;
    }
    *base_out = base;
    return resolve_pointer(base, hash ? hash + 1 : "");
}

/* ---- compiling ------------------------------------------------------------- */

static int pat_cmp(const void *a, const void *b)
{
    const pat *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static const pcre2_code *find_pat(const wr_schema *s, const void *key)
{
    pat k = {.key = key};
    const pat *p = s->npats == 0 ? NULL : bsearch(&k, s->pats, s->npats, sizeof *s->pats, pat_cmp);
    return p ? p->code : NULL;
}

static int add_pattern(wr_schema *s, const void *key, const char *re, const char *where, wr_error *err)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &errcode, &erroff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return wr_errorf(err, WR_E_INVALID, where, "schema %s: pattern '%.80s' does not compile at offset %zu: %s",
                         where, re, (size_t)erroff, (const char *)msg);
    }
    /* Machine code where the platform allows it: pcre2_match then runs it,
     * several times faster on the hash and key id patterns of every receipt
     * a chain walk checks. Where it does not, the interpreter runs as before. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    if (s->npats == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        pat *np = realloc(s->pats, ncap * sizeof *np);
        if (!np) {
            pcre2_code_free(code);
            return wr_errorf(err, WR_E_NOMEM, where, "out of memory");
        }
        s->pats = np;
        s->cap = ncap;
    }
    s->pats[s->npats++] = (pat){.key = key, .code = code};
    return WR_OK;
}

/* Standard assertion keywords this validator does not implement. */
static const char *const unsupported[] = {
    "contains",
    "minContains",
    "maxContains",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "$dynamicRef",
    "$recursiveRef",
    NULL,
};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

static int compile_node(wr_schema *s, json_object *node, char *ptr, size_t cap, int depth, wr_error *err);

static int compile_child(wr_schema *s, json_object *node, char *ptr, size_t cap, const char *tok, int depth,
                         wr_error *err)
{
    size_t plen = strlen(ptr);
    wr_json_ptr_append(ptr, cap, tok);
    int rc = compile_node(s, node, ptr, cap, depth + 1, err);
    ptr[plen] = '\0';
    return rc;
}

static int compile_array_of_schemas(wr_schema *s, json_object *arr, char *ptr, size_t cap, const char *kw, int depth,
                                    wr_error *err)
{
    if (!json_object_is_type(arr, json_type_array) || json_object_array_length(arr) == 0)
        return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: %s must be a non-empty array of schemas", ptr, kw);
    size_t plen = strlen(ptr);
    wr_json_ptr_append(ptr, cap, kw);
    int rc = WR_OK;
    for (size_t i = 0, n = json_object_array_length(arr); i < n && rc == WR_OK; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        rc = compile_child(s, json_object_array_get_idx(arr, i), ptr, cap, idx, depth, err);
    }
    ptr[plen] = '\0';
    return rc;
}

static bool valid_type_name(json_object *t)
{
    return json_object_is_type(t, json_type_string) && type_bit(json_object_get_string(t)) != 0;
}

static int check_keyword(wr_schema *s, const char *kw, json_object *v, char *ptr, size_t cap, int depth, wr_error *err)
{
    if (in_list(unsupported, kw))
        return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: keyword %s is not supported", ptr, kw);
    if (strcmp(kw, "type") == 0) {
        bool ok = valid_type_name(v);
        if (json_object_is_type(v, json_type_array)) {
            ok = json_object_array_length(v) > 0;
            for (size_t i = 0; ok && i < json_object_array_length(v); i++)
                ok = valid_type_name(json_object_array_get_idx(v, i));
        }
        if (!ok)
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: bad type", ptr);
    } else if (strcmp(kw, "enum") == 0 || strcmp(kw, "required") == 0) {
        if (!json_object_is_type(v, json_type_array))
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: %s must be an array", ptr, kw);
        for (size_t i = 0; kw[0] == 'r' && i < json_object_array_length(v); i++)
            if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
                return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: required must list strings", ptr);
    } else if (strcmp(kw, "properties") == 0 || strcmp(kw, "patternProperties") == 0 || strcmp(kw, "$defs") == 0 ||
               strcmp(kw, "definitions") == 0) {
        if (!json_object_is_type(v, json_type_object))
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: %s must be an object", ptr, kw);
        size_t plen = strlen(ptr);
        wr_json_ptr_append(ptr, cap, kw);
        int rc = WR_OK;
        json_object_object_foreach(v, name, sub)
        {
            if (strcmp(kw, "patternProperties") == 0)
                rc = add_pattern(s, name, name, ptr, err);
            if (rc == WR_OK)
                rc = compile_child(s, sub, ptr, cap, name, depth, err);
            if (rc != WR_OK)
                break;
        }
        ptr[plen] = '\0';
        return rc;
    } else if (strcmp(kw, "additionalProperties") == 0 || strcmp(kw, "items") == 0 || strcmp(kw, "not") == 0 ||
               strcmp(kw, "if") == 0 || strcmp(kw, "then") == 0 || strcmp(kw, "else") == 0) {
        if (json_object_is_type(v, json_type_array))
            return wr_errorf(err, WR_E_INVALID, ptr,
                             "schema %s: %s must be a schema (array-form items is prefixItems in 2020-12)", ptr, kw);
        return compile_child(s, v, ptr, cap, kw, depth, err);
    } else if (strcmp(kw, "prefixItems") == 0 || strcmp(kw, "anyOf") == 0 || strcmp(kw, "oneOf") == 0 ||
               strcmp(kw, "allOf") == 0) {
        return compile_array_of_schemas(s, v, ptr, cap, kw, depth, err);
    } else if (strcmp(kw, "minItems") == 0 || strcmp(kw, "maxItems") == 0 || strcmp(kw, "minLength") == 0 ||
               strcmp(kw, "maxLength") == 0 || strcmp(kw, "minProperties") == 0 || strcmp(kw, "maxProperties") == 0) {
        if (!is_integer(v) || num(v) < 0)
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: %s must be a non-negative integer", ptr, kw);
    } else if (strcmp(kw, "minimum") == 0 || strcmp(kw, "maximum") == 0 || strcmp(kw, "exclusiveMinimum") == 0 ||
               strcmp(kw, "exclusiveMaximum") == 0) {
        if (!is_number(v))
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: %s must be a number", ptr, kw);
    } else if (strcmp(kw, "multipleOf") == 0) {
        if (!is_number(v) || num(v) <= 0)
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: multipleOf must be a number above 0", ptr);
    } else if (strcmp(kw, "uniqueItems") == 0) {
        if (!json_object_is_type(v, json_type_boolean))
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: uniqueItems must be a boolean", ptr);
    } else if (strcmp(kw, "pattern") == 0 || strcmp(kw, "format") == 0 || strcmp(kw, "$ref") == 0) {
        if (!json_object_is_type(v, json_type_string))
            return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: %s must be a string", ptr, kw);
        const char *str = json_object_get_string(v);
        if (kw[0] == 'p')
            return add_pattern(s, v, str, ptr, err);
        if (kw[0] == '$') {
            json_object *base, *target = find_ref(s, s->resource, str, &base);
            if (!target)
                return wr_errorf(err, WR_E_INVALID, ptr,
                                 "schema %s: $ref '%.100s' does not resolve inside this document "
                                 "(references are never fetched)",
                                 ptr, str);
            /* The target may sit outside $defs; check it where it is. */
            char tptr[256];
            snprintf(tptr, sizeof tptr, "%s", str);
            json_object *saved = s->resource;
            s->resource = base;
            int rc = compile_node(s, target, tptr, sizeof tptr, depth + 1, err);
            s->resource = saved;
            return rc;
        }
    }
    return WR_OK;
}

/* Every "$id" in the document, so that "URI#..." references can find it.
 * Values of enum/const/default/examples are data, not schemas. */
static int collect_ids(wr_schema *s, json_object *node, int depth, wr_error *err)
{
    if (depth > MAX_SCHEMA_DEPTH)
        return wr_errorf(err, WR_E_LIMIT, "", "schema nested deeper than %d levels", MAX_SCHEMA_DEPTH);
    if (json_object_is_type(node, json_type_array)) {
        for (size_t i = 0, n = json_object_array_length(node); i < n; i++) {
            int rc = collect_ids(s, json_object_array_get_idx(node, i), depth + 1, err);
            if (rc != WR_OK)
                return rc;
        }
        return WR_OK;
    }
    if (!json_object_is_type(node, json_type_object))
        return WR_OK;
    if (resource_of(node, NULL)) {
        if (s->nids == s->idcap) {
            size_t ncap = s->idcap ? s->idcap * 2 : 8;
            struct id *ni = realloc(s->ids, ncap * sizeof *ni);
            if (!ni)
                return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            s->ids = ni;
            s->idcap = ncap;
        }
        s->ids[s->nids++] = (struct id){json_object_get_string(json_object_object_get(node, "$id")), node};
    }
    static const char *const data_keywords[] = {"enum", "const", "default", "examples", NULL};
    json_object_object_foreach(node, k, v)
    {
        if (in_list(data_keywords, k))
            continue;
        int rc = collect_ids(s, v, depth + 1, err);
        if (rc != WR_OK)
            return rc;
    }
    return WR_OK;
}

static int compile_keywords(wr_schema *s, json_object *node, char *ptr, size_t cap, int depth, wr_error *err);

static void fill_cnode(cnode *c, json_object *node)
{
    c->schema = node;
    c->resource = resource_of(node, NULL);
    c->present = 0;
    memset(c->kw, 0, sizeof c->kw);
    /* The node's few keys matched against the keyword table: cheaper than
     * looking every keyword up in the node (schemas compile at every start). */
    json_object_object_foreach(node, key, v)
    {
        for (int k = 0; k < KW_COUNT; k++) {
            if (strcmp(key, kw_names[k]) == 0) {
                c->kw[k] = v;
                c->present |= 1u << k;
                break;
            }
        }
    }
    c->req_by_sub = false;
    c->nreq_subs = 0;
    c->props = NULL;
    c->nprops = 0;
    c->lexical = c->ref_target = c->ref_base = NULL;
    c->ref_node = NULL;
    json_object *t = c->kw[KW_TYPE];
    c->types = 0;
    if (json_object_is_type(t, json_type_string))
        c->types = type_bit(json_object_get_string(t));
    for (size_t i = 0; json_object_is_type(t, json_type_array) && i < json_object_array_length(t); i++)
        c->types |= type_bit(json_object_get_string(json_object_array_get_idx(t, i)));
}

/* See cnode.req_by_sub. A subschema shared by two properties could stand
 * for the wrong name, so then (or past REQ_BY_SUB_MAX names) the names are
 * looked up as usual. */
static void compile_required(cnode *c)
{
    json_object *req = c->kw[KW_REQUIRED], *props = c->kw[KW_PROPERTIES];
    if (!json_object_is_type(req, json_type_array) || !json_object_is_type(props, json_type_object))
        return;
    for (size_t i = 0, n = json_object_array_length(req); i < n; i++) {
        json_object *sub = NULL;
        if (!json_object_object_get_ex(props, json_object_get_string(json_object_array_get_idx(req, i)), &sub) || !sub)
            return;
        int holders = 0;
        json_object_object_foreach(props, k, v)
        {
            (void)k;
            holders += v == sub;
        }
        if (holders != 1)
            return;
        bool seen = false;
        for (unsigned j = 0; j < c->nreq_subs; j++)
            seen |= c->req_subs[j] == sub; /* a name listed twice */
        if (!seen && c->nreq_subs == REQ_BY_SUB_MAX)
            return;
        if (!seen)
            c->req_subs[c->nreq_subs++] = sub;
    }
    c->req_by_sub = true;
}

static int prop_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prop *)a)->name, ((const struct prop *)b)->name);
}

static int index_properties(cnode *c, wr_error *err)
{
    json_object *props = c->kw[KW_PROPERTIES];
    size_t n = json_object_is_type(props, json_type_object) ? (size_t)json_object_object_length(props) : 0;
    if (!n)
        return WR_OK;
    if (!(c->props = malloc(n * sizeof *c->props)))
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    json_object_object_foreach(props, name, sub) c->props[c->nprops++] = (struct prop){name, sub, NULL};
    qsort(c->props, c->nprops, sizeof *c->props, prop_cmp);
    return WR_OK;
}

static int add_cnode(wr_schema *s, json_object *node, wr_error *err)
{
    if (s->nnodes == s->nodecap) {
        size_t ncap = s->nodecap ? s->nodecap * 2 : 32;
        cnode *nn = realloc(s->nodes, ncap * sizeof *nn);
        if (!nn)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        s->nodes = nn;
        s->nodecap = ncap;
    }
    cnode *c = &s->nodes[s->nnodes++];
    fill_cnode(c, node);
    c->lexical = s->resource;
    compile_required(c);
    return index_properties(c, err);
}

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (const json_object *const *)a, y = (uintptr_t) * (const json_object *const *)b;
    return x < y ? -1 : x > y;
}

static int cnode_cmp(const void *a, const void *b)
{
    return ptr_cmp(&((const cnode *)a)->schema, &((const cnode *)b)->schema);
}

static int compile_node(wr_schema *s, json_object *node, char *ptr, size_t cap, int depth, wr_error *err)
{
    json_object *saved = s->resource;
    s->resource = resource_of(node, saved);
    int rc = compile_keywords(s, node, ptr, cap, depth, err);
    s->resource = saved;
    return rc;
}

static int compile_keywords(wr_schema *s, json_object *node, char *ptr, size_t cap, int depth, wr_error *err)
{
    if (depth > MAX_SCHEMA_DEPTH)
        return wr_errorf(err, WR_E_LIMIT, ptr, "schema %s: nested deeper than %d levels", ptr, MAX_SCHEMA_DEPTH);
    if (json_object_is_type(node, json_type_boolean))
        return WR_OK;
    if (!json_object_is_type(node, json_type_object))
        return wr_errorf(err, WR_E_INVALID, ptr, "schema %s: a schema must be an object or a boolean",
                         ptr[0] ? ptr : "(root)");
    for (size_t i = 0; i < s->nseen; i++)
        if (s->seen[i] == node)
            return WR_OK; /* reached again through a $ref */
    if (s->nseen == s->seencap) {
        size_t ncap = s->seencap ? s->seencap * 2 : 32;
        json_object **ns = realloc(s->seen, ncap * sizeof *ns);
        if (!ns)
            return wr_errorf(err, WR_E_NOMEM, ptr, "out of memory");
        s->seen = ns;
        s->seencap = ncap;
    }
    s->seen[s->nseen++] = node;
    int added = add_cnode(s, node, err);
    if (added != WR_OK)
        return added;
    json_object_object_foreach(node, kw, v)
    {
        int rc = check_keyword(s, kw, v, ptr, cap, depth, err);
        if (rc != WR_OK)
            return rc;
    }
    return WR_OK;
}

static const cnode *compiled_node(const wr_schema *s, json_object *schema)
{
    const json_object **at = s->nnodes ? bsearch(&schema, s->by_ptr, s->nnodes, sizeof *s->by_ptr, ptr_cmp) : NULL;
    return at ? &s->nodes[at - s->by_ptr] : NULL;
}

/* Once the nodes are sorted (they move): each property's node, and where
 * each "$ref" leads (it resolved when compiled, or compiling failed). */
static void link_nodes(wr_schema *s)
{
    for (size_t i = 0; i < s->nnodes; i++) {
        cnode *c = &s->nodes[i];
        for (size_t k = 0; k < c->nprops; k++)
            c->props[k].node = compiled_node(s, c->props[k].sub);
        if (json_object_is_type(c->kw[KW_REF], json_type_string)) {
            c->ref_target = find_ref(s, c->lexical, json_object_get_string(c->kw[KW_REF]), &c->ref_base);
            c->ref_node = c->ref_target ? compiled_node(s, c->ref_target) : NULL;
        }
    }
}

wr_schema *wr_schema_new(json_object *root, wr_error *err)
{
    wr_schema *s = calloc(1, sizeof *s);
    if (!s) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    s->root = json_object_get(root);
    s->mctx = pcre2_match_context_create(NULL);
    if (!s->mctx) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        wr_schema_free(s);
        return NULL;
    }
    pcre2_set_match_limit(s->mctx, PCRE2_MATCH_LIMIT);
    pcre2_set_depth_limit(s->mctx, PCRE2_DEPTH_LIMIT);
    char ptr[256] = "";
    s->resource = root;
    int rc = collect_ids(s, root, 0, err);
    if (rc == WR_OK)
        rc = compile_node(s, root, ptr, sizeof ptr, 0, err);
    free(s->seen);
    s->seen = NULL;
    s->nseen = s->seencap = 0;
    if (rc != WR_OK) {
        wr_schema_free(s);
        return NULL;
    }
    if (s->npats)
        qsort(s->pats, s->npats, sizeof *s->pats, pat_cmp);
    if (s->nnodes)
        qsort(s->nodes, s->nnodes, sizeof *s->nodes, cnode_cmp);
    if (!(s->by_ptr = malloc((s->nnodes ? s->nnodes : 1) * sizeof *s->by_ptr))) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        wr_schema_free(s);
        return NULL;
    }
    for (size_t i = 0; i < s->nnodes; i++)
        s->by_ptr[i] = s->nodes[i].schema;
    link_nodes(s);
    return s;
}

wr_schema *wr_schema_parse(const char *text, wr_error *err)
{
    json_object *root = wr_json_parse(text, strlen(text), NULL, err);
    if (!root) {
        if (err)
            wr_error_prefix(err, "schema");
        return NULL;
    }
    wr_schema *s = wr_schema_new(root, err);
    json_object_put(root);
    return s;
}

void wr_schema_free(wr_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->npats; i++)
        pcre2_code_free(s->pats[i].code);
    free(s->pats);
    free(s->ids);
    free(s->seen);
    for (size_t i = 0; i < s->nnodes; i++)
        free(s->nodes[i].props);
    free(s->nodes);
    free(s->by_ptr);
    pcre2_match_context_free(s->mctx);
    json_object_put(s->root);
    free(s);
}

/* ---- validating ------------------------------------------------------------ */

typedef struct eval {
    const wr_schema *s;
    json_object *resource; /* where "#..." references resolve */
    /* Quiet: only the verdict, no pointers or messages. Valid input, the
     * common case, is checked quietly; a failure is re-run loudly to say
     * precisely where and why. */
    bool quiet;
    char ptr[256]; /* JSON pointer of the instance value being checked */
    wr_error *err;
    /* One match block for every pattern of this validation: only whether a
     * pattern matches is asked, so one ovector pair is enough for any. */
    pcre2_match_data *md;
    pcre2_general_context *gc; /* md's allocator: lent_alloc, or NULL for pcre2's own */
} eval;

/* pcre2_match keeps its backtracking frames (20 KiB to start) in the match
 * block, allocated through the block's general context. A validation lends
 * it this much of its own stack, so checking a document allocates no large
 * block per call (each one made malloc consolidate its free lists); small
 * blocks and larger frames still come from malloc. */
#define LENT_FRAMES_BYTES (24u * 1024u)
#define LENT_MIN_BYTES    1024u

typedef struct lent {
    _Alignas(max_align_t) unsigned char buf[LENT_FRAMES_BYTES];
    bool busy;
} lent;

static void *lent_alloc(size_t n, void *ud)
{
    lent *l = ud;
    if (l->busy || n < LENT_MIN_BYTES || n > sizeof l->buf)
        return malloc(n);
    l->busy = true;
    return l->buf;
}

static void lent_free(void *p, void *ud)
{
    lent *l = ud;
    if (p == l->buf)
        l->busy = false;
    else
        free(p);
}

static int validate_node(eval *ev, json_object *schema, const cnode *sn, json_object *inst, int depth);

static int validate(eval *ev, json_object *schema, json_object *inst, int depth)
{
    return validate_node(ev, schema, NULL, inst, depth);
}

static int fail(eval *ev, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(eval *ev, int code, const char *fmt, ...)
{
    if (ev->quiet)
        return code;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return wr_errorf(ev->err, code, ev->ptr, "%s: %s", ev->ptr[0] ? ev->ptr : "(root)", msg);
}

/* Validates a child value (member or element) under its own pointer. */
static int validate_at(eval *ev, json_object *schema, const cnode *sn, json_object *inst, const char *tok, int depth)
{
    if (ev->quiet)
        return validate_node(ev, schema, sn, inst, depth + 1);
    size_t plen = strlen(ev->ptr);
    wr_json_ptr_append(ev->ptr, sizeof ev->ptr, tok);
    int rc = validate_node(ev, schema, sn, inst, depth + 1);
    ev->ptr[plen] = '\0';
    return rc;
}

/* The types an instance has: an int is also a number, an integral double
 * also an integer (2020-12: 1.0 is an integer). */
static unsigned types_of(json_object *inst)
{
    switch (json_object_get_type(inst)) {
    case json_type_null:
        return T_NULL;
    case json_type_boolean:
        return T_BOOLEAN;
    case json_type_int:
        return T_INTEGER | T_NUMBER;
    case json_type_double:
        return T_NUMBER | (is_integer(inst) ? T_INTEGER : 0);
    case json_type_string:
        return T_STRING;
    case json_type_array:
        return T_ARRAY;
    case json_type_object:
        return T_OBJECT;
    }
    return 0;
}

static int check_type(eval *ev, const cnode *sn, json_object *t, json_object *inst)
{
    if (sn->types & types_of(inst))
        return WR_OK;
    if (json_object_is_type(t, json_type_string))
        return fail(ev, WR_E_INVALID, "expected type %s, got %s", json_object_get_string(t), type_name(inst));
    char d[120];
    describe(t, d, sizeof d);
    return fail(ev, WR_E_INVALID, "type %s is not one of %s", type_name(inst), d);
}

static int check_pattern(eval *ev, const pcre2_code *code, const char *re, const char *str, size_t len, bool *matched)
{
    if (!ev->md && !(ev->md = pcre2_match_data_create(1, ev->gc)))
        return fail(ev, WR_E_NOMEM, "out of memory");
    /* pcre2 checks a subject's UTF-8 a byte at a time; wr_utf8_valid takes
     * ASCII eight bytes at a time (most of a receipt's subjects are hex).
     * Invalid text is left to pcre2, which refuses it as before. */
    uint32_t opts = wr_utf8_valid(str, len) ? PCRE2_NO_UTF_CHECK : 0;
    /* 0 means "matched, ovector too small": still a match. */
    int r = pcre2_match(code, (PCRE2_SPTR)str, len, 0, opts, ev->md, ev->s->mctx);
    *matched = r >= 0;
    if (r >= 0 || r == PCRE2_ERROR_NOMATCH)
        return WR_OK;
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(r, msg, sizeof msg);
    bool limit = r == PCRE2_ERROR_MATCHLIMIT || r == PCRE2_ERROR_DEPTHLIMIT || r == PCRE2_ERROR_JIT_STACKLIMIT;
    return fail(ev, limit ? WR_E_LIMIT : WR_E_INVALID, "cannot match pattern '%.80s': %s", re, (const char *)msg);
}

static int check_string(eval *ev, const cnode *sn, json_object *inst)
{
    const char *str = json_object_get_string(inst);
    size_t len = (size_t)json_object_get_string_len(inst);
    json_object *v;
    if (kw_get(sn, KW_MINLENGTH, &v) && utf8_chars(str, len, count_of(v)) < count_of(v))
        return fail(ev, WR_E_INVALID, "string is shorter than minLength %lld", (long long)count_of(v));
    /* no more characters than bytes */
    if (kw_get(sn, KW_MAXLENGTH, &v) && len > count_of(v) && utf8_chars(str, len, count_of(v) + 1) > count_of(v))
        return fail(ev, WR_E_INVALID, "string is longer than maxLength %lld", (long long)count_of(v));
    if (kw_get(sn, KW_PATTERN, &v)) {
        const char *re = json_object_get_string(v);
        bool m;
        int rc = check_pattern(ev, find_pat(ev->s, v), re, str, len, &m);
        if (rc != WR_OK)
            return rc;
        if (!m)
            return fail(ev, WR_E_INVALID, "'%.80s' does not match pattern '%.80s'", str, re);
    }
    if (kw_get(sn, KW_FORMAT, &v) && strcmp(json_object_get_string(v), "date-time") == 0) {
        int64_t ms;
        if (wr_time_parse(str, &ms, NULL) != WR_OK)
            return fail(ev, WR_E_INVALID, "'%.80s' is not an RFC 3339 date-time (format)", str);
    }
    return WR_OK;
}

/* Exact for two int64 values; otherwise the quotient must be integral up to
 * a relative 1e-9, since 0.0075 / 0.0001 is not exactly 75 in binary. */
static bool is_multiple(json_object *inst, json_object *m)
{
    if (json_object_is_type(inst, json_type_int) && json_object_is_type(m, json_type_int)) {
        int64_t a = json_object_get_int64(inst), b = json_object_get_int64(m);
        if (a != INT64_MAX && b != INT64_MAX)
            return b == -1 || a % b == 0;
    }
    long double q = num(inst) / num(m);
    if (!isfinite(q))
        return false;
    return fabsl(q - roundl(q)) <= 1e-9L * (fabsl(q) > 1 ? fabsl(q) : 1);
}

static int check_number(eval *ev, const cnode *sn, json_object *inst)
{
    static const struct {
        enum kw id;
        const char *what;
        int bad_sign; /* instance compared with the bound: fail when cmp has this sign or is 0 */
        bool fail_equal;
    } bounds[] = {
        {KW_MINIMUM, "less than minimum", -1, false},
        {KW_MAXIMUM, "greater than maximum", 1, false},
        {KW_XMINIMUM, "not greater than exclusiveMinimum", -1, true},
        {KW_XMAXIMUM, "not less than exclusiveMaximum", 1, true},
    };
    long double x = num(inst);
    json_object *m;
    if (kw_get(sn, KW_MULTIPLEOF, &m) && !is_multiple(inst, m)) {
        char a[64], ms[64];
        describe(inst, a, sizeof a);
        describe(m, ms, sizeof ms);
        return fail(ev, WR_E_INVALID, "%s is not a multiple of %s (multipleOf)", a, ms);
    }
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        json_object *v;
        if (!kw_get(sn, bounds[i].id, &v))
            continue;
        long double b = num(v);
        int c = x < b ? -1 : x > b;
        if (c == bounds[i].bad_sign || (c == 0 && bounds[i].fail_equal)) {
            char a[64], bs[64];
            describe(inst, a, sizeof a);
            describe(v, bs, sizeof bs);
            return fail(ev, WR_E_INVALID, "%s is %s %s", a, bounds[i].what, bs);
        }
    }
    return WR_OK;
}

typedef struct indexed {
    json_object *o;
    size_t i;
} indexed;

static int cmp_indexed(const void *a, const void *b)
{
    const indexed *x = a, *y = b;
    int c = json_cmp(x->o, y->o);
    return c ? c : x->i < y->i ? -1 : 1;
}

static int check_array(eval *ev, const cnode *sn, json_object *inst, int depth)
{
    size_t n = json_object_array_length(inst), prefix = 0;
    json_object *v;
    if (kw_get(sn, KW_MINITEMS, &v) && n < count_of(v))
        return fail(ev, WR_E_INVALID, "array has fewer than minItems %lld items", (long long)count_of(v));
    if (kw_get(sn, KW_MAXITEMS, &v) && n > count_of(v))
        return fail(ev, WR_E_INVALID, "array has more than maxItems %lld items", (long long)count_of(v));
    if (kw_get(sn, KW_UNIQUEITEMS, &v) && json_object_get_boolean(v) && n > 1) {
        indexed *els = malloc(n * sizeof *els);
        if (!els)
            return fail(ev, WR_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            els[i] = (indexed){json_object_array_get_idx(inst, i), i};
        qsort(els, n, sizeof *els, cmp_indexed);
        for (size_t i = 1; i < n; i++) {
            if (json_cmp(els[i - 1].o, els[i].o) == 0) {
                size_t a = els[i - 1].i, b = els[i].i;
                free(els);
                return fail(ev, WR_E_INVALID, "items %zu and %zu are equal (uniqueItems)", a, b);
            }
        }
        free(els);
    }
    char idx[24];
    if (kw_get(sn, KW_PREFIXITEMS, &v)) {
        prefix = json_object_array_length(v);
        for (size_t i = 0; i < prefix && i < n; i++) {
            if (!ev->quiet)
                snprintf(idx, sizeof idx, "%zu", i);
            int rc =
                validate_at(ev, json_object_array_get_idx(v, i), NULL, json_object_array_get_idx(inst, i), idx, depth);
            if (rc != WR_OK)
                return rc;
        }
    }
    if (kw_get(sn, KW_ITEMS, &v)) {
        for (size_t i = prefix; i < n; i++) {
            if (!ev->quiet)
                snprintf(idx, sizeof idx, "%zu", i);
            int rc = validate_at(ev, v, NULL, json_object_array_get_idx(inst, i), idx, depth);
            if (rc != WR_OK)
                return rc;
        }
    }
    return WR_OK;
}

/* The subschema "properties" gives the member named key, if any. *next is
 * where the search resumes: past the name that matched last. A name that
 * does not sort after that one (members not in name order) is searched
 * for among the names before it. */
static bool find_property(const cnode *sn, json_object *props, const char *key, size_t *next, json_object **sub,
                          const cnode **node)
{
    *node = NULL;
    if (!sn->props)
        return props && json_object_object_get_ex(props, key, sub);
    size_t i = *next;
    const struct prop *p = NULL;
    if (i > 0 && strcmp(key, sn->props[i - 1].name) <= 0) {
        struct prop k = {.name = key};
        p = bsearch(&k, sn->props, i, sizeof k, prop_cmp);
    } else {
        int c = 1;
        while (i < sn->nprops && (c = strcmp(sn->props[i].name, key)) < 0)
            i++;
        p = c == 0 && i < sn->nprops ? &sn->props[i] : NULL;
        *next = p ? i + 1 : i;
    }
    if (p) {
        *sub = p->sub;
        *node = p->node;
    }
    return p != NULL;
}

static int check_object(eval *ev, const cnode *sn, json_object *inst, int depth)
{
    json_object *v, *props = NULL, *pprops = NULL, *addl = NULL;
    size_t n = (size_t)json_object_object_length(inst);
    if (kw_get(sn, KW_MINPROPERTIES, &v) && n < count_of(v))
        return fail(ev, WR_E_INVALID, "object has fewer than minProperties %lld members", (long long)count_of(v));
    if (kw_get(sn, KW_MAXPROPERTIES, &v) && n > count_of(v))
        return fail(ev, WR_E_INVALID, "object has more than maxProperties %lld members", (long long)count_of(v));
    bool count_required = ev->quiet && sn->req_by_sub; /* counted below instead */
    uint64_t required_seen = 0;
    if (kw_get(sn, KW_REQUIRED, &v) && !count_required) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(v, i));
            if (!json_object_object_get_ex(inst, name, NULL))
                return fail(ev, WR_E_INVALID, "required property '%.100s' is missing", name);
        }
    }
    kw_get(sn, KW_PROPERTIES, &props);
    kw_get(sn, KW_PATTERNPROPERTIES, &pprops);
    kw_get(sn, KW_ADDITIONALPROPERTIES, &addl);
    size_t next = 0;
    json_object_object_foreach(inst, key, val)
    {
        bool covered = false;
        json_object *sub;
        const cnode *node;
        if (find_property(sn, props, key, &next, &sub, &node)) {
            covered = true;
            for (unsigned i = 0; count_required && i < sn->nreq_subs; i++)
                if (sn->req_subs[i] == sub)
                    required_seen |= UINT64_C(1) << i;
            int rc = validate_at(ev, sub, node, val, key, depth);
            if (rc != WR_OK)
                return rc;
        }
        if (pprops) {
            json_object_object_foreach(pprops, re, psub)
            {
                bool m;
                int rc = check_pattern(ev, find_pat(ev->s, re), re, key, strlen(key), &m);
                if (rc == WR_OK && m) {
                    covered = true;
                    rc = validate_at(ev, psub, NULL, val, key, depth);
                }
                if (rc != WR_OK)
                    return rc;
            }
        }
        if (!covered && addl) {
            if (json_object_is_type(addl, json_type_boolean) && !json_object_get_boolean(addl))
                return fail(ev, WR_E_INVALID, "property '%.100s' is not allowed (additionalProperties)", key);
            int rc = validate_at(ev, addl, NULL, val, key, depth);
            if (rc != WR_OK)
                return rc;
        }
    }
    if (count_required && required_seen != (UINT64_C(1) << sn->nreq_subs) - 1)
        return fail(ev, WR_E_INVALID, "a required property is missing"); /* quiet: the loud pass names it */
    return WR_OK;
}

/* Runs each alternative with its own error until `enough` matched (the
 * verdict cannot change after: anyOf needs one, oneOf fails at two);
 * returns how many matched and keeps the error of the failing alternative
 * whose failure lies deepest in the instance (usually the one the author
 * meant). Quietly, only the verdict is kept. */
static int count_matches(eval *ev, json_object *alts, json_object *inst, int depth, int enough, wr_error *best,
                         size_t *first, size_t *second)
{
    int matched = 0;
    wr_error *outer = ev->err;
    best->code = WR_OK;
    best->path[0] = best->message[0] = '\0';
    for (size_t i = 0, n = json_object_array_length(alts); i < n && matched < enough; i++) {
        wr_error e;
        wr_error_clear(&e);
        ev->err = &e;
        int rc = validate(ev, json_object_array_get_idx(alts, i), inst, depth + 1);
        ev->err = outer;
        if (rc == WR_OK) {
            if (matched == 0)
                *first = i;
            else if (matched == 1)
                *second = i;
            matched++;
        } else if (rc != WR_E_INVALID) {
            *best = e;       /* resource limits are not "does not match" */
            best->code = rc; /* e is left empty when evaluating quietly */
            return -1;
        } else if (!ev->quiet && (best->code == WR_OK || strlen(e.path) > strlen(best->path))) {
            *best = e; /* quietly there is no error to keep */
        }
    }
    return matched;
}

static int check_combinators(eval *ev, const cnode *sn, json_object *inst, int depth)
{
    json_object *v;
    wr_error inner;
    size_t first = 0, second = 0;
    if (kw_get(sn, KW_ALLOF, &v)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            int rc = validate(ev, json_object_array_get_idx(v, i), inst, depth + 1);
            if (rc != WR_OK)
                return rc;
        }
    }
    if (kw_get(sn, KW_ANYOF, &v)) {
        int m = count_matches(ev, v, inst, depth, 1, &inner, &first, &second);
        if (m < 0)
            return wr_errorf(ev->err, inner.code, inner.path, "%s", inner.message);
        if (m == 0)
            return fail(ev, WR_E_INVALID, "matches none of the anyOf alternatives; closest: %s", inner.message);
    }
    if (kw_get(sn, KW_ONEOF, &v)) {
        int m = count_matches(ev, v, inst, depth, 2, &inner, &first, &second);
        if (m < 0)
            return wr_errorf(ev->err, inner.code, inner.path, "%s", inner.message);
        if (m == 0)
            return fail(ev, WR_E_INVALID, "matches none of the oneOf alternatives; closest: %s", inner.message);
        if (m > 1)
            return fail(ev, WR_E_INVALID, "matches oneOf alternatives %zu and %zu, not exactly one", first, second);
    }
    if (kw_get(sn, KW_NOT, &v)) {
        wr_error e = {0}, *outer = ev->err;
        ev->err = &e;
        int rc = validate(ev, v, inst, depth + 1);
        ev->err = outer;
        if (rc == WR_OK)
            return fail(ev, WR_E_INVALID, "must not match the 'not' schema");
        if (rc != WR_E_INVALID)
            return wr_errorf(ev->err, rc, e.path, "%s", e.message);
    }
    if (kw_get(sn, KW_IF, &v)) {
        wr_error e = {0}, *outer = ev->err;
        ev->err = &e;
        int rc = validate(ev, v, inst, depth + 1);
        ev->err = outer;
        if (rc != WR_OK && rc != WR_E_INVALID)
            return wr_errorf(ev->err, rc, e.path, "%s", e.message);
        json_object *branch;
        if (kw_get(sn, rc == WR_OK ? KW_THEN : KW_ELSE, &branch))
            return validate(ev, branch, inst, depth + 1);
    }
    return WR_OK;
}

static int validate_here(eval *ev, const cnode *sn, json_object *inst, int depth);

/* The compiled keywords of a schema node; a node the compiler never saw
 * (not reachable from the root) is read directly, which is only slower. */
static const cnode *node_of(const wr_schema *s, json_object *schema, cnode *scratch)
{
    const cnode *c = compiled_node(s, schema);
    if (c)
        return c;
    fill_cnode(scratch, schema);
    return scratch;
}

/* sn: schema's compiled node when the caller has it, else NULL. */
static int validate_node(eval *ev, json_object *schema, const cnode *sn, json_object *inst, int depth)
{
    if (depth > MAX_EVAL_DEPTH)
        return fail(ev, WR_E_LIMIT, "schema evaluation deeper than %d levels (recursive $ref?)", MAX_EVAL_DEPTH);
    if (json_object_is_type(schema, json_type_boolean))
        return json_object_get_boolean(schema) ? WR_OK
                                               : fail(ev, WR_E_INVALID, "no value is allowed here (false schema)");
    cnode scratch;
    if (!sn)
        sn = node_of(ev->s, schema, &scratch);
    json_object *saved = ev->resource;
    if (sn->resource)
        ev->resource = sn->resource;
    int rc = validate_here(ev, sn, inst, depth);
    ev->resource = saved;
    return rc;
}

static int validate_here(eval *ev, const cnode *sn, json_object *inst, int depth)
{
    json_object *v;
    int rc;
    if (kw_get(sn, KW_REF, &v)) {
        json_object *saved = ev->resource, *base = sn->ref_base, *target = sn->ref_target;
        const cnode *node = sn->ref_node;
        if (!target || ev->resource != sn->lexical) {
            target = find_ref(ev->s, ev->resource, json_object_get_string(v), &base);
            node = NULL;
        }
        ev->resource = base; /* resolved at compile time: never NULL here */
        rc = validate_node(ev, target, node, inst, depth + 1);
        ev->resource = saved;
        if (rc != WR_OK)
            return rc;
    }
    if (kw_get(sn, KW_TYPE, &v) && (rc = check_type(ev, sn, v, inst)) != WR_OK)
        return rc;
    if (kw_get(sn, KW_CONST, &v) && json_cmp(v, inst) != 0) {
        char d[80];
        describe(v, d, sizeof d);
        return fail(ev, WR_E_INVALID, "must equal const %s", d);
    }
    if (kw_get(sn, KW_ENUM, &v)) {
        size_t i = 0, n = json_object_array_length(v);
        while (i < n && json_cmp(json_object_array_get_idx(v, i), inst) != 0)
            i++;
        if (i == n) {
            char a[80], d[160];
            describe(inst, a, sizeof a);
            describe(v, d, sizeof d);
            return fail(ev, WR_E_INVALID, "%s is not one of enum %s", a, d);
        }
    }
    switch (json_object_get_type(inst)) {
    case json_type_string:
        rc = check_string(ev, sn, inst);
        break;
    case json_type_int:
    case json_type_double:
        rc = check_number(ev, sn, inst);
        break;
    case json_type_array:
        rc = check_array(ev, sn, inst, depth);
        break;
    case json_type_object:
        rc = check_object(ev, sn, inst, depth);
        break;
    default:
        rc = WR_OK;
    }
    if (rc != WR_OK)
        return rc;
    return check_combinators(ev, sn, inst, depth);
}

int wr_schema_validate(const wr_schema *s, json_object *instance, wr_error *err)
{
    lent frames; /* buf is only written by pcre2 */
    frames.busy = false;
    /* NULL (no memory for it): pcre2 allocates as usual */
    pcre2_general_context *gc = pcre2_general_context_create(lent_alloc, lent_free, &frames);
    wr_error quiet_err;
    wr_error_clear(&quiet_err);
    eval ev = {.s = s, .resource = s->root, .quiet = true, .err = &quiet_err, .gc = gc};
    int rc = validate(&ev, s->root, instance, 0);
    if (rc != WR_OK) {
        pcre2_match_data *md = ev.md;
        ev = (eval){.s = s, .resource = s->root, .err = err, .md = md, .gc = gc};
        rc = validate(&ev, s->root, instance, 0);
    }
    pcre2_match_data_free(ev.md); /* before the context and frames it uses */
    pcre2_general_context_free(gc);
    return rc;
}
