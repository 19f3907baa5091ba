/* wr_json_parse against hostile input, and the file helpers. Every case
 * checks the error code and the message, so a crash or a silently accepted
 * document fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/lib.h"

static void expect_reject(const char *buf, size_t len, const wr_json_limits *lim, int code, const char *msg)
{
    wr_error err = {0};
    json_object *o = wr_json_parse(buf, len, lim, &err);
    if (o)
        fail_msg("accepted: %.*s", (int)(len > 60 ? 60 : len), buf);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, msg))
        fail_msg("message '%s' lacks '%s'", err.message, msg);
}

#define REJECT(lit, code, msg) expect_reject(lit, sizeof lit - 1, NULL, code, msg)

static void test_accepts_plain_documents(void **state)
{
    (void)state;
    const char *ok[] = {"{}",
                        " [1, 2.5, \"x\", true, false, null] ",
                        "\"s\"",
                        "0",
                        "-1.5e-3",
                        "{\"a\":{\"a\":{\"a\":1}}}",
                        "{\"a\":1,\"b\":{\"a\":2}}",
                        "\"\\ud83d\\ude00\"",
                        "\"\\\\u0000\"" /* an escaped backslash, not a NUL */};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        wr_error err = {0};
        json_object *o = wr_json_parse(ok[i], strlen(ok[i]), NULL, &err);
        if (!o)
            fail_msg("rejected %s: %s", ok[i], err.message);
        json_object_put(o);
    }
}

static void test_deep_nesting(void **state)
{
    (void)state;
    size_t n = 100000;
    char *buf = malloc(2 * n);
    memset(buf, '[', n);
    memset(buf + n, ']', n);
    expect_reject(buf, 2 * n, NULL, WR_E_LIMIT, "nesting deeper than 64");
    expect_reject(buf, n, NULL, WR_E_LIMIT, "nesting deeper"); /* unbalanced too */
    for (size_t i = 0; i + 5 <= n; i += 5)
        memcpy(buf + i, "{\"a\":", 5);
    expect_reject(buf, n, NULL, WR_E_LIMIT, "nesting deeper");
    free(buf);
    /* exactly at the limit is fine, one more is not */
    wr_json_limits lim = {.max_bytes = 1000, .max_depth = 3};
    wr_error err = {0};
    json_object *o = wr_json_parse("[[[1]]]", 7, &lim, &err);
    assert_non_null(o);
    json_object_put(o);
    expect_reject("[[[[1]]]]", 9, &lim, WR_E_LIMIT, "deeper than 3");
    expect_reject("{\"a\":{\"b\":{\"c\":{}}}}", 20, &lim, WR_E_LIMIT, "deeper than 3");
}

static void test_size_limit(void **state)
{
    (void)state;
    wr_json_limits lim = {.max_bytes = 10, .max_depth = 8};
    expect_reject("[1,2,3,4,5,6]", 13, &lim, WR_E_LIMIT, "13 bytes exceeds the limit of 10");
    size_t big = WR_JSON_DEFAULT_MAX_BYTES + 1;
    char *buf = malloc(big);
    memset(buf, ' ', big);
    buf[0] = '1';
    expect_reject(buf, big, NULL, WR_E_LIMIT, "exceeds the limit");
    free(buf);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    REJECT("\"\xff\"", WR_E_INVALID, "not valid UTF-8");
    REJECT("\"\xc0\xaf\"", WR_E_INVALID, "not valid UTF-8");         /* overlong "/" */
    REJECT("\"\xed\xa0\x80\"", WR_E_INVALID, "not valid UTF-8");     /* encoded surrogate */
    REJECT("\"\xf4\x90\x80\x80\"", WR_E_INVALID, "not valid UTF-8"); /* above U+10FFFF */
    REJECT("\"\xe2\x82\"", WR_E_INVALID, "not valid UTF-8");         /* truncated */
    REJECT("{\"\x80\":1}", WR_E_INVALID, "not valid UTF-8");
    /* escapes that do not denote a Unicode scalar value */
    REJECT("\"\\ud800\"", WR_E_INVALID, "lone high surrogate");
    REJECT("\"\\ud800\\u0041\"", WR_E_INVALID, "lone high surrogate");
    REJECT("\"\\udc00\"", WR_E_INVALID, "lone low surrogate");
    assert_true(wr_utf8_valid("\xf0\x9f\x98\x80 \xc3\xa9", 7));
    /* valid pairs json-c 0.16 alone would turn into U+FFFD */
    wr_error err = {0};
    const char *pairs = "[\"\\udab6\\udec7\",\"a\\udbf7\\udeecb\"]";
    json_object *o = wr_json_parse(pairs, strlen(pairs), NULL, &err);
    assert_non_null(o);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(o, 0)), "\xf2\xbd\xab\x87");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(o, 1)), "a\xf4\x8d\xbb\xac"
                                                                                 "b");
    json_object_put(o);
    assert_false(wr_utf8_valid("\xf0\x9f\x98", 3));
}

