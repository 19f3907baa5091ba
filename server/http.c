/* HTTP/1.1 on the shared listener: reads requests (bodies as they arrive,
 * within a deadline and a minimum rate, inside the client's share), writes
 * JSON answers and SSE streams, one request per connection. What a request
 * means is its route's business (http_routes.c: /mcp, /metrics, console). */
#include "server/http.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SSE_KEEPALIVE_MS 15000
/* Bodies grow as bytes arrive (never the announced length up front). */
#define BODY_FIRST_CHUNK (64u * 1024u)
/* A body slower than this (after a grace period) is a trickle: 408. */
#define BODY_MIN_BYTES_PER_SEC (16u * 1024u)
#define BODY_GRACE_MS          2000
/* A refused body up to this many messages long is read and discarded
 * before the answer, so the client sees the status, not EPIPE. */
#define DRAIN_MAX_MESSAGES 2

/* ======================================================================
 * Streamable HTTP
 * ====================================================================== */

static void open_unlink(conn *c)
{
    for (conn **pp = &c->n->open; *pp; pp = &(*pp)->open_next)
        if (*pp == c) {
            *pp = c->open_next;
            break;
        }
    c->open_next = NULL;
}

void http_open_link(conn *c)
{
    open_unlink(c);
    c->open_next = c->n->open;
    c->n->open = c;
}

static void http_reset(conn *c)
{
    if (c->n)
        open_unlink(c);
    if (c->body_reserved && c->cl)
        net_body_release(c->n, c->cl, c->body_reserved);
    c->body_reserved = c->body_cap = 0;
    if (c->cl)
        net_client_release_conn(c->n, c->cl);
    c->cl = NULL;
    free(c->body);
    free(c->err_body);
    q_free(&c->q);
    c->body = c->err_body = NULL;
    c->body_type = NULL;
    c->console = false;
    c->human[0] = '\0';
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
    c->body_done = c->headers_sent = c->ended = c->add_session_header = c->preflight = c->get = c->rx_paused = false;
    c->origin[0] = '\0';
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
        http_wake(c);
    } else {
        /* a quick request: exactly one JSON response, written after handle() */
        q_push(&c->q, qmsg_new(json, len, "", 0, "", 0, true));
        c->ended = true;
    }
}

static void http_end(wr_outlet *o)
{
    conn *c = (conn *)o;
    c->ended = true;
    http_wake(c);
}

void http_begin_stream(wr_outlet *o)
{
    conn *c = (conn *)o;
    c->hstate = H_SSE;
    http_open_link(c);
    c->last_write_ms = net_now_ms(c->n);
    /* SEP-1699 priming event: an id and empty data; only 2025-11-25
     * clients expect it. */
    if (c->ss && !strcmp(wr_session_version(c->ss), "2025-11-25")) {
        char head[64];
        int hl = snprintf(head, sizeof head, "id: %llu\ndata: \n\n", (unsigned long long)++c->n->event_seq);
        q_push(&c->q, qmsg_new(head, (size_t)hl, "", 0, "", 0, false));
    }
    http_wake(c);
}

/* A refusal with a JSON-RPC error body (no id). */
void http_refuse(conn *c, int status, int code, const char *message)
{
    if (status >= 400)
        net_count_refusal(c->n, wr_metrics_http_cause(status));
    c->status = status;
    free(c->err_body);
    c->err_body = code ? wr_rpc_error_msg(NULL, code, message, NULL) : NULL;
    c->hstate = H_JSON;
    http_wake(c);
}

/* Refuses a POST whose body is still on its way. A client writing a body
 * that is refused before it is read gets EPIPE, not the status: a body of
 * reasonable size is read and discarded first (under the body deadline),
 * and the answer goes out once it is in. */
void http_refuse_body(conn *c, long long announced, int status, int code, const char *message)
{
    http_refuse(c, status, code, message);
    size_t drain_max = DRAIN_MAX_MESSAGES * wr_server_get_config(c->n->srv)->max_message_bytes;
    if (announced > 0 && (unsigned long long)announced <= drain_max && !c->body_done) {
        c->hstate = H_DRAIN;
        c->body_start_ms = net_now_ms(c->n);
        http_open_link(c);
    }
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
        /* HTTP/1.1 only: h2 has no Connection header (its streams end alone);
         * lws adds it itself to a response without a length (a stream) */
        !add_hdr(c, lws_get_network_wsi(c->wsi) == c->wsi && clen != LWS_ILLEGAL_HTTP_CONTENT_LEN,
                 "connection:", "close", &p, end) ||
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
        /* the console shows agent-written text: nothing but its own files
         * may load or run, and it may not be framed */
        !add_hdr(c, c->console, "content-security-policy:", WR_CONSOLE_CSP, &p, end) ||
        !add_hdr(c, c->console, "x-content-type-options:", "nosniff", &p, end) ||
        !add_hdr(c, c->console, "x-frame-options:", "DENY", &p, end) ||
        !add_hdr(c, c->console, "referrer-policy:", "no-referrer", &p, end) ||
        !add_hdr(c, c->console && !sse, "cache-control:", "no-store", &p, end))
        return -1;
    if (lws_finalize_write_http_header(c->wsi, start, &p, end))
        return -1;
    c->headers_sent = true;
    c->last_write_ms = net_now_ms(c->n);
    return 0;
}

