/* The event loop: one libwebsockets context for every transport, the
 * signals (through a self-pipe adopted as a raw file), the timers and the
 * shutdown. Tool workers hand results back with lws_cancel_service(), which
 * lands in LWS_CALLBACK_EVENT_WAIT_CANCELLED on this thread.
 *
 * Adding a timer: one row in `timers` below (period + function of net *);
 * every timer runs on the loop thread. */
#include "server/net.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#define TICK_MS           100
#define DRAIN_DEADLINE_MS 30000
#define SESSION_EXPIRY_MS 1000
#define HEAP_TRIM_MS      5000
/* Blocks from this size on (request bodies, outputs) are mapped on their
 * own and go back to the system when freed; glibc's default threshold
 * grows after such frees, so memory a burst took would stay. */
#define MMAP_THRESHOLD_BYTES (256 * 1024)

static int sig_pipe[2] = {-1, -1}; /* the only process-global: signal handlers need it */

/* the only process-global: signal handlers need it */

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

void net_begin_shutdown(net *n, const char *why)
{
    if (!n->draining)
        wr_log(n->ctx, WR_LOG_NOTICE, "server", "%s: stopping; cancelling %d run(s)", why,
               wr_server_active_runs(n->srv));
    n->draining = true;
    n->drain_deadline_ms = wr_now_ms(n->ctx) + DRAIN_DEADLINE_MS;
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
            net_begin_shutdown(n, sigs[i] == SIGINT ? "SIGINT" : "SIGTERM");
        }
    }
}

/* ======================================================================
 * the "mcp" protocol callback: HTTP and WebSocket
 * ====================================================================== */

static bool net_idle(net *n)
{
    return wr_server_active_runs(n->srv) == 0 && !n->out.h;
}

void net_check_stop(net *n)
{
    bool stdio_only = !n->o->listen_host;
    if ((n->draining || (stdio_only && n->stdin_eof)) && net_idle(n))
        n->stop = true;
    if (n->draining && net_now_ms(n) > n->drain_deadline_ms)
        n->stop = true;
    if (n->stop)
        lws_cancel_service(n->lctx);
}

static int cb_raw(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    (void)in;
    (void)len;
    raw *r = lws_get_opaque_user_data(wsi);
    if (!r)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (r->kind == RAW_STDIN)
            stdio_on_readable(r->n);
        else if (r->kind == RAW_SIGNAL)
            handle_signals(r->n);
        else if (r->kind == RAW_WS)
            return ws_on_readable(r);
        break;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (r->kind == RAW_STDOUT)
            return stdio_on_writeable(r->n);
        break;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (r->kind == RAW_WS)
            ws_on_watch_closed(r);
        else
            stdio_on_closed(r->n, r->kind);
        break;
    default:
        break; /* EVENT_WAIT_CANCELLED is handled once, by the "mcp" protocol */
    }
    return 0;
}

/* The "mcp" protocol: WebSocket and HTTP share one listener; each
 * transport takes its own callback reasons. */
static int cb_mcp(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    net *n = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        wr_server_drain(n->srv);
        net_check_stop(n);
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        if (n->draining || n->conns >= n->o->max_connections) {
            net_count_refusal(n, n->draining ? "unavailable" : "connection_limit");
            return 1;
        }
        return 0;
    default:
        break;
    }
    int rc = ws_callback(wsi, reason, user, in, len);
    if (rc == NET_UNHANDLED)
        rc = http_callback(wsi, reason, user, in, len);
    return rc == NET_UNHANDLED ? lws_callback_http_dummy(wsi, reason, user, in, len) : rc;
}

/* ---- timers ------------------------------------------------------------------ */

static void tick_runs(net *n)
{
    /* progress (rate-limited) and heartbeats of running calls */
    wr_server_drain(n->srv);
    wr_server_tick(n->srv);
}

/* Returns freed heap to the system: after a burst (hostile or not) the
 * memory it took must not stay with the process. */
static void trim_heap(net *n)
{
    (void)n;
    malloc_trim(0);
}

/* The receipt log's checkpoint, at least every --checkpoint-interval while
 * it grows (a read of two rows when it did not; docs/transparency-log.md). */