/* The ASCII fast path reads eight bytes at a time: a bad byte (or a good
 * multi-byte character) at every offset and alignment is still seen. */
static void test_utf8_at_every_offset(void **state)
{
    (void)state;
    static const char *const bad[] = {"\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
    static const char *const good[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    char buf[64];
    for (size_t at = 0; at < 24; at++)
        for (size_t tail = 0; tail < 10; tail++) {
            for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                size_t k = (size_t)snprintf(buf, sizeof buf, "%.*s%s%.*s", (int)at, "abcdefghijklmnopqrstuvwxyz",
                                            bad[i], (int)tail, "0123456789");
                if (wr_utf8_valid(buf, k))
                    fail_msg("accepted bad sequence %zu at offset %zu, tail %zu", i, at, tail);
            }
            for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                size_t k = (size_t)snprintf(buf, sizeof buf, "%.*s%s%.*s", (int)at, "abcdefghijklmnopqrstuvwxyz",
                                            good[i], (int)tail, "0123456789");
                if (!wr_utf8_valid(buf, k))
                    fail_msg("refused good character %zu at offset %zu, tail %zu", i, at, tail);
            }
        }
}

/* Strings are skipped eight bytes at a time up to the first quote,
 * backslash or control character: each of them at every offset and
 * alignment still ends the string, starts an escape or is refused. */
