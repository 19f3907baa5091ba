/* The WebSocket transport at /ws (subprotocol "mcp"): one MCP session per
 * connection, one JSON-RPC message per text message.
 *
 * lws does the handshake and writes our frames; ws.c reads them. RFC 6455
 * 5.1 says a server MUST close the connection on an unmasked client frame,
 * and libwebsockets 4.1 (Debian 12's) reads the mask bit and ignores it,
 * showing neither the bit nor the frame header to the application (v5.0.0
 * refuses). Nothing outside the library can see the frames lws reads (under
 * TLS only lws has the plaintext), so once the connection is established
 * lws reads nothing more (lws_rx_flow_control) and a duplicate of the
 * socket, watched in the same loop, feeds the small parser below, through
 * the connection's own TLS session when there is one. Frames a client sends
 * before the handshake's answer (RFC 6455 4.1: it must wait) stay unread. */
#include "server/net.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* RFC 6455 5.2 */
#define WS_FIN         0x80
#define WS_RSV         0x70
#define WS_OPCODE      0x0f
#define WS_MASKED      0x80
#define WS_LEN7        0x7f
#define WS_LEN16       126
#define WS_LEN64       127
#define WS_CONTROL     0x08 /* opcodes from 8 on are control frames */
#define WS_MAX_CONTROL 125
#define WS_KEY_BYTES   4
#define WS_MAX_HEADER  (2 + 8 + WS_KEY_BYTES)
enum {
    OP_CONT = 0,
    OP_TEXT = 1,
    OP_BINARY = 2,
    OP_CLOSE = 8,
    OP_PING = 9,
    OP_PONG = 10
};
/* bytes read from the socket at a time */
#define WS_READ_CHUNK (16u * 1024u)

typedef struct ws_rx {
    raw r;             /* first: loop.c hands the watcher's tag back as raw * */
    conn *c;           /* NULL once the connection is gone */
    struct lws *watch; /* the duplicate socket, a raw file in the loop */
    bool paused;       /* nothing is read: its answers wait to be sent, or it is closing */
    bool in_payload;   /* else collecting a header */
    unsigned char hdr[WS_MAX_HEADER];
    size_t hlen;
    uint64_t left; /* payload bytes left in the current frame */
    unsigned char key[WS_KEY_BYTES];
    size_t kpos;
    int op;
    bool fin;
    bool in_message; /* a fragmented text message is open */
    unsigned char ctl[WS_MAX_CONTROL];
    size_t ctl_len;
    unsigned char *stash; /* read, not yet parsed (reading paused mid-chunk) */
    size_t stash_len;
    bool pong_due;
    unsigned char pong[LWS_PRE + WS_MAX_CONTROL];
    size_t pong_len;
    int close_code; /* the connection ends with this status */
    const char *close_why;
} ws_rx;

/* ======================================================================
 * output
 * ====================================================================== */

static void ws_pause(conn *c, bool paused)
{
    ws_rx *x = c->wrx;
    if (!x || x->paused == paused)
        return;
    x->paused = paused;
    lws_rx_flow_control(x->watch, paused ? 0 : 1);
}

static void ws_send(wr_outlet *o, const char *json, size_t len, bool final)
{
    conn *c = (conn *)o;
    (void) final;
    q_push(&c->q, qmsg_new(json, len, "", 0, "", 0, false));
    if (c->q.bytes > WR_OUT_HIGH)
        ws_pause(c, true);
    lws_callback_on_writable(c->wsi);
}

/* Ends the connection with status and why (a close frame, then TCP). */
static void ws_fail(ws_rx *x, int status, const char *why)
{
    conn *c = x->c;
    if (x->close_code)
        return;
    if (status != LWS_CLOSE_STATUS_NORMAL)
        wr_log(c->n->ctx, WR_LOG_NOTICE, "server", "websocket: closing (%d): %s", status, why);
    x->close_code = status;
    x->close_why = why;
    ws_pause(c, true);
    lws_callback_on_writable(c->wsi);
}

