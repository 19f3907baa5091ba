/* Metrics registry and the Prometheus text format (see metrics.h). */
#include "server/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind {
    COUNTER,
    GAUGE,
    HISTOGRAM
};

/* Seconds: from a fast check (sub-millisecond) to a long run. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

static const struct family_def {
    const char *name, *help;
    enum kind kind;
    const char *labels[2];
} defs[WR_M_COUNT] = {
    [WR_M_DECISIONS] = {"warrant_decisions_total",
                        "Policy decisions by outcome and CSC reason code.",
                        COUNTER,
                        {"outcome", "reason"}},
    [WR_M_RUNS] = {"warrant_runs_total", "Sealed run receipts by status.", COUNTER, {"status"}},
    [WR_M_APPROVALS] = {"warrant_approvals_total", "Approval artifacts by outcome.", COUNTER, {"outcome"}},
    [WR_M_REFUSED] = {"warrant_refused_total", "Refused connections and requests by cause.", COUNTER, {"cause"}},
    [WR_M_RECEIPTS] = {"warrant_receipts_sealed_total", "Receipts signed and stored.", COUNTER, {NULL}},
    [WR_M_CHECK_SECONDS] = {"warrant_check_duration_seconds", "Time to answer a check.", HISTOGRAM, {NULL}},
    [WR_M_RUN_SECONDS] = {"warrant_run_duration_seconds",
                          "Time from a run request to its sealed receipt.",
                          HISTOGRAM,
                          {NULL}},
    [WR_M_SANDBOX_START] = {"warrant_sandbox_start_seconds",
                            "Time from launch to the command running in its sandbox.",
                            HISTOGRAM,
                            {NULL}},
    [WR_M_RUNNING] = {"warrant_runs_running", "Runs in flight.", GAUGE, {NULL}},
    [WR_M_SESSIONS] = {"warrant_sessions", "Open MCP sessions by transport.", GAUGE, {"transport"}},
    [WR_M_PENDING_APPROVALS] = {"warrant_approvals_pending", "Approval requests waiting for a human.", GAUGE, {NULL}},
    [WR_M_CHECKPOINT_SIZE] = {"warrant_checkpoint_size", "Tree size of the latest signed checkpoint.", GAUGE, {NULL}},
};

typedef struct series {
    char *vals[2]; /* the label values, compared on every update (cheaper than rendering) */
    char *labels;  /* rendered once: outcome="allow",reason="ALLOW" (may be "") */
    double value;  /* counter, gauge; histogram: sum */
    uint64_t count;
    uint64_t bucket[NBUCKETS]; /* not cumulative; summed when rendered */
} series;

struct wr_metrics {
    pthread_mutex_t mu;
    series *s[WR_M_COUNT];
    size_t n[WR_M_COUNT];
};

wr_metrics *wr_metrics_new(void)
{
    wr_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void wr_metrics_free(wr_metrics *m)
{
    if (!m)
        return;
    for (int f = 0; f < WR_M_COUNT; f++) {
        for (size_t i = 0; i < m->n[f]; i++) {
            free(m->s[f][i].labels);
            free(m->s[f][i].vals[0]);
            free(m->s[f][i].vals[1]);
        }
        free(m->s[f]);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Label values escaped as the exposition format requires: \\ \" \n. */
static void append_escaped(char *out, size_t cap, size_t *used, const char *v)
{
    for (; *v && *used + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') {
            out[(*used)++] = '\\';
            out[(*used)++] = *v;
        } else if (*v == '\n') {
            out[(*used)++] = '\\';
            out[(*used)++] = 'n';
        } else {
            out[(*used)++] = *v;
        }
    }
    out[*used] = '\0';
}

static void render_labels(const struct family_def *d, const char *const *values, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < 2 && d->labels[i]; i++) {
        int k = snprintf(out + used, cap - used, "%s%s=\"", i ? "," : "", d->labels[i]);
        if (k < 0 || (size_t)k >= cap - used)
            return;
        used += (size_t)k;
        append_escaped(out, cap, &used, values && values[i] ? values[i] : "");
        if (used + 2 < cap) {
            out[used++] = '"';
            out[used] = '\0';
        }
    }
}

static const char *value_at(const char *const *values, int i)
{
    return values && values[i] ? values[i] : "";
}

static bool same_values(const struct family_def *d, const series *x, const char *const *values)
{
    for (int i = 0; i < 2 && d->labels[i]; i++)
        if (strcmp(x->vals[i] ? x->vals[i] : "", value_at(values, i)))
            return false;
    return true;
}

/* The series for these labels, created on first use; under m->mu. The last
 * slot of a family is kept for "other", so a full family never misfiles. */
static series *find(wr_metrics *m, wr_metric id, const char *const *values)
{
    static const char *const other[2] = {"other", "other"};
    const struct family_def *d = &defs[id];
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < m->n[id]; i++)
            if (same_values(d, &m->s[id][i], values))
                return &m->s[id][i];
        if (m->n[id] < WR_METRICS_MAX_SERIES - 1 || (pass == 1 && m->n[id] < WR_METRICS_MAX_SERIES))
            break;
        values = other;
    }
    if (m->n[id] >= WR_METRICS_MAX_SERIES)
        return NULL;
    series *grown = realloc(m->s[id], (m->n[id] + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    m->s[id] = grown;
    series *x = &grown[m->n[id]];
    memset(x, 0, sizeof *x);
    char labels[256];
    render_labels(d, values, labels, sizeof labels);
    x->labels = strdup(labels);
    for (int i = 0; i < 2 && d->labels[i]; i++)
        x->vals[i] = strdup(value_at(values, i));
    if (!x->labels || (d->labels[0] && !x->vals[0]) || (d->labels[1] && !x->vals[1])) {
        free(x->labels);
        free(x->vals[0]);
        free(x->vals[1]);
        return NULL;
    }
    m->n[id]++;
    return x;
}

void wr_metrics_add(wr_metrics *m, wr_metric id, const char *const *label_values, double n)
{
    if (!m || id >= WR_M_COUNT)
        return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, id, label_values);
    if (s)
        s->value += n;
    pthread_mutex_unlock(&m->mu);
}

