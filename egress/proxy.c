/* The egress proxy of an allowlisted run: HTTP CONNECT, plain HTTP
 * forwarding (absolute-form requests) and SOCKS5 CONNECT, served on a
 * listening socket that lives inside the run's network namespace. It is the
 * only way out of that namespace. Every request is checked against
 * allowed_egress_hosts by name, then resolved here (the sandbox has no DNS)
 * and every resolved address is checked again, so a name that resolves to
 * loopback, a private network or this host (DNS rebinding) is refused unless
 * the policy lists that literal IP:port.
 *
 * One thread accepts; each connection has a thread for the handshake and
 * the client-to-server direction and one more for the other direction.
 * Bytes move with splice(2) through a pipe, without a copy to user space. */
#include "egress/egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define PROXY_MAX_CONNS      64  /* concurrent connections of one run */
#define PROXY_MAX_HOSTS      256 /* distinct host:port records of one run */
#define PROXY_MAX_REFUSED    64  /* refusals recorded in detail; all are counted */
#define PROXY_MAX_ADDRS      16  /* resolved addresses tried */
#define PROXY_HEAD_MAX       16384
#define PROXY_HANDSHAKE_SEC  30
#define PROXY_CONNECT_MS     10000
#define PROXY_PIPE_BYTES     (1024 * 1024)
#define PROXY_HOSTS_FILE_MAX (64 * 1024)
#define HTTP_DEFAULT_PORT    80
#define SOCKS_VERSION        5
#define SOCKS_NAME_MAX       255 /* a one-byte length */

enum socks_reply {
    SOCKS_OK = 0,
    SOCKS_NOT_ALLOWED = 2,
    SOCKS_HOST_UNREACHABLE = 4,
    SOCKS_CONN_REFUSED = 5,
    SOCKS_CMD_UNSUPPORTED = 7,
    SOCKS_ATYP_UNSUPPORTED = 8,
};
enum socks_const {
    SOCKS_AUTH_NONE = 0,
    SOCKS_AUTH_UNACCEPTABLE = 0xff,
    SOCKS_CMD_CONNECT = 1,
};
enum socks_atyp {
    SOCKS_ATYP_V4 = 1,
    SOCKS_ATYP_NAME = 3,
    SOCKS_ATYP_V6 = 4
};

typedef struct host_rec {
    char host[WR_EGRESS_NAME_MAX + 1];
    int port;
    char address[INET6_ADDRSTRLEN];
    uint64_t sent, received;
    unsigned connections;
} host_rec;

typedef struct refusal {
    char host[WR_EGRESS_NAME_MAX + 1];
    int port;
    char reason[160];
} refusal;

typedef struct conn {
    struct wr_egress_proxy *p;
    int cfd, ufd;
    pthread_t th;
    bool done;
    struct conn *next;
} conn;

struct wr_egress_proxy {
    int lfd;
    int stop_fd; /* eventfd, readable once stopping: ends connects in progress */
    wr_egress_allow allow;
    char *test_hosts; /* contents of the test resolver file, or NULL */
    pthread_t acceptor;
    pthread_mutex_t mu;
    bool stopping;
    conn *conns;
    size_t nconns;
    host_rec hosts[PROXY_MAX_HOSTS];
    size_t nhosts;
    refusal refused[PROXY_MAX_REFUSED];
    size_t nrefused;
    uint64_t refused_total;
};

/* ---- records ----------------------------------------------------------------- */
/* A refused host is whatever the client sent: the receipt gets it in
 * printable ASCII ('?' for anything else), never raw bytes. */
static void printable_copy(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = in[i] > ' ' && in[i] < 0x7f ? in[i] : '?';
    out[i] = '\0';
}

