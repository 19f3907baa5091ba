/* Canonical JSON (design.md "Canonical JSON and hashes"), sha256, base64 and
 * the compact wire form. Expected strings are what Python's
 * json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
 * prints; canonical_xcheck.py compares against Python itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"

static char *canon_text(const char *in, bool drop_nulls)
{
    wr_error err = {0};
    json_object *o = wr_json_parse(in, strlen(in), NULL, &err);
    if (!o)
        fail_msg("parse %s: %s", in, err.message);
    size_t len;
    char *c = wr_canonical_json(o, drop_nulls, &len, &err);
    assert_non_null(c);
    assert_int_equal(len, strlen(c));
    json_object_put(o);
    return c;
}

static void expect(const char *in, const char *want)
{
    char *got = canon_text(in, false);
    assert_string_equal(got, want);
    free(got);
}

static void test_key_order_and_nesting(void **state)
{
    (void)state;
    expect("{ \"b\" : 1, \"a\" : { \"z\" : [3, 2, {\"y\":1, \"x\":2}], \"A\" : true } }",
           "{\"a\":{\"A\":true,\"z\":[3,2,{\"x\":2,\"y\":1}]},\"b\":1}");
    /* code point order, not locale: 'Z' < 'a' < 'é' (U+00E9) < '€' (U+20AC) < U+1F600 */
    expect("{\"\xF0\x9F\x98\x80\":1,\"\xE2\x82\xAC\":2,\"\xC3\xA9\":3,\"a\":4,\"Z\":5}",
           "{\"Z\":5,\"a\":4,\"\xC3\xA9\":3,\"\xE2\x82\xAC\":2,\"\xF0\x9F\x98\x80\":1}");
    /* a prefix sorts first */
    expect("{\"ab\":1,\"a\":2}", "{\"a\":2,\"ab\":1}");
    /* objects sorted on the stack (up to 16 members) and by qsort (more),
     * each given in reverse order */
    for (int n = 15; n <= 18; n++) {
        char in[512] = "{", want[512] = "{";
        for (int i = 0; i < n; i++) {
            char m[32];
            snprintf(m, sizeof m, "%s\"k%02d\":%d", i ? "," : "", n - 1 - i, i);
            strcat(in, m);
            snprintf(m, sizeof m, "%s\"k%02d\":%d", i ? "," : "", i, n - 1 - i);
            strcat(want, m);
        }
        strcat(in, "}");
        strcat(want, "}");
        expect(in, want);
    }
}

static void test_empty_containers(void **state)
{
    (void)state;
    expect("{}", "{}");
    expect("[]", "[]");
    expect("{\"a\":{},\"b\":[],\"c\":[{}, []]}", "{\"a\":{},\"b\":[],\"c\":[{},[]]}");
}

