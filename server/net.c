/* One libwebsockets event loop for every transport. stdin, stdout and the
 * signal self-pipe are adopted as raw file descriptors; WebSocket (/ws,
 * subprotocol "mcp") and Streamable HTTP (/mcp) share one listener. Tool
 * workers hand results back with lws_cancel_service(), which lands in
 * LWS_CALLBACK_EVENT_WAIT_CANCELLED on this thread. */
#include "server/net.h"
#include "server/console_internal.h"

#include "server/server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define TICK_US              (100 * LWS_US_PER_MS)
#define HTTP_SESSION_IDLE_MS (60LL * 60 * 1000)
#define SSE_KEEPALIVE_MS     15000

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

typedef struct hsess {
    struct hsess *next;
    char id[WR_ID_MAX];
    char identity[256];
    wr_session *ss;
    int64_t last_used_ms;
} hsess;

typedef struct net net;

enum {
    CONN_NONE = 0,
    CONN_WS,
    CONN_HTTP
};
enum {
    H_IDLE = 0,
    H_BODY,
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
    bool rx_paused;
    /* WebSocket reassembly */
    char *rx;
    size_t rx_len;
    bool rx_overflow;
    /* HTTP */
    int hstate;
    char sid[WR_ID_MAX]; /* Mcp-Session-Id to announce (set by initialize) */
    char *body;
    size_t body_len;
    int status; /* a refusal decided before the body */
    char *err_body;
    bool close_after;
    bool headers_sent;
    bool ended; /* final message queued */
    bool add_session_header;
    int64_t last_write_ms;
    char who[256];         /* the authenticated identity of this request */
    char console_uri[128]; /* a console POST's path, until its body is in */
    char human[256];       /* its token's elicitation:human person, or "" */
    char origin[300];      /* an allowed Origin, echoed for CORS; "" if none */
    bool preflight;        /* OPTIONS */
    /* the approval console (/console): its replies carry their own type and
     * security headers; its event stream polls the queue */
    bool console;
    const char *ctype; /* of err_body when not JSON */
    wr_console_seen console_seen;
    int64_t console_check_ms;
    struct conn *sse_next; /* net's list of open SSE streams (keepalives) */
} conn;

typedef enum {
    RAW_STDIN = 1,
    RAW_STDOUT,
    RAW_SIGNAL
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
    int exit_code;
    lws_sorted_usec_list_t sul;
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
    const wr_tokens *tokens;     /* o->tokens, or the last reload (owned then) */
    wr_token_info none_identity; /* --auth none: every connection is o->agent_id */
    wr_tokens *reloaded;
    int conns;
    hsess *hsessions;
    int nhsessions;
    conn *sse;
    uint64_t event_seq; /* SSE event ids: unique in every session */
    int64_t drain_deadline_ms;
    wr_console *console; /* network only */
};

static int sig_pipe[2] = {-1, -1}; /* the only process-global: signal handlers need it */

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

static void on_sigpipe(int sig)
{
    /* A handler, not SIG_IGN: exec resets it to default in children, while
     * an ignored SIGPIPE would be inherited by every command we run. */
    (void)sig;
}

static qmsg *qmsg_new(const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen, bool final)
{
    qmsg *m = malloc(sizeof *m + LWS_PRE + alen + blen + clen);
    if (!m)
        return NULL;
    m->next = NULL;
    m->off = 0;
    m->final = final;
    m->len = alen + blen + clen;
    unsigned char *p = m->buf + LWS_PRE;
    memcpy(p, a, alen);
    memcpy(p + alen, b, blen);
    memcpy(p + alen + blen, c, clen);
    return m;
}

static void q_push(mq *q, qmsg *m)
{
    if (!m)
        return;
    if (q->t)
        q->t->next = m;
    else
        q->h = m;
    q->t = m;
    q->bytes += m->len;
}

static qmsg *q_pop(mq *q)
{
    qmsg *m = q->h;
    if (m) {
        q->h = m->next;
        if (!q->h)
            q->t = NULL;
        q->bytes -= m->len;
    }
    return m;
}

static void q_free(mq *q)
{
    while (q->h)
        free(q_pop(q));
}

/* ======================================================================
 * stdio
 * ====================================================================== */

static void stdio_send(wr_outlet *o, const char *json, size_t len, bool final)
{
    net *n = (net *)((char *)o - offsetof(net, stdio_outlet));
    (void) final;
    /* json-c output never holds a raw newline: one message per line. */
    /* The one client of stdio is not throttled: pausing stdin would let
     * lws close it on POLLHUP with requests still unread in the pipe. */
    q_push(&n->out, qmsg_new(json, len, "\n", 1, "", 0, false));
    if (n->w_out)
        lws_callback_on_writable(n->w_out);
}

static void stdio_line(net *n, char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len)
        return; /* blank lines are tolerated */
    wr_rpc_result res;
    wr_session_handle(n->stdio_ss, line, len, &n->stdio_outlet, &res);
}

static void stdio_oversized(net *n)
{
    char msg[160];
    snprintf(msg, sizeof msg, "invalid request: line exceeds the limit of %zu bytes",
             wr_server_get_config(n->srv)->max_message_bytes);
    char *m = wr_rpc_error_msg(NULL, WR_RPC_INVALID_REQUEST, msg, NULL);
    if (m)
        stdio_send(&n->stdio_outlet, m, strlen(m), true);
    free(m);
}

static void stdio_read(net *n)
{
    char buf[65536];
    ssize_t r = read(0, buf, sizeof buf);
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        r = 0;
    }
    if (r == 0) {
        /* EOF: the client is done sending. Running commands finish and
         * their results are still written; then we exit. */
        n->stdin_eof = true;
        if (n->w_in)
            lws_rx_flow_control(n->w_in, 0);
        wr_log(n->ctx, WR_LOG_INFO, "server", "stdin closed: finishing %d run(s), then exiting",
               wr_server_active_runs(n->srv));
        return;
    }
    size_t cap = wr_server_get_config(n->srv)->max_message_bytes;
    for (ssize_t i = 0; i < r;) {
        char *nl = memchr(buf + i, '\n', (size_t)(r - i));
        size_t chunk = nl ? (size_t)(nl - (buf + i)) : (size_t)(r - i);
        if (!n->line_discard) {
            if (n->line_len + chunk > cap + 1) {
                n->line_discard = true; /* resync at the next newline */
                n->line_len = 0;
            } else {
                if (n->line_len + chunk > n->line_cap) {
                    size_t nc = n->line_cap ? n->line_cap : 4096;
                    while (nc < n->line_len + chunk)
                        nc *= 2;
                    char *nb = realloc(n->line, nc);
                    if (!nb) {
                        n->line_discard = true;
                        n->line_len = 0;
                        goto next;
                    }
                    n->line = nb;
                    n->line_cap = nc;
                }
                memcpy(n->line + n->line_len, buf + i, chunk);
                n->line_len += chunk;
            }
        }
    next:
        i += (ssize_t)chunk;
        if (nl) {
            i++;
            if (n->line_discard)
                stdio_oversized(n);
            else
                stdio_line(n, n->line, n->line_len);
            n->line_discard = false;
            n->line_len = 0;
        }
    }
}

