/* The context that carries time, randomness and the log level, so that no
 * module reads the clock or the RNG directly and tests can fix both. */
#include "lib/lib.h"

#include <json-c/json.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t system_now_ms(void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void system_random(void *ud, void *buf, size_t len)
{
    (void)ud;
    randombytes_buf(buf, len);
}

wr_ctx wr_ctx_system(void)
{
    /* Idempotent and thread-safe; a failure means no usable entropy source,
     * which randombytes_buf would then abort on, so there is nothing better
     * to do here than let that happen loudly. */
    int initialised = sodium_init();
    (void)initialised; /* 0 first time, 1 afterwards, -1 see above */
    return (wr_ctx){.now_ms = system_now_ms, .random = system_random, .ud = NULL, .log_level = WR_LOG_INFO};
}

int64_t wr_now_ms(const wr_ctx *ctx)
{
    return ctx->now_ms(ctx->ud);
}

void wr_random(const wr_ctx *ctx, void *buf, size_t len)
{
    ctx->random(ctx->ud, buf, len);
}

static const char *level_name(int level)
{
    static const char *const names[] = {"debug", "info", "notice", "warning", "error"};
    return level >= WR_LOG_DEBUG && level <= WR_LOG_ERROR ? names[level] : "error";
}

/* Log lines must stay one line each: a newline from untrusted text (an
 * argv, a client name) would let it forge further log entries. */
static void one_line(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

static void add_field(json_object *o, const char *key, const char *value)
{
    if (value)
        json_object_object_add(o, key, json_object_new_string(value));
}

/* json-c escapes every control character and keeps UTF-8, so a field can
 * neither break the line nor the object. */
static void log_json(int level, const char *ts, const char *component, const wr_log_fields *f, const char *msg)
{
    json_object *o = json_object_new_object();
    if (!o)
        return;
    add_field(o, "time", ts);
    add_field(o, "level", level_name(level));
    add_field(o, "component", component ? component : "-");
    if (f) {
        add_field(o, "event", f->event);
        add_field(o, "identity", f->identity);
        add_field(o, "request_id", f->request_id);
        add_field(o, "execution_id", f->execution_id);
        add_field(o, "outcome", f->outcome);
    }
    add_field(o, "message", msg);
    size_t n = 0;
    const char *text =
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    /* One write so concurrent writers do not interleave within a line. */
    char *line = text ? malloc(n + 2) : NULL;
    if (line) {
        memcpy(line, text, n);
        line[n] = '\n';
        fwrite(line, 1, n + 1, stderr);
        free(line);
    }
    json_object_put(o);
}

static void log_human(int level, const char *ts, const char *component, const wr_log_fields *f, const char *msg)
{
    char extra[512] = "";
    if (f) {
        const char *keys[] = {"event", "identity", "request_id", "execution_id", "outcome"};
        const char *vals[] = {f->event, f->identity, f->request_id, f->execution_id, f->outcome};
        size_t used = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0] && used < sizeof extra; i++)
            if (vals[i]) {
                int k = snprintf(extra + used, sizeof extra - used, " %s=%s", keys[i], vals[i]);
                used += k > 0 ? (size_t)k : 0;
            }
        one_line(extra);
    }
    char line[1700];
    int n = snprintf(line, sizeof line, "%s %s %s: %s%s%s\n", ts, level_name(level), component ? component : "-", msg,
                     extra[0] ? " |" : "", extra);
    if (n > 0)
        fwrite(line, 1, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1, stderr);
}

static void vlog(const wr_ctx *ctx, int level, const char *component, const wr_log_fields *f, const char *fmt,
                 va_list ap)
{
    if (ctx && level < ctx->log_level)
        return;
    char ts[WR_TIME_LEN];
    wr_time_format(ctx ? wr_now_ms(ctx) : system_now_ms(NULL), ts);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    one_line(msg);
    if (ctx && ctx->log_json)
        log_json(level, ts, component, f, msg);
    else
        log_human(level, ts, component, f, msg);
}

void wr_log(const wr_ctx *ctx, int level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, component, NULL, fmt, ap);
    va_end(ap);
}

void wr_log_event(const wr_ctx *ctx, int level, const char *component, const wr_log_fields *fields, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, component, fields, fmt, ap);
    va_end(ap);
}

void wr_random_id(const wr_ctx *ctx, const char *prefix, char *out, size_t outlen)
{
    unsigned char raw[16];
    wr_random(ctx, raw, sizeof raw);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(out, outlen, "%s%s", prefix ? prefix : "", hex);
}
