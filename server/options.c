/* warrantd's command line and config file (design.md "warrantd"). */
#include "server/loop.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNECTIONS      1024
#define DEFAULT_MAX_SESSIONS         1024
#define DEFAULT_CLIENT_SHARE_DIVISOR 8 /* one identity: an eighth of the total by default */
#define DEFAULT_SESSION_IDLE_SEC     300
#define DEFAULT_BODY_TIMEOUT_SEC     30
#define BODY_BUDGET_MESSAGES         8 /* request bytes in flight: this many maximal messages */

typedef struct opts {
    char *config, *policy, *state_dir, *agent_id, *listen, *token_file, *auth, *tls_cert, *tls_key, *log_level,
        *log_format, *metrics_auth;
    bool stdio;
    long long max_message_bytes, max_runs, max_runs_per_client, max_connections, max_sessions, heartbeat_sec,
        checkpoint_interval_sec;
    long long max_connections_per_client, max_sessions_per_client, session_idle_sec, body_timeout_sec;
    long long stream_budget_bytes, max_contracts_per_client, max_pending_per_client;
    long long launchers; /* -1: the default */
    wr_strv origins, hosts;
} opts;

#define DEFAULT_CHECKPOINT_INTERVAL_SEC 60

/* The help text comes from the man page (docs/man/warrantd.8.scd). */
#include "warrantd_help.h"

enum {
    O_CONFIG = 256,
    O_POLICY,
    O_STATE,
    O_AGENT,
    O_STDIO,
    O_LISTEN,
    O_TOKENS,
    O_AUTH,
    O_CERT,
    O_KEY,
    O_ORIGIN,
    O_HOST,
    O_MAXMSG,
    O_MAXRUNS,
    O_MAXRUNSC,
    O_MAXCONN,
    O_MAXSESS,
    O_MAXCONNC,
    O_MAXSESSC,
    O_IDLE,
    O_BODYTO,
    O_STREAMBUDGET,
    O_MAXCONTRACTSC,
    O_MAXPENDINGC,
    O_HEARTBEAT,
    O_LOGLEVEL,
    O_LOGFORMAT,
    O_METRICSAUTH,
    O_CHECKPOINT,
    O_LAUNCHERS,
    O_HELP,
    O_VERSION,
};

static const struct option longopts[] = {
    {"config", required_argument, NULL, O_CONFIG},
    {"policy", required_argument, NULL, O_POLICY},
    {"state-dir", required_argument, NULL, O_STATE},
    {"agent-id", required_argument, NULL, O_AGENT},
    {"stdio", no_argument, NULL, O_STDIO},
    {"listen", required_argument, NULL, O_LISTEN},
    {"token-file", required_argument, NULL, O_TOKENS},
    {"auth", required_argument, NULL, O_AUTH},
    {"tls-cert", required_argument, NULL, O_CERT},
    {"tls-key", required_argument, NULL, O_KEY},
    {"allowed-origin", required_argument, NULL, O_ORIGIN},
    {"allowed-host", required_argument, NULL, O_HOST},
    {"max-message-bytes", required_argument, NULL, O_MAXMSG},
    {"max-runs", required_argument, NULL, O_MAXRUNS},
    {"max-runs-per-client", required_argument, NULL, O_MAXRUNSC},
    {"max-connections", required_argument, NULL, O_MAXCONN},
    {"max-sessions", required_argument, NULL, O_MAXSESS},
    {"max-connections-per-client", required_argument, NULL, O_MAXCONNC},
    {"max-sessions-per-client", required_argument, NULL, O_MAXSESSC},
    {"session-idle-sec", required_argument, NULL, O_IDLE},
    {"body-timeout-sec", required_argument, NULL, O_BODYTO},
    {"stream-budget-bytes", required_argument, NULL, O_STREAMBUDGET},
    {"max-contracts-per-client", required_argument, NULL, O_MAXCONTRACTSC},
    {"max-pending-per-client", required_argument, NULL, O_MAXPENDINGC},
    {"heartbeat-sec", required_argument, NULL, O_HEARTBEAT},
    {"log-level", required_argument, NULL, O_LOGLEVEL},
    {"log-format", required_argument, NULL, O_LOGFORMAT},
    {"metrics-auth", required_argument, NULL, O_METRICSAUTH},
    {"checkpoint-interval", required_argument, NULL, O_CHECKPOINT},
    {"launchers", required_argument, NULL, O_LAUNCHERS},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {NULL, 0, NULL, 0},
};

