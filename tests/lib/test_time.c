/* RFC 3339 formatting and parsing (wr_time_*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/lib.h"

#include <stdio.h>
#include <time.h>

static int64_t parse_ok(const char *s)
{
    int64_t ms = 0;
    wr_error err = {0};
    if (wr_time_parse(s, &ms, &err) != WR_OK)
        fail_msg("rejected %s: %s", s, err.message);
    return ms;
}

static void parse_bad(const char *s, const char *msg)
{
    int64_t ms = 0;
    wr_error err = {0};
    if (wr_time_parse(s, &ms, &err) == WR_OK)
        fail_msg("accepted %s", s);
    assert_int_equal(err.code, WR_E_INVALID);
    if (!strstr(err.message, msg))
        fail_msg("'%s': message '%s' lacks '%s'", s, err.message, msg);
}

static void test_format(void **state)
{
    (void)state;
    char out[WR_TIME_LEN];
    wr_time_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    wr_time_format(1795324994123, out);
    assert_string_equal(out, "2026-11-22T05:23:14.123Z");
    wr_time_format(-1, out); /* before the epoch rounds down, not toward zero */
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    wr_time_format(951782400000, out);
    assert_string_equal(out, "2000-02-29T00:00:00.000Z");
    wr_time_format(253402300799999, out);
    assert_string_equal(out, "9999-12-31T23:59:59.999Z");
    wr_time_format(253402300800000, out); /* five digits, and a sign, as printf pads them */
    assert_string_equal(out, "10000-01-01T00:00:00.000Z");
    wr_time_format(-62198755200000, out);
    assert_string_equal(out, "-001-01-01T00:00:00.000Z");
    /* against gmtime_r over years 0 to 9999 */
    for (int64_t ms = -62167219200000; ms < 253402300800000; ms += 7919999999123) {
        struct tm tm;
        time_t secs = (time_t)(ms / 1000 - (ms % 1000 < 0));
        assert_non_null(gmtime_r(&secs, &tm));
        char want[64];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((ms % 1000 + 1000) % 1000));
        wr_time_format(ms, out);
        assert_string_equal(out, want);
    }
}

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse_ok("2026-11-22T05:23:14.123Z"), 1795324994123);
    assert_int_equal(parse_ok("2026-11-22t05:23:14.123z"), 1795324994123); /* RFC 3339 5.6 NOTE */
    /* fractions beyond milliseconds are truncated, shorter ones scaled */
    assert_int_equal(parse_ok("1970-01-01T00:00:00.1Z"), 100);
    assert_int_equal(parse_ok("1970-01-01T00:00:00.123999999Z"), 123);
    /* offsets: local time minus offset */
    assert_int_equal(parse_ok("1970-01-01T01:00:00+01:00"), 0);
    assert_int_equal(parse_ok("1969-12-31T19:30:00-04:30"), 0);
    assert_int_equal(parse_ok("2026-11-22T05:23:14.123+00:00"), 1795324994123);
    assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), 951782400000);
    assert_int_equal(parse_ok("1960-01-01T00:00:00Z"), -315619200000);
    assert_int_equal(parse_ok("1998-12-31T23:59:60Z"), parse_ok("1999-01-01T00:00:00Z")); /* leap second */
    /* round trip */
    char out[WR_TIME_LEN];
    wr_time_format(1795324994123, out);
    assert_int_equal(parse_ok(out), 1795324994123);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    parse_bad("2026-02-30T00:00:00Z", "invalid date");
    parse_bad("2025-02-29T00:00:00Z", "invalid date"); /* not a leap year */
    parse_bad("1900-02-29T00:00:00Z", "invalid date"); /* century rule */
    parse_bad("2026-13-01T00:00:00Z", "invalid date");
    parse_bad("2026-00-10T00:00:00Z", "invalid date");
    parse_bad("2026-04-31T00:00:00Z", "invalid date");
    parse_bad("2026-01-01T24:00:00Z", "invalid time");
    parse_bad("2026-01-01T23:60:00Z", "invalid time");
    parse_bad("2026-01-01T23:59:61Z", "invalid time");
    parse_bad("2026-01-01T00:00:00", "lacks a UTC offset");
    parse_bad("2026-01-01T00:00:00+24:00", "invalid UTC offset");
    parse_bad("2026-01-01T00:00:00+01:60", "invalid UTC offset");
    parse_bad("2026-01-01T00:00:00+0100", "invalid UTC offset");
    parse_bad("2026-01-01T00:00:00+01", "invalid UTC offset");
    parse_bad("2026-01-01T00:00:00.Z", "empty fraction");
    parse_bad("2026-01-01T00:00:00Z ", "trailing");
    parse_bad("2026-01-01T00:00:00ZZ", "trailing");
    parse_bad("2026-01-01 00:00:00Z", "not an RFC 3339");
    parse_bad("2026-1-01T00:00:00Z", "not an RFC 3339");
    parse_bad("06/19/1963 08:30:06 PST", "not an RFC 3339");
    parse_bad("2013-350T01:01:01", "not an RFC 3339");
    parse_bad("", "not an RFC 3339");
    parse_bad("+2026-01-01T00:00:00Z", "not an RFC 3339");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