static void stdout_again(lws_sorted_usec_list_t *sul)
{
    net *n = lws_container_of(sul, net, sul_out);
    if (n->w_out && n->out.h)
        lws_callback_on_writable(n->w_out);
}

static int stdio_write(net *n)
{
    while (n->out.h) {
        qmsg *m = n->out.h;
        ssize_t w = write(1, m->buf + LWS_PRE + m->off, m->len - m->off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            /* EPIPE: the client is gone; shut down like on EOF. */
            wr_log(n->ctx, WR_LOG_WARNING, "server", "stdout: %s; shutting down", strerror(errno));
            q_free(&n->out);
            n->stdin_eof = true;
            wr_server_cancel_all(n->srv, "stdout closed");
            return 0;
        }
        m->off += (size_t)w;
        if (m->off < m->len)
            break;
        free(q_pop(&n->out));
    }
    /* lws clears POLLOUT on a raw file after its writeable callback, so a
     * request made inside it would be lost: ask again from a timer. */
    if (n->out.h && n->w_out && n->lctx)
        lws_sul_schedule(n->lctx, 0, &n->sul_out, stdout_again, 1000);
    return 0;
}

static void begin_shutdown(net *n, const char *why)
{
    if (!n->draining)
        wr_log(n->ctx, WR_LOG_NOTICE, "server", "%s: stopping; cancelling %d run(s)", why,
               wr_server_active_runs(n->srv));
    n->draining = true;
    n->drain_deadline_ms = wr_now_ms(n->ctx) + 30000;
    wr_server_cancel_all(n->srv, why);
}

/* Token rotation without a restart: new connections and requests use the
 * new file; established WebSocket sessions keep their identity. */
static void reload_tokens(net *n)
{
    if (!n->o->token_file)
        return;
    wr_tokens *t = NULL;
    wr_error err;
    wr_error_clear(&err);
    if (wr_tokens_load(n->o->token_file, &t, &err) != WR_OK) {
        wr_log(n->ctx, WR_LOG_ERROR, "server", "SIGHUP: tokens refused, the previous ones stay: %s", err.message);
        return;
    }
    wr_tokens_free(n->reloaded);
    n->reloaded = t;
    n->tokens = t;
    wr_log(n->ctx, WR_LOG_NOTICE, "server", "SIGHUP: tokens reloaded from %s", n->o->token_file);
}

static void handle_signals(net *n)
{
    unsigned char sigs[32];
    ssize_t r = read(sig_pipe[0], sigs, sizeof sigs);
    for (ssize_t i = 0; i < r; i++) {
        if (sigs[i] == SIGHUP) {
            wr_error err;
            wr_error_clear(&err);
            if (!n->o->policy_path)
                wr_log(n->ctx, WR_LOG_WARNING, "server", "SIGHUP: no --policy file, the bundled policy stays");
            else if (wr_gate_reload_policy(wr_server_gate(n->srv), n->o->policy_path, &err) != WR_OK)
                wr_log(n->ctx, WR_LOG_ERROR, "server", "SIGHUP: policy %s refused, the previous policy stays: %s",
                       n->o->policy_path, err.message);
            else
                wr_log(n->ctx, WR_LOG_NOTICE, "server", "SIGHUP: policy %s reloaded", n->o->policy_path);
            reload_tokens(n);
        } else {
            begin_shutdown(n, sigs[i] == SIGINT ? "SIGINT" : "SIGTERM");
        }
    }
}

static int cb_raw(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    raw *r = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (!r)
            break;
        if (r->kind == RAW_STDIN)
            stdio_read(r->n);
        else if (r->kind == RAW_SIGNAL)
            handle_signals(r->n);
        break;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (r && r->kind == RAW_STDOUT)
            return stdio_write(r->n);
        break;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!r)
            break;
        if (r->kind == RAW_STDIN) {
            r->n->w_in = NULL;
            r->n->stdin_eof = true;
        } else if (r->kind == RAW_STDOUT) {
            /* the reader hung up (POLLHUP/POLLERR) */
            r->n->w_out = NULL;
            q_free(&r->n->out);
            if (!r->n->stdin_eof)
                begin_shutdown(r->n, "stdout closed");
            r->n->stdin_eof = true;
        }
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        break; /* handled once, by the "mcp" protocol */
    default:
        break;
    }
    return 0;
}

static struct lws *adopt_fd(net *n, int fd, raw *r)
{
    lws_sock_file_fd_type u;
    u.filefd = fd;
    struct lws *w = lws_adopt_descriptor_vhost(n->vh, LWS_ADOPT_RAW_FILE_DESC, u, "wr-raw", NULL);
    if (w)
        lws_set_opaque_user_data(w, r);
    return w;
}

/* ======================================================================
 * network: shared helpers
 * ====================================================================== */

static int64_t now_ms(net *n)
{
    return wr_now_ms(n->ctx);
}

static bool hdr(struct lws *wsi, enum lws_token_indexes t, char *buf, int len)
{
    buf[0] = '\0';
    int l = lws_hdr_total_length(wsi, t);
    if (l <= 0 || l >= len)
        return false;
    return lws_hdr_copy(wsi, buf, len, t) >= 0;
}

static bool custom_hdr(struct lws *wsi, const char *name, char *buf, int len)
{
    buf[0] = '\0';
    int nl = (int)strlen(name);
    int l = lws_hdr_custom_length(wsi, name, nl);
    if (l <= 0 || l >= len)
        return false;
    return lws_hdr_custom_copy(wsi, buf, len, name, nl) >= 0;
}

/* Origin and Host (DNS rebinding), then the bearer token, which must be of
 * kind `want` (agents call tools, approvers use the console: 403 across).
 * Returns 0 and the token's entry, or the HTTP status to refuse with. */
