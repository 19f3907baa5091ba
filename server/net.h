/* What the loop (loop.c) and the transports (stdio.c, ws.c, http.c) share.
 * A transport speaks to the session core only through server.h (outlets,
 * wr_session_handle); it never sees the core's structures.
 *
 * Adding a transport: give it a file with its lws callback cases, register
 * its protocol in loop.c's table. Adding a loop timer: one row in loop.c's
 * `timers` table. Adding an HTTP route: one row in http.c's `routes`. */
#ifndef WR_SERVER_NET_H
#define WR_SERVER_NET_H

#include "server/console_internal.h"
#include "server/loop.h"

#include <libwebsockets.h>
#include <limits.h>

/* ---- outbound queues (conn.c) ------------------------------------------- */
typedef struct qmsg {
    struct qmsg *next;
    size_t len, off;
    bool final;
    unsigned char buf[]; /* LWS_PRE headroom + payload */
} qmsg;

/* An ordered outbound queue. A peer that does not read makes it grow: past
 * WR_OUT_HIGH bytes we stop reading from that peer (lws_rx_flow_control)
 * until half of it drained, so requests cannot be amplified into memory. */
#define WR_OUT_HIGH (8u * 1024u * 1024u)
typedef struct mq {
    qmsg *h, *t;
    size_t bytes;
} mq;

/* a + b + c as one message (NULL on allocation failure, which q_push ignores). */
qmsg *qmsg_new(const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen, bool final);
void q_push(mq *q, qmsg *m);
qmsg *q_pop(mq *q);
void q_free(mq *q);

/* ---- connections ------------------------------------------------------------ */
typedef struct net net;
typedef struct hsess hsess;
typedef struct net_client net_client;

enum {
    CONN_NONE = 0,
    CONN_WS,
    CONN_HTTP
};
enum {
    H_IDLE = 0,
    H_BODY,
    H_DRAIN, /* a refused body, read and discarded before the answer */
    H_JSON,
    H_SSE,
    H_DONE
};

/* per-session data of the "mcp" protocol: one WebSocket connection or one
 * HTTP transaction (reset on each request for keep-alive). */
typedef struct conn {
    wr_outlet outlet; /* first: outlet callbacks cast back to conn */
    struct lws *wsi;
    net *n;
    int kind;
    bool counted;
    wr_session *ss;
    mq q;
    bool rx_paused; /* lws_rx_flow_control(wsi, 0) applied: we read nothing from the peer */
    /* WebSocket: its frames (ws.c reads them) and their reassembly */
    struct ws_rx *wrx;
    char *rx;
    size_t rx_len;
    bool rx_overflow;
    /* HTTP */
    int hstate;
    bool get;            /* the request is a GET: its stream takes nothing from the client */
    char sid[WR_ID_MAX]; /* Mcp-Session-Id to announce (set by initialize) */
    char *body;
    size_t body_len;
    int status; /* a refusal decided before the body */
    char *err_body;
    bool body_done;        /* BODY_COMPLETION seen */
    const char *body_type; /* err_body's Content-Type; NULL: application/json */
    bool headers_sent;
    bool ended; /* final message queued */
    bool add_session_header;
    int64_t last_write_ms;
    char who[256];        /* the authenticated identity of this request */
    char human[256];      /* its token's elicitation:human person, or "" */
    net_client *cl;       /* its share (limits.c), once authenticated */
    size_t body_reserved; /* announced body bytes (reserved in its share when cl is set) */
    size_t body_cap;      /* allocated for body (grows as bytes arrive) */
    int64_t body_start_ms;
    /* the approval console (http.c route_console): its replies carry their
     * own security headers; its event stream polls the queue */
    bool console;
    char console_uri[128];
    wr_console_seen console_seen;
    char origin[300];                /* an allowed Origin, echoed for CORS; "" if none */
    bool preflight;                  /* OPTIONS */
    struct conn *open_next;          /* net's list of open HTTP transactions (timers) */
    void (*on_body)(struct conn *c); /* the route's handler once the body is in */
} conn;

/* ---- the loop's state (loop.c) ------------------------------------------------- */
typedef enum {
    RAW_STDIN = 1,
    RAW_STDOUT,
    RAW_SIGNAL,
    RAW_WS /* a WebSocket's socket, read by ws.c */
} raw_kind;
typedef struct raw {
    raw_kind kind;
    net *n;
} raw;