/* Synopses from the man page; an option missing there is listed as such, so
 * the test that compares --help with the option table catches it. */
static void print_usage(FILE *f)
{
    fputs("usage: warrantd [OPTIONS]   (man warrantd)\n", f);
    for (size_t i = 0; i < sizeof warrantd_help / sizeof warrantd_help[0]; i++)
        fprintf(f, "  %s\n", warrantd_help[i].synopsis);
    for (const struct option *o = longopts; o->name; o++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", o->name);
        bool found = false;
        for (size_t i = 0; i < sizeof warrantd_help / sizeof warrantd_help[0] && !found; i++) {
            const char *at = strstr(warrantd_help[i].synopsis, flag);
            found = at && !(at[strlen(flag)] == '-' || isalnum((unsigned char)at[strlen(flag)]));
        }
        if (!found)
            fprintf(f, "  %s (undocumented)\n", flag);
    }
}

static int set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
    return *dst ? 0 : -1;
}

static int set_num(long long *dst, const char *name, const char *v, long long lo, long long hi)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || !end || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "warrantd: --%s: expected an integer in [%lld, %lld], got \"%s\"\n", name, lo, hi, v);
        return -1;
    }
    *dst = x;
    return 0;
}

/* Gate events become metrics (any thread: the registry locks). */
static void observe_gate(void *ud, const wr_gate_event *ev)
{
    wr_metrics *m = ud;
    if (ev->kind == WR_GATE_DECISION) {
        const char *const labels[] = {ev->outcome, ev->reason};
        if (ev->operation && !strcmp(ev->operation, "check"))
            wr_metrics_add_observe(m, WR_M_DECISIONS, labels, 1, WR_M_CHECK_SECONDS, ev->seconds);
        else
            wr_metrics_add(m, WR_M_DECISIONS, labels, 1);
    } else if (ev->kind == WR_GATE_SEALED) {
        wr_metrics_add(m, WR_M_RECEIPTS, NULL, 1);
        wr_metrics_add(m, WR_M_RUNS, (const char *const[]){ev->outcome}, 1);
        wr_metrics_observe(m, WR_M_RUN_SECONDS, ev->seconds);
        if (ev->sandbox_start_sec >= 0)
            wr_metrics_observe(m, WR_M_SANDBOX_START, ev->sandbox_start_sec);
    } else if (ev->kind == WR_GATE_APPROVAL) {
        wr_metrics_add(m, WR_M_APPROVALS, (const char *const[]){ev->outcome}, 1);
    }
}

/* One option; returns 0, 1 (help/version printed), or -1. */
static int apply(opts *o, int id, const char *name, const char *v)
{
    switch (id) {
    case O_CONFIG:
        return set_str(&o->config, v);
    case O_POLICY:
        return set_str(&o->policy, v);
    case O_STATE:
        return set_str(&o->state_dir, v);
    case O_AGENT:
        return set_str(&o->agent_id, v);
    case O_STDIO:
        o->stdio = true;
        return 0;
    case O_LISTEN:
        return set_str(&o->listen, v);
    case O_TOKENS:
        return set_str(&o->token_file, v);
    case O_AUTH:
        return set_str(&o->auth, v);
    case O_CERT:
        return set_str(&o->tls_cert, v);
    case O_KEY:
        return set_str(&o->tls_key, v);
    case O_ORIGIN:
        return wr_strv_push(&o->origins, v) == WR_OK ? 0 : -1;
    case O_HOST:
        return wr_strv_push(&o->hosts, v) == WR_OK ? 0 : -1;
    case O_MAXMSG:
        return set_num(&o->max_message_bytes, name, v, 1024, 64LL * 1024 * 1024);
    case O_MAXRUNS:
        return set_num(&o->max_runs, name, v, 1, 4096);
    case O_MAXRUNSC:
        return set_num(&o->max_runs_per_client, name, v, 1, 4096);
    case O_MAXCONN:
        return set_num(&o->max_connections, name, v, 1, 100000);
    case O_MAXSESS:
        return set_num(&o->max_sessions, name, v, 1, 100000);
    case O_MAXCONNC:
        return set_num(&o->max_connections_per_client, name, v, 1, 100000);
    case O_MAXSESSC:
        return set_num(&o->max_sessions_per_client, name, v, 1, 100000);
    case O_IDLE:
        return set_num(&o->session_idle_sec, name, v, 1, 86400);
    case O_BODYTO:
        return set_num(&o->body_timeout_sec, name, v, 1, 3600);
    case O_MAXCONTRACTSC:
        return set_num(&o->max_contracts_per_client, name, v, 1, 1000000);
    case O_MAXPENDINGC:
        return set_num(&o->max_pending_per_client, name, v, 1, 100000);
    case O_STREAMBUDGET:
        return set_num(&o->stream_budget_bytes, name, v, 4096, 1LL << 30);
    case O_HEARTBEAT:
        return set_num(&o->heartbeat_sec, name, v, 1, 30);
    case O_CHECKPOINT:
        return set_num(&o->checkpoint_interval_sec, name, v, 1, 86400);
    case O_LAUNCHERS:
        return set_num(&o->launchers, name, v, 0, WR_GATE_LAUNCHERS_MAX);
    case O_LOGLEVEL:
        return set_str(&o->log_level, v);
    case O_LOGFORMAT:
        return set_str(&o->log_format, v);
    case O_METRICSAUTH:
        return set_str(&o->metrics_auth, v);
    case O_HELP:
        print_usage(stdout);
        return 1;
    case O_VERSION:
        printf("warrantd %s\n", WR_VERSION);
        return 1;
    default:
        return -1;
    }
}

