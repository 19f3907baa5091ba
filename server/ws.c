/* The WebSocket transport at /ws (subprotocol "mcp"): one MCP session per
 * connection, one JSON-RPC message per text message. */
#include "server/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, conn *c, void *in, size_t len)
{
    net *n = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* WebSocket handshake: path, Origin/Host, token, capacity. */
        const char *who = NULL, *why = "not found";
        char uri[64];
        int st = 0;
        if (strcmp((const char *)in, "websocket")) {
            st = 400;
            why = "only the websocket upgrade is supported";
        } else if (!net_hdr(wsi, WSI_TOKEN_GET_URI, uri, sizeof uri) || strcmp(uri, "/ws"))
            st = 404;
        else if (n->draining || n->conns >= n->o->max_connections) {
            st = 503;
            why = "too many connections";
        } else if (!(st = net_check_access(n, wsi, WR_TOKEN_AGENT, true, true, NULL, &who, &why)) &&
                   !net_client_has_room(n, who)) {
            st = 429;
            why = "too many connections for this client";
        }
        if (st) {
            wr_log(n->ctx, WR_LOG_WARNING, "server", "websocket: refused (%d): %s", st, why);
            net_count_refusal(n, wr_metrics_http_cause(st));
            lws_return_http_status(wsi, (unsigned)st, why);
            return 1;
        }
        return 0;
    }

    case LWS_CALLBACK_ESTABLISHED: {
        /* The per-connection data is fresh here (not yet at CONFIRM_UPGRADE);
         * the headers are still attached, so the identity is read again. */
        const char *who = NULL, *why = NULL;
        if (net_check_access(n, wsi, WR_TOKEN_AGENT, true, true, NULL, &who, &why) != 0)
            return -1;
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        c->n = n;
        c->kind = CONN_WS;
        c->outlet.send = ws_send;
        c->outlet.may_reorder = true;
        if (!(c->cl = net_client_acquire_conn(n, who, &why)))
            return -1;
        c->ss = wr_session_new(n->srv, who, &c->outlet);
        if (!c->ss)
            return -1;
        wr_session_set_elicitation_human(c->ss, wr_tokens_elicitation_human(n->tokens, who));
        wr_log(n->ctx, WR_LOG_DEBUG, "server", "websocket: connection for agent \"%s\"", who);
        n->nws++;
        net_conn_count(c);
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
            n->nws--;
        }
        if (c->cl)
            net_client_release_conn(n, c->cl);
        c->cl = NULL;
        q_free(&c->q);
        free(c->rx);
        c->rx = NULL;
        net_conn_release(c);
        return 0;

    default:
        return NET_UNHANDLED;
    }
}
