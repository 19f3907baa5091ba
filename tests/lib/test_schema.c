/* The JSON Schema validator's own behaviour: error pointers and messages,
 * schema checks at compile time, 2020-12 specifics and hostile inputs. The
 * official test suite runs in test_schema_suite.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"

static wr_schema *compile(const char *text)
{
    wr_error err = {0};
    wr_schema *s = wr_schema_parse(text, &err);
    if (!s)
        fail_msg("schema %s: %s", text, err.message);
    return s;
}

/* Validates instance text; returns the status and leaves the error in err. */
static int check(const wr_schema *s, const char *inst, wr_error *err)
{
    json_object *o = wr_json_parse(inst, strlen(inst), NULL, err);
    if (!o)
        fail_msg("instance %s: %s", inst, err->message);
    wr_error_clear(err);
    int rc = wr_schema_validate(s, o, err);
    json_object_put(o);
    return rc;
}

static void expect_error(const char *schema, const char *inst, const char *path, const char *msg)
{
    wr_schema *s = compile(schema);
    wr_error err = {0};
    int rc = check(s, inst, &err);
    wr_schema_free(s);
    if (rc == WR_OK)
        fail_msg("%s accepted %s", schema, inst);
    assert_int_equal(rc, WR_E_INVALID);
    assert_string_equal(err.path, path);
    if (!strstr(err.message, msg))
        fail_msg("message '%s' lacks '%s'", err.message, msg);
}

