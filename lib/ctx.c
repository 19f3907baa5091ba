/* The context that carries time, randomness and the log level, so that no
 * module reads the clock or the RNG directly and tests can fix both. */
#include "lib/lib.h"

#include <sodium.h>
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

void wr_log(const wr_ctx *ctx, int level, const char *component, const char *fmt, ...)
{
    if (ctx && level < ctx->log_level)
        return;
    char ts[WR_TIME_LEN];
    wr_time_format(ctx ? wr_now_ms(ctx) : system_now_ms(NULL), ts);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Log lines must stay one line each: a newline from untrusted text
     * (an argv, a client name) would let it forge further log entries. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    /* One write so concurrent writers do not interleave within a line. */
    char line[1200];
    int n = snprintf(line, sizeof line, "%s %s %s: %s\n", ts, level_name(level), component ? component : "-", msg);
    if (n > 0)
        fwrite(line, 1, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1, stderr);
}

void wr_random_id(const wr_ctx *ctx, const char *prefix, char *out, size_t outlen)
{
    unsigned char raw[16];
    wr_random(ctx, raw, sizeof raw);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(out, outlen, "%s%s", prefix ? prefix : "", hex);
}