/* A GET stream on HTTP/1.1 only writes. Bytes its client sends behind
 * the request (a pipelined request, or the FIN of a client that went
 * away) are never consumed by lws 4.1 while the response is open: it
 * re-services them in a busy loop (up to a core) until the stream ends.
 * Stopping the reading (lws_rx_flow_control) ends that, but in lws 4.1 it
 * also stops the connection's POLLOUT handling, and re-arms POLLOUT when
 * bytes wait in its buffer (a loop again). So such a stream stops reading
 * at its request, before lws buffers what follows, for good; it is written
 * directly (lws_write when the socket takes it; the tick retries a choked
 * one) instead of from WRITEABLE callbacks; and a client that sends
 * anything on it, or does not take its messages, loses it (it may open
 * another). h2 streams share their connection and lws ignores flow control
 * there: they keep the callbacks. */
static bool stream_writes_direct(const conn *c)
{
    return c->get && c->hstate == H_SSE && lws_get_network_wsi(c->wsi) == c->wsi;
}

static void stream_close(conn *c, const char *why)
{
    if (why)
        wr_log(c->n->ctx, WR_LOG_NOTICE, "server", "http: agent \"%s\": GET stream closed: %s", c->who, why);
    open_unlink(c);
    c->hstate = H_DONE;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static void stream_write_now(conn *c)
{
    if (!c->headers_sent) {
        if (http_headers(c, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN) < 0) {
            stream_close(c, "cannot write the response headers");
            return;
        }
        lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0); /* it lives as long as its session */
        c->rx_paused = true;
        lws_rx_flow_control(c->wsi, 0);
    }
    while (c->q.h && !lws_send_pipe_choked(c->wsi)) {
        qmsg *m = q_pop(&c->q);
        bool last = m->final;
        int w = lws_write(c->wsi, m->buf + LWS_PRE, m->len, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
        free(m);
        if (w < 0 || last) {
            stream_close(c, NULL);
            return;
        }
        /* lws would need POLLOUT to send the rest */
        if (lws_partial_buffered(c->wsi)) {
            stream_close(c, "the client does not read it");
            return;
        }
        c->last_write_ms = net_now_ms(c->n);
    }
    if (c->q.bytes > WR_OUT_HIGH)
        stream_close(c, "the client does not read it");
    else if (c->ended && !c->q.h)
        stream_close(c, NULL);
}

void http_wake(conn *c)
{
    if (c->hstate == H_DONE)
        return;
    if (stream_writes_direct(c))
        stream_write_now(c);
    else
        lws_callback_on_writable(c->wsi);
}

/* Whether the client of a stream that reads nothing sent bytes or closed. */
static bool stream_client_spoke(const conn *c)
{
    struct pollfd p = {.fd = lws_get_socket_fd(c->wsi), .events = POLLIN | POLLRDHUP};
    return p.fd >= 0 && poll(&p, 1, 0) > 0;
}

/* One request per connection: the response ends it (see http_request). */
static int http_done(conn *c)
{
    open_unlink(c);
    c->hstate = H_DONE;
    return -1;
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
            if (http_headers(c, status, body ? (c->body_type ? c->body_type : "application/json") : NULL, blen) < 0)
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
    if (stream_writes_direct(c)) {
        stream_write_now(c);
        return 0;
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
            if (c->q.h || c->ended)
                lws_callback_on_writable(c->wsi);
            return 0;
        }
        qmsg *m = q_pop(&c->q);
        if (!m) /* drained; a cancelled request's stream ends without a response */
            return c->ended && c->hstate == H_SSE ? http_done(c) : 0;
        bool last = m->final;
        int w = lws_write(c->wsi, m->buf + LWS_PRE, m->len, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
        free(m);
        if (w < 0)
            return -1;
        c->last_write_ms = net_now_ms(c->n);
        if (last) /* the response ends this stream (A/basic/transports.mdx) */
            return http_done(c);
        if (c->q.h)
            lws_callback_on_writable(c->wsi);
    }
    return 0;
}

void http_expect_body(conn *c, size_t announced, void (*on_body)(conn *c))
{
    c->body_reserved = announced;
    c->on_body = on_body;
    c->hstate = H_BODY;
    c->body_start_ms = net_now_ms(c->n);
    http_open_link(c);
}

static bool route_matches(const http_route *r, const char *uri)
{
    size_t n = strlen(r->path);
    return !strncmp(uri, r->path, n) && (uri[n] == '\0' || (r->subtree && uri[n] == '/'));
}

/* LWS_CALLBACK_HTTP: the request line and headers are in.
 *
 * Pipelining: lws 4.1 re-feeds bytes buffered behind a request to the open
 * transaction without consuming them (a busy loop, or worse, inside lws),
 * and its rx flow control also stops HTTP writes. So a connection carries
 * one request: the response says Connection: close and ends it, and what
 * was pipelined behind is never parsed; HTTP/1.1 clients retry unanswered
 * requests on a new connection (RFC 9112 9.3.2). */
static int http_request(conn *c, const char *uri)
{
    http_reset(c);
    c->kind = CONN_HTTP;
    c->outlet.send = http_send;
    c->outlet.begin_stream = http_begin_stream;
    c->outlet.end = http_end;
    c->hstate = H_JSON;
    c->get = lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) > 0;
    if (c->n->draining) {
        http_refuse(c, 503, WR_RPC_INTERNAL, "server is shutting down");
        return 0;
    }
    for (size_t i = 0; i < http_nroutes; i++)
        if (route_matches(&http_routes[i], uri))
            return http_routes[i].handle(c, uri);
    http_refuse(c, 404, 0, NULL);
    return 0;
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, conn *c, void *in, size_t len)
{
    net *n = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (c->kind == CONN_HTTP)
            return -1; /* a pipelined request while this one is open (see http_request) */
        c->wsi = wsi;
        c->n = n;
        net_conn_count(c);
        return http_request(c, (const char *)in);

    case LWS_CALLBACK_HTTP_BODY:
        if (c->hstate == H_DRAIN)
            c->body_len += len; /* counted for the deadline, discarded */
        if (c->hstate != H_BODY)
            return 0;
        if (c->body_len + len > c->body_reserved)
            return -1; /* more than announced */
        if (c->body_len + len + 1 > c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap : BODY_FIRST_CHUNK;
            while (cap < c->body_len + len + 1)
                cap *= 2;
            if (cap > c->body_reserved + 1)
                cap = c->body_reserved + 1;
            char *nb = realloc(c->body, cap);
            if (!nb)
                return -1;
            c->body = nb;
            c->body_cap = cap;
        }
        memcpy(c->body + c->body_len, in, len);
        c->body_len += len;
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* lws 4.1 calls again, consuming nothing, while pipelined bytes
         * wait behind this body (see http_request): with the JSON answer
         * ready the next poll writes it and closes; an open stream closes
         * now rather than spin until it ends. */
        if (c->body_done)
            return c->hstate == H_JSON ? 0 : -1;
        c->body_done = true;
        open_unlink(c);
        if (c->hstate == H_DRAIN) {
            c->hstate = H_JSON; /* the refusal decided at the headers */
            http_wake(c);
        } else if (c->hstate == H_BODY) {
            c->on_body(c);
        }
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
            net_conn_release(c);
        }
        return 0;

    default:
        return NET_UNHANDLED;
    }
}