static void note_refusal(wr_egress_proxy *p, const char *host, int port, const char *reason)
{
    pthread_mutex_lock(&p->mu);
    p->refused_total++;
    if (p->nrefused < PROXY_MAX_REFUSED) {
        refusal *r = &p->refused[p->nrefused++];
        printable_copy(r->host, sizeof r->host, host);
        r->port = port;
        snprintf(r->reason, sizeof r->reason, "%s", reason);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The record for host:port, created on first use; NULL when the run has
 * reached PROXY_MAX_HOSTS distinct ones. */
static host_rec *host_record(wr_egress_proxy *p, const char *host, int port, const char *address)
{
    host_rec *h = NULL;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nhosts && !h; i++)
        if (p->hosts[i].port == port && !strcmp(p->hosts[i].host, host))
            h = &p->hosts[i];
    if (!h && p->nhosts < PROXY_MAX_HOSTS) {
        h = &p->hosts[p->nhosts++];
        snprintf(h->host, sizeof h->host, "%s", host);
        h->port = port;
    }
    if (h) {
        snprintf(h->address, sizeof h->address, "%s", address);
        h->connections++;
    }
    pthread_mutex_unlock(&p->mu);
    return h;
}

/* ---- resolution and dialling ----------------------------------------------------- */
/* The test resolver: hosts(5) lines "ADDRESS NAME...". */
static size_t test_resolve(const char *text, const char *host, struct sockaddr_storage *out, size_t max, bool *known)
{
    size_t n = 0;
    *known = false;
    for (const char *l = text; *l && n < max; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] ? 1 : 0)) {
        char line[512], *save = NULL;
        size_t len = strcspn(l, "\n#");
        if (len >= sizeof line)
            continue;
        memcpy(line, l, len);
        line[len] = '\0';
        char *addr = strtok_r(line, " \t", &save);
        for (char *name = addr ? strtok_r(NULL, " \t", &save) : NULL; name; name = strtok_r(NULL, " \t", &save)) {
            if (strcasecmp(name, host))
                continue;
            *known = true;
            struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM}, *ai = NULL;
            if (getaddrinfo(addr, NULL, &hints, &ai) == 0) {
                memcpy(&out[n++], ai->ai_addr, ai->ai_addrlen);
                freeaddrinfo(ai);
            }
            break;
        }
    }
    return n;
}