/* origin_out (may be NULL, 300 bytes) receives an allowed Origin; without
 * need_token only Host and Origin are checked (CORS preflights carry no
 * credentials). */
static int check_access(net *n, struct lws *wsi, bool allow_query_token, bool need_token, wr_token_kind want,
                        char *origin_out, const wr_token_info **identity, const char **why)
{
    char host[300], origin[300] = "";
    if (!hdr(wsi, WSI_TOKEN_HOST, host, sizeof host) ||
        !wr_host_allowed(host, n->port, n->o->listen_host, n->o->allowed_hosts)) {
        *why = "Host header not allowed";
        return 403;
    }
    /* browsers send Origin; an oversized one is refused like a bad one */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0 &&
        (!hdr(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin) ||
         !wr_origin_allowed(origin, n->port, n->o->listen_host, n->o->allowed_origins))) {
        *why = "Origin not allowed";
        return 403;
    }
    if (origin_out)
        snprintf(origin_out, 300, "%s", origin);
    if (!need_token)
        return 0;
    if (n->o->auth_none) {
        if (want != WR_TOKEN_AGENT) {
            *why = "the approver console needs --token-file with approver tokens";
            return 403;
        }
        *identity = &n->none_identity;
        return 0;
    }
    char auth[600], q[600] = "";
    const char *tok = NULL;
    size_t toklen = 0;
    if (hdr(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth) && !strncasecmp(auth, "Bearer ", 7)) {
        tok = auth + 7;
        while (*tok == ' ')
            tok++;
        toklen = strlen(tok);
    } else if (allow_query_token) {
        /* The SDK's WebSocket transport cannot set headers. The value never
         * reaches a log: lws logs are limited to errors and warnings. */
        if (lws_get_urlarg_by_name(wsi, "access_token=", q, sizeof q)) {
            const char *v = strchr(q, '=');
            tok = v ? v + 1 : q;
            toklen = strlen(tok);
        }
    }
    const wr_token_info *who = tok && toklen ? wr_tokens_lookup(n->tokens, tok, toklen) : NULL;
    explicit_bzero(auth, sizeof auth);
    explicit_bzero(q, sizeof q);
    if (!who) {
        *why = tok ? "invalid token" : "missing bearer token";
        return 401;
    }
    if (who->kind != want) {
        *why = want == WR_TOKEN_AGENT ? "an approver token cannot call agent tools"
                                      : "an agent token cannot use the approver console";
        return 403;
    }
    *identity = who;
    return 0;
}

/* ======================================================================
 * WebSocket
 * ====================================================================== */

static void ws_send(wr_outlet *o, const char *json, size_t len, bool final)
{
    conn *c = (conn *)o;
    (void) final;
    q_push(&c->q, qmsg_new(json, len, "", 0, "", 0, false));
    if (c->q.bytes > WR_OUT_HIGH && !c->rx_paused) {
        c->rx_paused = true;
        lws_rx_flow_control(c->wsi, 0);
    }
    lws_callback_on_writable(c->wsi);
}

static void ws_message(conn *c)
{
    if (c->rx_overflow) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid request: message exceeds the limit of %zu bytes",
                 wr_server_get_config(c->n->srv)->max_message_bytes);
        char *m = wr_rpc_error_msg(NULL, WR_RPC_INVALID_REQUEST, msg, NULL);
        if (m)
            ws_send(&c->outlet, m, strlen(m), true);
        free(m);
    } else {
        wr_rpc_result res;
        wr_session_handle(c->ss, c->rx ? c->rx : "", c->rx_len, &c->outlet, &res);
    }
    free(c->rx);
    c->rx = NULL;
    c->rx_len = 0;
    c->rx_overflow = false;
}

/* ======================================================================
 * Streamable HTTP
 * ====================================================================== */

static void sse_unlink(conn *c)
{
    for (conn **pp = &c->n->sse; *pp; pp = &(*pp)->sse_next)
        if (*pp == c) {
            *pp = c->sse_next;
            break;
        }
    c->sse_next = NULL;
}

static void http_reset(conn *c)
{
    if (c->n)
        sse_unlink(c);
    free(c->body);
    free(c->err_body);
    q_free(&c->q);
    c->body = c->err_body = NULL;
    c->body_len = 0;
    c->status = 0;
    c->hstate = H_IDLE;
    c->sid[0] = '\0';
    if (c->ss) {
        /* the conn's own reference: a DELETE elsewhere may have ended the session */
        wr_session_outlet_gone(c->ss, &c->outlet);
        wr_session_unref(c->ss);
        c->ss = NULL;
    }
    c->close_after = c->headers_sent = c->ended = c->add_session_header = c->preflight = false;
    c->origin[0] = '\0';
    c->console = false;
    c->ctype = NULL;
}

static void http_send(wr_outlet *o, const char *json, size_t len, bool final)
{
    conn *c = (conn *)o;
    if (c->hstate == H_SSE) {
        char head[128];
        /* Event ids are unique in the MCP session and name their stream. */
        int hl = snprintf(head, sizeof head, "id: %llu\nevent: message\ndata: ", (unsigned long long)++c->n->event_seq);
        q_push(&c->q, qmsg_new(head, (size_t)hl, json, len, "\n\n", 2, final));
        if (final)
            c->ended = true;
        lws_callback_on_writable(c->wsi);
    } else {
        /* a quick request: exactly one JSON response, written after handle() */
        q_push(&c->q, qmsg_new(json, len, "", 0, "", 0, true));
        c->ended = true;
    }
}

static void http_begin_stream(wr_outlet *o)
{
    conn *c = (conn *)o;
    c->hstate = H_SSE;
    c->sse_next = c->n->sse;
    c->n->sse = c;
    c->last_write_ms = now_ms(c->n);
    /* SEP-1699 priming event: an id and empty data; only 2025-11-25
     * clients expect it. */
    if (c->ss && !strcmp(wr_session_version(c->ss), "2025-11-25")) {
        char head[64];
        int hl = snprintf(head, sizeof head, "id: %llu\ndata: \n\n", (unsigned long long)++c->n->event_seq);
        q_push(&c->q, qmsg_new(head, (size_t)hl, "", 0, "", 0, false));
    }
    lws_callback_on_writable(c->wsi);
}

