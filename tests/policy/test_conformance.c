/* Conformance: every CSC v0.1 fixture in $CSC_DIR/conformance (56), then
 * warrant's own fixtures for deviation-prone cases in
 * $WARRANT_SRC/tests/data/policy (same formats). Each failure is printed
 * with the fixture id; the run prints how many fixtures ran. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policies/policies.h"
#include "schemas/schemas.h"

#define CSC_FIXTURES 56

static int csc_ran, csc_passed;

static int64_t fixed_now(void *ud)
{
    (void)ud;
    return 1795000000000; /* 2026-11-18 */
}

static json_object *fixture_file(const char *env, const char *rel)
{
    const char *dir = getenv(env);
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    wr_error err = {0};
    wr_json_limits lim = {16u << 20, 64};
    json_object *doc = wr_json_read_file(path, &lim, &err);
    if (!doc)
        fail_msg("%s: %s", path, err.message);
    assert_true(json_object_is_type(doc, json_type_array));
    return doc;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static bool boolean(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static int failed(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failed(const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", id);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* {id, input, valid}: schema check, plus for contracts and policies the
 * typed loaders must agree (warrant adds limits, never removes checks). */
typedef int (*typed_loader)(json_object *input, wr_error *err);

static int load_contract(json_object *input, wr_error *err)
{
    wr_contracts *cs = wr_contracts_new(err);
    assert_non_null(cs);
    wr_contract *ct = NULL;
    int rc = wr_contract_from_json(cs, input, &ct, err);
    wr_contract_free(ct);
    wr_contracts_free(cs);
    return rc;
}

static int load_policy(json_object *input, wr_error *err)
{
    wr_policy *p = NULL;
    int rc = wr_policy_from_json(input, &p, err);
    wr_policy_free(p);
    return rc;
}

static int run_schema_fixtures(const char *rel, const char *schema_name, typed_loader typed, int *ran)
{
    json_object *doc = fixture_file("CSC_DIR", rel);
    wr_error err = {0};
    wr_schema *s = wr_schema_parse(wr_schema_text(schema_name), &err);
    assert_non_null(s);
    int failures = 0;
    for (size_t i = 0; i < json_object_array_length(doc); i++) {
        json_object *f = json_object_array_get_idx(doc, i), *input = member(f, "input");
        const char *id = str(f, "id");
        bool want = boolean(f, "valid");
        bool got = wr_schema_validate(s, input, &err) == WR_OK;
        (*ran)++;
        if (got != want) {
            failures += failed(id, "schema says %s, fixture says %s (%s)", got ? "valid" : "invalid",
                               want ? "valid" : "invalid", got ? "" : err.message);
            continue;
        }
        if (typed && (typed(input, &err) == WR_OK) != want) {
            failures += failed(id, "typed loader disagrees: %s", want ? err.message : "accepted");
            continue;
        }
    }
    wr_schema_free(s);
    json_object_put(doc);
    return failures;
}

static int run_loader_fixtures(const char *env, const char *rel, int *ran)
{
    json_object *doc = fixture_file(env, rel);
    int failures = 0;
    char dir[] = "/tmp/wr-loader-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < json_object_array_length(doc); i++) {
        json_object *f = json_object_array_get_idx(doc, i);
        const char *id = str(f, "id"), *raw = str(f, "raw_text"), *src = str(f, "source");
        const char *want_err = str(f, "expected_error_contains");
        bool want = boolean(f, "valid");
        char path[256];
        snprintf(path, sizeof path, "%s/policy-%zu.yaml", dir, i);
        if (raw) {
            FILE *fp = fopen(path, "w");
            assert_non_null(fp);
            fwrite(raw, 1, strlen(raw), fp);
            fclose(fp);
        } else {
            assert_string_equal(src, "missing_file");
        }
        wr_policy *p = NULL;
        wr_error err = {0};
        int rc = wr_policy_load_file(path, &p, &err);
        (*ran)++;
        if ((rc == WR_OK) != want)
            failures += failed(id, "loader %s: %s", rc ? "failed" : "succeeded", rc ? err.message : "");
        else if (!want && want_err && !strstr(err.message, want_err))
            failures += failed(id, "error '%s' does not contain '%s'", err.message, want_err);
        wr_policy_free(p);
        unlink(path);
    }
    rmdir(dir);
    json_object_put(doc);
    return failures;
}

static bool effect_in(json_object *effects, const char *cmd_id, const char *effect)
{
    for (size_t i = 0; i < json_object_array_length(effects); i++) {
        json_object *e = json_object_array_get_idx(effects, i);
        if (!strcmp(str(e, "command_id"), cmd_id) && !strcmp(str(e, "effect_type"), effect))
            return true;
    }
    return false;
}

static int check_decision(const char *id, json_object *f, json_object *dj, const wr_schema *decision_schema)
{
    wr_error err = {0};
    if (wr_schema_validate(decision_schema, dj, &err))
        return failed(id, "decision does not match its schema: %s", err.message);
    const char *want = str(f, "expected_decision"), *got = str(dj, "decision");
    if (strcmp(want, got))
        return failed(id, "decision %s, expected %s (%s)", got, want, wr_json_compact(dj));
    json_object *wc = member(f, "expected_reason_codes"), *gc = member(dj, "reason_codes");
    if (json_object_array_length(gc) != json_object_array_length(wc))
        return failed(id, "reason codes %s, expected %s", wr_json_compact(gc), wr_json_compact(wc));
    for (size_t i = 0; i < json_object_array_length(wc); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(wc, i)),
                   json_object_get_string(json_object_array_get_idx(gc, i))))
            return failed(id, "reason codes %s, expected %s (%s)", wr_json_compact(gc), wr_json_compact(wc),
                          json_object_get_string(json_object_array_get_idx(member(dj, "reasons"), 0)));
    json_object *we = member(f, "expected_classified_effects"), *ge = member(dj, "classified_effects");
    if (!we)
        return 0;
    bool same = json_object_array_length(we) == json_object_array_length(ge);
    for (size_t i = 0; same && i < json_object_array_length(we); i++) {
        json_object *e = json_object_array_get_idx(we, i);
        same = effect_in(ge, str(e, "command_id"), str(e, "effect_type"));
    }
    return same ? 0 : failed(id, "classified effects %s, expected %s", wr_json_compact(ge), wr_json_compact(we));
}

static int run_decision_fixtures(const char *env, const char *rel, int *ran)
{
    json_object *doc = fixture_file(env, rel);
    wr_error err = {0};
    wr_contracts *cs = wr_contracts_new(&err);
    wr_schema *ds = wr_schema_parse(wr_schema_text("csc.policy-decision.v0.1.schema.json"), &err);
    assert_non_null(cs);
    assert_non_null(ds);
    wr_ctx ctx = wr_ctx_system();
    ctx.now_ms = fixed_now;
    int failures = 0;
    for (size_t i = 0; i < json_object_array_length(doc); i++) {
        json_object *f = json_object_array_get_idx(doc, i);
        const char *id = str(f, "id");
        wr_contract *ct = NULL;
        wr_policy *p = NULL;
        wr_decision *d = NULL;
        (*ran)++;
        if (wr_contract_from_json(cs, member(f, "contract"), &ct, &err))
            failures += failed(id, "contract: %s %s", err.path, err.message);
        else if (wr_policy_from_json(member(f, "policy"), &p, &err))
            failures += failed(id, "policy: %s %s", err.path, err.message);
        else if (wr_policy_evaluate(p, ct, &ctx, &d, &err))
            failures += failed(id, "evaluate: %s", err.message);
        else {
            json_object *dj = wr_decision_to_json(d);
            failures += check_decision(id, f, dj, ds);
            json_object_put(dj);
        }
        wr_decision_free(d);
        wr_policy_free(p);
        wr_contract_free(ct);
    }
    wr_schema_free(ds);
    wr_contracts_free(cs);
    json_object_put(doc);
    return failures;
}

static void count(int failures, int ran)
{
    csc_ran += ran;
    csc_passed += ran - failures;
    assert_int_equal(failures, 0);
}

static void test_csc_contracts(void **state)
{
    (void)state;
    int ran = 0, f = run_schema_fixtures("conformance/contracts/valid.json", "csc.contract.v0.1.schema.json",
                                         load_contract, &ran);
    f +=
        run_schema_fixtures("conformance/contracts/invalid.json", "csc.contract.v0.1.schema.json", load_contract, &ran);
    count(f, ran);
}

static void test_csc_policy_schema(void **state)
{
    (void)state;
    int ran = 0,
        f = run_schema_fixtures("conformance/policies/schema.json", "csc.policy.v0.1.schema.json", load_policy, &ran);
    /* The same fixtures hold against warrant's superset schema. */
    int superset_ran = 0;
    f += run_schema_fixtures("conformance/policies/schema.json", "warrant.policy.schema.json", NULL, &superset_ran);
    count(f, ran);
}

static void test_csc_policy_loader(void **state)
{
    (void)state;
    int ran = 0, f = run_loader_fixtures("CSC_DIR", "conformance/policies/loader.json", &ran);
    count(f, ran);
}

static void test_csc_receipts(void **state)
{
    (void)state;
    int ran = 0, f = run_schema_fixtures("conformance/receipts/valid.json", "csc.execution-receipt.v0.1.schema.json",
                                         NULL, &ran);
    f += run_schema_fixtures("conformance/receipts/invalid.json", "csc.execution-receipt.v0.1.schema.json", NULL, &ran);
    count(f, ran);
}

static void test_csc_decisions(void **state)
{
    (void)state;
    int ran = 0, f = run_decision_fixtures("CSC_DIR", "conformance/decisions/decisions.json", &ran);
    count(f, ran);
}

static void test_csc_total(void **state)
{
    (void)state;
    printf("CSC v0.1 conformance: %d fixtures ran, %d passed (expected %d)\n", csc_ran, csc_passed, CSC_FIXTURES);
    assert_int_equal(csc_ran, CSC_FIXTURES);
    assert_int_equal(csc_passed, CSC_FIXTURES);
}

static void test_warrant_decisions(void **state)
{
    (void)state;
    int ran = 0, f = run_decision_fixtures("WARRANT_SRC", "tests/data/policy/decisions.json", &ran);
    printf("warrant decision fixtures: %d ran, %d passed\n", ran, ran - f);
    assert_int_equal(f, 0);
    assert_true(ran > 0);
}

static void test_warrant_loader(void **state)
{
    (void)state;
    int ran = 0, f = run_loader_fixtures("WARRANT_SRC", "tests/data/policy/loader.json", &ran);
    printf("warrant loader fixtures: %d ran, %d passed\n", ran, ran - f);
    assert_int_equal(f, 0);
    assert_true(ran > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csc_contracts),     cmocka_unit_test(test_csc_policy_schema),
        cmocka_unit_test(test_csc_policy_loader), cmocka_unit_test(test_csc_receipts),
        cmocka_unit_test(test_csc_decisions),     cmocka_unit_test(test_csc_total),
        cmocka_unit_test(test_warrant_decisions), cmocka_unit_test(test_warrant_loader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