/* The config file holds the same options, one per line without the leading
 * "--": "listen 127.0.0.1:8765", "stdio", "# comment". The command line
 * wins over it. */
static int load_config(opts *o, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    wr_error err;
    if (wr_read_file(path, 256 * 1024, &buf, &len, &err) != WR_OK) {
        fprintf(stderr, "warrantd: %s\n", err.message);
        return -1;
    }
    int rc = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        while (*line == ' ' || *line == '\t')
            line++;
        size_t l = strlen(line);
        while (l && (line[l - 1] == ' ' || line[l - 1] == '\t' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (!*line || *line == '#')
            continue;
        char *val = strpbrk(line, " \t");
        if (val) {
            *val++ = '\0';
            while (*val == ' ' || *val == '\t')
                val++;
        }
        const struct option *opt = NULL;
        for (const struct option *p = longopts; p->name; p++)
            if (!strcmp(p->name, line))
                opt = p;
        if (!opt || opt->val == O_CONFIG || opt->val == O_HELP || opt->val == O_VERSION ||
            (opt->has_arg == required_argument) != (val && *val)) {
            fprintf(stderr, "warrantd: %s:%d: unknown option or wrong value for \"%s\"\n", path, lineno, line);
            rc = -1;
        } else {
            rc = apply(o, opt->val, opt->name, val ? val : "") < 0 ? -1 : 0;
        }
    }
    free(buf);
    return rc;
}

static int parse_cli(opts *o, int argc, char **argv, bool config_only)
{
    optind = 1;
    opterr = config_only ? 0 : 1;
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (c == '?' || c == ':') {
            if (config_only)
                continue;
            fputs("warrantd: see warrantd --help\n", stderr);
            return -1;
        }
        if (config_only != (c == O_CONFIG))
            continue;
        int r = apply(o, c, longopts[idx].name, optarg ? optarg : "");
        if (r)
            return r;
    }
    if (!config_only && optind < argc) {
        fprintf(stderr, "warrantd: unexpected argument \"%s\" (see warrantd --help)\n", argv[optind]);
        return -1;
    }
    return 0;
}

static void opts_free(opts *o)
{
    free(o->config);
    free(o->policy);
    free(o->state_dir);
    free(o->agent_id);
    free(o->listen);
    free(o->token_file);
    free(o->auth);
    free(o->tls_cert);
    free(o->tls_key);
    free(o->log_level);
    free(o->log_format);
    free(o->metrics_auth);
    wr_strv_free(&o->origins);
    wr_strv_free(&o->hosts);
}