static void test_string_bytes_at_every_offset(void **state)
{
    (void)state;
    static const char fill[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char doc[96], want[64];
    for (int at = 0; at < 24; at++)
        for (int tail = 0; tail < 10; tail++) {
            wr_error err = {0};
            /* a closing quote: the string is exactly the bytes before it */
            size_t n = (size_t)snprintf(doc, sizeof doc, "[\"%.*s\"]", at, fill);
            json_object *o = wr_json_parse(doc, n, NULL, &err);
            assert_non_null(o);
            assert_int_equal(json_object_get_string_len(json_object_array_get_idx(o, 0)), at);
            json_object_put(o);
            /* an escaped quote and a \n inside: decoded, the string goes on */
            n = (size_t)snprintf(doc, sizeof doc, "[\"%.*s\\\"\\n%.*s\"]", at, fill, tail, fill);
            snprintf(want, sizeof want, "%.*s\"\n%.*s", at, fill, tail, fill);
            o = wr_json_parse(doc, n, NULL, &err);
            assert_non_null(o);
            assert_string_equal(json_object_get_string(json_object_array_get_idx(o, 0)), want);
            json_object_put(o);
            /* a raw control character (and DEL, which is allowed) */
            n = (size_t)snprintf(doc, sizeof doc, "[\"%.*s\x1f%.*s\"]", at, fill, tail, fill);
            assert_null(wr_json_parse(doc, n, NULL, &err));
            assert_non_null(strstr(err.message, "control character"));
            n = (size_t)snprintf(doc, sizeof doc, "[\"%.*s\x7f\x20%.*s\"]", at, fill, tail, fill);
            o = wr_json_parse(doc, n, NULL, &err);
            assert_non_null(o);
            json_object_put(o);
            /* unterminated */
            n = (size_t)snprintf(doc, sizeof doc, "[\"%.*s", at + tail, fill);
            assert_null(wr_json_parse(doc, n, NULL, &err));
        }
}

static void test_nul(void **state)
{
    (void)state;
    REJECT("{\"a\":\"x\0y\"}", WR_E_INVALID, "NUL byte at offset 7");
    REJECT("{\"a\":1}\0", WR_E_INVALID, "NUL byte");
    REJECT("\"a\\u0000b\"", WR_E_INVALID, "\\u0000");
    REJECT("{\"a\\u0000\":1}", WR_E_INVALID, "\\u0000"); /* json-c would truncate the key */
}

static void test_trailing_and_grammar(void **state)
{
    (void)state;
    REJECT("{} x", WR_E_INVALID, "invalid JSON");
    REJECT("[1] [2]", WR_E_INVALID, "invalid JSON");
    REJECT("1 2", WR_E_INVALID, "invalid JSON");
    REJECT("{\"a\":1},", WR_E_INVALID, "invalid JSON");
    REJECT("[1,2,]", WR_E_INVALID, "invalid JSON");
    REJECT("{'a':1}", WR_E_INVALID, "invalid JSON");
    REJECT("", WR_E_INVALID, "invalid JSON");
    REJECT("NaN", WR_E_INVALID, "unexpected token");
    REJECT("[Infinity]", WR_E_INVALID, "invalid JSON");
    REJECT("1.", WR_E_INVALID, "malformed number");
    REJECT("[01]", WR_E_INVALID, "invalid JSON");
    REJECT("\"a\tb\"", WR_E_INVALID, "unescaped control character");
    REJECT("1e400", WR_E_INVALID, "out of the double range");
    REJECT("null", WR_E_INVALID, "null");
    /* integers json-c would saturate without a word */
    REJECT("18446744073709551616", WR_E_LIMIT, "out of the 64-bit range");
    REJECT("[-9223372036854775809]", WR_E_LIMIT, "out of the 64-bit range");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    wr_error err = {0};
    expect_reject("{\"a\":1,\"a\":2}", 13, NULL, WR_E_INVALID, "duplicate key");
    /* the same key spelled with an escape is the same key */
    expect_reject("{\"a\":1,\"\\u0061\":2}", 18, NULL, WR_E_INVALID, "duplicate key");
    const char *nested = "{\"x\":[{\"ok\":1},{\"b\":{\"c\":1,\"c\":{\"d\":1}}}],\"y\":2}";
    assert_null(wr_json_parse(nested, strlen(nested), NULL, &err));
    assert_string_equal(err.path, "/x/1/b");
    /* a duplicate whose first value held objects: the trees no longer line up */
    const char *shadow = "{\"a\":{\"p\":{}},\"b\":{},\"a\":{}}";
    expect_reject(shadow, strlen(shadow), NULL, WR_E_INVALID, "duplicate key");
    /* same key in sibling objects is fine */
    json_object *o = wr_json_parse("[{\"a\":1},{\"a\":2}]", 17, NULL, &err);
    assert_non_null(o);
    json_object_put(o);
    /* the token pass proves small objects' keys distinct; past its bound,
     * after a closed inner object and beside a fraction it leaves the
     * proof to the tree walk, which must still catch each of these */
    char wide[400] = "{", *w = wide + 1;
    for (int i = 0; i < 20; i++)
        w += sprintf(w, "\"k%02d\":%d,", i, i);
    strcpy(w, "\"z\":0}");
    o = wr_json_parse(wide, strlen(wide), NULL, &err);
    assert_non_null(o);
    json_object_put(o);
    strcpy(w, "\"k00\":0}");
    expect_reject(wide, strlen(wide), NULL, WR_E_INVALID, "duplicate key");
    const char *inner = "{\"a\":{\"b\":1,\"c\":2},\"b\":2,\"c\":3,\"a\":4}";
    expect_reject(inner, strlen(inner), NULL, WR_E_INVALID, "duplicate key");
    o = wr_json_parse(inner, strlen(inner) - 7, NULL, &err);
    assert_null(o); /* cut: not a document */
    const char *fine = "{\"a\":{\"b\":1,\"c\":2},\"b\":2,\"c\":3}";
    o = wr_json_parse(fine, strlen(fine), NULL, &err);
    assert_non_null(o);
    json_object_put(o);
    expect_reject("{\"a\":1,\"b\":1.5,\"a\":2}", 21, NULL, WR_E_INVALID, "duplicate key");
    expect_reject("{\"a\":[1e400]}", 13, NULL, WR_E_INVALID, "out of the double range");
}

/* Whether the parser vouches for a text being canonical already: only when
 * it is, byte for byte (canonical_xcheck.py checks this at random too). */
static void test_canonical_flag(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool canonical;
    } cases[] = {
        {"{\"a\":[1,-2,true,null,\"x\"],\"b\":{}}", true},
        {"{\"a\":1,\"ab\":2,\"b\":3}", true},
        {"\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\u00e9/\x7f\"", true},
        {"[18446744073709551615,-9223372036854775808,0]", true},
        {"{\"b\":1,\"a\":2}", false},  /* key order */
        {"{\"ab\":1,\"a\":2}", false}, /* a prefix sorts first */
        {"{\"a\": 1}", false},         /* white space */
        {"{\"a\":1} ", false},
        {"[-0]", false},        /* prints as 0 */
        {"[1.0]", false},       /* prints as 1 */
        {"[2.5]", false},       /* canonical, but a fraction is not vouched for */
        {"\"\\u00e9\"", false}, /* written literally */
        {"\"\\/\"", false},
        {"\"\\u001F\"", false}, /* lower-case hex */
        {"\"\\u000a\"", false}, /* \n */
        {"{\"\\n\":1}", false}, /* an escaped key is not vouched for */
    };
    wr_json_parser *p = wr_json_parser_new(NULL, NULL);
    assert_non_null(p);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wr_error err = {0};
        bool canonical = !cases[i].canonical;
        json_object *o = wr_json_parser_parse_canonical(p, cases[i].text, strlen(cases[i].text), &canonical, &err);
        if (!o || canonical != cases[i].canonical)
            fail_msg("%s: parsed %d, canonical %d", cases[i].text, o != NULL, canonical);
        char *c = wr_canonical_json(o, false, NULL, &err);
        if (cases[i].canonical)
            assert_string_equal(c, cases[i].text);
        free(c);
        json_object_put(o);
    }
    bool canonical = true;
    wr_error err = {0};
    assert_null(wr_json_parser_parse_canonical(p, "{\"a\":1,\"a\":1}", 13, &canonical, &err));
    assert_false(canonical);
    wr_json_parser_free(p);
}