/* ======================================================================
 * messages
 * ====================================================================== */

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

/* A piece of a text message; past the size cap the rest is dropped and
 * the message answered with an error. */
static bool ws_append(conn *c, const unsigned char *in, size_t len)
{
    size_t cap = wr_server_get_config(c->n->srv)->max_message_bytes;
    if (c->rx_overflow)
        return true;
    if (c->rx_len + len > cap) {
        c->rx_overflow = true;
        free(c->rx);
        c->rx = NULL;
        c->rx_len = 0;
        return true;
    }
    char *nb = realloc(c->rx, c->rx_len + len + 1);
    if (!nb)
        return false;
    c->rx = nb;
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    return true;
}

/* ======================================================================
 * frames (RFC 6455 5.2 - 5.5)
 * ====================================================================== */

static void frame_done(ws_rx *x)
{
    conn *c = x->c;
    x->in_payload = false;
    switch (x->op) {
    case OP_TEXT:
    case OP_CONT:
        if (x->fin) {
            x->in_message = false;
            ws_message(c);
        }
        break;
    case OP_PING: /* answer the latest one (5.5.3) */
        memcpy(x->pong + LWS_PRE, x->ctl, x->ctl_len);
        x->pong_len = x->ctl_len;
        x->pong_due = true;
        lws_callback_on_writable(c->wsi);
        break;
    case OP_CLOSE:
        ws_fail(x, LWS_CLOSE_STATUS_NORMAL, "");
        break;
    default: /* OP_PONG */
        break;
    }
}

/* What is wrong with a frame's first two bytes, or NULL. */
static const char *first_bytes_refused(const ws_rx *x, int *status)
{
    unsigned char b0 = x->hdr[0], b1 = x->hdr[1];
    *status = LWS_CLOSE_STATUS_PROTOCOL_ERR;
    if (!(b1 & WS_MASKED))
        return "unmasked frame: a client masks every frame (RFC 6455 5.1)";
    if (b0 & WS_RSV)
        return "reserved bits set: no extension was negotiated";
    if (x->op & WS_CONTROL) {
        if (x->op > OP_PONG)
            return "unknown opcode";
        if (!x->fin)
            return "fragmented control frame";
        if ((b1 & WS_LEN7) > WS_MAX_CONTROL)
            return "control frame over 125 bytes";
        return NULL;
    }
    if (x->op == OP_BINARY) {
        *status = LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE;
        return "binary frames are not accepted: send JSON-RPC as text";
    }
    if (x->op > OP_BINARY)
        return "unknown opcode";
    if (x->op == OP_CONT && !x->in_message)
        return "continuation frame outside a message";
    if (x->op == OP_TEXT && x->in_message)
        return "new message inside a fragmented one";
    return NULL;
}

/* The extended payload length's bytes, from a frame's second byte. */
static size_t ext_len_bytes(unsigned char b1)
{
    size_t l7 = b1 & WS_LEN7;
    return l7 == WS_LEN16 ? 2 : l7 == WS_LEN64 ? 8 : 0;
}

/* One header byte; false once the connection is being failed. */
static bool header_byte(ws_rx *x, unsigned char b)
{
    x->hdr[x->hlen++] = b;
    if (x->hlen == 2) {
        x->fin = x->hdr[0] & WS_FIN;
        x->op = x->hdr[0] & WS_OPCODE;
        int status;
        const char *why = first_bytes_refused(x, &status);
        if (why) {
            ws_fail(x, status, why);
            return false;
        }
    }
    size_t ext = x->hlen < 2 ? 0 : ext_len_bytes(x->hdr[1]);
    if (x->hlen < 2 + ext + WS_KEY_BYTES)
        return true;
    uint64_t len = ext ? 0 : x->hdr[1] & WS_LEN7;
    for (size_t i = 0; i < ext; i++)
        len = len << 8 | x->hdr[2 + i];
    if (len >> 63) {
        ws_fail(x, LWS_CLOSE_STATUS_PROTOCOL_ERR, "frame length over 2^63");
        return false;
    }
    memcpy(x->key, x->hdr + 2 + ext, WS_KEY_BYTES);
    x->kpos = 0;
    x->hlen = 0;
    x->left = len;
    x->ctl_len = 0;
    x->in_payload = true;
    if (x->op == OP_TEXT)
        x->in_message = true;
    if (!len)
        frame_done(x);
    return true;
}

