/* warrant-launch: becomes one command's bwrap (launch_proto.h).
 *
 * Started ahead of the run so that joining the run's cgroups — on a v1
 * hierarchy the first cgroup.procs write after a quiet spell waits for an
 * RCU grace period, 5-15 ms — is paid off the request's path. It joins
 * them before it reads anything, so everything it later starts is counted
 * and killed with the run; the executor writes the limits before it sends
 * the launch. It holds nothing of the server's (a fresh exec) and serves
 * exactly one command, then is gone. */
#include "executor/launch_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CAP_LAST_GUESS 63 /* the loop stops at the kernel's last capability (EINVAL) */
#define MAX_CGROUPS    8  /* one per hierarchy the executor uses */

/* A launch failure on the command's stderr (or, before its fds are in
 * place, on the server's), like the executor's own launch errors. */
static _Noreturn void fail(const char *what)
{
    dprintf(2, "warrant: sandbox launch failed: %s: errno %d\n", what, errno);
    _exit(127);
}

static bool write_full(int fd, const void *buf, size_t len)
{
    for (size_t put = 0; put < len;) {
        ssize_t n = write(fd, (const char *)buf + put, len - put);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        put += (size_t)n;
    }
    return true;
}

typedef struct launch {
    wr_launch_msg m;
    int fds[WR_LAUNCH_MAX_FDS];
    int nfds;
    char *args;
    char **argv;
} launch;

/* One message: the header with its fds, then the argv bytes. false: EOF
 * before a header (the pool closed: *eof) or a malformed message. */
static bool receive(int sock, launch *l, bool *eof)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * WR_LAUNCH_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {&l->m, sizeof l->m};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    *eof = n == 0;
    if (n <= 0 || (mh.msg_flags & MSG_CTRUNC))
        return false;
    l->nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(l->fds + l->nfds, CMSG_DATA(c), (size_t)k * sizeof(int));
            l->nfds += k;
        }
    const wr_launch_msg *m = &l->m;
    if ((size_t)n < sizeof l->m && !wr_launch_read_full(sock, (char *)&l->m + n, sizeof l->m - (size_t)n))
        return false;
    int extra = (m->userns >= 0) + (m->netns >= 0);
    if (m->magic != WR_LAUNCH_MAGIC || m->nslots > WR_LAUNCH_MAX_FDS || (int)m->nslots + extra != l->nfds ||
        (m->userns >= 0 && m->userns < (int32_t)m->nslots) || (m->netns >= 0 && m->netns < (int32_t)m->nslots) ||
        m->userns >= l->nfds || m->netns >= l->nfds || m->nrl > WR_LAUNCH_MAX_RL || m->ngroups > 1 || m->argc == 0 ||
        m->argc > WR_LAUNCH_MAX_ARGS || m->argv_bytes > WR_LAUNCH_MAX_ARGV_BYTES)
        return false;
    l->args = malloc(m->argv_bytes + 1);
    l->argv = calloc(m->argc + 1, sizeof *l->argv);
    if (!l->args || !l->argv || !wr_launch_read_full(sock, l->args, m->argv_bytes))
        return false;
    l->args[m->argv_bytes] = 0;
    char *p = l->args, *end = l->args + m->argv_bytes;
    for (uint32_t i = 0; i < m->argc; i++) {
        if (p >= end)
            return false;
        l->argv[i] = p;
        p += strlen(p) + 1;
    }
    return p == end;
}

