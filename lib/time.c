/* RFC 3339 timestamps. Civil-date arithmetic is done here rather than with
 * timegm()/gmtime_r() so that parsing never depends on the TZ environment and
 * out-of-range years cannot overflow time_t on any platform. */
#include "lib/lib.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

#define MAX_YEAR_DIGITS4 9999 /* the last year written with four digits and no sign */

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void wr_time_format(int64_t unix_ms, char out[WR_TIME_LEN])
{
    int64_t ms = unix_ms % 1000, secs = unix_ms / 1000;
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > MAX_YEAR_DIGITS4) { /* a sign or a fifth digit: printf's padding rules */
        snprintf(out, WR_TIME_LEN, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d, (int)(sod / 3600),
                 (int)(sod / 60 % 60), (int)(sod % 60), (int)ms);
        return;
    }
    /* Every decision and receipt carries timestamps: digits placed
     * directly cost a twentieth of snprintf. */
    const struct {
        int64_t v;
        int width;
        char after;
    } parts[] = {{y, 4, '-'},        {m, 2, '-'}, {d, 2, 'T'}, {sod / 3600, 2, ':'}, {sod / 60 % 60, 2, ':'},
                 {sod % 60, 2, '.'}, {ms, 3, 'Z'}};
    char *p = out;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int64_t v = parts[i].v;
        for (int k = parts[i].width - 1; k >= 0; k--, v /= 10)
            p[k] = (char)('0' + v % 10);
        p += parts[i].width;
        *p++ = parts[i].after;
    }
    *p = '\0';
}

/* Reads exactly n digits; returns -1 when any of them is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* RFC 3339 section 5.6 date-time: full-date "T" full-time, where "T" and "Z"
 * may be lower case (section 5.6 NOTE) and time-secfrac has any number of
 * digits (kept to milliseconds here). A leap second (:60) is accepted as
 * the grammar allows and counts as the following second. */
int wr_time_parse(const char *s, int64_t *unix_ms, wr_error *err)
{
    if (!s)
        return wr_errorf(err, WR_E_INVALID, "", "missing timestamp");
    size_t len = strlen(s);
    int y, mo, d, h, mi, se;
    if (len < 19 || (y = digits(s, 4)) < 0 || s[4] != '-' || (mo = digits(s + 5, 2)) < 0 || s[7] != '-' ||
        (d = digits(s + 8, 2)) < 0 || (s[10] != 'T' && s[10] != 't') || (h = digits(s + 11, 2)) < 0 || s[13] != ':' ||
        (mi = digits(s + 14, 2)) < 0 || s[16] != ':' || (se = digits(s + 17, 2)) < 0)
        return wr_errorf(err, WR_E_INVALID, "", "'%.64s' is not an RFC 3339 date-time", s);
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return wr_errorf(err, WR_E_INVALID, "", "'%.64s' has an invalid date", s);
    if (h > 23 || mi > 59 || se > 60)
        return wr_errorf(err, WR_E_INVALID, "", "'%.64s' has an invalid time of day", s);
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return wr_errorf(err, WR_E_INVALID, "", "'%.64s' has an empty fraction of a second", s);
        for (int i = 0; isdigit((unsigned char)*p); i++, p++)
            if (i < 3)
                ms += (*p - '0') * (i == 0 ? 100 : i == 1 ? 10 : 1);
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = digits(p + 1, 2), om = oh < 0 || p[3] != ':' ? -1 : digits(p + 4, 2);
        if (om < 0 || oh > 23 || om > 59)
            return wr_errorf(err, WR_E_INVALID, "", "'%.64s' has an invalid UTC offset", s);
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return wr_errorf(err, WR_E_INVALID, "", "'%.64s' lacks a UTC offset ('Z' or +hh:mm)", s);
    }
    if (*p != '\0')
        return wr_errorf(err, WR_E_INVALID, "", "'%.64s' has trailing characters", s);
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
    *unix_ms = secs * 1000 + ms;
    return WR_OK;
}
