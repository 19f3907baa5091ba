/* Errors, the context (fixed clock and RNG), random ids, logging, strv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/lib.h"

static void test_errors(void **state)
{
    (void)state;
    wr_error err;
    assert_int_equal(wr_errorf(&err, WR_E_LIMIT, "/a/0", "too many: %d", 5), WR_E_LIMIT);
    assert_string_equal(err.path, "/a/0");
    assert_string_equal(err.message, "too many: 5");
    wr_error_prefix(&err, "contract %s", "c1");
    assert_string_equal(err.message, "contract c1: too many: 5");
    assert_int_equal(wr_errorf(NULL, WR_E_IO, NULL, "x"), WR_E_IO); /* NULL err is allowed */
    wr_error_clear(&err);
    assert_int_equal(err.code, WR_OK);
    assert_string_equal(err.message, "");
    assert_string_equal(wr_code_name(WR_E_CRYPTO), "crypto");
    assert_string_equal(wr_code_name(999), "unknown");
    /* overlong messages are cut, never overflow */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    wr_errorf(&err, WR_E_INVALID, big, "%s", big);
    assert_int_equal(strlen(err.message), sizeof err.message - 1);
    assert_int_equal(strlen(err.path), sizeof err.path - 1);
    wr_error_prefix(&err, "%s", big);
    assert_int_equal(strlen(err.message), sizeof err.message - 1);
}

static int64_t fixed_now(void *ud)
{
    return *(int64_t *)ud;
}
static void fixed_random(void *ud, void *buf, size_t len)
{
    (void)ud;
    memset(buf, 0xab, len);
}

static void test_ctx(void **state)
{
    (void)state;
    int64_t now = 1795324994123;
    wr_ctx ctx = {.now_ms = fixed_now, .random = fixed_random, .ud = &now, .log_level = WR_LOG_INFO};
    assert_int_equal(wr_now_ms(&ctx), now);
    char id[WR_ID_MAX];
    wr_random_id(&ctx, "req_", id, sizeof id);
    assert_string_equal(id, "req_abababababababababababababababab");
    /* the system context: a plausible clock, and ids that differ */
    wr_ctx sys = wr_ctx_system();
    assert_true(wr_now_ms(&sys) > 1700000000000);
    char a[WR_ID_MAX], b[WR_ID_MAX];
    wr_random_id(&sys, "x", a, sizeof a);
    wr_random_id(&sys, "x", b, sizeof b);
    assert_int_equal(strlen(a), 33);
    assert_string_not_equal(a, b);

    /* log lines: timestamp from the context, level filter, no injected newlines */
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 2);
    wr_log(&ctx, WR_LOG_DEBUG, "test", "dropped");
    wr_log(&ctx, WR_LOG_WARNING, "gate", "argv %s", "a\nfake 2026 error line");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char line[512] = "";
    rewind(tmp);
    assert_non_null(fgets(line, sizeof line, tmp));
    assert_string_equal(line, "2026-11-22T05:23:14.123Z warning gate: argv a fake 2026 error line\n");
    assert_null(fgets(line, sizeof line, tmp));
    fclose(tmp);
}

static void test_strv(void **state)
{
    (void)state;
    wr_strv sv = {0};
    assert_int_equal(wr_strv_push(&sv, "git"), WR_OK);
    assert_int_equal(wr_strv_push(&sv, "status"), WR_OK);
    assert_int_equal(sv.n, 2);
    assert_null(sv.v[2]); /* usable as an argv */
    assert_true(wr_strv_contains(&sv, "status"));
    assert_false(wr_strv_contains(&sv, "stat"));
    json_object *j = wr_strv_to_json(&sv);
    assert_string_equal(wr_json_compact(j), "[\"git\",\"status\"]");
    wr_strv back;
    wr_error err = {0};
    assert_int_equal(wr_strv_from_json(j, &back, &err), WR_OK);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.v[1], "status");
    wr_strv_free(&back);
    json_object_put(j);
    wr_strv_free(&sv);
    assert_int_equal(sv.n, 0);

    j = wr_json_parse("[\"a\", 1]", 8, NULL, &err);
    assert_int_equal(wr_strv_from_json(j, &back, &err), WR_E_INVALID);
    assert_string_equal(err.path, "/1");
    assert_int_equal(back.n, 0);
    json_object_put(j);
    j = json_object_new_object();
    assert_int_equal(wr_strv_from_json(j, &back, &err), WR_E_INVALID);
    json_object_put(j);
    /* built in memory (not parsed): an embedded NUL is refused */
    j = json_object_new_array();
    json_object_array_add(j, json_object_new_string_len("a\0b", 3));
    assert_int_equal(wr_strv_from_json(j, &back, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "NUL"));
    json_object_put(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ctx),
        cmocka_unit_test(test_strv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