static void publish_checkpoint(net *n)
{
    int64_t now = net_now_ms(n);
    if (now - n->checkpoint_ms < n->o->checkpoint_interval_ms)
        return;
    n->checkpoint_ms = now;
    wr_error err;
    wr_error_clear(&err);
    bool published = false;
    if (wr_gate_publish_checkpoint(wr_server_gate(n->srv), &published, &err) != WR_OK)
        wr_log(n->ctx, WR_LOG_WARNING, "tlog", "checkpoint not published: %s", err.message);
    else if (published)
        wr_log(n->ctx, WR_LOG_DEBUG, "tlog", "checkpoint published");
}

#define CHECKPOINT_POLL_MS 1000

typedef struct timer {
    int64_t period_ms;
    void (*fire)(net *n);
} timer;

/* Every periodic job of the server, run on the loop thread. Periods are
 * multiples of TICK_MS (the loop wakes that often). */
static const timer timers[] = {
    {TICK_MS, tick_runs},
    {TICK_MS, http_tick},
    {SESSION_EXPIRY_MS, hsess_expire},
    {HEAP_TRIM_MS, trim_heap},
    {WR_CONSOLE_EVENT_CHECK_MS, http_console_tick},
    {CHECKPOINT_POLL_MS, publish_checkpoint},
};
#define NTIMERS (sizeof timers / sizeof timers[0])

_Static_assert(NTIMERS <= NET_MAX_TIMERS, "raise NET_MAX_TIMERS in net.h");

static void on_tick(lws_sorted_usec_list_t *sul)
{
    net *n = lws_container_of(sul, net, sul);
    int64_t now = net_now_ms(n);
    for (size_t i = 0; i < NTIMERS; i++)
        if (now - n->timer_last_ms[i] >= timers[i].period_ms) {
            n->timer_last_ms[i] = now;
            timers[i].fire(n);
        }
    net_check_stop(n);
    if (!n->stop)
        lws_sul_schedule(n->lctx, 0, &n->sul, on_tick, TICK_MS * LWS_US_PER_MS);
}

static void waker(void *ud)
{
    lws_cancel_service(ud);
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
    n->ctx = wr_gate_ctx(wr_server_gate(srv));
    n->r_sig = (raw){RAW_SIGNAL, n};
    n->tokens = o->tokens;
    int rc = 1;

    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
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
    /* a WebSocket connection takes two (ws.c reads a duplicate) */
    if (o->listen_host && rl.rlim_cur < (rlim_t)o->max_connections * 2 + 64)
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
        wr_log(n->ctx, WR_LOG_NOTICE, "server",
               "listening on %s%s%s:%d: http%s://…/mcp, ws%s://…/ws and the console at /console (auth: %s)",
               v6 ? "[" : "", h, v6 ? "]" : "", n->port, sch, sch, o->auth_none ? "none" : "bearer token");
        if (o->auth_none)
            wr_log(n->ctx, WR_LOG_WARNING, "server",
                   "--auth none: any local process can use this server as agent \"%s\"", o->agent_id);
    }
    wr_server_set_waker(srv, waker, n->lctx);
    n->r_sig = (raw){RAW_SIGNAL, n};
    if (!net_adopt_fd(n, sig_pipe[0], &n->r_sig)) {
        wr_log(n->ctx, WR_LOG_ERROR, "server", "cannot watch signals");
        goto out;
    }
    /* Logs must never stall the loop when nobody drains a stderr pipe: a
     * line that does not fit is dropped. */
    net_set_nonblocking_if_pipe(2);
    if (o->stdio && stdio_attach(n) != 0) {
        wr_log(n->ctx, WR_LOG_ERROR, "server", "cannot attach stdin/stdout to the event loop");
        goto out;
    }
    lws_sul_schedule(n->lctx, 0, &n->sul, on_tick, TICK_MS * LWS_US_PER_MS);
    while (!n->stop)
        if (lws_service(n->lctx, 0) < 0)
            break;
    stdio_flush(n); /* what is left for stdout, before leaving */
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
    hsess_drop_all(n);
    if (n->stdio_ss)
        wr_session_close(n->stdio_ss, true);
    /* Runs cancelled above still seal their receipts before we return. */
    while (wr_server_active_runs(srv) > 0) {
        wr_server_drain(srv);
        usleep(20000);
    }
    wr_server_drain(srv);
    q_free(&n->out);
    wr_console_free(n->console);
    wr_tokens_free(n->reloaded);
    free(n->line);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    free(n);
    return rc;
}