static size_t resolve(const wr_egress_proxy *p, const char *host, struct sockaddr_storage *out, size_t max)
{
    bool known = false;
    size_t n = p->test_hosts ? test_resolve(p->test_hosts, host, out, max, &known) : 0;
    if (known)
        return n;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
        return 0;
    for (struct addrinfo *a = ai; a && n < max; a = a->ai_next)
        if (a->ai_family == AF_INET || a->ai_family == AF_INET6)
            memcpy(&out[n++], a->ai_addr, a->ai_addrlen);
    freeaddrinfo(ai);
    return n;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static void addr_text(const struct sockaddr_storage *ss, char out[INET6_ADDRSTRLEN])
{
    const void *a = ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                                             : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    inet_ntop(ss->ss_family, a, out, INET6_ADDRSTRLEN);
}

static int dial(const struct sockaddr_storage *ss, int stop_fd, int *err_out)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err_out = errno;
        return -1;
    }
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int e = 0;
    if (connect(fd, (const struct sockaddr *)ss, len) != 0) {
        e = errno;
        if (e == EINPROGRESS) {
            struct pollfd pf[2] = {{.fd = fd, .events = POLLOUT}, {.fd = stop_fd, .events = POLLIN}};
            socklen_t el = sizeof e;
            int n = poll(pf, 2, PROXY_CONNECT_MS);
            e = n > 0 && pf[1].revents ? ECANCELED
                : n > 0                ? (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el), e)
                                       : ETIMEDOUT;
        }
    }
    if (e) {
        close(fd);
        *err_out = e;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

typedef enum verdict {
    V_OK = 0,
    V_REFUSED, /* by policy */
    V_UNRESOLVED,
    V_FAILED, /* allowed, but the connection failed */
} verdict;

/* Checks host:port against the policy, resolves it, checks every address
 * and dials the first acceptable one. On success c->ufd is connected and
 * *rec is the host's record. */
static verdict open_upstream(conn *c, const char *raw_host, int port, host_rec **rec)
{
    wr_egress_proxy *p = c->p;
    char host[WR_EGRESS_NAME_MAX + 1], why[160];
    int family;
    unsigned char lit[16];
    wr_error e = {0};
    if (port < 1 || port > WR_EGRESS_PORT_MAX || wr_egress_host_normalize(raw_host, host, &family, lit, &e) != WR_OK) {
        note_refusal(p, raw_host, port, "not a valid host or port");
        return V_REFUSED;
    }
    if (!wr_egress_allowed(&p->allow, host, port)) {
        note_refusal(p, host, port, "not in allowed_egress_hosts");
        return V_REFUSED;
    }
    struct sockaddr_storage addrs[PROXY_MAX_ADDRS];
    size_t n = family ? 0 : resolve(p, host, addrs, PROXY_MAX_ADDRS);
    if (family) {
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        if (getaddrinfo(host, NULL, &hints, &ai) == 0) {
            memcpy(&addrs[n++], ai->ai_addr, ai->ai_addrlen);
            freeaddrinfo(ai);
        }
    }
    if (!n) {
        note_refusal(p, host, port, "does not resolve");
        return V_UNRESOLVED;
    }
    const char *refusal = NULL;
    char text[INET6_ADDRSTRLEN] = "", failed[INET6_ADDRSTRLEN] = "";
    int dial_err = 0;
    for (size_t i = 0; i < n; i++) {
        set_port(&addrs[i], port);
        addr_text(&addrs[i], text);
        const char *r = wr_egress_literal_listed(&p->allow, (struct sockaddr *)&addrs[i])
                            ? NULL
                            : wr_egress_address_refusal((struct sockaddr *)&addrs[i]);
        if (r) {
            refusal = r;
            snprintf(failed, sizeof failed, "%s", text);
            continue;
        }
        int fd = dial(&addrs[i], p->stop_fd, &dial_err);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&p->mu);
        bool stopping = p->stopping;
        if (!stopping)
            c->ufd = fd;
        pthread_mutex_unlock(&p->mu);
        if (stopping) {
            close(fd);
            return V_FAILED;
        }
        if (!(*rec = host_record(p, host, port, text))) {
            note_refusal(p, host, port, "too many distinct hosts in one run");
            return V_REFUSED;
        }
        return V_OK;
    }
    if (dial_err) {
        snprintf(why, sizeof why, "connection to %s failed: %s", text, strerror(dial_err));
        note_refusal(p, host, port, why);
        return V_FAILED;
    }
    snprintf(why, sizeof why, "resolves to %s address (%s) and that IP:port is not listed", refusal, failed);
    note_refusal(p, host, port, why);
    return V_REFUSED;
}

/* ---- relaying ------------------------------------------------------------------ */
typedef struct pump_arg {
    int from, to;
    uint64_t bytes;
} pump_arg;

/* Moves bytes from -> to until EOF, then half-closes `to`. An error ends
 * both directions. Every byte `to` accepts is counted as it is accepted,
 * so a connection cut off in the middle of a chunk still counts at least
 * what reached the other side. */
static void *pump(void *arg)
{
    pump_arg *a = arg;
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) != 0) {
        shutdown(a->from, SHUT_RDWR);
        shutdown(a->to, SHUT_RDWR);
        return NULL;
    }
    fcntl(pp[1], F_SETPIPE_SZ, PROXY_PIPE_BYTES); /* best effort: fewer wake-ups */
    bool failed = false;
    for (;;) {
        ssize_t n = splice(a->from, NULL, pp[1], NULL, PROXY_PIPE_BYTES, SPLICE_F_MOVE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            failed = n < 0;
            break;
        }
        for (ssize_t left = n; left > 0 && !failed;) {
            ssize_t w = splice(pp[0], NULL, a->to, NULL, (size_t)left, SPLICE_F_MOVE);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                failed = true;
            } else {
                left -= w;
                a->bytes += (uint64_t)w;
            }
        }
        if (failed)
            break;
    }
    if (failed) {
        shutdown(a->from, SHUT_RDWR);
        shutdown(a->to, SHUT_RDWR);
    } else {
        shutdown(a->to, SHUT_WR);
    }
    close(pp[0]);
    close(pp[1]);
    return NULL;
}