/* Everything between the launch and bwrap's exec; never returns. */
static _Noreturn void become(const launch *l, pid_t parent)
{
    const wr_launch_msg *m = &l->m;
    /* While the slots are still where they arrived and we are still
     * privileged (as root, setns needs CAP_SYS_ADMIN). */
    if (m->userns >= 0 && setns(l->fds[m->userns], CLONE_NEWUSER) != 0)
        fail("join the run's user namespace");
    if (m->netns >= 0 && setns(l->fds[m->netns], CLONE_NEWNET) != 0)
        fail("join the run's network namespace");
    /* Move every fd above the slot range first so that installing slot i
     * cannot clobber a source still needed for slot j. */
    int tmp[WR_LAUNCH_MAX_FDS];
    int nslots = (int)m->nslots;
    for (int i = 0; i < nslots; i++)
        if ((tmp[i] = fcntl(l->fds[i], F_DUPFD_CLOEXEC, nslots)) < 0)
            fail("dup");
    for (int i = 0; i < nslots; i++)
        if (dup2(tmp[i], i) < 0)
            fail("dup2");
    syscall(SYS_close_range, (unsigned)nslots, ~0U, 0);

    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* Ignored signals stay ignored across exec (SIGPIPE in servers). */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            signal(sig, SIG_DFL);
    }
    for (uint32_t i = 0; i < m->nrl; i++) {
        struct rlimit r = {(rlim_t)m->rl[i].v, (rlim_t)m->rl[i].v};
        if (setrlimit(m->rl[i].res, &r) != 0)
            fail("setrlimit");
    }
    if (m->flags & WR_LAUNCH_DROP_ROOT) {
        /* Empty the bounding set while we still hold CAP_SETPCAP, then
         * become the run_as user with only the groups given. */
        for (int cap = 0; cap <= CAP_LAST_GUESS; cap++)
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
                if (errno == EINVAL)
                    break;
                fail("drop capability bounding set");
            }
        gid_t groups[1] = {(gid_t)m->groups[0]};
        if (setgroups(m->ngroups, groups) != 0)
            fail("setgroups");
        if (setresgid(m->gid, m->gid, m->gid) != 0)
            fail("setresgid");
        if (setresuid(m->uid, m->uid, m->uid) != 0)
            fail("setresuid");
        if (getuid() == 0 || geteuid() == 0)
            fail("still root");
    }
    umask((mode_t)m->umask);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail("no_new_privs");
    /* If warrant is killed, bwrap dies with it (and the sandbox with bwrap,
     * --die-with-parent). Armed last, since a uid change clears it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        fail("parent-death signal");
    if (getppid() != parent)
        fail("warrant exited");
    static char *const no_env[] = {NULL};
    execve(l->argv[0], l->argv, no_env);
    fail("exec bwrap");
}

static void release(launch *l)
{
    for (int i = 0; i < l->nfds; i++)
        close(l->fds[i]);
    free(l->args);
    free(l->argv);
    memset(l, 0, sizeof *l);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    pid_t parent = (pid_t)strtol(argv[1], NULL, 10);
    int ncg = (int)strtol(argv[2], NULL, 10);
    if (ncg < 0 || ncg > MAX_CGROUPS)
        return 2;
    /* The spawner armed it before exec; a launcher outliving warrant
     * would hold a cgroup no one removes. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
        return 1;
    /* Into the run's cgroups before anything else. */
    unsigned char ready = 0;
    for (int i = 0; i < ncg; i++) {
        if (!ready && write(WR_LAUNCH_CG_FD + i, "0", 1) != 1)
            ready = (unsigned char)(errno ? errno : EIO);
        close(WR_LAUNCH_CG_FD + i);
    }
    if (!write_full(WR_LAUNCH_SOCK_FD, &ready, 1) || ready)
        return 1;
    for (;;) {
        launch l = {0};
        bool eof = false;
        if (!receive(WR_LAUNCH_SOCK_FD, &l, &eof)) {
            if (eof)
                return 0; /* the pool is closing */
            errno = EPROTO;
            fail("malformed launch message");
        }
        if (!(l.m.flags & WR_LAUNCH_FORK))
            become(&l, parent);
        /* The child is the executor's, like the launcher: it waits for it
         * and gets its parent-death signal. */
        pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
        if (pid == 0)
            become(&l, parent);
        int32_t answer = pid > 0 ? (int32_t)pid : -errno;
        release(&l);
        if (!write_full(WR_LAUNCH_SOCK_FD, &answer, sizeof answer))
            return 1;
    }
}
