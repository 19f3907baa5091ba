/* The run's private network namespace, made before bwrap starts so that
 * something of ours can live inside it: the proxy's listening socket
 * (allowlisted) or slirp4netns's tap device (full). bwrap then runs with
 * --share-net inside it, and the command's user namespace does not own it,
 * so the command cannot reconfigure it. */
#include "egress/egress.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_STACK_SIZE     (64 * 1024)
#define WR_EGRESS_BACKLOG 128
/* The namespace's default TCP congestion control (a per-namespace sysctl
 * since Linux 4.15; before, the file is absent outside the host's). */
#define NS_TCP_CC_SYSCTL "/proc/sys/net/ipv4/tcp_congestion_control"
#define NS_TCP_CC        "reno"

/* Shared with the CLONE_VM child: it fills in the fds (the fd table is
 * shared too, CLONE_FILES) and the failing step. */
typedef struct ns_job {
    bool userns, with_proxy;
    uid_t uid;
    gid_t gid;
    wr_netns *ns;
    int scratch_fd; /* the child's ioctl socket: closed by the parent if a step fails */
    const char *step;
    int err;
} ns_job;

/* "ID ID 1" for uid_map/gid_map, without stdio (the child may not use it). */
static void id_map(char *out, unsigned id)
{
    char digits[16];
    int n = 0;
    do
        digits[n++] = (char)('0' + id % 10);
    while ((id /= 10) && n < (int)sizeof digits);
    char *p = out;
    for (int rep = 0; rep < 2; rep++) {
        for (int i = n - 1; i >= 0; i--)
            *p++ = digits[i];
        *p++ = ' ';
    }
    *p++ = '1';
    *p = '\0';
}

static int write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

#define NS_FAIL(what)                                                                                                  \
    do {                                                                                                               \
        j->step = what;                                                                                                \
        j->err = errno;                                                                                                \
        _exit(1);                                                                                                      \
    } while (0)

/* Runs in a CLONE_VM | CLONE_VFORK | CLONE_FILES child: plain syscalls and
 * stack buffers only. A user namespace cannot be made by a threaded
 * process, hence a child rather than the executing thread. */
static int ns_child(void *arg)
{
    ns_job *j = arg;
    wr_netns *ns = j->ns;
    if (unshare(CLONE_NEWNET | (j->userns ? CLONE_NEWUSER : 0)) != 0)
        NS_FAIL("unshare");
    if (j->userns) {
        /* Only our own uid and gid: the namespace grants nothing on the
         * host, it only lets us own the network namespace. */
        char map[48];
        if (write_str("/proc/self/setgroups", "deny") != 0)
            NS_FAIL("setgroups deny");
        id_map(map, (unsigned)j->uid);
        if (write_str("/proc/self/uid_map", map) != 0)
            NS_FAIL("uid_map");
        id_map(map, (unsigned)j->gid);
        if (write_str("/proc/self/gid_map", map) != 0)
            NS_FAIL("gid_map");
        if ((ns->userns_fd = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC)) < 0)
            NS_FAIL("open user namespace");
    }
    /* Every fd lands in ns or scratch_fd as soon as it exists: the fd
     * table is the parent's, which closes them if a later step fails. */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", sizeof "lo");
    if ((j->scratch_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        ioctl(j->scratch_fd, SIOCGIFFLAGS, &ifr) != 0)
        NS_FAIL("loopback flags");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(j->scratch_fd, SIOCSIFFLAGS, &ifr) != 0)
        NS_FAIL("loopback up");
    if (j->with_proxy) {
        /* Every TCP connection in this namespace runs over its loopback, to
         * or from the proxy: there is no path to estimate. A pacing
         * algorithm such as BBR (a common host default, which a new
         * namespace inherits) still paces, so the receiver's window never
         * grows: a 100 MiB download spent 73 % of its time limited by a
         * 150 KiB window (docs/egress.md). Reno, which any namespace may
         * choose, sends at the window. Best effort: where /proc/sys is
         * read-only only speed suffers. */
        (void)write_str(NS_TCP_CC_SYSCTL, NS_TCP_CC);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(WR_EGRESS_PROXY_PORT)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if ((ns->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            bind(ns->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(ns->listen_fd, WR_EGRESS_BACKLOG) != 0)
            NS_FAIL("proxy listener");
    }
    if ((ns->netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
        NS_FAIL("open network namespace");
    /* /proc/self/net is bound to the opener's namespace: kept open, it
     * reads this namespace's counters after everyone has left it. */
    if ((ns->snmp_fd = open("/proc/self/net/snmp", O_RDONLY | O_CLOEXEC)) < 0)
        NS_FAIL("open net/snmp");
    _exit(0);
}

int wr_netns_create(bool with_proxy, wr_netns *ns, wr_error *err)
{
    *ns = (wr_netns){.userns_fd = -1, .netns_fd = -1, .listen_fd = -1, .snmp_fd = -1};
    ns_job j = {.userns = geteuid() != 0,
                .with_proxy = with_proxy,
                .uid = geteuid(),
                .gid = getegid(),
                .ns = ns,
                .scratch_fd = -1};
    void *stack = mmap(NULL, NS_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return wr_errorf(err, WR_E_NOMEM, "", "network namespace: %s", strerror(errno));
    pid_t pid = clone(ns_child, (char *)stack + NS_STACK_SIZE, CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &j);
    int e = errno, st = 0;
    if (pid > 0 && waitpid(pid, &st, 0) < 0 && errno != ECHILD)
        st = 1;
    munmap(stack, NS_STACK_SIZE);
    if (j.scratch_fd >= 0)
        close(j.scratch_fd);
    if (pid < 0)
        return wr_errorf(err, WR_E_IO, "", "network namespace: clone: %s", strerror(e));
    if (j.step || st != 0) {
        wr_netns_close(ns);
        return wr_errorf(err, WR_E_DENIED, "", "cannot build the run's private network namespace (%s: %s)%s",
                         j.step ? j.step : "child", strerror(j.err),
                         j.userns ? "; unprivileged this needs user namespaces (kernel.unprivileged_userns_clone, "
                                    "user.max_user_namespaces)"
                                  : "");
    }
    return WR_OK;
}

void wr_netns_close(wr_netns *ns)
{
    int *fds[] = {&ns->userns_fd, &ns->netns_fd, &ns->listen_fd, &ns->snmp_fd};
    for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}

/* The value under `key` on the second of the two "Tcp:"/"Udp:" lines
 * (names, then numbers). */
static uint64_t snmp_field(const char *text, const char *proto, const char *key)
{
    size_t pl = strlen(proto);
    const char *names = NULL;
    for (const char *l = text; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] ? 1 : 0)) {
        if (strncmp(l, proto, pl) || l[pl] != ':')
            continue;
        if (!names) {
            names = l;
            continue;
        }
        /* Walk both lines in step. */
        const char *n = names + pl + 1, *v = l + pl + 1;
        while (*n && *n != '\n' && *v && *v != '\n') {
            n += strspn(n, " ");
            v += strspn(v, " ");
            size_t nl = strcspn(n, " \n"), vl = strcspn(v, " \n");
            if (nl == strlen(key) && !strncmp(n, key, nl))
                return strtoull(v, NULL, 10);
            n += nl;
            v += vl;
        }
        return 0;
    }
    return 0;
}

uint64_t wr_netns_packets_out(const wr_netns *ns)
{
    char buf[8192];
    if (ns->snmp_fd < 0)
        return 0;
    ssize_t n = pread(ns->snmp_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return snmp_field(buf, "Tcp", "OutSegs") + snmp_field(buf, "Udp", "OutDatagrams");
}
