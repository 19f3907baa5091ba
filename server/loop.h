/* The event loop (libwebsockets) and its transports: stdio adopted as raw
 * file descriptors, WebSocket at /ws and Streamable HTTP at /mcp. This is
 * what options.c (warrantd's main) starts; the pieces share net.h. */
#ifndef WR_SERVER_LOOP_H
#define WR_SERVER_LOOP_H

#include "server/metrics.h"
#include "server/server.h"

typedef struct wr_net_options {
    bool stdio;
    const char *agent_id;    /* stdio identity; also the identity with --auth none */
    const char *listen_host; /* NULL: no network listener */
    int listen_port;
    const wr_tokens *tokens; /* NULL only with auth_none */
    const char *token_file;  /* reloaded on SIGHUP */
    bool auth_none;
    const char *tls_cert, *tls_key;
    const wr_strv *allowed_origins;
    const wr_strv *allowed_hosts;
    const char *policy_path; /* reloaded on SIGHUP; NULL: bundled default */
    /* Limits in total and per client identity (at most half the total:
     * wr_limit_per_client), so one token holder never takes everything. */
    int max_connections, max_connections_per_client;
    int max_http_sessions, max_sessions_per_client;
    size_t max_body_bytes, max_body_bytes_per_client; /* request bodies in flight */
    int64_t session_idle_ms;                          /* an idle HTTP session expires */
    int64_t body_timeout_ms;                          /* a request body arrives within */
    wr_metrics *metrics;                              /* GET /metrics; NULL: the route answers 404 */
    bool metrics_loopback;                            /* /metrics open to loopback peers without a token */
    int64_t checkpoint_interval_ms;                   /* sign a checkpoint this often while the receipt log grows */
} wr_net_options;

/* Runs the loop until SIGTERM/SIGINT (or stdin EOF in stdio-only mode) and
 * every run finished with its receipt. Returns the exit status. */
int wr_net_serve(wr_server *srv, const wr_net_options *o);

#endif