static void test_strings(void **state)
{
    (void)state;
    /* "/" and DEL stay literal; non-ASCII literal; escapes written as \uXXXX in
     * the input come out as literal UTF-8 */
    expect("\"a/b\\/c\"", "\"a/b/c\"");
    expect("\"\\u00e9\\u20ac\\ud83d\\ude00\"", "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"");
    expect("\"\x7f\"", "\"\x7f\"");
    /* short escapes, then lower-case \u00XX for the other C0 controls */
    expect("\"\\\" \\\\ \\b \\f \\n \\r \\t\"", "\"\\\" \\\\ \\b \\f \\n \\r \\t\"");
    expect("\"\\u0001\\u001F\\u000b\\u001b\"", "\"\\u0001\\u001f\\u000b\\u001b\"");
    expect("\"\\u2028\"", "\"\xE2\x80\xA8\"");
}

static void test_numbers(void **state)
{
    (void)state;
    expect("[0, -0, 1, -1, 10, 123456789012345678]", "[0,0,1,-1,10,123456789012345678]");
    expect("[9223372036854775807, -9223372036854775808, 18446744073709551615]",
           "[9223372036854775807,-9223372036854775808,18446744073709551615]");
    /* integers spelled as floats are integers (JSON Schema, CSC's int fields) */
    expect("[1.0, 10.0, 1e1, 1E+1, 1e2, -0.0, 1e16, 123456789012345680000.0]",
           "[1,10,10,10,100,0,10000000000000000,123456789012345683968]");
    /* Python float repr for the others */
    expect("[0.1, 1.5, 2.5e-3, 4503599627370495.5, 1e-7]", "[0.1,1.5,0.0025,4503599627370495.5,1e-07]");
    expect("[0.0001, 0.00001, 1e-7, 5e-324, 0.30000000000000004]", "[0.0001,1e-05,1e-07,5e-324,0.30000000000000004]");
    expect("[1E+2, 1.25E-10, 3.14159]", "[100,1.25e-10,3.14159]");
    /* powers of two (2^-1017, 2^-921) where the nearest 16-digit decimal does
     * not read back but its neighbour does: repr has 16 digits, not 17 */
    expect("[7.120236347223045e-307, 5.641232424577593e-278]", "[7.120236347223045e-307,5.641232424577593e-278]");
}

static void test_drop_nulls(void **state)
{
    (void)state;
    const char *in = "{\"a\":null,\"b\":{\"c\":null,\"d\":1},\"e\":[null,{\"f\":null}]}";
    char *kept = canon_text(in, false), *dropped = canon_text(in, true);
    assert_string_equal(kept, "{\"a\":null,\"b\":{\"c\":null,\"d\":1},\"e\":[null,{\"f\":null}]}");
    /* members only: null array elements stay (their positions matter) */
    assert_string_equal(dropped, "{\"b\":{\"d\":1},\"e\":[null,{}]}");
    free(kept);
    free(dropped);
}

static void test_built_objects(void **state)
{
    (void)state;
    wr_error err = {0};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "nan", json_object_new_double(NAN));
    assert_null(wr_canonical_json(o, false, NULL, &err));
    assert_int_equal(err.code, WR_E_INVALID);
    assert_non_null(strstr(err.message, "NaN"));
    json_object_object_add(o, "nan", json_object_new_uint64(UINT64_MAX));
    json_object_object_add(o, "s", json_object_new_string("x"));
    char *c = wr_canonical_json(o, false, NULL, &err);
    assert_string_equal(c, "{\"nan\":18446744073709551615,\"s\":\"x\"}");
    free(c);
    json_object_put(o);

    /* a hand-built tree deeper than any parsed one is refused, not a stack overflow */
    json_object *deep = json_object_new_array();
    for (int i = 0; i < 5000; i++) {
        json_object *outer = json_object_new_array();
        json_object_array_add(outer, deep);
        deep = outer;
    }
    assert_null(wr_canonical_json(deep, false, NULL, &err));
    assert_int_equal(err.code, WR_E_LIMIT);
    /* json_object_put recurses too; unwind from the top */
    while (deep) {
        json_object *inner =
            json_object_array_length(deep) ? json_object_get(json_object_array_get_idx(deep, 0)) : NULL;
        json_object_put(deep);
        deep = inner;
    }
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[WR_SHA256_HEX_LEN];
    wr_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    wr_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* the hash of {"b":1,"a":[]} is the hash of its canonical text */
    const char *doc = "{ \"b\": 1, \"a\": [ ] }";
    json_object *o = wr_json_parse(doc, strlen(doc), NULL, NULL);
    wr_error err = {0};
    assert_int_equal(wr_canonical_sha256(o, false, hex, &err), WR_OK);
    char want[WR_SHA256_HEX_LEN];
    wr_sha256_hex("{\"a\":[],\"b\":1}", 14, want);
    assert_string_equal(hex, want);
    json_object_put(o);
}

/* A reused hasher gives the one-shot digests (FIPS 180 vectors), input
 * after input, and the RFC 9162 leaf hash SHA-256(0x00 || leaf). */