void wr_metrics_set(wr_metrics *m, wr_metric id, const char *const *label_values, double v)
{
    if (!m || id >= WR_M_COUNT)
        return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, id, label_values);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&m->mu);
}

static void observe_locked(wr_metrics *m, wr_metric id, double seconds)
{
    series *s = find(m, id, NULL);
    if (!s)
        return;
    s->value += seconds;
    s->count++;
    for (size_t b = 0; b < NBUCKETS; b++)
        if (seconds <= buckets[b]) {
            s->bucket[b]++;
            break;
        }
}

void wr_metrics_observe(wr_metrics *m, wr_metric id, double seconds)
{
    if (!m || id >= WR_M_COUNT || defs[id].kind != HISTOGRAM)
        return;
    pthread_mutex_lock(&m->mu);
    observe_locked(m, id, seconds);
    pthread_mutex_unlock(&m->mu);
}

void wr_metrics_add_observe(wr_metrics *m, wr_metric id, const char *const *label_values, double n, wr_metric hid,
                            double seconds)
{
    if (!m || id >= WR_M_COUNT || hid >= WR_M_COUNT || defs[hid].kind != HISTOGRAM)
        return;
    pthread_mutex_lock(&m->mu);
    series *s = find(m, id, label_values);
    if (s)
        s->value += n;
    observe_locked(m, hid, seconds);
    pthread_mutex_unlock(&m->mu);
}

const char *wr_metrics_http_cause(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 406:
        return "not_acceptable";
    case 408:
        return "timeout";
    case 409:
        return "conflict";
    case 411:
        return "length_required";
    case 413:
        return "too_large";
    case 415:
        return "unsupported_media_type";
    case 429:
        return "too_many_requests";
    case 503:
        return "unavailable";
    default:
        return status >= 500 ? "server_error" : "other";
    }
}

typedef struct out {
    char *buf;
    size_t len, cap;
    bool oom;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = o->oom ? -1 : vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (k < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)k < o->cap - o->len) {
            o->len += (size_t)k;
            return;
        }
        size_t cap = (o->cap + (size_t)k + 1) * 2;
        char *grown = realloc(o->buf, cap);
        if (!grown) {
            o->oom = true;
            return;
        }
        o->buf = grown;
        o->cap = cap;
    }
}

static void braces(out *o, const char *name, const char *labels, const char *extra)
{
    bool any = labels[0] || extra[0];
    put(o, "%s%s%s%s%s%s", name, any ? "{" : "", labels, labels[0] && extra[0] ? "," : "", extra, any ? "}" : "");
}

char *wr_metrics_render(wr_metrics *m, size_t *len)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    out o = {.cap = 4096};
    if (!(o.buf = malloc(o.cap)))
        return NULL;
    o.buf[0] = '\0';
    pthread_mutex_lock(&m->mu);
    for (int f = 0; f < WR_M_COUNT; f++) {
        const struct family_def *d = &defs[f];
        put(&o, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, kinds[d->kind]);
        /* A family with no label and no series yet still shows its zero. */
        if (m->n[f] == 0 && !d->labels[0]) {
            if (d->kind == HISTOGRAM)
                put(&o, "%s_bucket{le=\"+Inf\"} 0\n%s_sum 0\n%s_count 0\n", d->name, d->name, d->name);
            else
                put(&o, "%s 0\n", d->name);
        }
        for (size_t i = 0; i < m->n[f]; i++) {
            const series *s = &m->s[f][i];
            if (d->kind != HISTOGRAM) {
                braces(&o, d->name, s->labels, "");
                put(&o, " %.17g\n", s->value);
                continue;
            }
            char bucket_name[128], le[48];
            snprintf(bucket_name, sizeof bucket_name, "%s_bucket", d->name);
            uint64_t cumulative = 0;
            for (size_t b = 0; b < NBUCKETS; b++) {
                cumulative += s->bucket[b];
                snprintf(le, sizeof le, "le=\"%g\"", buckets[b]);
                braces(&o, bucket_name, s->labels, le);
                put(&o, " %llu\n", (unsigned long long)cumulative);
            }
            braces(&o, bucket_name, s->labels, "le=\"+Inf\"");
            put(&o, " %llu\n%s_sum %.17g\n%s_count %llu\n", (unsigned long long)s->count, d->name, s->value, d->name,
                (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.buf;
}