static void relay(conn *c, host_rec *rec, uint64_t already_sent)
{
    struct timeval none = {0, 0};
    setsockopt(c->cfd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    pump_arg up = {c->cfd, c->ufd, already_sent}, down = {c->ufd, c->cfd, 0};
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, pump, &down) == 0;
    pump(&up);
    if (threaded)
        pthread_join(th, NULL);
    pthread_mutex_lock(&c->p->mu);
    rec->sent += up.bytes;
    rec->received += down.bytes;
    pthread_mutex_unlock(&c->p->mu);
}

static bool send_all(int fd, const void *buf, size_t len)
{
    const char *b = buf;
    while (len > 0) {
        ssize_t w = send(fd, b, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        len -= (size_t)w;
    }
    return true;
}

static bool recv_all(int fd, void *buf, size_t len)
{
    char *b = buf;
    while (len > 0) {
        ssize_t r = recv(fd, b, len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        b += r;
        len -= (size_t)r;
    }
    return true;
}

/* ---- SOCKS5 (RFC 1928), CONNECT without authentication ------------------------- */
static void socks_reply(int fd, int code)
{
    unsigned char r[10] = {SOCKS_VERSION, (unsigned char)code, 0, SOCKS_ATYP_V4};
    send_all(fd, r, sizeof r);
}

static void serve_socks(conn *c)
{
    unsigned char b[2 + UINT8_MAX]; /* greeting: version, count, up to 255 methods */
    if (!recv_all(c->cfd, b, 2) || !recv_all(c->cfd, b + 2, b[1]))
        return;
    bool noauth = memchr(b + 2, SOCKS_AUTH_NONE, b[1]) != NULL;
    unsigned char choice[2] = {SOCKS_VERSION, noauth ? SOCKS_AUTH_NONE : SOCKS_AUTH_UNACCEPTABLE};
    if (!send_all(c->cfd, choice, 2) || !noauth)
        return;
    if (!recv_all(c->cfd, b, 4) || b[0] != SOCKS_VERSION)
        return;
    if (b[1] != SOCKS_CMD_CONNECT) { /* no BIND, no UDP ASSOCIATE */
        socks_reply(c->cfd, SOCKS_CMD_UNSUPPORTED);
        return;
    }
    char host[SOCKS_NAME_MAX + 1]; /* longer than a valid name: open_upstream refuses those */
    unsigned char a[16], pb[2], len;
    switch (b[3]) {
    case SOCKS_ATYP_V4:
    case SOCKS_ATYP_V6: {
        bool v4 = b[3] == SOCKS_ATYP_V4;
        if (!recv_all(c->cfd, a, v4 ? 4 : 16))
            return;
        inet_ntop(v4 ? AF_INET : AF_INET6, a, host, sizeof host);
        break;
    }
    case SOCKS_ATYP_NAME:
        if (!recv_all(c->cfd, &len, 1) || !recv_all(c->cfd, host, len))
            return;
        host[len] = '\0';
        if (strlen(host) != len) { /* an embedded NUL */
            socks_reply(c->cfd, SOCKS_NOT_ALLOWED);
            return;
        }
        break;
    default:
        socks_reply(c->cfd, SOCKS_ATYP_UNSUPPORTED);
        return;
    }
    if (!recv_all(c->cfd, pb, 2))
        return;
    host_rec *rec = NULL;
    verdict v = open_upstream(c, host, pb[0] << 8 | pb[1], &rec);
    static const int code[] = {[V_OK] = SOCKS_OK,
                               [V_REFUSED] = SOCKS_NOT_ALLOWED,
                               [V_UNRESOLVED] = SOCKS_HOST_UNREACHABLE,
                               [V_FAILED] = SOCKS_CONN_REFUSED};
    socks_reply(c->cfd, code[v]);
    if (v == V_OK)
        relay(c, rec, 0);
}

/* ---- HTTP: CONNECT and absolute-form forwarding ---------------------------------- */
static void http_error(int fd, int status, const char *text, const char *why)
{
    char b[512];
    int n = snprintf(b, sizeof b,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nwarrant egress: %s\n",
                     status, text, why);
    send_all(fd, b, n > 0 && (size_t)n < sizeof b ? (size_t)n : 0);
}

/* "host:port", "[v6]:port" or, when default_port > 0, "host". */
static bool split_authority(const char *s, size_t n, char host[WR_EGRESS_NAME_MAX + 1], int *port, int default_port)
{
    const char *colon;
    size_t hn;
    const char *h = s;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return false;
        h = s + 1;
        hn = (size_t)(close - h);
        colon = close + 1 < s + n && close[1] == ':' ? close + 1 : NULL;
        if (!colon && close + 1 != s + n)
            return false;
    } else {
        colon = memchr(s, ':', n);
        hn = colon ? (size_t)(colon - s) : n;
    }
    if (!hn || hn > WR_EGRESS_NAME_MAX)
        return false;
    memcpy(host, h, hn);
    host[hn] = '\0';
    if (!colon) {
        *port = default_port;
        return default_port > 0;
    }
    char num[8];
    size_t pn = (size_t)(s + n - colon - 1);
    if (!pn || pn >= sizeof num || strspn(colon + 1, "0123456789") < pn)
        return false;
    memcpy(num, colon + 1, pn);
    num[pn] = '\0';
    *port = atoi(num);
    return true;
}

static const char *http_refusal_status(verdict v, int *status)
{
    static const struct {
        int status;
        const char *text;
    } t[] = {[V_OK] = {200, "OK"},
             [V_REFUSED] = {403, "Forbidden"},
             [V_UNRESOLVED] = {502, "Bad Gateway"},
             [V_FAILED] = {502, "Bad Gateway"}};
    *status = t[v].status;
    return t[v].text;
}

/* Hop-by-hop and proxy headers are not forwarded; "Connection: close" is
 * added so that one connection carries one request to one checked host. */
static bool hop_header(const char *line, size_t n)
{
    static const char *const drop[] = {"proxy-connection:", "proxy-authorization:", "connection:", "keep-alive:"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        if (n >= strlen(drop[i]) && !strncasecmp(line, drop[i], strlen(drop[i])))
            return true;
    return false;
}

static void serve_http(conn *c)
{
    char head[PROXY_HEAD_MAX + 1];
    size_t got = 0;
    char *end = NULL;
    while (!end && got < PROXY_HEAD_MAX) {
        ssize_t r = recv(c->cfd, head + got, PROXY_HEAD_MAX - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        got += (size_t)r;
        head[got] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (!end) {
        http_error(c->cfd, 431, "Request Header Fields Too Large", "request head too large");
        return;
    }
    char *body = end + 4;
    size_t extra = got - (size_t)(body - head);
    size_t ll = strcspn(head, "\r");
    char *sp1 = memchr(head, ' ', ll), *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - head)) : NULL;
    if (!sp1 || !sp2) {
        http_error(c->cfd, 400, "Bad Request", "malformed request line");
        return;
    }
    char host[WR_EGRESS_NAME_MAX + 1];
    int port, status;
    host_rec *rec = NULL;
    const char *target = sp1 + 1;
    size_t tn = (size_t)(sp2 - target);
    if ((size_t)(sp1 - head) == 7 && !strncmp(head, "CONNECT", 7)) {
        if (!split_authority(target, tn, host, &port, 0)) {
            http_error(c->cfd, 400, "Bad Request", "CONNECT needs host:port");
            return;
        }
        verdict v = open_upstream(c, host, port, &rec);
        if (v != V_OK) {
            const char *text = http_refusal_status(v, &status);
            http_error(c->cfd, status, text, "connection refused by the run's egress policy (see the receipt)");
            return;
        }
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        if (send_all(c->cfd, ok, sizeof ok - 1) && (!extra || send_all(c->ufd, body, extra)))
            relay(c, rec, extra);
        return;
    }
    static const char scheme[] = "http://";
    if (tn < sizeof scheme || strncasecmp(target, scheme, sizeof scheme - 1)) {
        http_error(c->cfd, 400, "Bad Request", "only CONNECT and absolute http:// requests are proxied");
        return;
    }
    const char *auth = target + sizeof scheme - 1;
    size_t an = strcspn(auth, "/?# ");
    if (memchr(auth, '@', an) || !split_authority(auth, an, host, &port, HTTP_DEFAULT_PORT)) {
        http_error(c->cfd, 400, "Bad Request", "malformed http:// target");
        return;
    }
    verdict v = open_upstream(c, host, port, &rec);
    if (v != V_OK) {
        const char *text = http_refusal_status(v, &status);
        http_error(c->cfd, status, text, "request refused by the run's egress policy (see the receipt)");
        return;
    }
    /* Origin-form request line, the client's headers minus hop-by-hop
     * ones, then whatever body bytes already arrived. */
    char out[PROXY_HEAD_MAX + 64];
    const char *path = auth + an;
    size_t pn = (size_t)(sp2 - path);
    int n = snprintf(out, sizeof out, "%.*s %s%.*s%.*s\r\n", (int)(sp1 - head), head, pn && *path == '/' ? "" : "/",
                     (int)pn, path, (int)(ll - (size_t)(sp2 - head)), sp2);
    for (char *l = head + ll + 2; l < end + 2 && n > 0 && (size_t)n < sizeof out;) {
        size_t len = (size_t)(strstr(l, "\r\n") - l);
        if (!hop_header(l, len))
            n += snprintf(out + n, sizeof out - (size_t)n, "%.*s\r\n", (int)len, l);
        l += len + 2;
    }
    if (n > 0 && (size_t)n < sizeof out)
        n += snprintf(out + n, sizeof out - (size_t)n, "Connection: close\r\n\r\n");
    if (n <= 0 || (size_t)n >= sizeof out) {
        http_error(c->cfd, 431, "Request Header Fields Too Large", "request head too large");
        return;
    }
    if (send_all(c->ufd, out, (size_t)n) && (!extra || send_all(c->ufd, body, extra)))
        relay(c, rec, (uint64_t)n + extra);
}

/* ---- threads ------------------------------------------------------------------------ */
static void *conn_main(void *arg)
{
    conn *c = arg;
    struct timeval tv = {PROXY_HANDSHAKE_SEC, 0};
    setsockopt(c->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    unsigned char first;
    ssize_t r = recv(c->cfd, &first, 1, MSG_PEEK);
    if (r == 1 && first == SOCKS_VERSION)
        serve_socks(c);
    else if (r == 1)
        serve_http(c);
    pthread_mutex_lock(&c->p->mu);
    close(c->cfd);
    c->cfd = -1;
    if (c->ufd >= 0)
        close(c->ufd);
    c->ufd = -1;
    c->done = true;
    pthread_mutex_unlock(&c->p->mu);
    return NULL;
}

/* Joins finished connection threads (with p->mu held). */
static void reap_conns(wr_egress_proxy *p, bool all)
{
    for (conn **pc = &p->conns; *pc;) {
        conn *c = *pc;
        if (!c->done && !all) {
            pc = &c->next;
            continue;
        }
        *pc = c->next;
        p->nconns--;
        pthread_mutex_unlock(&p->mu);
        pthread_join(c->th, NULL);
        pthread_mutex_lock(&p->mu);
        free(c);
    }
}

static void *accept_main(void *arg)
{
    wr_egress_proxy *p = arg;
    for (;;) {
        int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
        pthread_mutex_lock(&p->mu);
        bool stop = p->stopping;
        if (!stop)
            reap_conns(p, false);
        pthread_mutex_unlock(&p->mu);
        if (fd < 0) {
            if (stop || (errno != EINTR && errno != ECONNABORTED && errno != EMFILE && errno != ENFILE))
                break;
            if (errno == EMFILE || errno == ENFILE)
                usleep(10000); /* the run's connections hold the fds: wait for one to end */
            continue;
        }
        if (stop) {
            close(fd);
            break;
        }
        conn *c = calloc(1, sizeof *c);
        pthread_mutex_lock(&p->mu);
        bool full = p->nconns >= PROXY_MAX_CONNS;
        if (c && !full) {
            *c = (conn){.p = p, .cfd = fd, .ufd = -1, .next = p->conns};
            if (pthread_create(&c->th, NULL, conn_main, c) == 0) {
                p->conns = c;
                p->nconns++;
                c = NULL;
                fd = -1;
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (fd >= 0) {
            close(fd);
            note_refusal(p, "", 0, full ? "too many concurrent connections" : "out of memory or threads");
        }
        free(c);
    }
    return NULL;
}

int wr_egress_proxy_start(int listen_fd, const wr_egress_proxy_config *cfg, wr_egress_proxy **out, wr_error *err)
{
    *out = NULL;
    wr_egress_proxy *p = calloc(1, sizeof *p);
    if (!p) {
        close(listen_fd);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    p->lfd = listen_fd;
    pthread_mutex_init(&p->mu, NULL);
    p->stop_fd = eventfd(0, EFD_CLOEXEC);
    int rc = p->stop_fd >= 0 ? wr_egress_allow_init(cfg->allowed, &p->allow, err)
                             : wr_errorf(err, WR_E_IO, "", "egress proxy: eventfd: %s", strerror(errno));
    if (rc == WR_OK && cfg->test_hosts_file) {
        size_t len;
        rc = wr_read_file(cfg->test_hosts_file, PROXY_HOSTS_FILE_MAX, &p->test_hosts, &len, err);
    }
    if (rc == WR_OK) {
        /* splice(2) has no MSG_NOSIGNAL: writing to a connection that has
         * been reset raises SIGPIPE on the writing thread, and a command
         * can reset its own. Unhandled, that ends the process running the
         * proxy (warrant run) and the run with no receipt. The proxy's
         * threads keep it blocked (each inherits the mask of the thread
         * that creates it, the acceptor this one); a thread's own pending
         * signals are discarded when it exits. */
        sigset_t sigpipe, old;
        sigemptyset(&sigpipe);
        sigaddset(&sigpipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &sigpipe, &old);
        if (pthread_create(&p->acceptor, NULL, accept_main, p) != 0)
            rc = wr_errorf(err, WR_E_IO, "", "egress proxy: cannot start its thread");
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc != WR_OK) {
        wr_egress_allow_free(&p->allow);
        free(p->test_hosts);
        close(p->lfd);
        if (p->stop_fd >= 0)
            close(p->stop_fd);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    *out = p;
    return WR_OK;
}

json_object *wr_egress_proxy_stop(wr_egress_proxy *p, uint64_t *bytes)
{
    *bytes = 0;
    if (!p)
        return NULL;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    shutdown(p->lfd, SHUT_RDWR); /* wakes accept() */
    uint64_t one = 1;
    ssize_t w = write(p->stop_fd, &one, sizeof one); /* cannot fail: the counter is far from its maximum */
    (void)w;
    for (conn *c = p->conns; c; c = c->next) {
        if (c->cfd >= 0)
            shutdown(c->cfd, SHUT_RDWR);
        if (c->ufd >= 0)
            shutdown(c->ufd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->acceptor, NULL);
    pthread_mutex_lock(&p->mu);
    reap_conns(p, true);
    pthread_mutex_unlock(&p->mu);
    close(p->lfd);
    close(p->stop_fd);

    json_object *o = json_object_new_object(), *hosts = json_object_new_array(), *ref = json_object_new_array();
    for (size_t i = 0; i < p->nhosts; i++) {
        const host_rec *h = &p->hosts[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "host", json_object_new_string(h->host));
        json_object_object_add(j, "port", json_object_new_int(h->port));
        json_object_object_add(j, "address", json_object_new_string(h->address));
        json_object_object_add(j, "connections", json_object_new_int64(h->connections));
        json_object_object_add(j, "bytes_sent", json_object_new_int64((int64_t)h->sent));
        json_object_object_add(j, "bytes_received", json_object_new_int64((int64_t)h->received));
        json_object_array_add(hosts, j);
        *bytes += h->sent + h->received;
    }
    for (size_t i = 0; i < p->nrefused; i++) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "host", json_object_new_string(p->refused[i].host));
        json_object_object_add(j, "port", json_object_new_int(p->refused[i].port));
        json_object_object_add(j, "reason", json_object_new_string(p->refused[i].reason));
        json_object_array_add(ref, j);
    }
    json_object_object_add(o, "hosts", hosts);
    json_object_object_add(o, "refused", ref);
    json_object_object_add(o, "refused_total", json_object_new_int64((int64_t)p->refused_total));
    wr_egress_allow_free(&p->allow);
    free(p->test_hosts);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return o;
}