static void test_error_pointers_and_keywords(void **state)
{
    (void)state;
    const char *contract =
        "{\"type\":\"object\",\"properties\":{\"commands\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"object\",\"properties\":{\"timeout_sec\":{\"type\":\"integer\",\"minimum\":1}}}}}}";
    expect_error(contract, "{\"commands\":[{\"timeout_sec\":0}]}", "/commands/0/timeout_sec",
                 "/commands/0/timeout_sec: 0 is less than minimum 1");
    expect_error(contract, "{\"commands\":[{}, {\"timeout_sec\":\"5\"}]}", "/commands/1/timeout_sec",
                 "expected type integer, got string");
    expect_error("{\"required\":[\"version\"]}", "{}", "", "(root): required property 'version' is missing");
    expect_error("{\"additionalProperties\":false,\"properties\":{\"a\":true}}", "{\"a\":1,\"a/b~\":2}", "",
                 "'a/b~' is not allowed (additionalProperties)");
    /* keys with '/' and '~' are escaped in the pointer (RFC 6901) */
    expect_error("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"a/b~\":2}", "/a~1b~0", "expected type string");
    expect_error("{\"maxLength\":3}", "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"", "", "longer than maxLength 3");
    expect_error("{\"enum\":[\"low\",\"high\"]}", "\"mid\"", "", "\"mid\" is not one of enum [\"low\",\"high\"]");
    expect_error("{\"const\":\"csc.v0.1\"}", "\"csc.v0.2\"", "", "must equal const \"csc.v0.1\"");
    expect_error("{\"pattern\":\"^sha256:[a-f0-9]{4}$\"}", "\"sha256:abcg\"", "", "does not match pattern");
    expect_error("{\"uniqueItems\":true}", "[1,{\"a\":[1]},2,{\"a\":[1.0]}]", "", "items 1 and 3 are equal");
    expect_error("{\"multipleOf\":0.01}", "0.125", "", "0.125 is not a multiple of 0.01 (multipleOf)");
    expect_error("{\"exclusiveMaximum\":10}", "10", "", "not less than exclusiveMaximum 10");
    expect_error("{\"format\":\"date-time\"}", "\"2026-02-30T00:00:00Z\"", "", "not an RFC 3339 date-time");
    expect_error("{\"not\":{\"type\":\"string\"}}", "\"x\"", "", "must not match");
    expect_error("{\"prefixItems\":[{\"type\":\"string\"}],\"items\":false}", "[\"a\",1]", "/1", "false schema");
}

static void test_combinators_report_closest(void **state)
{
    (void)state;
    const char *cmd = "{\"oneOf\":[{\"required\":[\"exec\"],\"properties\":{\"exec\":{\"required\":[\"argv\"]}}},"
                      "{\"required\":[\"pipeline\"]}]}";
    expect_error(cmd, "{\"exec\":{}}", "", "none of the oneOf alternatives; closest: /exec: required property 'argv'");
    expect_error(cmd, "{\"exec\":{\"argv\":[]},\"pipeline\":1}", "", "oneOf alternatives 0 and 1");
    expect_error("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "1.5", "", "none of the anyOf");
    const char *cond = "{\"if\":{\"properties\":{\"k\":{\"const\":\"a\"}}},\"then\":{\"required\":[\"x\"]},"
                       "\"else\":{\"required\":[\"y\"]}}";
    expect_error(cond, "{\"k\":\"a\"}", "", "'x' is missing");
    expect_error(cond, "{\"k\":\"b\"}", "", "'y' is missing");
}

static void test_2020_12_semantics(void **state)
{
    (void)state;
    wr_error err = {0};
    /* 1.0 is an integer; $ref siblings apply */
    wr_schema *s = compile("{\"$defs\":{\"n\":{\"type\":\"integer\"}},\"$ref\":\"#/$defs/n\",\"maximum\":5}");
    assert_int_equal(check(s, "3.0", &err), WR_OK);
    assert_int_equal(check(s, "3.5", &err), WR_E_INVALID);
    assert_int_equal(check(s, "6", &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "greater than maximum 5"));
    wr_schema_free(s);
    /* big integers compare exactly */
    s = compile("{\"maximum\":18446744073709551614}");
    assert_int_equal(check(s, "18446744073709551614", &err), WR_OK);
    assert_int_equal(check(s, "18446744073709551615", &err), WR_E_INVALID);
    wr_schema_free(s);
    /* ECMA-262 pattern readings: \\u escapes, "$" only at the very end */
    s = compile("{\"pattern\":\"^\\\\u00e9[a-z]+$\"}");
    assert_int_equal(check(s, "\"\xc3\xa9t\xc3\xa9\"", &err), WR_E_INVALID); /* "été": é is not [a-z] */
    assert_int_equal(check(s, "\"\xc3\xa9te\"", &err), WR_OK);
    assert_int_equal(check(s, "\"\xc3\xa9te\\n\"", &err), WR_E_INVALID);
    wr_schema_free(s);
    /* recursion through $ref into nested data */
    s = compile("{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\","
                "\"items\":{\"$ref\":\"#/$defs/node\"}}},\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}");
    assert_int_equal(check(s, "{\"kids\":[{\"kids\":[]},{\"kids\":[{}]}]}", &err), WR_OK);
    assert_int_equal(check(s, "{\"kids\":[{\"kids\":[{\"x\":1}]}]}", &err), WR_E_INVALID);
    assert_string_equal(err.path, "/kids/0/kids/0");
    wr_schema_free(s);
}

/* 2020-12 embedded resources: a whole schema with its own $id and $defs
 * placed inside another keeps resolving its "#..." references inside itself. */
static void test_embedded_resource(void **state)
{
    (void)state;
    wr_error err = {0};
    wr_schema *s =
        compile("{\"$defs\":{\"path\":{\"type\":\"integer\"},"
                "\"inner\":{\"$id\":\"https://example.org/inner.json\",\"$defs\":{\"path\":{\"pattern\":\"^/\"}},"
                "\"properties\":{\"cwd\":{\"$ref\":\"#/$defs/path\"}}}},"
                "\"properties\":{\"c\":{\"$ref\":\"#/$defs/inner\"},\"n\":{\"$ref\":\"#/$defs/path\"},"
                "\"p\":{\"$ref\":\"https://example.org/inner.json#/$defs/path\"}}}");
    assert_int_equal(check(s, "{\"c\":{\"cwd\":\"/tmp\"},\"n\":1,\"p\":\"/x\"}", &err), WR_OK);
    assert_int_equal(check(s, "{\"c\":{\"cwd\":\"tmp\"}}", &err), WR_E_INVALID);
    assert_string_equal(err.path, "/c/cwd");
    assert_int_equal(check(s, "{\"n\":\"/tmp\"}", &err), WR_E_INVALID); /* the outer "path" */
    assert_int_equal(check(s, "{\"p\":\"x\"}", &err), WR_E_INVALID);
    wr_schema_free(s);
}

static void expect_bad_schema(const char *schema, int code, const char *msg)
{
    wr_error err = {0};
    wr_schema *s = wr_schema_parse(schema, &err);
    if (s)
        fail_msg("compiled %s", schema);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, msg))
        fail_msg("message '%s' lacks '%s'", err.message, msg);
}