/* A refusal with a JSON-RPC error body (no id). */
static void http_refuse(conn *c, int status, int code, const char *message)
{
    if (!c->body)
        c->close_after = true; /* refused before the body was read */
    c->status = status;
    free(c->err_body);
    c->err_body = code ? wr_rpc_error_msg(NULL, code, message, NULL) : NULL;
    c->hstate = H_JSON;
    lws_callback_on_writable(c->wsi);
}

static hsess *hsess_find(net *n, const char *id)
{
    for (hsess *h = n->hsessions; h; h = h->next)
        if (!strcmp(h->id, id))
            return h;
    return NULL;
}

static void hsess_drop(net *n, hsess *h)
{
    hsess **pp = &n->hsessions;
    while (*pp && *pp != h)
        pp = &(*pp)->next;
    if (*pp)
        *pp = h->next;
    n->nhsessions--;
    wr_session_close(h->ss, true);
    free(h);
}

static bool accept_lists(const char *accept, const char *type)
{
    /* a comma-separated list, in any order, parameters allowed */
    const char *p = accept;
    size_t tl = strlen(type);
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        /* exact media types only: a wildcard is not an explicit listing */
        if (!strncasecmp(p, type, tl) && (p[tl] == '\0' || p[tl] == ',' || p[tl] == ';' || p[tl] == ' '))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

static void http_post_body(conn *c)
{
    net *n = c->n;
    wr_rpc_result res;
    if (!c->ss) {
        /* No Mcp-Session-Id: only initialize may create a session. */
        wr_session *ss = wr_session_new(n->srv, c->who, NULL);
        if (!ss) {
            http_refuse(c, 500, WR_RPC_INTERNAL, "out of memory");
            return;
        }
        wr_session_set_elicitation_human(ss, c->human[0] ? c->human : NULL);
        json_object *peek = wr_json_parse(c->body ? c->body : "", c->body_len, NULL, NULL);
        json_object *m = NULL;
        bool is_init = peek && json_object_is_type(peek, json_type_object) &&
                       json_object_object_get_ex(peek, "method", &m) && json_object_is_type(m, json_type_string) &&
                       !strcmp(json_object_get_string(m), "initialize");
        json_object_put(peek);
        if (!is_init && peek) {
            wr_session_close(ss, true);
            http_refuse(c, 400, WR_RPC_INVALID_REQUEST, "bad request: Mcp-Session-Id header is required");
            return;
        }
        c->ss = ss;
        c->hstate = H_JSON;
        wr_session_handle(ss, c->body ? c->body : "", c->body_len, &c->outlet, &res);
        if (res.is_initialize) {
            if (n->nhsessions >= n->o->max_http_sessions) {
                wr_session_close(ss, true);
                c->ss = NULL;
                q_free(&c->q);
                http_refuse(c, 503, WR_RPC_INTERNAL, "too many MCP sessions");
                return;
            }
            hsess *h = calloc(1, sizeof *h);
            if (!h) {
                wr_session_close(ss, true);
                c->ss = NULL;
                q_free(&c->q);
                http_refuse(c, 500, WR_RPC_INTERNAL, "out of memory");
                return;
            }
            /* crypto-random, visible ASCII; bound to the token identity */
            wr_random_id(n->ctx, "mcp-", h->id, sizeof h->id);
            snprintf(h->identity, sizeof h->identity, "%s", wr_session_identity(ss));
            h->ss = ss;
            h->last_used_ms = now_ms(n);
            h->next = n->hsessions;
            n->hsessions = h;
            n->nhsessions++;
            wr_session_ref(ss); /* the hsess owns the first reference, this conn the second */
            wr_log(n->ctx, WR_LOG_INFO, "server", "http: new MCP session for agent \"%s\"", h->identity);
            snprintf(c->sid, sizeof c->sid, "%s", h->id);
            c->add_session_header = true;
        } else {
            /* a failed initialize (or garbage): no session survives it */
            wr_session_close(ss, true);
            c->ss = NULL;
        }
    } else {
        c->hstate = H_JSON;
        wr_session_handle(c->ss, c->body ? c->body : "", c->body_len, &c->outlet, &res);
    }
    if (res.kind == WR_RPC_NONE) {
        c->status = 202;
        c->ended = true;
    } else if (res.kind == WR_RPC_REPLIED && c->hstate == H_JSON) {
        c->status = res.http_status ? res.http_status : 200;
    }
    lws_callback_on_writable(c->wsi);
}

static bool add_hdr(conn *c, bool when, const char *name, const char *value, unsigned char **p, unsigned char *end)
{
    return !when || lws_add_http_header_by_name(c->wsi, (const unsigned char *)name, (const unsigned char *)value,
                                                (int)strlen(value), p, end) == 0;
}

static int http_headers(conn *c, int status, const char *ctype, lws_filepos_t clen)
{
    unsigned char buf[LWS_PRE + 2048], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    bool sse = c->hstate == H_SSE, cors = c->origin[0] != '\0';
    if (lws_add_http_common_headers(c->wsi, (unsigned)status, ctype, clen, &p, end) ||
        !add_hdr(c, c->add_session_header && c->sid[0], "mcp-session-id:", c->sid, &p, end) ||
        !add_hdr(c, sse, "cache-control:", "no-cache", &p, end) ||
        !add_hdr(c, sse, "x-accel-buffering:", "no", &p, end) ||
        /* a refusal leaves the body unread: the connection cannot be reused */
        !add_hdr(c, c->close_after, "connection:", "close", &p, end) ||
        !add_hdr(c, status == 401, "www-authenticate:", "Bearer", &p, end) ||
        !add_hdr(c, status == 405, "allow:", "GET, POST, DELETE, OPTIONS", &p, end) ||
        /* CORS, only for an Origin that passed the allow-list */
        !add_hdr(c, cors, "access-control-allow-origin:", c->origin, &p, end) ||
        !add_hdr(c, cors, "vary:", "Origin", &p, end) ||
        !add_hdr(c, cors, "access-control-expose-headers:", "Mcp-Session-Id", &p, end) ||
        !add_hdr(c, cors && c->preflight, "access-control-allow-methods:", "GET, POST, DELETE", &p, end) ||
        !add_hdr(c, cors && c->preflight, "access-control-allow-headers:",
                 "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID", &p, end) ||
        !add_hdr(c, cors && c->preflight, "access-control-max-age:", "600", &p, end) ||
        !add_hdr(c, c->console, "content-security-policy:", WR_CONSOLE_CSP, &p, end) ||
        !add_hdr(c, c->console, "x-content-type-options:", "nosniff", &p, end) ||
        !add_hdr(c, c->console, "x-frame-options:", "DENY", &p, end) ||
        !add_hdr(c, c->console, "referrer-policy:", "no-referrer", &p, end) ||
        !add_hdr(c, c->console && !sse, "cache-control:", "no-store", &p, end))
        return -1;
    if (lws_finalize_write_http_header(c->wsi, start, &p, end))
        return -1;
    c->headers_sent = true;
    c->last_write_ms = now_ms(c->n);
    return 0;
}

static int http_done(conn *c)
{
    sse_unlink(c);
    c->hstate = H_DONE;
    if (c->close_after)
        return -1;
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static int http_writeable(conn *c)
{
    if (c->hstate == H_JSON) {
        if (!c->status && !c->ended)
            return 0; /* still waiting */
        int status = c->status ? c->status : 200;
        const char *body = c->err_body;
        size_t blen = body ? strlen(body) : 0;
        if (!body && c->q.h) {
            body = (const char *)c->q.h->buf + LWS_PRE;
            blen = c->q.h->len;
        }
        if (!c->headers_sent) {
            if (http_headers(c, status, body ? (c->ctype ? c->ctype : "application/json") : NULL, blen) < 0)
                return -1;
            if (!blen)
                return http_done(c);
            lws_callback_on_writable(c->wsi);
            return 0;
        }
        unsigned char *tmp = malloc(LWS_PRE + blen);
        if (!tmp)
            return -1;
        memcpy(tmp + LWS_PRE, body, blen);
        int w = lws_write(c->wsi, tmp + LWS_PRE, blen, LWS_WRITE_HTTP_FINAL);
        free(tmp);
        if (w < (int)blen)
            return -1;
        return http_done(c);
    }
    if (c->hstate == H_SSE) {
        if (!c->headers_sent) {
            if (http_headers(c, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN) < 0)
                return -1;
            /* a stream lives as long as its run or session: no idle timeout
             * (h2 streams also need to be marked) */
            lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
            if (lws_get_network_wsi(c->wsi) != c->wsi)
                lws_http_mark_sse(c->wsi);
            if (c->q.h)
                lws_callback_on_writable(c->wsi);
            return 0;
        }
        qmsg *m = q_pop(&c->q);
        if (!m)
            return 0;
        bool last = m->final;
        int w = lws_write(c->wsi, m->buf + LWS_PRE, m->len, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
        free(m);
        if (w < 0)
            return -1;
        c->last_write_ms = now_ms(c->n);
        if (last) {
            /* The response ends this stream (A/basic/transports.mdx). */
            c->close_after = true;
            return http_done(c);
        }
        if (c->q.h)
            lws_callback_on_writable(c->wsi);
    }
    return 0;
}

/* ---- the approval console ------------------------------------------------ */

static void console_send(conn *c, wr_console_reply *r)
{
    c->status = r->status;
    c->ctype = r->content_type;
    free(c->err_body);
    c->err_body = malloc(r->len + 1);
    if (c->err_body) {
        memcpy(c->err_body, r->body ? r->body : r->static_body, r->len);
        c->err_body[r->len] = '\0';
    } else {
        c->status = 500;
    }
    wr_console_reply_clear(r);
    c->hstate = H_JSON;
    lws_callback_on_writable(c->wsi);
}

static void console_refuse(conn *c, int status, const char *why)
{
    wr_console_reply r = {.status = status, .content_type = "application/json"};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(why));
    r.body = strdup(wr_json_compact(o));
    r.len = r.body ? strlen(r.body) : 0;
    json_object_put(o);
    if (!c->body)
        c->close_after = true; /* refused before the body was read */
    console_send(c, &r);
}

static void console_body(conn *c, const char *method, const char *uri)
{
    wr_console_reply r;
    wr_console_handle(c->n->console, method, uri, c->who, c->body, c->body_len, &r);
    console_send(c, &r);
}

/* /console: the same Host/Origin checks as /mcp; the API takes approver
 * tokens only (an agent token gets 403, like an approver's on /mcp). */
static int console_request(conn *c, const char *uri)
{
    net *n = c->n;
    c->console = true;
    bool api = wr_console_is_api(uri);
    bool get = lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) > 0;
    bool post = lws_hdr_total_length(c->wsi, WSI_TOKEN_POST_URI) > 0;
    const wr_token_info *who = NULL;
    const char *why = NULL;
    int st = n->console ? check_access(n, c->wsi, false, api, WR_TOKEN_APPROVER, NULL, &who, &why) : 404;
    if (st) {
        wr_log(n->ctx, WR_LOG_WARNING, "server", "console: refused (%d): %s", st, why ? why : "no console");
        console_refuse(c, st, why ? why : "the console needs warrantd --listen");
        return 0;
    }
    if (!get && !post) {
        console_refuse(c, 405, "the console takes GET and POST only");
        return 0;
    }
    snprintf(c->who, sizeof c->who, "%s", who ? who->identity : "");
    if (get && !strcmp(uri, WR_CONSOLE_EVENTS)) {
        memset(&c->console_seen, 0, sizeof c->console_seen);
        c->console_check_ms = 0;
        http_begin_stream(&c->outlet);
        return 0;
    }
    if (get) {
        console_body(c, "GET", uri);
        return 0;
    }
    char clen_s[32], ctype[200];
    long long clen = hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen_s, sizeof clen_s) ? atoll(clen_s) : -1;
    hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
    if (strncasecmp(ctype, "application/json", 16) != 0)
        console_refuse(c, 415, "Content-Type must be application/json");
    else if (clen < 0)
        console_refuse(c, 411, "send the body with Content-Length");
    else if (clen > (long long)WR_CONSOLE_MAX_BODY)
        console_refuse(c, 413, "payload too large");
    else if (clen == 0)
        console_body(c, "POST", uri);
    else if (!(c->body = malloc((size_t)clen + 1)))
        console_refuse(c, 500, "out of memory");
    else
        c->hstate = H_BODY;
    return 0;
}