/* A body that is late or trickles: 408, and the connection ends. */
static bool body_too_slow(const conn *c, int64_t now)
{
    int64_t elapsed = now - c->body_start_ms;
    return elapsed > c->n->o->body_timeout_ms ||
           (elapsed > BODY_GRACE_MS && (uint64_t)c->body_len * 1000 < (uint64_t)elapsed * BODY_MIN_BYTES_PER_SEC);
}

void http_tick(net *n)
{
    int64_t now = net_now_ms(n);
    for (conn *c = n->open, *next; c; c = next) {
        next = c->open_next;
        if ((c->hstate == H_BODY || c->hstate == H_DRAIN) && body_too_slow(c, now)) {
            wr_log(n->ctx, WR_LOG_WARNING, "server", "http: agent \"%s\": request body too slow (%zu bytes in %lld ms)",
                   c->who, c->body_len, (long long)(now - c->body_start_ms));
            open_unlink(c);
            http_refuse(c, 408, WR_RPC_INVALID_REQUEST, "request timeout: the body arrived too slowly");
        } else if (c->hstate == H_SSE && c->ss && wr_session_closed(c->ss) && !c->ended) {
            /* DELETE ended the session: end its streams too */
            c->ended = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        } else if (c->rx_paused && stream_client_spoke(c)) {
            stream_close(c, "the client sent bytes behind its request, or closed");
        } else if (stream_writes_direct(c) && c->q.h) {
            stream_write_now(c); /* the socket was choked */
        } else if (c->hstate == H_SSE && c->headers_sent && !c->ended && now - c->last_write_ms >= SSE_KEEPALIVE_MS) {
            /* SSE comments keep proxies and clients from timing out a quiet run */
            q_push(&c->q, qmsg_new(": keepalive\n\n", 13, "", 0, "", 0, false));
            c->last_write_ms = now;
            http_wake(c);
        }
    }
}
