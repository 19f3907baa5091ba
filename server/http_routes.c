/* The HTTP routes: /mcp (Streamable HTTP, A/basic/transports.mdx), /metrics
 * and the approval console. http.c reads requests and writes responses;
 * a route decides what a request means.
 *
 * Adding a route: a handler `int route_x(conn *c, const char *uri)` and a
 * row in http_routes[] at the end. The handler runs at LWS_CALLBACK_HTTP
 * with the headers in; it checks access itself (net_check_access with the
 * token kind it accepts) and answers with http_refuse, a stream
 * (http_begin_stream), or by reading a body: http_expect_body with the
 * function that handles it once it is in. */
#include "server/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static void mcp_body(conn *c)
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
            const char *why = NULL;
            hsess *h = hsess_create(n, ss, &why);
            if (!h) {
                wr_log(n->ctx, WR_LOG_WARNING, "server", "http: agent \"%s\": %s", c->who, why);
                wr_session_close(ss, true);
                c->ss = NULL;
                q_free(&c->q);
                c->ended = false;
                http_refuse(c, 503, WR_RPC_INTERNAL, why);
                return;
            }
            wr_session_ref(ss); /* the hsess owns the first reference, this conn the second */
            wr_log(n->ctx, WR_LOG_INFO, "server", "http: new MCP session for agent \"%s\"", c->who);
            snprintf(c->sid, sizeof c->sid, "%s", hsess_id(h));
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
    http_wake(c);
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
    if (!(c->cl = net_client_acquire_conn(n, who, &why))) {
        http_refuse(c, 429, WR_RPC_INVALID_REQUEST, why);
        return 0;
    }
    const char *human = wr_tokens_elicitation_human(n->tokens, who);
    snprintf(c->human, sizeof c->human, "%s", human ? human : "");
    bool post = lws_hdr_total_length(c->wsi, WSI_TOKEN_POST_URI) > 0;
    bool del = lws_hdr_total_length(c->wsi, WSI_TOKEN_DELETE_URI) > 0;
    bool get = lws_hdr_total_length(c->wsi, WSI_TOKEN_GET_URI) > 0;
    char sid[WR_ID_MAX + 8], ver[40], accept[300], ctype[200];
    bool have_sid = net_custom_hdr(c->wsi, "mcp-session-id:", sid, sizeof sid);
    hsess *h = NULL;
    if (have_sid) {
        h = hsess_find(n, sid, who);
        if (!h) {
            http_refuse(c, 404, WR_RPC_INVALID_REQUEST, "unknown or terminated MCP session");
            return 0;
        }
        c->ss = hsess_session(h);
        wr_session_ref(c->ss);
        hsess_touch(n, h);
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
    const char *why_not = NULL;
    if (!accept_lists(accept, "application/json") || !accept_lists(accept, "text/event-stream")) {
        http_refuse_body(c, clen, 406, WR_RPC_INVALID_REQUEST,
                         "not acceptable: Accept must list application/json and text/event-stream");
    } else if (strncasecmp(ctype, "application/json", 16) != 0 ||
               (ctype[16] != '\0' && ctype[16] != ';' && ctype[16] != ' ')) {
        http_refuse_body(c, clen, 415, WR_RPC_INVALID_REQUEST,
                         "unsupported media type: Content-Type must be application/json");
    } else if (clen > (long long)cap) {
        http_refuse_body(c, clen, 413, WR_RPC_INVALID_REQUEST, "payload too large");
    } else if (clen < 0) {
        /* lws 4.1 does not decode chunked request bodies */
        http_refuse(c, 411, WR_RPC_INVALID_REQUEST, "length required: send the body with Content-Length");
    } else if (clen == 0) {
        http_refuse(c, 400, WR_RPC_PARSE_ERROR, "parse error: empty body");
    } else if (!net_body_reserve(n, c->cl, (size_t)clen, &why_not)) {
        wr_log(n->ctx, WR_LOG_WARNING, "server", "http: agent \"%s\": %s", who, why_not);
        http_refuse(c, 429, WR_RPC_INVALID_REQUEST, why_not);
    } else {
        http_expect_body(c, (size_t)clen, mcp_body);
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
    http_wake(c);
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
    http_wake(c);
}

static void console_refuse(conn *c, int status, const char *why)
{
    wr_console_reply r;
    wr_console_error(&r, status, why);
    console_send(c, &r);
}

static void console_answer(conn *c, const char *method)
{
    wr_console_reply r;
    wr_console_handle(c->n->console, method, c->console_uri, c->who, c->body, c->body_len, &r);
    console_send(c, &r);
}

static void console_post(conn *c)
{
    console_answer(c, "POST");
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
    else {
        /* small and bounded: not held against a share (approvers have none) */
        http_expect_body(c, (size_t)clen, console_post);
    }
    return 0;
}

void http_console_tick(net *n)
{
    for (conn *c = n->open, *next; c; c = next) {
        next = c->open_next; /* writing may close (and unlink) a stream */
        if (!c->console || c->hstate != H_SSE || c->ended)
            continue;
        char *ev = wr_console_next_event(n->console, &c->console_seen);
        if (ev) {
            q_push(&c->q, qmsg_new(ev, strlen(ev), "", 0, "", 0, false));
            c->last_write_ms = net_now_ms(n);
            http_wake(c);
            free(ev);
        }
    }
}

/* Every HTTP path the server answers; anything else is 404. Adding a
 * route: a handler above and a row here. */
const http_route http_routes[] = {
    {"/mcp", false, route_mcp},
    {"/metrics", false, route_metrics},
    {WR_CONSOLE_PREFIX, true, route_console},
};
const size_t http_nroutes = sizeof http_routes / sizeof http_routes[0];