/* The console's event streams look at the queue now and then. */
static void console_tick(net *n, int64_t now)
{
    for (conn *c = n->sse; c; c = c->sse_next) {
        if (!c->console || c->ended || now - c->console_check_ms < WR_CONSOLE_EVENT_CHECK_MS)
            continue;
        c->console_check_ms = now;
        char *ev = wr_console_next_event(n->console, &c->console_seen);
        if (ev) {
            q_push(&c->q, qmsg_new(ev, strlen(ev), "", 0, "", 0, false));
            c->last_write_ms = now;
            lws_callback_on_writable(c->wsi);
            free(ev);
        }
    }
}

/* LWS_CALLBACK_HTTP: the request line and headers are in. */
static int http_request(conn *c, const char *uri)
{
    net *n = c->n;
    http_reset(c);
    c->kind = CONN_HTTP;
    c->outlet.send = http_send;
    c->outlet.begin_stream = http_begin_stream;
    c->hstate = H_JSON;
    if (n->draining) {
        http_refuse(c, 503, WR_RPC_INTERNAL, "server is shutting down");
        return 0;
    }
    if (wr_console_owns(uri)) {
        if (strlen(uri) >= sizeof c->console_uri) {
            http_refuse(c, 404, 0, NULL);
            return 0;
        }
        snprintf(c->console_uri, sizeof c->console_uri, "%s", uri);
        return console_request(c, uri);
    }
    if (strcmp(uri, "/mcp") != 0) {
        http_refuse(c, 404, 0, NULL);
        return 0;
    }
    const wr_token_info *who = NULL;
    const char *why = NULL;
    c->preflight = lws_hdr_total_length(c->wsi, WSI_TOKEN_OPTIONS_URI) > 0;
    int st = check_access(n, c->wsi, false, !c->preflight, WR_TOKEN_AGENT, c->origin, &who, &why);
    if (st) {
        wr_log(n->ctx, WR_LOG_WARNING, "server", "http: refused (%d): %s", st, why);
        http_refuse(c, st, WR_RPC_INVALID_REQUEST, why);
        return 0;
    }
    if (c->preflight) {
        http_refuse(c, c->origin[0] ? 204 : 400, 0, NULL);
        return 0;
    }
    snprintf(c->who, sizeof c->who, "%s", who->identity);
    snprintf(c->human, sizeof c->human, "%s", who->elicitation_human ? who->elicitation_human : "");
    bool post = lws_hdr_total_length(c->wsi, WSI_TOKEN_POST_URI) > 0;
    bool del = lws_hdr_total_length(c->wsi, WSI_TOKEN_DELETE_URI) > 0;
    bool get = lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) > 0;
    char sid[WR_ID_MAX + 8], ver[40], accept[300], ctype[200];
    bool have_sid = custom_hdr(c->wsi, "mcp-session-id:", sid, sizeof sid);
    hsess *h = NULL;
    if (have_sid) {
        h = hsess_find(n, sid);
        /* a session id never authenticates: it must belong to this identity */
        if (!h || strcmp(h->identity, who->identity)) {
            http_refuse(c, 404, WR_RPC_INVALID_REQUEST, "unknown or terminated MCP session");
            return 0;
        }
        c->ss = h->ss;
        wr_session_ref(c->ss);
        h->last_used_ms = now_ms(n);
        if (custom_hdr(c->wsi, "mcp-protocol-version:", ver, sizeof ver) && !wr_mcp_version_known(ver)) {
            http_refuse(c, 400, WR_RPC_INVALID_REQUEST, "unsupported MCP-Protocol-Version");
            return 0;
        }
    }
    if (del) {
        if (!h) {
            http_refuse(c, 400, WR_RPC_INVALID_REQUEST, "bad request: Mcp-Session-Id header is required");
            return 0;
        }
        hsess_drop(n, h);
        http_refuse(c, 200, 0, NULL);
        return 0;
    }
    if (get) {
        hdr(c->wsi, WSI_TOKEN_HTTP_ACCEPT, accept, sizeof accept);
        if (!accept_lists(accept, "text/event-stream"))
            http_refuse(c, 406, WR_RPC_INVALID_REQUEST, "not acceptable: GET needs Accept: text/event-stream");
        else if (!c->ss)
            http_refuse(c, 400, WR_RPC_INVALID_REQUEST, "bad request: Mcp-Session-Id header is required");
        else if (wr_session_default_outlet(c->ss))
            http_refuse(c, 409, WR_RPC_INVALID_REQUEST, "this session already has a GET stream");
        else {
            /* The standalone stream: messages not tied to a request
             * (notifications/message) go here; it never carries responses. */
            wr_session_set_default_outlet(c->ss, &c->outlet);
            http_begin_stream(&c->outlet);
        }
        return 0;
    }
    if (!post) {
        http_refuse(c, 405, 0, NULL);
        return 0;
    }
    hdr(c->wsi, WSI_TOKEN_HTTP_ACCEPT, accept, sizeof accept);
    hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
    size_t cap = wr_server_get_config(n->srv)->max_message_bytes;
    char clen_s[32];
    long long clen = hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen_s, sizeof clen_s) ? atoll(clen_s) : -1;
    if (!accept_lists(accept, "application/json") || !accept_lists(accept, "text/event-stream")) {
        http_refuse(c, 406, WR_RPC_INVALID_REQUEST,
                    "not acceptable: Accept must list application/json and text/event-stream");
    } else if (strncasecmp(ctype, "application/json", 16) != 0 ||
               (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' ')) {
        http_refuse(c, 415, WR_RPC_INVALID_REQUEST, "unsupported media type: Content-Type must be application/json");
    } else if (clen > (long long)cap) {
        http_refuse(c, 413, WR_RPC_INVALID_REQUEST, "payload too large");
    } else if (clen < 0) {
        /* lws 4.1 does not decode chunked request bodies */
        http_refuse(c, 411, WR_RPC_INVALID_REQUEST, "length required: send the body with Content-Length");
    } else if (clen == 0) {
        http_refuse(c, 400, WR_RPC_PARSE_ERROR, "parse error: empty body");
    } else {
        c->hstate = H_BODY;
        c->body = malloc((size_t)clen + 1);
        if (!c->body) {
            http_refuse(c, 500, WR_RPC_INTERNAL, "out of memory");
            return 0;
        }
    }
    return 0;
}

