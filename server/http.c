/* Streamable HTTP (A/basic/transports.mdx): POST carries one JSON-RPC
 * message and gets a JSON response, or an SSE stream when the request is
 * asynchronous (a run); GET opens the session's standalone SSE stream;
 * DELETE ends the session. Sessions are named by Mcp-Session-Id, bound to
 * the identity of the token that created them.
 *
 * Adding a route: one row in `routes` below (path + handler); the handler
 * checks access itself (its route may use another kind of credential) and
 * answers through http_refuse or a stream. */
#include "server/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_SESSION_IDLE_MS (60LL * 60 * 1000)
#define SSE_KEEPALIVE_MS     15000

struct hsess {
    struct hsess *next;
    char id[WR_ID_MAX];
    char identity[256];
    wr_session *ss;
    int64_t last_used_ms;
};

/* The HTTP status of a reply, from what the core says about the message. */
static int fault_status(int fault)
{
    switch (fault) {
    case WR_RPC_FAULT_BAD_MESSAGE:
        return 400;
    case WR_RPC_FAULT_TOO_LARGE:
        return 413;
    case WR_RPC_FAULT_INTERNAL:
        return 500;
    default:
        return 200;
    }
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
    c->close_after = c->headers_sent = c->ended = c->add_session_header = c->preflight = false;
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
    c->last_write_ms = net_now_ms(c->n);
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
    if (status >= 400)
        net_count_refusal(c->n, wr_metrics_http_cause(status));
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
            h->last_used_ms = net_now_ms(n);
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
        c->status = fault_status(res.fault);
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
        c->last_write_ms = net_now_ms(c->n);
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

/* /mcp: the MCP endpoint (POST, GET, DELETE, OPTIONS). */
static int route_mcp(conn *c, const char *uri)
{
    (void)uri;
    net *n = c->n;
    const char *who = NULL, *why = NULL;
    c->preflight = lws_hdr_total_length(c->wsi, WSI_TOKEN_OPTIONS_URI) > 0;
    int st = net_check_access(n, c->wsi, WR_TOKEN_AGENT, false, !c->preflight, c->origin, &who, &why);
    if (st) {
        wr_log(n->ctx, WR_LOG_WARNING, "server", "http: refused (%d): %s", st, why);
        http_refuse(c, st, WR_RPC_INVALID_REQUEST, why);
        return 0;
    }
    if (c->preflight) {
        http_refuse(c, c->origin[0] ? 204 : 400, 0, NULL);
        return 0;
    }
    snprintf(c->who, sizeof c->who, "%s", who);
    const char *human = wr_tokens_elicitation_human(n->tokens, who);
    snprintf(c->human, sizeof c->human, "%s", human ? human : "");
    bool post = lws_hdr_total_length(c->wsi, WSI_TOKEN_POST_URI) > 0;
    bool del = lws_hdr_total_length(c->wsi, WSI_TOKEN_DELETE_URI) > 0;
    bool get = lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) > 0;
    char sid[WR_ID_MAX + 8], ver[40], accept[300], ctype[200];
    bool have_sid = net_custom_hdr(c->wsi, "mcp-session-id:", sid, sizeof sid);
    hsess *h = NULL;
    if (have_sid) {
        h = hsess_find(n, sid);
        /* a session id never authenticates: it must belong to this identity */
        if (!h || strcmp(h->identity, who)) {
            http_refuse(c, 404, WR_RPC_INVALID_REQUEST, "unknown or terminated MCP session");
            return 0;
        }
        c->ss = h->ss;
        wr_session_ref(c->ss);
        h->last_used_ms = net_now_ms(n);
        if (net_custom_hdr(c->wsi, "mcp-protocol-version:", ver, sizeof ver) && !wr_mcp_version_known(ver)) {
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
        net_hdr(c->wsi, WSI_TOKEN_HTTP_ACCEPT, accept, sizeof accept);
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
    net_hdr(c->wsi, WSI_TOKEN_HTTP_ACCEPT, accept, sizeof accept);
    net_hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
    size_t cap = wr_server_get_config(n->srv)->max_message_bytes;
    char clen_s[32];
    long long clen = net_hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen_s, sizeof clen_s) ? atoll(clen_s) : -1;
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

/* /metrics: the Prometheus text format, for a metrics token (or, with
 * --metrics-auth loopback, any loopback peer). */
static int route_metrics(conn *c, const char *uri)
{
    (void)uri;
    net *n = c->n;
    if (!n->o->metrics) {
        http_refuse(c, 404, 0, NULL);
        return 0;
    }
    const char *who = NULL, *why = NULL;
    char peer[64] = "";
    lws_get_peer_simple(c->wsi, peer, sizeof peer);
    bool open_to_peer = n->o->metrics_loopback && wr_host_is_loopback(peer);
    int st = net_check_access(n, c->wsi, WR_TOKEN_METRICS, false, !open_to_peer, NULL, &who, &why);
    if (st) {
        wr_log(n->ctx, WR_LOG_WARNING, "server", "metrics: refused (%d): %s", st, why);
        http_refuse(c, st, WR_RPC_INVALID_REQUEST, why);
        return 0;
    }
    if (lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) <= 0) {
        http_refuse(c, 405, 0, NULL);
        return 0;
    }
    net_update_gauges(n);
    size_t len = 0;
    char *text = wr_metrics_render(n->o->metrics, &len);
    if (!text) {
        http_refuse(c, 500, WR_RPC_INTERNAL, "out of memory");
        return 0;
    }
    c->err_body = text;
    c->body_type = "text/plain; version=0.0.4; charset=utf-8";
    c->status = 200;
    lws_callback_on_writable(c->wsi);
    return 0;
}

/* ---- /console: the approval console (console.c, docs/approvals.md) ---------- */

static void console_send(conn *c, wr_console_reply *r)
{
    free(c->err_body);
    c->err_body = malloc(r->len + 1);
    c->status = c->err_body ? r->status : 500;
    c->body_type = r->content_type;
    if (c->err_body) {
        memcpy(c->err_body, r->body ? r->body : r->static_body, r->len);
        c->err_body[r->len] = '\0';
    }
    wr_console_reply_clear(r);
    c->hstate = H_JSON;
    lws_callback_on_writable(c->wsi);
}

static void console_refuse(conn *c, int status, const char *why)
{
    wr_console_reply r;
    wr_console_error(&r, status, why);
    if (!c->body)
        c->close_after = true; /* refused before the body was read */
    console_send(c, &r);
}

static void console_answer(conn *c, const char *method)
{
    wr_console_reply r;
    wr_console_handle(c->n->console, method, c->console_uri, c->who, c->body, c->body_len, &r);
    console_send(c, &r);
}

/* The same Host/Origin checks as /mcp; the API takes approver tokens only
 * (an agent token gets 403, as an approver's does on /mcp and /ws). */
static int route_console(conn *c, const char *uri)
{
    net *n = c->n;
    c->console = true;
    const char *who = NULL, *why = NULL;
    int st = !n->console ? 404
             : strlen(uri) >= sizeof c->console_uri
                 ? 404
                 : net_check_access(n, c->wsi, WR_TOKEN_APPROVER, false, wr_console_is_api(uri), NULL, &who, &why);
    if (st) {
        wr_log(n->ctx, WR_LOG_WARNING, "server", "console: refused (%d): %s", st, why ? why : "not found");
        console_refuse(c, st, why ? why : "not found");
        return 0;
    }
    snprintf(c->console_uri, sizeof c->console_uri, "%s", uri);
    snprintf(c->who, sizeof c->who, "%s", who ? who : "");
    bool get = lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) > 0;
    bool post = lws_hdr_total_length(c->wsi, WSI_TOKEN_POST_URI) > 0;
    if (get && !strcmp(uri, WR_CONSOLE_EVENTS)) {
        memset(&c->console_seen, 0, sizeof c->console_seen);
        http_begin_stream(&c->outlet);
        return 0;
    }
    if (get) {
        console_answer(c, "GET");
        return 0;
    }
    if (!post) {
        console_refuse(c, 405, "the console takes GET and POST only");
        return 0;
    }
    char clen_s[32], ctype[200];
    long long clen = net_hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen_s, sizeof clen_s) ? atoll(clen_s) : -1;
    net_hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
    if (strncasecmp(ctype, "application/json", 16) != 0)
        console_refuse(c, 415, "Content-Type must be application/json");
    else if (clen < 0)
        console_refuse(c, 411, "send the body with Content-Length");
    else if (clen > (long long)WR_CONSOLE_MAX_BODY)
        console_refuse(c, 413, "payload too large");
    else if (clen == 0)
        console_answer(c, "POST");
    else if (!(c->body = malloc((size_t)clen + 1)))
        console_refuse(c, 500, "out of memory");
    else
        c->hstate = H_BODY;
    return 0;
}