/* Parses p[0..n) (unmasking it in place); returns the bytes used: fewer
 * when reading paused after a message, or the connection is being failed. */
static size_t ws_feed(ws_rx *x, unsigned char *p, size_t n)
{
    conn *c = x->c;
    size_t used = 0;
    while (used < n && !x->paused) {
        if (!x->in_payload) {
            if (!header_byte(x, p[used++]))
                break;
            continue;
        }
        size_t take = n - used < x->left ? n - used : (size_t)x->left;
        unsigned char *d = p + used;
        for (size_t i = 0; i < take; i++)
            d[i] ^= x->key[x->kpos++ & 3];
        used += take;
        x->left -= take;
        if (x->op & WS_CONTROL) {
            memcpy(x->ctl + x->ctl_len, d, take); /* at most 125 bytes: checked in the header */
            x->ctl_len += take;
        } else if (!ws_append(c, d, take)) {
            ws_fail(x, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
            break;
        }
        if (!x->left)
            frame_done(x);
    }
    return used;
}

/* Parses p[0..n) and keeps what reading left unparsed (it paused
 * mid-chunk) for later; false when that cannot be kept. */
static bool ws_feed_keep(ws_rx *x, unsigned char *p, size_t n)
{
    size_t used = ws_feed(x, p, n);
    if (used == n || x->close_code)
        return true;
    unsigned char *s = malloc(n - used);
    if (!s)
        return false;
    memcpy(s, p + used, n - used);
    x->stash = s;
    x->stash_len = n - used;
    return true;
}

/* ======================================================================
 * reading
 * ====================================================================== */

enum {
    READ_GOT,
    READ_AGAIN,
    READ_END
};

/* Reads from the connection's socket, or from its TLS session. */
static int ws_read(ws_rx *x, unsigned char *buf, size_t cap, size_t *got)
{
    struct lws *wsi = x->c->wsi;
    if (lws_is_ssl(wsi)) {
        SSL *ssl = lws_get_ssl(wsi);
        ERR_clear_error();
        int n = SSL_read(ssl, buf, (int)cap);
        if (n > 0) {
            *got = (size_t)n;
            return READ_GOT;
        }
        int e = SSL_get_error(ssl, n);
        ERR_clear_error();
        return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? READ_AGAIN : READ_END;
    }
    ssize_t n = recv(lws_get_socket_fd(wsi), buf, cap, MSG_DONTWAIT);
    if (n > 0) {
        *got = (size_t)n;
        return READ_GOT;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? READ_AGAIN : READ_END;
}

/* Parses what was stashed, then what the socket (or the TLS session's
 * buffer) holds, until it is empty or reading pauses. */
static int ws_pump(ws_rx *x)
{
    if (x->stash) {
        unsigned char *s = x->stash;
        x->stash = NULL;
        bool kept = ws_feed_keep(x, s, x->stash_len);
        free(s);
        if (!kept)
            return -1;
    }
    unsigned char buf[WS_READ_CHUNK];
    while (!x->paused) {
        size_t got = 0;
        int r = ws_read(x, buf, sizeof buf, &got);
        if (r == READ_END)
            return -1;
        if (r == READ_AGAIN)
            return 0;
        if (!ws_feed_keep(x, buf, got))
            return -1;
        /* plain sockets: one read per wakeup, like lws; TLS: drain what
         * the session already decrypted (the socket will not wake us) */
        if (!lws_is_ssl(x->c->wsi) || SSL_pending(lws_get_ssl(x->c->wsi)) <= 0)
            return 0;
    }
    return 0;
}

int ws_on_readable(raw *r)
{
    ws_rx *x = (ws_rx *)r;
    if (!x->c)
        return -1;
    if (ws_pump(x) < 0) {
        /* the peer closed, or the connection broke: end it */
        lws_set_timeout(x->c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        return -1;
    }
    return 0;
}

void ws_on_watch_closed(raw *r)
{
    ws_rx *x = (ws_rx *)r;
    if (x->c) {
        /* nobody reads the connection any more */
        x->c->wrx = NULL;
        lws_set_timeout(x->c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
    free(x->stash);
    free(x);
}

/* From the established connection on, ws.c reads it (see the top). */
static bool ws_rx_start(conn *c)
{
    int fd = fcntl(lws_get_socket_fd(c->wsi), F_DUPFD_CLOEXEC, 0);
    ws_rx *x = fd >= 0 ? calloc(1, sizeof *x) : NULL;
    if (!x) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    x->r = (raw){RAW_WS, c->n};
    x->c = c;
    /* here, before lws goes on parsing what came with the handshake */
    lws_rx_flow_control(c->wsi, 0);
    if (!(x->watch = net_adopt_fd(c->n, fd, &x->r))) {
        close(fd);
        free(x);
        return false;
    }
    c->wrx = x;
    return true;
}

static void ws_rx_stop(conn *c)
{
    ws_rx *x = c->wrx;
    if (!x)
        return;
    x->c = NULL;
    c->wrx = NULL;
    /* its RAW_CLOSE_FILE frees it */
    lws_set_timeout(x->watch, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* ======================================================================
 * the "mcp" protocol's WebSocket cases
 * ====================================================================== */

static int ws_writeable(struct lws *wsi, conn *c)
{
    ws_rx *x = c->wrx;
    if (x && x->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)x->close_code, (unsigned char *)x->close_why,
                         strlen(x->close_why));
        return -1;
    }
    if (x && x->pong_due) {
        x->pong_due = false;
        if (lws_write(wsi, x->pong + LWS_PRE, x->pong_len, LWS_WRITE_PONG) < 0)
            return -1;
        if (c->q.h)
            lws_callback_on_writable(wsi);
        return 0;
    }
    qmsg *m = q_pop(&c->q);
    if (!m)
        return 0;
    int w = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    free(m);
    if (w < 0)
        return -1;
    if (c->q.h)
        lws_callback_on_writable(wsi);
    if (x && x->paused && !x->close_code && c->q.bytes < WR_OUT_HIGH / 2) {
        ws_pause(c, false);
        if (ws_pump(x) < 0)
            return -1;
    }
    return 0;
}

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, conn *c, void *in, size_t len)
{
    net *n = lws_context_user(lws_get_context(wsi));
    (void)len;
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
        c->outlet.quick_on_pool = true;
        if (lws_get_network_wsi(wsi) != wsi) {
            /* a stream of an HTTP/2 connection has no socket of its own to read */
            wr_log(n->ctx, WR_LOG_WARNING, "server", "websocket: refused: WebSocket over HTTP/2 is not supported");
            return -1;
        }
        if (!(c->cl = net_client_acquire_conn(n, who, &why)))
            return -1;
        c->ss = wr_session_new(n->srv, who, &c->outlet);
        if (!c->ss)
            return -1;
        wr_session_set_elicitation_human(c->ss, wr_tokens_elicitation_human(n->tokens, who));
        n->nws++;
        net_conn_count(c);
        if (!ws_rx_start(c))
            return -1;
        wr_log(n->ctx, WR_LOG_DEBUG, "server", "websocket: connection for agent \"%s\"", who);
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(wsi, c);

    case LWS_CALLBACK_CLOSED:
        ws_rx_stop(c);
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