/* ours, parsed from the canonical text, is the tree json-c builds of it
 * and prints as that text again; returns it. */
static json_object *expect_as_json_c(json_object *ours, const char *text, const wr_error *err)
{
    json_object *theirs = json_tokener_parse(text);
    if (!ours || !theirs || !json_object_equal(ours, theirs))
        fail_msg("%s: parsed %d (%s), equal to json-c's tree %d", text, ours != NULL, err->message,
                 ours && theirs && json_object_equal(ours, theirs));
    json_object_put(theirs);
    char *c = wr_canonical_json(ours, false, NULL, NULL);
    assert_string_equal(c, text);
    free(c);
    return ours;
}

/* Canonical text skips json-c's tokenizer (its tree is built directly):
 * the tree must be the one json-c builds, and tokens that are each
 * canonical but stand in the wrong order must still be refused, with
 * json-c's message. */
static void test_canonical_built_as_json_c(void **state)
{
    (void)state;
    static const char *const same[] = {
        "{\"a\":[1,-2,true,false,null,\"x\"],\"b\":{},\"c\":[]}",
        "{\"\":0,\"a\":{\"b\":{\"c\":[[],[{}]]}},\"\u00e9\":\"\u00e9\U0001F600\"}",
        "[18446744073709551615,9223372036854775808,9223372036854775807,-9223372036854775808,0,-1]",
        "\"s\"",
        "7",
        "-9223372036854775808",
        "true",
        "[\"a\\\"b\",\"\\\\\",\"\\n\"]", /* escapes: json-c's tokenizer decodes them */
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        wr_error err = {0};
        json_object_put(expect_as_json_c(wr_json_parse(same[i], strlen(same[i]), NULL, &err), same[i], &err));
    }
    /* the top-level integer types, which json_object_equal does not tell apart */
    json_object *big = wr_json_parse("18446744073709551615", 20, NULL, NULL);
    assert_int_equal(json_object_get_uint64(big), UINT64_MAX);
    json_object_put(big);
    static const char *const wrong_order[] = {
        "{\"a\"1}",
        "{\"a\":}",
        "{\"a\":1\"b\":2}",
        "{1:2}",
        "[1:2]",
        "[,1]",
        "{\"a\":1}}",
        "[1-2]",
        "[1true]",
        "{\"a\",1}",
        "[\"a\":1]",
        "{\"a\":1,}",
        "[[]",
        "[1,]",
        "{\"a\":[}",
        "]",
        "{,}",
        "[\"a\"\"b\"]",
        "{\"a\":{\"b\":1}\"c\":2}",
        "1]",
        ":",
    };
    for (size_t i = 0; i < sizeof wrong_order / sizeof *wrong_order; i++)
        expect_reject(wrong_order[i], strlen(wrong_order[i]), NULL, WR_E_INVALID, "invalid JSON");
}

