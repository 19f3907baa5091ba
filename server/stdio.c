/* The stdio transport: one MCP session on stdin/stdout, newline-delimited
 * JSON-RPC (A/basic/transports.mdx "stdio"). Both descriptors are adopted
 * by the loop as raw files; stdout is written without blocking the loop. */
#include "server/net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

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

void stdio_on_readable(net *n)
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

/* Ready responses leave in one writev per batch, not one write each: a
 * pipelined client gets its answers with a few system calls. */
#define STDOUT_IOV_MAX 256

int stdio_on_writeable(net *n)
{
    while (n->out.h) {
        struct iovec iov[STDOUT_IOV_MAX];
        int cnt = 0;
        size_t want = 0;
        for (qmsg *m = n->out.h; m && cnt < STDOUT_IOV_MAX; m = m->next, cnt++) {
            iov[cnt] = (struct iovec){m->buf + LWS_PRE + m->off, m->len - m->off};
            want += iov[cnt].iov_len;
        }
        ssize_t w = writev(1, iov, cnt);
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
        for (size_t left = (size_t)w; left > 0;) {
            qmsg *m = n->out.h;
            size_t rest = m->len - m->off;
            if (left < rest) {
                m->off += left;
                break;
            }
            left -= rest;
            free(q_pop(&n->out));
        }
        if ((size_t)w < want)
            break; /* the pipe is full */
    }
    /* lws clears POLLOUT on a raw file after its writeable callback, so a
     * request made inside it would be lost: ask again from a timer. */
    if (n->out.h && n->w_out && n->lctx)
        lws_sul_schedule(n->lctx, 0, &n->sul_out, stdout_again, 1000);
    return 0;
}

void stdio_on_closed(net *n, raw_kind kind)
{
    if (kind == RAW_STDIN) {
        n->w_in = NULL;
        n->stdin_eof = true;
    } else if (kind == RAW_STDOUT) {
        /* the reader hung up (POLLHUP/POLLERR) */
        n->w_out = NULL;
        q_free(&n->out);
        if (!n->stdin_eof)
            net_begin_shutdown(n, "stdout closed");
        n->stdin_eof = true;
    }
}

int stdio_attach(net *n)
{
    n->stdio_outlet.send = stdio_send;
    n->stdio_outlet.may_reorder = true;
    /* Alone, stdio's checks run inline (server.h); beside listeners, the
     * loop also serves their clients, which a pipelined burst would delay. */
    n->stdio_outlet.quick_on_pool = n->o->listen_host != NULL;
    n->r_in = (raw){RAW_STDIN, n};
    n->r_out = (raw){RAW_STDOUT, n};
    n->stdio_ss = wr_session_new(n->srv, n->o->agent_id, &n->stdio_outlet);
    /* stdout is written without blocking the loop; a slow reader only
     * delays its own messages. */
    net_set_nonblocking_if_pipe(1);
    n->w_in = net_adopt_fd(n, 0, &n->r_in);
    n->w_out = net_adopt_fd(n, 1, &n->r_out);
    if (!n->stdio_ss || !n->w_in || !n->w_out)
        return -1;
    lws_rx_flow_control(n->w_out, 0); /* only POLLOUT matters on stdout */
    return 0;
}

void stdio_flush(net *n)
{
    if (!n->out.h)
        return;
    int fl = fcntl(1, F_GETFL);
    if (fl >= 0)
        fcntl(1, F_SETFL, fl & ~O_NONBLOCK);
    stdio_on_writeable(n);
}
