/* The metrics registry: Prometheus text, escaping, and a bounded number of
 * series per family whatever label values arrive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_text_format(void **s)
{
    (void)s;
    wr_metrics *m = wr_metrics_new();
    assert_non_null(m);
    wr_metrics_add(m, WR_M_DECISIONS, (const char *const[]){"allow", "ALLOW"}, 1);
    wr_metrics_add(m, WR_M_DECISIONS, (const char *const[]){"allow", "ALLOW"}, 2);
    wr_metrics_add(m, WR_M_RUNS, (const char *const[]){"a\"b\\c\nd"}, 1);
    wr_metrics_observe(m, WR_M_CHECK_SECONDS, 0.0007);
    wr_metrics_observe(m, WR_M_CHECK_SECONDS, 100);
    char *t = wr_metrics_render(m, NULL);
    assert_non_null(t);
    assert_non_null(strstr(t, "# TYPE warrant_decisions_total counter\n"));
    assert_non_null(strstr(t, "warrant_decisions_total{outcome=\"allow\",reason=\"ALLOW\"} 3\n"));
    assert_non_null(strstr(t, "warrant_runs_total{status=\"a\\\"b\\\\c\\nd\"} 1\n")); /* escaped */
    assert_non_null(strstr(t, "warrant_check_duration_seconds_bucket{le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(t, "warrant_check_duration_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t, "warrant_check_duration_seconds_bucket{le=\"60\"} 1\n"));
    assert_non_null(strstr(t, "warrant_check_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(t, "warrant_check_duration_seconds_count 2\n"));
    assert_non_null(strstr(t, "warrant_receipts_sealed_total 0\n")); /* a family with no labels shows its zero */
    free(t);
    wr_metrics_free(m);
}

/* A client cannot grow the registry: past the cap, every new label set is
 * counted once under "other", and nothing is misfiled under another label. */
static void test_series_are_bounded(void **s)
{
    (void)s;
    wr_metrics *m = wr_metrics_new();
    char cause[32];
    for (int i = 0; i < 10 * WR_METRICS_MAX_SERIES; i++) {
        snprintf(cause, sizeof cause, "cause-%d", i);
        wr_metrics_add(m, WR_M_REFUSED, (const char *const[]){cause}, 1);
    }
    char *t = wr_metrics_render(m, NULL);
    assert_int_equal(count(t, "warrant_refused_total{"), WR_METRICS_MAX_SERIES);
    assert_non_null(strstr(t, "warrant_refused_total{cause=\"cause-0\"} 1\n"));
    char want[96];
    snprintf(want, sizeof want, "warrant_refused_total{cause=\"other\"} %d\n",
             10 * WR_METRICS_MAX_SERIES - (WR_METRICS_MAX_SERIES - 1));
    assert_non_null(strstr(t, want));
    free(t);
    wr_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_series_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