void http_console_tick(net *n)
{
    for (conn *c = n->sse; c; c = c->sse_next) {
        if (!c->console || c->ended)
            continue;
        char *ev = wr_console_next_event(n->console, &c->console_seen);
        if (ev) {
            q_push(&c->q, qmsg_new(ev, strlen(ev), "", 0, "", 0, false));
            c->last_write_ms = net_now_ms(n);
            lws_callback_on_writable(c->wsi);
            free(ev);
        }
    }
}

typedef struct route {
    const char *path;
    bool subtree;                            /* also every path below it ("/console/...") */
    int (*handle)(conn *c, const char *uri); /* LWS_CALLBACK_HTTP for this path: returns the callback's result */
} route;

/* Every HTTP path the server answers; anything else is 404. */
static const route routes[] = {
    {"/mcp", false, route_mcp},
    {"/metrics", false, route_metrics},
    {WR_CONSOLE_PREFIX, true, route_console},
};

static bool route_matches(const route *r, const char *uri)
{
    size_t n = strlen(r->path);
    return !strncmp(uri, r->path, n) && (uri[n] == '\0' || (r->subtree && uri[n] == '/'));
}

/* LWS_CALLBACK_HTTP: the request line and headers are in. */
static int http_request(conn *c, const char *uri)
{
    http_reset(c);
    c->kind = CONN_HTTP;
    c->outlet.send = http_send;
    c->outlet.begin_stream = http_begin_stream;
    c->hstate = H_JSON;
    if (c->n->draining) {
        http_refuse(c, 503, WR_RPC_INTERNAL, "server is shutting down");
        return 0;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (route_matches(&routes[i], uri))
            return routes[i].handle(c, uri);
    http_refuse(c, 404, 0, NULL);
    return 0;
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, conn *c, void *in, size_t len)
{
    net *n = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        c->wsi = wsi;
        c->n = n;
        net_conn_count(c);
        return http_request(c, (const char *)in);

    case LWS_CALLBACK_HTTP_BODY:
        if (c->hstate == H_BODY && c->body) {
            char clen_s[32];
            size_t clen =
                net_hdr(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen_s, sizeof clen_s) ? (size_t)atoll(clen_s) : 0;
            if (c->body_len + len > clen)
                return -1; /* more than announced */
            memcpy(c->body + c->body_len, in, len);
            c->body_len += len;
        }
        return 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c->hstate == H_BODY && c->console)
            console_answer(c, "POST");
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
            net_conn_release(c);
        }
        return 0;

    default:
        return NET_UNHANDLED;
    }
}

void http_tick(net *n)
{
    /* idle HTTP sessions without runs expire */
    int64_t now = net_now_ms(n);
    for (hsess *h = n->hsessions, *next; h; h = next) {
        next = h->next;
        if (now - h->last_used_ms > HTTP_SESSION_IDLE_MS && !wr_session_busy(h->ss) &&
            !wr_session_default_outlet(h->ss))
            hsess_drop(n, h);
    }
    /* SSE comments keep proxies and clients from timing out a quiet run */
    for (conn *c = n->sse; c; c = c->sse_next)
        if (c->ss && wr_session_closed(c->ss) && !c->ended) {
            /* DELETE ended the session: end its streams too */
            c->ended = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        } else if (c->headers_sent && !c->ended && now - c->last_write_ms >= SSE_KEEPALIVE_MS) {
            q_push(&c->q, qmsg_new(": keepalive\n\n", 13, "", 0, "", 0, false));
            c->last_write_ms = now;
            lws_callback_on_writable(c->wsi);
        }
}

void http_drop_all(net *n)
{
    while (n->hsessions)
        hsess_drop(n, n->hsessions);
}