static void test_schema_checks(void **state)
{
    (void)state;
    expect_bad_schema("{\"$ref\":\"https://example.org/s.json\"}", WR_E_INVALID, "never fetched");
    expect_bad_schema("{\"$ref\":\"other.json#/a\"}", WR_E_INVALID, "does not resolve inside this document");
    expect_bad_schema("{\"$ref\":\"#/$defs/missing\"}", WR_E_INVALID, "does not resolve");
    expect_bad_schema("{\"properties\":{\"a\":{\"pattern\":\"([a-z\"}}}", WR_E_INVALID, "does not compile");
    expect_bad_schema("{\"contains\":{\"const\":1}}", WR_E_INVALID, "keyword contains is not supported");
    expect_bad_schema("{\"dependentRequired\":{}}", WR_E_INVALID, "dependentRequired is not supported");
    expect_bad_schema("{\"multipleOf\":0}", WR_E_INVALID, "above 0");
    expect_bad_schema("{\"items\":[{\"type\":\"string\"}]}", WR_E_INVALID, "prefixItems");
    expect_bad_schema("{\"type\":\"text\"}", WR_E_INVALID, "bad type");
    expect_bad_schema("{\"minLength\":-1}", WR_E_INVALID, "non-negative integer");
    expect_bad_schema("{\"required\":[1]}", WR_E_INVALID, "required must list strings");
    expect_bad_schema("{\"anyOf\":[]}", WR_E_INVALID, "non-empty array");
    expect_bad_schema("{\"properties\":{\"a\":1}}", WR_E_INVALID, "object or a boolean");
    expect_bad_schema("[]", WR_E_INVALID, "object or a boolean");
    expect_bad_schema("{\"a\":1,\"a\":2}", WR_E_INVALID, "duplicate key");
    /* unknown keywords are annotations */
    wr_schema *s = compile("{\"title\":\"t\",\"x-whatever\":{\"pattern\":\"([\"},\"format\":\"email\"}");
    wr_error err = {0};
    assert_int_equal(check(s, "\"not an email\"", &err), WR_OK);
    wr_schema_free(s);
}

