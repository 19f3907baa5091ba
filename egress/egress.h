/* egress — what a run may reach over the network, and the machinery that
 * enforces it for network: allowlisted and full.
 *
 *  - allowlist entries (allowed_egress_hosts): parsed and validated here,
 *    for the policy loader and for the proxy, so one rule decides both;
 *  - the run's private network namespace (created before bwrap, which then
 *    joins it), with a listening socket inside it for the proxy;
 *  - the egress proxy (HTTP CONNECT, plain HTTP forwarding, SOCKS5): the
 *    only way out of an allowlisted run; it resolves names itself and
 *    records every host contacted and every refusal;
 *  - user-mode NAT (slirp4netns) for network: full.
 *
 * Depends only on lib/. */
#ifndef WR_EGRESS_H
#define WR_EGRESS_H

#include "lib/lib.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- allowlist entries ---------------------------------------------------- */
#define WR_EGRESS_NAME_MAX 253 /* a DNS name in text form, without the trailing dot */
#define WR_EGRESS_PORT_MAX 65535

typedef struct wr_egress_rule {
    char host[WR_EGRESS_NAME_MAX + 1]; /* lowercase A-labels; for "*.x" the suffix x; IP in canonical text */
    bool wildcard;                     /* "*.x": any name ending in ".x" (not x itself) */
    int family;                        /* AF_INET/AF_INET6 for an IP literal, else 0 */
    unsigned char addr[16];            /* the literal's address (network order) */
    int port;                          /* 0: any port */
} wr_egress_rule;

/* Parses one entry: "host", "host:port", "*.host[:port]", "1.2.3.4[:port]",
 * "[v6][:port]" or a bare v6 address. Names are compared as DNS names:
 * case-insensitive, one trailing dot ignored, IDNA (UTS #46) to A-labels.
 * Refused with a one-line reason: a bare "*", a wildcard anywhere but a
 * leading "*." or over a single label ("*.com"), a scheme, path or user
 * part, an invalid label, a port outside 1..65535. */
int wr_egress_rule_parse(const char *entry, wr_egress_rule *out, wr_error *err);

typedef struct wr_egress_allow {
    wr_egress_rule *rules;
    size_t n;
} wr_egress_allow;

int wr_egress_allow_init(const wr_strv *entries, wr_egress_allow *out, wr_error *err);
void wr_egress_allow_free(wr_egress_allow *a);

/* Normalises a host as a client sent it (name or IP literal, brackets
 * allowed) into the form rules hold; family is set for an IP literal. */
int wr_egress_host_normalize(const char *host, char out[WR_EGRESS_NAME_MAX + 1], int *family, unsigned char addr[16],
                             wr_error *err);
/* Whether the normalised host and port match an entry (name entries match
 * names, IP entries IP literals). WR_EGRESS_ANY_PORT: the host alone. */
#define WR_EGRESS_ANY_PORT (-1)
bool wr_egress_allowed(const wr_egress_allow *a, const char *host, int port);
/* Why an address may not be dialled after resolution: loopback,
 * link-local, private, multicast, unspecified/reserved, or one of this
 * host's own addresses; NULL when it is an ordinary public address. An
 * address the policy lists as a literal IP:port is always allowed (the
 * caller checks wr_egress_literal_listed first). */
const char *wr_egress_address_refusal(const struct sockaddr *sa);
bool wr_egress_literal_listed(const wr_egress_allow *a, const struct sockaddr *sa);

/* ---- the run's network namespace -------------------------------------------- */
/* Where the proxy listens inside the run's namespace: the namespace is
 * private, so a fixed port is always free and keeps the plan the same from
 * run to run. */
#define WR_EGRESS_PROXY_PORT 3128
#define WR_EGRESS_STR_(x)    #x
#define WR_EGRESS_STR(x)     WR_EGRESS_STR_(x)
#define WR_EGRESS_PROXY_ADDR "127.0.0.1:" WR_EGRESS_STR(WR_EGRESS_PROXY_PORT)
typedef struct wr_netns {
    int userns_fd; /* unprivileged: the user namespace that owns netns (else -1) */
    int netns_fd;  /* the private network namespace */
    int listen_fd; /* with_proxy: TCP listener on WR_EGRESS_PROXY_ADDR inside netns (else -1) */
    int snmp_fd;   /* the namespace's /proc/net/snmp: what full mode sent */
} wr_netns;

/* Creates a network namespace with loopback up (as root a plain one;
 * unprivileged inside a new user namespace mapping only our uid and gid),
 * and with_proxy a listening socket on 127.0.0.1 inside it. The command's
 * launcher (executor/launcher.c) joins it — userns_fd first, then
 * netns_fd — before exec'ing bwrap --share-net. */
int wr_netns_create(bool with_proxy, wr_netns *ns, wr_error *err);
void wr_netns_close(wr_netns *ns);
/* Sum of TCP segments and UDP datagrams sent from inside the namespace. */
uint64_t wr_netns_packets_out(const wr_netns *ns);

/* ---- user-mode NAT for network: full --------------------------------------- */
#define WR_SLIRP4NETNS "/usr/bin/slirp4netns"
#define WR_TUN_DEVICE  "/dev/net/tun"
typedef struct wr_slirp {
    pid_t pid;
    int exit_fd; /* slirp4netns --exit-fd: closing it stops it */
} wr_slirp;
/* Starts slirp4netns on the namespace (tap0, 10.0.2.100/24, host loopback
 * not reachable) and waits until the interface is up. */
int wr_slirp_start(const wr_netns *ns, wr_slirp *s, wr_error *err);
void wr_slirp_stop(wr_slirp *s);

/* ---- the egress proxy --------------------------------------------------------- */
typedef struct wr_egress_proxy wr_egress_proxy;

typedef struct wr_egress_proxy_config {
    const wr_strv *allowed; /* allowed_egress_hosts */
    /* Test resolver: a hosts(5)-style file consulted before DNS. Only the
     * executor's tests set it (wr_exec_request.egress_test_hosts); nothing
     * in the server or the CLI can. */
    const char *test_hosts_file;
} wr_egress_proxy_config;

/* Serves listen_fd (taken over) on its own thread until stopped. */
int wr_egress_proxy_start(int listen_fd, const wr_egress_proxy_config *cfg, wr_egress_proxy **out, wr_error *err);
/* Stops accepting, closes every relayed connection, joins the threads, and
 * returns the record: {"hosts":[{"host","port","address","bytes_sent",
 * "bytes_received","connections"}],"refused":[{"host","port","reason"}]}
 * (owned by the caller); *bytes is the total relayed both ways. */
json_object *wr_egress_proxy_stop(wr_egress_proxy *p, uint64_t *bytes);

#endif
