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
    int max_connections;
    const char *policy_path; /* reloaded on SIGHUP; NULL: bundled default */
    int max_http_sessions;
    wr_metrics *metrics;            /* GET /metrics; NULL: the route answers 404 */
    bool metrics_loopback;          /* /metrics open to loopback peers without a token */
    int64_t checkpoint_interval_ms; /* sign a checkpoint this often while the receipt log grows */
} wr_net_options;

/* Runs the loop until SIGTERM/SIGINT (or stdin EOF in stdio-only mode) and
 * every run finished with its receipt. Returns the exit status. */
int wr_net_serve(wr_server *srv, const wr_net_options *o);

#endif