/* A tree given back to the parser is read into by the next document: each
 * must come out as a fresh parse does, whatever changed between the two
 * (value types, keys, lengths, nesting), and text that is no JSON must
 * still be refused with json-c's message. */
static void test_recycled_tree(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"a\":1,\"b\":\"x\",\"c\":[true,null,{\"d\":-5}]}",
        "{\"a\":2,\"b\":\"a longer string than before\",\"c\":[false,null,{\"d\":18446744073709551615}]}",
        "{\"a\":-9223372036854775808,\"b\":\"\",\"c\":[false,null,{\"d\":7}]}",
        "{\"a\":\"now a string\",\"b\":null,\"c\":[1,\"two\",{\"d\":{}}]}",
        "{\"a\":[],\"b\":{\"x\":1},\"c\":[1,\"two\",{\"e\":1}]}", /* other key in a nested object */
        "{\"a\":[1,2,3],\"b\":{\"x\":1,\"y\":2},\"c\":[1]}",      /* longer, then shorter */
        "{\"a\":[1,2],\"b\":{},\"c\":[1],\"d\":true}",            /* more members */
        "{\"a\":[1,2]}",                                          /* fewer */
        "[{\"a\":[1,2]}]",                                        /* another type at the top */
        "[{\"a\":[1,2]}]",
        "\"top\"",
        "{\"a\":[1,2],\"b\":\"\\n\"}", /* an escape: json-c's tokenizer */
        "{\"a\":[1,2],\"b\":\"y\"}",
    };
    wr_json_parser *p = wr_json_parser_new(NULL, NULL);
    assert_non_null(p);
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        wr_error err = {0};
        wr_json_parser_recycle(
            p, expect_as_json_c(wr_json_parser_parse(p, docs[i], strlen(docs[i]), &err), docs[i], &err));
    }
    /* the same shape as the tree given back, but no JSON (or not canonical) */
    static const char *const refused[] = {"{\"a\":[1,2],\"b\":\"y\"", "{\"a\":[1,2],\"b\":\"y\"}}",
                                          "{\"a\":[1,2]\"b\":\"y\"}", "{\"a\":[1,2,],\"b\":\"y\"}",
                                          "{\"a\":[1,2],\"a\":\"y\"}"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        wr_error err = {0};
        const char *same = "{\"a\":[1,2],\"b\":\"y\"}";
        json_object *o = wr_json_parser_parse(p, same, strlen(same), &err);
        assert_non_null(o);
        wr_json_parser_recycle(p, o);
        assert_null(wr_json_parser_parse(p, refused[i], strlen(refused[i]), &err));
        if (!strstr(err.message, i == 4 ? "duplicate key" : "invalid JSON"))
            fail_msg("%s: %s", refused[i], err.message);
    }
    json_object *o = wr_json_parser_parse(p, "[1]", 3, NULL);
    wr_json_parser_recycle(p, o);
    wr_json_parser_free(p); /* frees the tree given back */
    wr_json_parser_recycle(NULL, json_object_new_object());
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/wr-test-json-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/doc.json", dir);
    wr_error err = {0};
    assert_int_equal(wr_write_file_atomic(path, "{\"k\": [1]}", 10, 0640, &err), WR_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    json_object *o = wr_json_read_file(path, NULL, &err);
    assert_non_null(o);
    json_object_put(o);
    /* replacing keeps no temp files behind */
    assert_int_equal(wr_write_file_atomic(path, "[]", 2, 0600, &err), WR_OK);
    char *buf;
    size_t len;
    assert_int_equal(wr_read_file(path, 100, &buf, &len, &err), WR_OK);
    assert_string_equal(buf, "[]");
    free(buf);
    assert_int_equal(wr_read_file(path, 1, &buf, &len, &err), WR_E_LIMIT);
    assert_null(buf);
    /* errors name the file */
    assert_null(wr_json_read_file(dir, NULL, &err));
    assert_int_equal(err.code, WR_E_INVALID);
    assert_non_null(strstr(err.message, "not a regular file"));
    snprintf(path, sizeof path, "%s/missing.json", dir);
    assert_null(wr_json_read_file(path, NULL, &err));
    assert_int_equal(err.code, WR_E_NOTFOUND);
    assert_string_equal(err.path, path);
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(wr_read_file(path, 100, &buf, &len, &err), WR_E_INVALID); /* does not hang */
    unlink(path);
    snprintf(path, sizeof path, "%s/bad.json", dir);
    assert_int_equal(wr_write_file_atomic(path, "{\"a\":1,\"a\":1}", 13, 0600, &err), WR_OK);
    assert_null(wr_json_read_file(path, NULL, &err));
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, "duplicate key"));
    unlink(path);
    /* one buffer for many files: grown for a larger one, kept for a
     * smaller one, each read whole and NUL-terminated; a file over the
     * limit is refused and leaves the buffer the caller's to free */
    snprintf(path, sizeof path, "%s/doc.json", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    char *reused = NULL;
    size_t cap = 0;
    static const char *const texts[] = {"[1]", "{\"longer\":\"document than the first\"}", "7", ""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        assert_int_equal(wr_write_file_atomic(path, texts[i], strlen(texts[i]), 0600, &err), WR_OK);
        assert_int_equal(wr_read_file_into(dfd, "doc.json", path, 100, &reused, &cap, &len, &err), WR_OK);
        assert_int_equal(len, strlen(texts[i]));
        assert_string_equal(reused, texts[i]);
        assert_true(cap > len);
    }
    assert_int_equal(wr_write_file_atomic(path, texts[1], strlen(texts[1]), 0600, &err), WR_OK);
    assert_int_equal(wr_read_file_into(dfd, "doc.json", path, 10, &reused, &cap, &len, &err), WR_E_LIMIT);
    assert_int_equal(wr_read_file_into(dfd, "missing.json", path, 10, &reused, &cap, &len, &err), WR_E_NOTFOUND);
    /* a size fstat does not tell (0 for /proc files): read to the end */
    assert_int_equal(wr_read_file_into(AT_FDCWD, "/proc/self/status", "status", 1 << 20, &reused, &cap, &len, &err),
                     WR_OK);
    assert_true(len > 64 && strstr(reused, "Name:") && strstr(reused, "VmPeak:") && reused[len - 1] == '\n');
    free(reused);
    close(dfd);
    unlink(path);
    assert_int_equal(rmdir(dir), 0); /* fails if a temp file was left behind */
    assert_int_equal(wr_write_file_atomic("/nonexistent-dir/x.json", "1", 1, 0600, &err), WR_E_IO);
}

