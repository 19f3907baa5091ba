/* Pieces every network transport uses: ordered outbound queues and the
 * access check of a request (Host, Origin, bearer token). */
#include "server/net.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

qmsg *qmsg_new(const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen, bool final)
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

void q_push(mq *q, qmsg *m)
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

qmsg *q_pop(mq *q)
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

void q_free(mq *q)
{
    while (q->h)
        free(q_pop(q));
}

/* ======================================================================
 * network: shared helpers
 * ====================================================================== */

int64_t net_now_ms(const net *n)
{
    return wr_now_ms(n->ctx);
}

bool net_hdr(struct lws *wsi, enum lws_token_indexes t, char *buf, int len)
{
    buf[0] = '\0';
    int l = lws_hdr_total_length(wsi, t);
    if (l <= 0 || l >= len)
        return false;
    return lws_hdr_copy(wsi, buf, len, t) >= 0;
}

bool net_custom_hdr(struct lws *wsi, const char *name, char *buf, int len)
{
    buf[0] = '\0';
    int nl = (int)strlen(name);
    int l = lws_hdr_custom_length(wsi, name, nl);
    if (l <= 0 || l >= len)
        return false;
    return lws_hdr_custom_copy(wsi, buf, len, name, nl) >= 0;
}

void net_count_refusal(net *n, const char *cause)
{
    wr_metrics_add(n->o->metrics, WR_M_REFUSED, (const char *const[]){cause}, 1);
}

void net_update_gauges(net *n)
{
    wr_metrics *m = n->o->metrics;
    wr_metrics_set(m, WR_M_SESSIONS, (const char *const[]){"stdio"}, n->stdio_ss ? 1 : 0);
    wr_metrics_set(m, WR_M_SESSIONS, (const char *const[]){"websocket"}, n->nws);
    wr_metrics_set(m, WR_M_SESSIONS, (const char *const[]){"http"}, n->nhsessions);
    wr_metrics_set(m, WR_M_RUNNING, NULL, wr_server_active_runs(n->srv));
    long pending = 0;
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_count_pending_approvals(wr_server_gate(n->srv), &pending, &err) == WR_OK)
        wr_metrics_set(m, WR_M_PENDING_APPROVALS, NULL, (double)pending);
    int64_t size = 0;
    if (wr_gate_checkpoint_size(wr_server_gate(n->srv), &size, &err) == WR_OK)
        wr_metrics_set(m, WR_M_CHECKPOINT_SIZE, NULL, (double)size);
}

int net_check_access(net *n, struct lws *wsi, wr_token_kind kind, bool allow_query_token, bool need_token,
                     char *origin_out, const char **identity, const char **why)
{
    char host[300], origin[300] = "";
    if (!net_hdr(wsi, WSI_TOKEN_HOST, host, sizeof host) ||
        !wr_host_allowed(host, n->port, n->o->listen_host, n->o->allowed_hosts)) {
        *why = "Host header not allowed";
        return 403;
    }
    /* browsers send Origin; an oversized one is refused like a bad one */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0 &&
        (!net_hdr(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin) ||
         !wr_origin_allowed(origin, n->port, n->o->listen_host, n->o->allowed_origins))) {
        *why = "Origin not allowed";
        return 403;
    }
    if (origin_out)
        snprintf(origin_out, 300, "%s", origin);
    if (!need_token)
        return 0;
    if (n->o->auth_none) {
        *identity = n->o->agent_id;
        return 0;
    }
    char auth[600], q[600] = "";
    const char *tok = NULL;
    size_t toklen = 0;
    if (net_hdr(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth) && !strncasecmp(auth, "Bearer ", 7)) {
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
    const char *who = tok && toklen ? wr_tokens_identity(n->tokens, tok, toklen, kind) : NULL;
    bool other_kind = !who && tok && toklen && wr_tokens_known(n->tokens, tok, toklen);
    explicit_bzero(auth, sizeof auth);
    explicit_bzero(q, sizeof q);
    if (other_kind) {
        *why = "this token does not open this endpoint";
        return 403;
    }
    if (!who) {
        *why = tok ? "invalid token" : "missing bearer token";
        return 401;
    }
    *identity = who;
    return 0;
}

/* Only pipes and sockets: a terminal's open file description is shared with
 * the shell, which would find its own stdin non-blocking afterwards. */
void net_set_nonblocking_if_pipe(int fd)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct lws *net_adopt_fd(net *n, int fd, raw *r)
{
    lws_sock_file_fd_type u;
    u.filefd = fd;
    struct lws *w = lws_adopt_descriptor_vhost(n->vh, LWS_ADOPT_RAW_FILE_DESC, u, "wr-raw", NULL);
    if (w)
        lws_set_opaque_user_data(w, r);
    return w;
}

void net_conn_count(conn *c)
{
    if (!c->counted) {
        c->n->conns++;
        c->counted = true;
    }
}

void net_conn_release(conn *c)
{
    if (c->counted)
        c->n->conns--;
    c->counted = false;
}
