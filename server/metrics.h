/* Prometheus metrics of one warrantd: counters and histograms bumped from
 * any thread, gauges set at scrape time by the loop, rendered in the text
 * exposition format (version 0.0.4) for GET /metrics.
 *
 * Label values come from closed sets (decision outcomes, CSC reason codes,
 * receipt statuses, refusal causes, transports); a family holds at most
 * WR_METRICS_MAX_SERIES series and folds any further label set into one
 * labelled "other", so no client can grow the registry. */
#ifndef WR_SERVER_METRICS_H
#define WR_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define WR_METRICS_MAX_SERIES 64

typedef enum wr_metric {
    WR_M_DECISIONS,         /* counter {outcome, reason} */
    WR_M_RUNS,              /* counter {status} */
    WR_M_APPROVALS,         /* counter {outcome} */
    WR_M_REFUSED,           /* counter {cause} */
    WR_M_RECEIPTS,          /* counter */
    WR_M_CHECK_SECONDS,     /* histogram */
    WR_M_RUN_SECONDS,       /* histogram */
    WR_M_SANDBOX_START,     /* histogram */
    WR_M_RUNNING,           /* gauge */
    WR_M_SESSIONS,          /* gauge {transport} */
    WR_M_PENDING_APPROVALS, /* gauge */
    WR_M_CHECKPOINT_SIZE,   /* gauge */
    WR_M_COUNT
} wr_metric;

typedef struct wr_metrics wr_metrics;

wr_metrics *wr_metrics_new(void);
void wr_metrics_free(wr_metrics *m);

/* label_values: one per label of the family, in its order (NULL for none). */
void wr_metrics_add(wr_metrics *m, wr_metric id, const char *const *label_values, double n);
void wr_metrics_set(wr_metrics *m, wr_metric id, const char *const *label_values, double v);
void wr_metrics_observe(wr_metrics *m, wr_metric id, double seconds);
/* Adds n to counter id and observes seconds in histogram hid under one lock
 * (the per-check path: a decision and its latency). */
void wr_metrics_add_observe(wr_metrics *m, wr_metric id, const char *const *label_values, double n, wr_metric hid,
                            double seconds);

/* The refusal cause named by an HTTP status (a closed set of names). */
const char *wr_metrics_http_cause(int status);

/* The whole registry as text (malloc'd; NULL when out of memory). */
char *wr_metrics_render(wr_metrics *m, size_t *len);

#endif
