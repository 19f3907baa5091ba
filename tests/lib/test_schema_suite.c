/* Runs lib/schema.c against the official JSON-Schema-Test-Suite.
 *
 * Why draft7 files: Debian's json-schema-test-suite package (2.0.0, what CI
 * installs; scripts/deps.sh --test) ships draft3..draft7 only, no
 * draft2020-12. The files below cover keywords whose semantics did not change
 * between draft 7 and 2020-12, so their expectations hold for a 2020-12
 * validator. Where draft 7 differs, the case is listed in `skips` with the
 * reason; every other case must pass. Files for keywords this validator
 * refuses on purpose (contains, dependencies, propertyNames,
 * additionalItems, ...: wr_schema_new fails on them), format files other
 * than date-time (annotations only), optional/bignum.json (integers beyond
 * 64 bits are refused by wr_json_parse, so the file cannot be read) and
 * optional/zeroTerminatedFloats.json (expects 1.0 not to be an integer,
 * which 2020-12 reverses) are not run.
 *
 * The suite directory is JSON_SCHEMA_TEST_SUITE if set, else the Debian path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/lib.h"

static const char *const files[] = {
    "type.json",
    "enum.json",
    "const.json",
    "required.json",
    "properties.json",
    "additionalProperties.json",
    "patternProperties.json",
    "minProperties.json",
    "maxProperties.json",
    "minItems.json",
    "maxItems.json",
    "uniqueItems.json",
    "minLength.json",
    "maxLength.json",
    "pattern.json",
    "minimum.json",
    "maximum.json",
    "exclusiveMinimum.json",
    "exclusiveMaximum.json",
    "multipleOf.json",
    "anyOf.json",
    "oneOf.json",
    "allOf.json",
    "not.json",
    "if-then-else.json",
    "ref.json",
    "items.json",
    "boolean_schema.json",
    "optional/format/date-time.json",
};

/* file, group description, test description (NULL: the whole group), reason */
static const struct skip {
    const char *file, *group, *test, *reason;
} skips[] = {
    {"items.json", "an array of schemas for items", NULL,
     "array-form items is draft 7 tuple validation; 2020-12 spells it prefixItems (refused as items)"},
    {"items.json", "items with boolean schemas", NULL,
     "array-form items is draft 7 tuple validation; 2020-12 spells it prefixItems (refused as items)"},
    {"ref.json", "relative pointer ref to array", NULL, "its schema uses array-form items (draft 7 tuple validation)"},
    {"ref.json", "ref overrides any sibling keywords", NULL,
     "draft 7 ignores keywords beside $ref; 2020-12 applies them (tested in test_schema.c)"},
    {"ref.json", "remote ref, containing refs itself", NULL,
     "remote $ref (the draft-07 metaschema over the network): never dereferenced by design"},
    {"ref.json", "Recursive references between schemas", NULL,
     "$ref resolved against $id URIs (\"node\", \"tree\"): only '#' pointers are supported"},
};

/* test NULL asks for a whole-group entry, else for that one case's entry. */
static const char *skip_reason(const char *file, const char *group, const char *test)
{
    for (size_t i = 0; i < sizeof skips / sizeof *skips; i++) {
        const struct skip *k = &skips[i];
        if (strcmp(k->file, file) == 0 && strcmp(k->group, group) == 0 &&
            (test ? k->test && strcmp(k->test, test) == 0 : !k->test))
            return k->reason;
    }
    return NULL;
}

static const char *suite_dir(void)
{
    const char *d = getenv("JSON_SCHEMA_TEST_SUITE");
    return d ? d : "/usr/share/json-schema-test-suite/tests/draft7";
}

static const char *str_member(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void run_file(void **state)
{
    const char *file = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", suite_dir(), file);
    wr_error err = {0};
    wr_json_limits lim = {.max_bytes = 1u << 24, .max_depth = 64};
    json_object *groups = wr_json_read_file(path, &lim, &err);
    if (!groups)
        fail_msg("%s", err.message);
    int ran = 0, skipped = 0, failed = 0;
    for (size_t g = 0; g < json_object_array_length(groups); g++) {
        json_object *group = json_object_array_get_idx(groups, g), *schema, *tests;
        const char *gdesc = str_member(group, "description");
        json_object_object_get_ex(group, "schema", &schema);
        json_object_object_get_ex(group, "tests", &tests);
        const char *greason = skip_reason(file, gdesc, NULL);
        if (greason) {
            skipped += (int)json_object_array_length(tests);
            printf("  skip group '%s': %s\n", gdesc, greason);
            continue;
        }
        wr_schema *s = wr_schema_new(schema, &err);
        if (!s) {
            printf("  FAIL group '%s': schema refused: %s\n", gdesc, err.message);
            failed += (int)json_object_array_length(tests);
            continue;
        }
        for (size_t t = 0; t < json_object_array_length(tests); t++) {
            json_object *tc = json_object_array_get_idx(tests, t), *data, *valid;
            const char *tdesc = str_member(tc, "description");
            const char *reason = skip_reason(file, gdesc, tdesc);
            if (reason) {
                skipped++;
                printf("  skip '%s' / '%s': %s\n", gdesc, tdesc, reason);
                continue;
            }
            json_object_object_get_ex(tc, "data", &data);
            json_object_object_get_ex(tc, "valid", &valid);
            wr_error verr = {0};
            int rc = wr_schema_validate(s, data, &verr);
            ran++;
            if ((rc == WR_OK) != json_object_get_boolean(valid)) {
                failed++;
                printf("  FAIL '%s' / '%s': expected %s, got %s\n", gdesc, tdesc,
                       json_object_get_boolean(valid) ? "valid" : "invalid", rc == WR_OK ? "valid" : verr.message);
            }
        }
        wr_schema_free(s);
    }
    json_object_put(groups);
    printf("%s: %d cases ran, %d skipped, %d failed\n", file, ran, skipped, failed);
    assert_int_equal(failed, 0);
    assert_true(ran > 0);
}

int main(void)
{
    enum {
        N = sizeof files / sizeof *files
    };
    struct CMUnitTest tests[N];
    printf("JSON-Schema-Test-Suite draft7 files from %s:\n", suite_dir());
    for (size_t i = 0; i < N; i++) {
        printf("  %s\n", files[i]);
        tests[i] = (struct CMUnitTest){.name = files[i], .test_func = run_file, .initial_state = (void *)files[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