/* "HOST:PORT" or "[V6]:PORT". */
static int parse_listen(const char *s, char **host, int *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        *host = strndup(s + 1, (size_t)(rb - s - 1));
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return -1;
        *host = strndup(s, (size_t)(colon - s));
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!*host || !end || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

static int quick_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

int wr_server_main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    o.launchers = -1;
    int status = 2;
    wr_gate *g = NULL;
    wr_server *srv = NULL;
    wr_tokens *tokens = NULL;
    wr_metrics *metrics = NULL;
    char *host = NULL;
    int r = parse_cli(&o, argc, argv, true);
    if (r == 0 && o.config)
        r = load_config(&o, o.config);
    if (r == 0)
        r = parse_cli(&o, argc, argv, false);
    if (r) {
        opts_free(&o);
        return r > 0 ? 0 : 2;
    }

    wr_ctx ctx = wr_ctx_system();
    static const char *const levels[] = {"debug", "info", "notice", "warning", "error", NULL};
    if (o.log_level) {
        int found = -1;
        for (int i = 0; levels[i]; i++)
            if (!strcasecmp(o.log_level, levels[i]))
                found = i;
        if (found < 0) {
            fprintf(stderr, "warrantd: --log-level: unknown level \"%s\"\n", o.log_level);
            goto out;
        }
        ctx.log_level = found;
    }
    if (o.log_format) {
        if (strcmp(o.log_format, "json") && strcmp(o.log_format, "text")) {
            fprintf(stderr, "warrantd: --log-format: expected text or json, got \"%s\"\n", o.log_format);
            goto out;
        }
        ctx.log_json = !strcmp(o.log_format, "json");
    }
    if (!o.agent_id) {
        const char *e = getenv("WARRANT_AGENT_ID");
        o.agent_id = strdup(e && *e ? e : "local");
    }
    char default_dir[PATH_MAX];
    if (!o.state_dir && wr_gate_default_state_dir(default_dir, sizeof default_dir) == WR_OK)
        o.state_dir = strdup(default_dir);
    if (!o.state_dir) {
        fprintf(stderr, "warrantd: no --state-dir, and neither WARRANT_STATE_DIR nor HOME is set\n");
        goto out;
    }
    wr_net_options no;
    memset(&no, 0, sizeof no);
    no.agent_id = o.agent_id;
    no.stdio = o.stdio || !o.listen;
    no.allowed_origins = &o.origins;
    no.allowed_hosts = &o.hosts;
    no.max_connections = o.max_connections ? (int)o.max_connections : DEFAULT_MAX_CONNECTIONS;
    no.max_http_sessions = o.max_sessions ? (int)o.max_sessions : DEFAULT_MAX_SESSIONS;
    /* A client's share: what it asked for, at most half of the total. */
    no.max_connections_per_client = wr_limit_per_client(
        no.max_connections, o.max_connections_per_client ? (int)o.max_connections_per_client
                                                         : no.max_connections / DEFAULT_CLIENT_SHARE_DIVISOR);
    no.max_sessions_per_client = wr_limit_per_client(
        no.max_http_sessions, o.max_sessions_per_client ? (int)o.max_sessions_per_client
                                                        : no.max_http_sessions / DEFAULT_CLIENT_SHARE_DIVISOR);
    no.session_idle_ms = (o.session_idle_sec ? o.session_idle_sec : DEFAULT_SESSION_IDLE_SEC) * 1000;
    no.body_timeout_ms = (o.body_timeout_sec ? o.body_timeout_sec : DEFAULT_BODY_TIMEOUT_SEC) * 1000;
    size_t msg = o.max_message_bytes ? (size_t)o.max_message_bytes : WR_JSON_DEFAULT_MAX_BYTES;
    no.max_body_bytes = msg * BODY_BUDGET_MESSAGES;
    no.max_body_bytes_per_client = no.max_body_bytes / 2;
    no.policy_path = o.policy;
    if (o.listen) {
        if (parse_listen(o.listen, &host, &no.listen_port) != 0) {
            fprintf(stderr, "warrantd: --listen: expected HOST:PORT or [V6]:PORT, got \"%s\"\n", o.listen);
            goto out;
        }
        no.listen_host = host;
        bool loop = wr_host_is_loopback(host);
        if (o.auth && strcmp(o.auth, "none") != 0) {
            fprintf(stderr, "warrantd: --auth: only \"none\" is accepted\n");
            goto out;
        }
        if (o.auth && o.token_file) {
            fprintf(stderr, "warrantd: --auth none and --token-file exclude each other\n");
            goto out;
        }
        if (!o.auth && !o.token_file) {
            fprintf(stderr, "warrantd: --listen needs --token-file FILE (or --auth none on loopback)\n");
            goto out;
        }
        if (o.auth && !loop) {
            fprintf(stderr, "warrantd: --auth none is refused on a non-loopback address (%s)\n", host);
            goto out;
        }
        if (!!o.tls_cert != !!o.tls_key) {
            fprintf(stderr, "warrantd: --tls-cert and --tls-key go together\n");
            goto out;
        }
        if (!loop && !o.tls_cert) {
            /* Bearer tokens must never cross a network in clear text. */
            fprintf(stderr, "warrantd: refusing to listen on non-loopback %s without TLS (--tls-cert/--tls-key)\n",
                    host);
            goto out;
        }
        no.auth_none = o.auth != NULL;
        no.tls_cert = o.tls_cert;
        no.tls_key = o.tls_key;
        wr_error err;
        if (o.token_file && wr_tokens_load(o.token_file, &tokens, &err) != WR_OK) {
            fprintf(stderr, "warrantd: %s\n", err.message);
            goto out;
        }
        no.tokens = tokens;
        no.token_file = o.token_file;
    } else if (o.token_file || o.auth || o.tls_cert) {
        fprintf(stderr, "warrantd: --token-file, --auth and --tls-* only apply with --listen\n");
        goto out;
    }

    wr_error err;
    wr_error_clear(&err);
    /* env_allow names take their values from our environment (design.md). */
    /* The server's own secrets stay out of every sandbox, whatever the policy allows. */
    const char *protected_paths[4] = {0};
    size_t np = 0;
    if (o.token_file)
        protected_paths[np++] = o.token_file;
    if (o.tls_key)
        protected_paths[np++] = o.tls_key;
    if (o.config)
        protected_paths[np++] = o.config;
    if (o.metrics_auth && strcmp(o.metrics_auth, "token") && strcmp(o.metrics_auth, "loopback")) {
        fprintf(stderr, "warrantd: --metrics-auth: expected token or loopback, got \"%s\"\n", o.metrics_auth);
        goto out;
    }
    no.metrics_loopback = o.metrics_auth && !strcmp(o.metrics_auth, "loopback");
    no.checkpoint_interval_ms =
        1000 * (o.checkpoint_interval_sec ? o.checkpoint_interval_sec : DEFAULT_CHECKPOINT_INTERVAL_SEC);
    if (!(metrics = wr_metrics_new())) {
        fprintf(stderr, "warrantd: out of memory\n");
        goto out;
    }
    no.metrics = metrics;
    wr_gate_config gc = {.state_dir = o.state_dir,
                         .policy_path = o.policy,
                         .ctx = &ctx,
                         .host_env = environ,
                         .protected_paths = protected_paths,
                         .max_contracts_per_agent = o.max_contracts_per_client,
                         .max_pending_per_agent = o.max_pending_per_client,
                         .observer = observe_gate,
                         .observer_ud = metrics,
                         .launchers = (int)o.launchers,
                         .launchers_refill = true};
    if (wr_gate_open(&gc, &g, &err) != WR_OK) {
        fprintf(stderr, "warrantd: %s\n", err.message);
        goto out;
    }
    wr_server_config sc = {
        .max_message_bytes = (size_t)o.max_message_bytes,
        .max_runs = (int)o.max_runs,
        .max_runs_per_client = (int)o.max_runs_per_client,
        /* check evaluated beside the loop, one thread per CPU (measured best on 2 cores) */
        .quick_workers = quick_workers(),
        .heartbeat_ms = o.heartbeat_sec * 1000,
        .stream_budget_bytes = (size_t)o.stream_budget_bytes,
    };
    if (wr_server_new(g, &sc, &srv, &err) != WR_OK) {
        fprintf(stderr, "warrantd: %s\n", err.message);
        status = 1;
        goto out;
    }
    wr_log(wr_gate_ctx(g), WR_LOG_INFO, "server", "warrantd %s: state dir %s, policy %s%s%s", WR_VERSION, o.state_dir,
           o.policy ? o.policy : "(bundled default)", no.stdio ? ", stdio as agent " : "", no.stdio ? o.agent_id : "");
    status = wr_net_serve(srv, &no);
out:
    wr_server_free(srv);
    wr_gate_close(g);
    wr_metrics_free(metrics);
    wr_tokens_free(tokens);
    free(host);
    opts_free(&o);
    return status;
}