/* ======================================================================
 * the "mcp" protocol callback: HTTP and WebSocket
 * ====================================================================== */

static bool net_idle(net *n)
{
    return wr_server_active_runs(n->srv) == 0 && !n->out.h;
}

static void check_stop(net *n)
{
    bool stdio_only = !n->o->listen_host;
    if ((n->draining || (stdio_only && n->stdin_eof)) && net_idle(n))
        n->stop = true;
    if (n->draining && now_ms(n) > n->drain_deadline_ms)
        n->stop = true;
    if (n->stop)
        lws_cancel_service(n->lctx);
}

static int cb_mcp(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    conn *c = user;
    net *n = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        wr_server_drain(n->srv);
        check_stop(n);
        return 0;

    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return n->draining || n->conns >= n->o->max_connections;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* WebSocket handshake: path, Origin/Host, token, capacity. */
        const wr_token_info *who = NULL;
        const char *why = "not found";
        char uri[64];
        int st = 0;
        if (strcmp((const char *)in, "websocket")) {
            st = 400;
            why = "only the websocket upgrade is supported";
        } else if (!hdr(wsi, WSI_TOKEN_GET_URI, uri, sizeof uri) || strcmp(uri, "/ws"))
            st = 404;
        else if (n->draining || n->conns >= n->o->max_connections) {
            st = 503;
            why = "too many connections";
        } else
            st = check_access(n, wsi, true, true, WR_TOKEN_AGENT, NULL, &who, &why);
        if (st) {
            wr_log(n->ctx, WR_LOG_WARNING, "server", "websocket: refused (%d): %s", st, why);
            lws_return_http_status(wsi, (unsigned)st, why);
            return 1;
        }
        return 0;
    }

    case LWS_CALLBACK_ESTABLISHED: {
        /* The per-connection data is fresh here (not yet at CONFIRM_UPGRADE);
         * the headers are still attached, so the identity is read again. */
        const wr_token_info *who = NULL;
        const char *why = NULL;
        if (check_access(n, wsi, true, true, WR_TOKEN_AGENT, NULL, &who, &why) != 0)
            return -1;
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        c->n = n;
        c->kind = CONN_WS;
        c->outlet.send = ws_send;
        c->outlet.may_reorder = true;
        c->ss = wr_session_new(n->srv, who->identity, &c->outlet);
        if (!c->ss)
            return -1;
        wr_session_set_elicitation_human(c->ss, who->elicitation_human);
        wr_log(n->ctx, WR_LOG_DEBUG, "server", "websocket: connection for agent \"%s\"", who->identity);
        n->conns++;
        c->counted = true;
        return 0;
    }

    case LWS_CALLBACK_RECEIVE: {
        if (lws_frame_is_binary(wsi)) {
            static const char why[] = "binary frames are not accepted: send JSON-RPC as text";
            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, (unsigned char *)why, sizeof why - 1);
            return -1;
        }
        size_t cap = wr_server_get_config(n->srv)->max_message_bytes;
        if (!c->rx_overflow) {
            if (c->rx_len + len > cap) {
                c->rx_overflow = true;
                free(c->rx);
                c->rx = NULL;
                c->rx_len = 0;
            } else {
                char *nb = realloc(c->rx, c->rx_len + len + 1);
                if (!nb)
                    return -1;
                c->rx = nb;
                memcpy(c->rx + c->rx_len, in, len);
                c->rx_len += len;
            }
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
            ws_message(c);
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        qmsg *m = q_pop(&c->q);
        if (!m)
            return 0;
        int w = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        free(m);
        if (w < 0)
            return -1;
        if (c->rx_paused && c->q.bytes < WR_OUT_HIGH / 2) {
            c->rx_paused = false;
            lws_rx_flow_control(wsi, 1);
        }
        if (c->q.h)
            lws_callback_on_writable(wsi);
        return 0;
    }

    case LWS_CALLBACK_CLOSED:
        if (c->kind == CONN_WS && c->ss) {
            /* the output channel is gone: its runs are cancelled (receipts say so) */
            wr_session_close(c->ss, true);
            c->ss = NULL;
        }
        q_free(&c->q);
        free(c->rx);
        c->rx = NULL;
        if (c->counted)
            n->conns--;
        c->counted = false;
        return 0;

    case LWS_CALLBACK_HTTP:
        c->wsi = wsi;
        c->n = n;
        if (!c->counted) {
            n->conns++;
            c->counted = true;
        }
        return http_request(c, (const char *)in);

    case LWS_CALLBACK_HTTP_BODY:
        if (c->hstate == H_BODY && c->body) {
            char clen_s[32];
            size_t clen = hdr(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen_s, sizeof clen_s) ? (size_t)atoll(clen_s) : 0;
            if (c->body_len + len > clen)
                return -1; /* more than announced */
            memcpy(c->body + c->body_len, in, len);
            c->body_len += len;
        }
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c->hstate == H_BODY && c->console)
            console_body(c, "POST", c->console_uri);
        else if (c->hstate == H_BODY)
            http_post_body(c);
        return 0;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(c);

    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c && c->kind == CONN_HTTP) {
            if (c->ss)
                wr_session_outlet_gone(c->ss, &c->outlet);
            http_reset(c);
            c->kind = CONN_NONE;
            if (c->counted)
                n->conns--;
            c->counted = false;
        }
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ======================================================================
 * timers and the loop
 * ====================================================================== */

