/* CSC v0.1 conformance: every fixture file in $CSC_DIR/conformance/{contracts,
 * receipts}/ (all *.json) and policies/schema.json is validated against the
 * matching schema as embedded in the binaries (wr_schema_text, and the bare
 * form wr_schema_embedded compiles), and the result must equal the
 * fixture's `valid`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"
#include "schemas/schemas.h"

static const struct {
    const char *fixtures, *schema;
} sets[] = {
    {"conformance/contracts/*.json", "csc.contract.v0.1.schema.json"},
    {"conformance/receipts/*.json", "csc.execution-receipt.v0.1.schema.json"},
    {"conformance/policies/schema.json", "csc.policy.v0.1.schema.json"},
};

static int run_fixture_file(const wr_schema *s, const char *path)
{
    wr_error err = {0};
    json_object *cases = wr_json_read_file(path, NULL, &err);
    if (!cases)
        fail_msg("%s", err.message);
    int failed = 0;
    size_t n = json_object_array_length(cases);
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(cases, i), *input, *valid, *id;
        assert_true(json_object_object_get_ex(c, "input", &input));
        assert_true(json_object_object_get_ex(c, "valid", &valid));
        assert_true(json_object_object_get_ex(c, "id", &id));
        wr_error verr = {0};
        int rc = wr_schema_validate(s, input, &verr);
        if ((rc == WR_OK) != json_object_get_boolean(valid)) {
            failed++;
            printf("FAIL %s: expected %s, got %s\n", json_object_get_string(id),
                   json_object_get_boolean(valid) ? "valid" : "invalid", rc == WR_OK ? "valid" : verr.message);
        } else if (rc != WR_OK) {
            /* a rejection must say where */
            assert_true(strchr(verr.message, ':') != NULL);
        }
    }
    printf("%s: %zu fixtures, %d failed\n", path, n, failed);
    json_object_put(cases);
    return failed;
}

static void test_csc_fixtures(void **state)
{
    (void)state;
    const char *csc = getenv("CSC_DIR");
    assert_non_null(csc);
    int failed = 0, files = 0;
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        const char *text = wr_schema_text(sets[i].schema);
        assert_non_null(text);
        wr_error err = {0};
        /* The published text, and the bare form (no annotations) that the
         * binaries compile (wr_schema_embedded): both give every result. */
        wr_schema *s = wr_schema_parse(text, &err), *bare = wr_schema_embedded(sets[i].schema, &err);
        if (!s || !bare)
            fail_msg("%s: %s", sets[i].schema, err.message);
        assert_true(strlen(wr_schema_bare_text(sets[i].schema)) < strlen(text));
        char pattern[512];
        snprintf(pattern, sizeof pattern, "%s/%s", csc, sets[i].fixtures);
        glob_t g;
        assert_int_equal(glob(pattern, 0, NULL, &g), 0);
        for (size_t j = 0; j < g.gl_pathc; j++, files++)
            failed += run_fixture_file(s, g.gl_pathv[j]) + run_fixture_file(bare, g.gl_pathv[j]);
        globfree(&g);
        wr_schema_free(s);
        wr_schema_free(bare);
    }
    assert_int_equal(files, 5);
    assert_int_equal(failed, 0);
}

/* warrantd composes the tool schemas by putting the embedded schema in place
 * of a {"$ref": "<file name>"} object (see schemas/tools/check.input.json);
 * the CSC schema keeps its $id, so its "#/$defs/..." references resolve
 * inside it (2020-12 embedded resources). Done here the same way. */
static void inline_file_refs(json_object *node)
{
    if (json_object_is_type(node, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(node); i++)
            inline_file_refs(json_object_array_get_idx(node, i));
        return;
    }
    if (!json_object_is_type(node, json_type_object))
        return;
    json_object_object_foreach(node, key, val)
    {
        json_object *ref;
        const char *text;
        if (json_object_object_get_ex(val, "$ref", &ref) && (text = wr_schema_text(json_object_get_string(ref)))) {
            json_object *sub = wr_json_parse(text, strlen(text), NULL, NULL);
            assert_non_null(sub);
            json_object_object_add(node, key, sub);
        } else {
            inline_file_refs(val);
        }
    }
}

static wr_schema *compile_embedded(const char *name)
{
    const char *text = wr_schema_text(name);
    assert_non_null(text);
    wr_error err = {0};
    json_object *root = wr_json_parse(text, strlen(text), NULL, &err);
    if (!root)
        fail_msg("%s: %s", name, err.message);
    inline_file_refs(root);
    wr_schema *s = wr_schema_new(root, &err);
    json_object_put(root);
    if (!s)
        fail_msg("%s: %s", name, err.message);
    return s;
}

/* Every embedded schema (CSC and warrant's own) must compile. */
static void test_embedded_schemas_compile(void **state)
{
    (void)state;
    const char *const *names = wr_schema_names();
    size_t n = 0;
    for (; names[n]; n++)
        wr_schema_free(compile_embedded(names[n]));
    assert_true(n >= 5);
}

/* The composed check tool input accepts exactly the valid CSC contracts. */
static void test_composed_tool_schema(void **state)
{
    (void)state;
    if (!wr_schema_text("tools/check.input.json"))
        skip();
    wr_schema *s = compile_embedded("tools/check.input.json");
    const char *files[] = {"valid.json", "invalid.json"};
    for (size_t f = 0; f < 2; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/conformance/contracts/%s", getenv("CSC_DIR"), files[f]);
        wr_error err = {0};
        json_object *cases = wr_json_read_file(path, NULL, &err);
        assert_non_null(cases);
        for (size_t i = 0; i < json_object_array_length(cases); i++) {
            json_object *c = json_object_array_get_idx(cases, i), *input, *valid;
            json_object_object_get_ex(c, "input", &input);
            json_object_object_get_ex(c, "valid", &valid);
            json_object *args = json_object_new_object();
            json_object_object_add(args, "contract", json_object_get(input));
            int rc = wr_schema_validate(s, args, &err);
            if ((rc == WR_OK) != json_object_get_boolean(valid))
                fail_msg("%s #%zu: %s", files[f], i, err.message);
            if (rc != WR_OK)
                assert_true(strncmp(err.path, "/contract", 9) == 0);
            json_object_put(args);
        }
        json_object_put(cases);
    }
    wr_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csc_fixtures),
        cmocka_unit_test(test_embedded_schemas_compile),
        cmocka_unit_test(test_composed_tool_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