/* One parser for many documents, as a session uses it: what one document
 * left in its buffers (a failure half-way, a huge document, more objects)
 * never changes the verdict on the next. */
static void test_parser_reuse(void **state)
{
    (void)state;
    wr_json_limits lim = {.max_bytes = 1u << 22, .max_depth = 8};
    wr_error err = {0};
    /* limits no parser takes */
    for (int i = 0; i < 2; i++) {
        wr_json_limits bad = {.max_bytes = 1000, .max_depth = i ? 100001 : 0};
        assert_null(wr_json_parser_new(&bad, &err));
        assert_int_equal(err.code, WR_E_LIMIT);
        assert_string_equal(err.message, "JSON limits out of range");
    }
    /* a configured max_bytes past what json-c reads: the length is refused
     * before a byte is read, with its own reason */
    wr_json_limits huge = {.max_bytes = SIZE_MAX, .max_depth = 8};
    assert_null(wr_json_parse("1", (size_t)INT_MAX, &huge, &err));
    assert_int_equal(err.code, WR_E_LIMIT);
    assert_string_equal(err.message, "JSON document of 2147483647 bytes exceeds json-c's limit of 2147483646");
    wr_json_parser *p = wr_json_parser_new(&lim, &err);
    assert_non_null(p);
    /* A big document (its buffers are dropped after it), many objects. */
    size_t n = 100000;
    char *big = malloc(n * 8 + 16);
    assert_non_null(big);
    size_t k = 0;
    big[k++] = '[';
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(big + k, "%s{\"a\":1}", i ? "," : "");
    big[k++] = ']';
    const struct {
        const char *doc;
        size_t len;
        int code; /* WR_OK: accepted */
        const char *msg;
    } docs[] = {
        {"{\"a\":{\"b\":1,\"c\":2}}", 0, WR_OK, ""},
        {"{\"a\":1,\"a\":2}", 0, WR_E_INVALID, "duplicate key"},
        {"{\"x\":[1,2,{\"y\":1}]}", 0, WR_OK, ""},
        {"[[[[[[[[[1]]]]]]]]]", 0, WR_E_LIMIT, "deeper than 8"},
        {"{\"a\": 1} x", 0, WR_E_INVALID, "invalid JSON"},
        {big, k, WR_OK, ""},
        {"{\"b\":1,\"c\":{\"d\":1,\"d\":1}}", 0, WR_E_INVALID, "duplicate key in the object at /c"},
        {"{\"b\":1}", 0, WR_OK, ""},
        {"\"\\ud800\"", 0, WR_E_INVALID, "lone high surrogate"},
        {"{\"k\":\"\\ud83d\\ude00\"}", 0, WR_OK, ""},
    };
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
            size_t len = docs[i].len ? docs[i].len : strlen(docs[i].doc);
            wr_error e = {0}, e1 = {0};
            json_object *o = wr_json_parser_parse(p, docs[i].doc, len, &e);
            json_object *o1 = wr_json_parse(docs[i].doc, len, &lim, &e1);
            if (docs[i].code == WR_OK) {
                if (!o)
                    fail_msg("document %zu refused: %s", i, e.message);
                assert_non_null(o1);
                assert_true(json_object_equal(o, o1));
            } else {
                assert_null(o);
                assert_null(o1);
                assert_int_equal(e.code, docs[i].code);
                if (!strstr(e.message, docs[i].msg))
                    fail_msg("document %zu: message '%s' lacks '%s'", i, e.message, docs[i].msg);
                assert_string_equal(e.message, e1.message);
                assert_string_equal(e.path, e1.path);
            }
            json_object_put(o);
            json_object_put(o1);
        }
    free(big);
    wr_json_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_plain_documents),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_utf8_at_every_offset),
        cmocka_unit_test(test_string_bytes_at_every_offset),
        cmocka_unit_test(test_trailing_and_grammar),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_canonical_flag),
        cmocka_unit_test(test_canonical_built_as_json_c),
        cmocka_unit_test(test_recycled_tree),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_parser_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