static void on_tick(lws_sorted_usec_list_t *sul)
{
    net *n = lws_container_of(sul, net, sul);
    wr_server_drain(n->srv);
    wr_server_tick(n->srv);
    /* idle HTTP sessions without runs expire */
    int64_t now = now_ms(n);
    for (hsess *h = n->hsessions, *next; h; h = next) {
        next = h->next;
        if (now - h->last_used_ms > HTTP_SESSION_IDLE_MS && !h->ss->calls && !wr_session_default_outlet(h->ss))
            hsess_drop(n, h);
    }
    if (n->console)
        console_tick(n, now);
    /* SSE comments keep proxies and clients from timing out a quiet run */
    for (conn *c = n->sse; c; c = c->sse_next)
        if (c->ss && c->ss->closed && !c->ended) {
            /* DELETE ended the session: end its streams too */
            c->ended = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        } else if (c->headers_sent && !c->ended && now - c->last_write_ms >= SSE_KEEPALIVE_MS) {
            q_push(&c->q, qmsg_new(": keepalive\n\n", 13, "", 0, "", 0, false));
            c->last_write_ms = now;
            lws_callback_on_writable(c->wsi);
        }
    check_stop(n);
    if (!n->stop)
        lws_sul_schedule(n->lctx, 0, &n->sul, on_tick, TICK_US);
}

static void waker(void *ud)
{
    lws_cancel_service(ud);
}

/* Only pipes and sockets: a terminal's open file description is shared with
 * the shell, which would find its own stdin non-blocking afterwards. */