static void test_hasher(void **state)
{
    (void)state;
    wr_hasher *h = wr_hasher_new();
    assert_non_null(h);
    char hex[WR_SHA256_HEX_LEN];
    for (int round = 0; round < 2; round++) {
        wr_hasher_sha256_hex(h, "abc", 3, hex);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        wr_hasher_sha256_hex(h, "", 0, hex);
        assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
    unsigned char a[WR_MERKLE_HASH_LEN], b[WR_MERKLE_HASH_LEN], want[WR_MERKLE_HASH_LEN];
    wr_hasher_merkle_leaf(h, "leaf", 4, a);
    wr_merkle_leaf_hash("leaf", 4, b);
    crypto_hash_sha256(want, (const unsigned char *)"\0leaf", 5);
    assert_memory_equal(a, want, sizeof want);
    assert_memory_equal(b, want, sizeof want);
    wr_hasher_merkle_leaf(NULL, "leaf", 4, a); /* NULL: one-shot */
    assert_memory_equal(a, want, sizeof want);
    wr_hasher_free(h);
    wr_hasher_free(NULL);
}

/* The hash streams the canonical text through a fixed window: documents
 * around and far past the window's size, with escapes and multi-byte
 * characters astride its edges, hash exactly as their whole text does. */
static void test_sha256_streamed(void **state)
{
    (void)state;
    static const char *const pieces[] = {"a", "\"q\"", "\\", "\n\t", "é€😀", "\x01", "xyzw"};
    for (size_t size = 1; size < 40000; size = size * 3 + 7) {
        json_object *o = json_object_new_object();
        json_object *arr = json_object_new_array();
        char *text = malloc(size + 8);
        assert_non_null(text);
        size_t k = 0;
        for (size_t i = 0; k < size; i++) {
            const char *p = pieces[i % (sizeof pieces / sizeof pieces[0])];
            memcpy(text + k, p, strlen(p));
            k += strlen(p);
        }
        text[k] = '\0';
        json_object_array_add(arr, json_object_new_string(text));
        json_object_array_add(arr, json_object_new_int64((int64_t)size));
        json_object_object_add(o, "z", arr);
        json_object_object_add(o, text, json_object_new_double(0.5));
        json_object_object_add(o, "n", NULL);
        for (int drop = 0; drop < 2; drop++) {
            wr_error err = {0};
            size_t len;
            char *c = wr_canonical_json(o, drop, &len, &err);
            assert_non_null(c);
            char want[WR_SHA256_HEX_LEN], got[WR_SHA256_HEX_LEN];
            wr_sha256_hex(c, len, want);
            assert_int_equal(wr_canonical_sha256(o, drop, got, &err), WR_OK);
            if (strcmp(got, want))
                fail_msg("%zu bytes, drop_nulls %d: streamed %s, whole %s", len, drop, got, want);
            free(c);
        }
        free(text);
        json_object_put(o);
    }
}

static void test_compact(void **state)
{
    (void)state;
    json_object *o = wr_json_parse("{\"p\": \"/usr/bin\", \"n\": [1, 2]}", 30, NULL, NULL);
    assert_string_equal(wr_json_compact(o), "{\"p\":\"/usr/bin\",\"n\":[1,2]}");
    json_object_put(o);
}

/* Text written directly must be what json-c's compact form of the same
 * value is: every byte value in a string (the escapes), and a raw value
 * inside a json-c tree. */
static void test_jtext(void **state)
{
    (void)state;
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    json_object *s = json_object_new_string(all);
    wr_jtext t = {0};
    wr_jtext_lit(&t, "[");
    wr_jtext_str(&t, all);
    wr_jtext_put(&t, ",1]", 3);
    char *text = wr_jtext_take(&t);
    assert_non_null(text);
    assert_null(t.p);
    json_object *arr = json_object_new_array();
    json_object_array_add(arr, s);
    json_object_array_add(arr, json_object_new_int(1));
    assert_string_equal(text, wr_json_compact(arr));

    json_object *o = json_object_new_object();
    json_object_object_add(o, "raw", wr_json_raw(strdup(text)));
    json_object_object_add(o, "n", json_object_new_null());
    char *want = NULL;
    assert_true(asprintf(&want, "{\"raw\":%s,\"n\":null}", wr_json_compact(arr)) > 0);
    assert_string_equal(wr_json_compact(o), want);
    free(want);
    /* its string is "": were it hashed or signed, the text would be lost */
    wr_error err = {0};
    char hex[WR_SHA256_HEX_LEN];
    assert_null(wr_canonical_json(o, false, NULL, &err));
    assert_int_equal(err.code, WR_E_INVALID);
    assert_non_null(strstr(err.message, "no canonical form"));
    assert_int_equal(wr_canonical_sha256(o, false, hex, &err), WR_E_INVALID);
    free(text);
    json_object_put(arr);
    json_object_put(o);

    /* a raw value alone is its text; a json-c string stays a string */
    json_object *r = wr_json_raw(strdup("{\"a\":[1,\"x\"]}")), *plain = json_object_new_string("{}");
    assert_string_equal(wr_json_compact(r), "{\"a\":[1,\"x\"]}");
    assert_string_equal(wr_json_compact(plain), "\"{}\"");
    json_object_put(r);
    json_object_put(plain);

    /* growth past the first block, and nothing written is no text */
    for (int i = 0; i < 1000; i++)
        wr_jtext_str(&t, "0123456789");
    text = wr_jtext_take(&t);
    assert_int_equal(strlen(text), 12000);
    free(text);
    assert_null(wr_jtext_take(&t));
}

static void test_base64(void **state)
{
    (void)state;
    wr_error err = {0};
    char *e = wr_base64_encode((const unsigned char *)"foob", 4);
    assert_string_equal(e, "Zm9vYg==");
    free(e);
    unsigned char out[8];
    size_t n = 0;
    assert_int_equal(wr_base64_decode("Zm9vYg==", out, sizeof out, &n, &err), WR_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(wr_base64_decode("Zm9vYg", out, sizeof out, &n, &err), WR_OK);
    assert_int_equal(n, 4);
    assert_int_equal(wr_base64_decode("Zm9v!g==", out, sizeof out, &n, &err), WR_E_INVALID);
    assert_int_equal(wr_base64_decode("Zm9vYmFyYmF6cXV4", out, 4, &n, &err), WR_E_INVALID);
    assert_int_equal(wr_base64_decode("Zm9v-g==", out, sizeof out, &n, &err), WR_E_INVALID); /* URL alphabet */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_order_and_nesting),
        cmocka_unit_test(test_empty_containers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_drop_nulls),
        cmocka_unit_test(test_built_objects),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_sha256_streamed),
        cmocka_unit_test(test_hasher),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_jtext),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