static void test_hostile(void **state)
{
    (void)state;
    wr_error err = {0};
    /* a schema that refers to itself without consuming the instance */
    wr_schema *s = compile("{\"$ref\":\"#\"}");
    assert_int_equal(check(s, "1", &err), WR_E_LIMIT);
    assert_non_null(strstr(err.message, "recursive $ref"));
    wr_schema_free(s);
    s = compile("{\"anyOf\":[{\"$ref\":\"#\"}]}");
    assert_int_equal(check(s, "1", &err), WR_E_LIMIT);
    wr_schema_free(s);
    /* catastrophic backtracking is cut off, not waited out */
    s = compile("{\"pattern\":\"^(a+)+$\"}");
    char inst[64];
    snprintf(inst, sizeof inst, "\"%s!\"", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    int rc = check(s, inst, &err);
    assert_int_equal(rc, WR_E_LIMIT);
    assert_non_null(strstr(err.message, "cannot match pattern"));
    wr_schema_free(s);
    /* uniqueItems over a large array is sorted, not compared pairwise */
    s = compile("{\"uniqueItems\":true}");
    size_t n = 200000, len = 0;
    char *big = malloc(n * 8 + 16);
    big[len++] = '[';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(big + len, "%s%zu", i ? "," : "", i);
    big[len++] = ']';
    big[len] = '\0';
    assert_int_equal(check(s, big, &err), WR_OK);
    memcpy(big + len - 2, ",0]", 4); /* a duplicate at the end */
    assert_int_equal(check(s, big, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "uniqueItems"));
    free(big);
    wr_schema_free(s);
}

/* required beside properties: valid documents are checked quietly by
 * counting the required members while matching properties; every verdict
 * and the loud pass's message must be the lookups' own. */
static void test_required_with_properties(void **state)
{
    (void)state;
    const char *schema = "{\"type\":\"object\",\"properties\":{\"a\":{},\"b\":{\"type\":\"string\"},"
                         "\"c\":{}},\"required\":[\"a\",\"b\",\"a\"]}";
    wr_schema *s = compile(schema);
    wr_error err;
    assert_int_equal(check(s, "{\"a\":1,\"b\":\"x\"}", &err), WR_OK);
    assert_int_equal(check(s, "{\"b\":\"x\",\"a\":null,\"c\":2,\"d\":1}", &err), WR_OK);
    wr_schema_free(s);
    expect_error(schema, "{\"a\":1,\"c\":1}", "", "required property 'b' is missing");
    expect_error(schema, "{\"b\":\"x\",\"c\":1}", "", "required property 'a' is missing");
    expect_error(schema, "{\"c\":1,\"d\":{\"a\":1,\"b\":\"x\"}}", "", "required property 'a' is missing");
    expect_error(schema, "{}", "", "required property 'a' is missing");
    /* a required name that is no property */
    const char *beyond = "{\"properties\":{\"a\":{}},\"required\":[\"a\",\"z\"]}";
    expect_error(beyond, "{\"a\":1}", "", "required property 'z' is missing");
    s = compile(beyond);
    assert_int_equal(check(s, "{\"a\":1,\"z\":1}", &err), WR_OK);
    wr_schema_free(s);
    /* two properties sharing one subschema object (built, not parsed): the
     * member b must not stand in for the required a */
    json_object *shared = json_object_new_object();
    json_object *props = json_object_new_object();
    json_object_object_add(props, "a", shared);
    json_object_object_add(props, "b", json_object_get(shared));
    json_object *root = json_object_new_object();
    json_object_object_add(root, "properties", props);
    json_object *req = json_object_new_array();
    json_object_array_add(req, json_object_new_string("a"));
    json_object_object_add(root, "required", req);
    s = wr_schema_new(root, &err);
    assert_non_null(s);
    json_object_put(root);
    assert_int_equal(check(s, "{\"b\":1}", &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "required property 'a' is missing"));
    assert_int_equal(check(s, "{\"a\":1,\"b\":1}", &err), WR_OK);
    wr_schema_free(s);
}

/* Members are matched to "properties" by resuming after the last match,
 * which needs them in name order: in any other order (reversed, shuffled,
 * repeated prefixes, names between and beyond the properties') each member
 * still meets its own subschema, and no other. */
static void test_properties_in_any_order(void **state)
{
    (void)state;
    wr_schema *s = compile("{\"properties\":{\"a\":{\"const\":\"a\"},\"ab\":{\"const\":\"ab\"},"
                           "\"b\":{\"const\":\"b\"},\"d\":{\"const\":\"d\"},\"e\":{\"const\":\"e\"}},"
                           "\"additionalProperties\":{\"const\":0}}");
    static const char *const valid[] = {
        "{\"a\":\"a\",\"ab\":\"ab\",\"b\":\"b\",\"d\":\"d\",\"e\":\"e\"}",
        "{\"e\":\"e\",\"d\":\"d\",\"b\":\"b\",\"ab\":\"ab\",\"a\":\"a\"}",
        "{\"b\":\"b\",\"a\":\"a\",\"e\":\"e\",\"ab\":\"ab\",\"d\":\"d\"}",
        "{\"\":0,\"a\":\"a\",\"aa\":0,\"ab\":\"ab\",\"c\":0,\"d\":\"d\",\"f\":0}",
        "{\"f\":0,\"e\":\"e\",\"c\":0,\"a\":\"a\",\"\":0,\"d\":\"d\"}",
    };
    static const char *const invalid[] = {
        "{\"a\":\"a\",\"ab\":\"a\"}", "{\"ab\":\"ab\",\"a\":\"ab\"}",          "{\"e\":\"e\",\"b\":\"e\"}",
        "{\"d\":\"d\",\"c\":\"c\"}",  "{\"e\":\"e\",\"a\":\"a\",\"f\":\"f\"}", "{\"b\":\"b\",\"aa\":\"a\"}",
    };
    wr_error err;
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        if (check(s, valid[i], &err) != WR_OK)
            fail_msg("%s: %s", valid[i], err.message);
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        if (check(s, invalid[i], &err) != WR_E_INVALID)
            fail_msg("accepted %s", invalid[i]);
    wr_schema_free(s);
}

/* A pattern's subject skips pcre2's own UTF-8 check only once found valid:
 * multi-byte text matches by characters, and a string built in memory with
 * bytes that are no UTF-8 is still refused, never matched. */
static void test_pattern_subject_utf8(void **state)
{
    (void)state;
    wr_schema *s = compile("{\"pattern\":\"^.{3}$\"}");
    wr_error err;
    assert_int_equal(check(s, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", &err),
                     WR_OK); /* three characters, nine bytes */
    assert_int_equal(check(s, "\"abcd\"", &err), WR_E_INVALID);
    static const char *const bad[] = {"a\xff"
                                      "b",
                                      "\xc3(x", "ab\xed\xa0\x80", "abcdefgh\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_object *o = json_object_new_string(bad[i]);
        wr_error_clear(&err);
        if (wr_schema_validate(s, o, &err) == WR_OK)
            fail_msg("matched invalid UTF-8 %zu", i);
        json_object_put(o);
    }
    wr_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_pointers_and_keywords),
        cmocka_unit_test(test_combinators_report_closest),
        cmocka_unit_test(test_2020_12_semantics),
        cmocka_unit_test(test_embedded_resource),
        cmocka_unit_test(test_schema_checks),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_required_with_properties),
        cmocka_unit_test(test_properties_in_any_order),
        cmocka_unit_test(test_pattern_subject_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