static void set_nonblocking_if_pipe(int fd)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static const struct lws_protocols protocols[] = {
    {"mcp", cb_mcp, sizeof(conn), 0, 0, NULL, 0},
    {"wr-raw", cb_raw, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_stderr(int level, const char *line)
{
    (void)level;
    fputs(line, stderr); /* stdout carries protocol messages only */
}

int wr_net_serve(wr_server *srv, const wr_net_options *o)
{
    net *n = calloc(1, sizeof *n);
    if (!n)
        return 1;
    n->srv = srv;
    n->o = o;
    n->none_identity = (wr_token_info){WR_TOKEN_AGENT, o->agent_id, NULL};
    n->ctx = wr_gate_ctx(wr_server_gate(srv));
    n->stdio_outlet.send = stdio_send;
    n->stdio_outlet.may_reorder = true;
    n->r_in = (raw){RAW_STDIN, n};
    n->r_out = (raw){RAW_STDOUT, n};
    n->r_sig = (raw){RAW_SIGNAL, n};
    n->tokens = o->tokens;
    int rc = 1;

    lws_set_log_level(getenv("WR_LWS_DEBUG") ? 0x7ff : (LLL_ERR | LLL_WARN), lws_log_stderr);
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        wr_log(n->ctx, WR_LOG_ERROR, "server", "pipe: %s", strerror(errno));
        free(n);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, NULL);

    /* Connections need descriptors: raise the soft limit to the hard one.
     * Commands get their own limits from the sandbox (prlimit). */
    struct rlimit rl = {1024, 1024};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (o->listen_host && rl.rlim_cur < (rlim_t)o->max_connections + 64)
        wr_log(n->ctx, WR_LOG_WARNING, "server", "only %llu descriptors for --max-connections %d",
               (unsigned long long)rl.rlim_cur, o->max_connections);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (o->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.protocols = protocols;
    info.user = n;
    /* lws indexes its table by descriptor number, and runs open pipes and
     * database files too: size it to the process limit, not to the
     * connection cap. */
    info.fd_limit_per_thread = (unsigned)(rl.rlim_cur > 65536 ? 65536 : rl.rlim_cur);
    n->lctx = lws_create_context(&info);
    if (!n->lctx) {
        wr_log(n->ctx, WR_LOG_ERROR, "server", "cannot create the event loop");
        goto out;
    }
    memset(&info, 0, sizeof info);
    info.protocols = protocols;
    info.user = n;
    info.vhost_name = "warrant";
    if (o->listen_host) {
        info.port = o->listen_port;
        info.iface = !strcasecmp(o->listen_host, "localhost") ? "127.0.0.1" : o->listen_host;
        if (o->tls_cert) {
            /* lws decides per vhost from this option whether it uses TLS */
            info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
            info.ssl_cert_filepath = o->tls_cert;
            info.ssl_private_key_filepath = o->tls_key;
        }
        info.timeout_secs = 30;
    } else {
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    }
    n->vh = lws_create_vhost(n->lctx, &info);
    if (!n->vh) {
        wr_log(n->ctx, WR_LOG_ERROR, "server", "cannot listen on %s:%d", o->listen_host ? o->listen_host : "-",
               o->listen_port);
        goto out;
    }
    if (o->listen_host) {
        n->port = lws_get_vhost_listen_port(n->vh);
        if (!(n->console = wr_console_new(wr_server_gate(srv))))
            goto out;
        const char *sch = o->tls_cert ? "s" : "";
        const char *h = info.iface;
        bool v6 = strchr(h, ':') != NULL;
        wr_log(n->ctx, WR_LOG_NOTICE, "server", "listening on %s%s%s:%d: http%s://…/mcp and ws%s://…/ws (auth: %s)",
               v6 ? "[" : "", h, v6 ? "]" : "", n->port, sch, sch, o->auth_none ? "none" : "bearer token");
        if (o->auth_none)
            wr_log(n->ctx, WR_LOG_WARNING, "server",
                   "--auth none: any local process can use this server as agent \"%s\"", o->agent_id);
    }
    wr_server_set_waker(srv, waker, n->lctx);
    if (!adopt_fd(n, sig_pipe[0], &n->r_sig)) {
        wr_log(n->ctx, WR_LOG_ERROR, "server", "cannot watch signals");
        goto out;
    }
    /* Logs must never stall the loop when nobody drains a stderr pipe: a
     * line that does not fit is dropped. */
    set_nonblocking_if_pipe(2);
    if (o->stdio) {
        n->stdio_ss = wr_session_new(srv, o->agent_id, &n->stdio_outlet);
        /* stdout is written without blocking the loop; a slow reader only
         * delays its own messages. */
        set_nonblocking_if_pipe(1);
        n->w_in = adopt_fd(n, 0, &n->r_in);
        n->w_out = adopt_fd(n, 1, &n->r_out);
        if (!n->stdio_ss || !n->w_in || !n->w_out) {
            wr_log(n->ctx, WR_LOG_ERROR, "server", "cannot attach stdin/stdout to the event loop");
            goto out;
        }
        lws_rx_flow_control(n->w_out, 0); /* only POLLOUT matters on stdout */
    }
    lws_sul_schedule(n->lctx, 0, &n->sul, on_tick, TICK_US);
    while (!n->stop)
        if (lws_service(n->lctx, 0) < 0)
            break;
    /* flush what is left for stdout before leaving */
    if (n->out.h) {
        int fl = fcntl(1, F_GETFL);
        if (fl >= 0)
            fcntl(1, F_SETFL, fl & ~O_NONBLOCK);
        stdio_write(n);
    }
    rc = 0;
out:
    if (n->lctx) {
        lws_sul_cancel(&n->sul);
        lws_sul_cancel(&n->sul_out);
        wr_server_set_waker(srv, NULL, NULL);
        lws_context_destroy(n->lctx);
        /* the wsis are gone: late messages only queue (and are dropped) */
        n->w_in = n->w_out = NULL;
    }
    while (n->hsessions)
        hsess_drop(n, n->hsessions);
    if (n->stdio_ss)
        wr_session_close(n->stdio_ss, true);
    /* Runs cancelled above still seal their receipts before we return. */
    while (wr_server_active_runs(srv) > 0) {
        wr_server_drain(srv);
        usleep(20000);
    }
    wr_server_drain(srv);
    q_free(&n->out);
    wr_tokens_free(n->reloaded);
    wr_console_free(n->console);
    free(n->line);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    free(n);
    return rc;
}