struct net {
    wr_server *srv;
    const wr_net_options *o;
    const wr_ctx *ctx;
    struct lws_context *lctx;
    struct lws_vhost *vh;
    int port;
    bool stop, draining, stdin_eof;
    lws_sorted_usec_list_t sul;
#define NET_MAX_TIMERS 8
    int64_t timer_last_ms[NET_MAX_TIMERS]; /* loop.c's timers */
    int64_t checkpoint_ms;                 /* when the receipt log was last checkpointed */
    /* stdio */
    raw r_in, r_out, r_sig;
    struct lws *w_in, *w_out;
    wr_outlet stdio_outlet;
    wr_session *stdio_ss;
    char *line;
    size_t line_len, line_cap;
    bool line_discard;
    mq out;
    lws_sorted_usec_list_t sul_out;
    /* network */
    const wr_tokens *tokens; /* o->tokens, or the last reload (owned then) */
    wr_tokens *reloaded;
    int conns;
    net_client *clients; /* shares in use, per identity (limits.c) */
    size_t body_bytes;   /* request bytes reserved in total */
    hsess *hsessions;
    int nhsessions;
    int nws;            /* open WebSocket sessions */
    conn *open;         /* HTTP transactions in progress (bodies, streams) */
    uint64_t event_seq; /* SSE event ids: unique in every session */
    int64_t drain_deadline_ms;
    wr_console *console; /* network only */
};

/* Starts the shutdown: no new work, every run cancelled (receipts say so). */
void net_begin_shutdown(net *n, const char *why);
/* Loop thread: stops the loop once shutdown (or stdin EOF) found it idle. */
void net_check_stop(net *n);

/* ---- request access (conn.c) ------------------------------------------------- */
/* Counts a refused connection or request (metrics) by its cause. */
void net_count_refusal(net *n, const char *cause);
/* Sets the gauges (sessions, runs, pending approvals) just before a scrape. */
void net_update_gauges(net *n);
int64_t net_now_ms(const net *n);
bool net_hdr(struct lws *wsi, enum lws_token_indexes t, char *buf, int len);
bool net_custom_hdr(struct lws *wsi, const char *name, char *buf, int len);
/* Origin and Host (DNS rebinding), then the bearer token, which must be of
 * the given kind. Returns 0 and the identity, or the HTTP status to refuse
 * with and *why. origin_out (may be NULL, 300 bytes) receives an allowed
 * Origin; without need_token only Host and Origin are checked (CORS
 * preflights carry no credentials). */
int net_check_access(net *n, struct lws *wsi, wr_token_kind kind, bool allow_query_token, bool need_token,
                     char *origin_out, const char **identity, const char **why);

/* A connection counts against --max-connections from its first request
 * (or handshake) until it closes. */
void net_conn_count(conn *c);
void net_conn_release(conn *c);
/* Only pipes and sockets become non-blocking (see conn.c). */
void net_set_nonblocking_if_pipe(int fd);
/* Watches fd in the loop as a raw file ("wr-raw" protocol) tagged with r. */
struct lws *net_adopt_fd(net *n, int fd, raw *r);

/* ---- shares per identity and HTTP sessions (limits.c) --------------------- */
const char *net_client_identity(const net_client *cl);
/* A connection slot for identity; NULL and *why at the identity's cap. */
net_client *net_client_acquire_conn(net *n, const char *identity, const char **why);
void net_client_release_conn(net *n, net_client *cl);
/* Whether identity may open one more connection (a check before a handshake). */
bool net_client_has_room(net *n, const char *identity);
/* Request body bytes in flight: reserved when announced, released when done. */
bool net_body_reserve(net *n, net_client *cl, size_t bytes, const char **why);
void net_body_release(net *n, net_client *cl, size_t bytes);
/* The session named id if it belongs to identity, else NULL. */
hsess *hsess_find(net *n, const char *id, const char *identity);
/* A new session for ss (taking the transport's reference); NULL and *why
 * at the caps, after the identity's least recently used idle session
 * was given up. */
hsess *hsess_create(net *n, wr_session *ss, const char **why);
wr_session *hsess_session(hsess *h);
const char *hsess_id(const hsess *h);
void hsess_touch(net *n, hsess *h);
void hsess_drop(net *n, hsess *h);
/* Timer: idle sessions (no run in flight, no GET stream) expire. */
void hsess_expire(net *n);
void hsess_drop_all(net *n);

/* ---- transports ------------------------------------------------------------------ */
/* stdio.c: attaches stdin/stdout (raw descriptors) and serves them. */
int stdio_attach(net *n);
void stdio_on_readable(net *n);
int stdio_on_writeable(net *n);
void stdio_on_closed(net *n, raw_kind kind);
/* Writes what is left for stdout, blocking, before the process exits. */
void stdio_flush(net *n);

/* ws.c and http.c: their cases of the "mcp" protocol callback. Each returns
 * the callback's result, or NET_UNHANDLED for a reason that is not its own. */
#define NET_UNHANDLED INT_MIN
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, conn *c, void *in, size_t len);
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, conn *c, void *in, size_t len);
/* ws.c: a WebSocket's socket is readable (the callback's result), or its
 * watcher was closed. */
int ws_on_readable(raw *r);
void ws_on_watch_closed(raw *r);
/* http.c: timer (SSE keepalives, body deadlines). */
void http_tick(net *n);
/* The console's open event streams look at the queue (loop.c's timers). */
void http_console_tick(net *n);

#endif
