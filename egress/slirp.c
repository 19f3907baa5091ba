/* network: full — user-mode NAT with slirp4netns. The run's namespace gets
 * a tap device whose traffic slirp4netns turns into ordinary sockets on the
 * host; --disable-host-loopback keeps 127.0.0.1 services of the host out
 * of reach (the gateway 10.0.2.2 does not lead there), and the namespace's
 * own abstract socket table hides the host's. */
#include "egress/egress.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLIRP_READY_MS     5000
#define SLIRP_MTU          "65520"
#define SLIRP_STOP_POLLS   100 /* x 10 ms */
#define SLIRP_STOP_POLL_US 10000
/* fds slirp4netns inherits, by number */
enum {
    SLIRP_FD_NETNS = 3,
    SLIRP_FD_USERNS,
    SLIRP_FD_EXIT,
    SLIRP_FD_READY,
    SLIRP_FD_LAST
};

extern char **environ;

int wr_slirp_start(const wr_netns *ns, wr_slirp *s, wr_error *err)
{
    *s = (wr_slirp){.pid = -1, .exit_fd = -1};
    int exitp[2] = {-1, -1}, readyp[2] = {-1, -1}, hi[SLIRP_FD_LAST] = {0};
    int rc = WR_OK;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (pipe2(exitp, O_CLOEXEC) != 0 || pipe2(readyp, O_CLOEXEC) != 0) {
        rc = wr_errorf(err, WR_E_IO, "", "slirp4netns: pipe: %s", strerror(errno));
        goto out;
    }
    /* Sources above the target numbers first, so no dup2 clobbers a
     * source still to be installed; dup2 to the target clears CLOEXEC. */
    const int src[SLIRP_FD_LAST] = {[SLIRP_FD_NETNS] = ns->netns_fd,
                                    [SLIRP_FD_USERNS] = ns->userns_fd >= 0 ? ns->userns_fd : ns->netns_fd,
                                    [SLIRP_FD_EXIT] = exitp[0],
                                    [SLIRP_FD_READY] = readyp[1]};
    for (int fd = SLIRP_FD_NETNS; fd < SLIRP_FD_LAST; fd++) {
        hi[fd] = fcntl(src[fd], F_DUPFD_CLOEXEC, SLIRP_FD_LAST);
        if (hi[fd] < 0) {
            rc = wr_errorf(err, WR_E_IO, "", "slirp4netns: dup: %s", strerror(errno));
            goto out;
        }
        posix_spawn_file_actions_adddup2(&fa, hi[fd], fd);
    }
    /* Its chatter (interface, seccomp notes) is not the command's output. */
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    char netns_path[32], userns_opt[48], exit_opt[24], ready_opt[24];
    snprintf(netns_path, sizeof netns_path, "/proc/self/fd/%d", SLIRP_FD_NETNS);
    snprintf(userns_opt, sizeof userns_opt, "--userns-path=/proc/self/fd/%d", SLIRP_FD_USERNS);
    snprintf(exit_opt, sizeof exit_opt, "--exit-fd=%d", SLIRP_FD_EXIT);
    snprintf(ready_opt, sizeof ready_opt, "--ready-fd=%d", SLIRP_FD_READY);
    char *argv[16];
    int n = 0;
    argv[n++] = WR_SLIRP4NETNS;
    argv[n++] = "--configure";
    argv[n++] = "--mtu=" SLIRP_MTU;
    argv[n++] = "--disable-host-loopback";
    argv[n++] = "--enable-seccomp";
    argv[n++] = "--netns-type=path";
    if (ns->userns_fd >= 0)
        argv[n++] = userns_opt;
    else
        argv[n++] = "--enable-sandbox"; /* as root: drops its capabilities (unprivileged it has none; the
                                           option then fails on setegid(0)) */
    argv[n++] = exit_opt;
    argv[n++] = ready_opt;
    argv[n++] = netns_path;
    argv[n++] = "tap0";
    argv[n] = NULL;
    int e = posix_spawn(&s->pid, WR_SLIRP4NETNS, &fa, NULL, argv, environ);
    if (e != 0) {
        s->pid = -1;
        rc = wr_errorf(err, WR_E_IO, "", "slirp4netns: spawn: %s", strerror(e));
        goto out;
    }
    s->exit_fd = exitp[1];
    exitp[1] = -1;
    close(readyp[1]);
    readyp[1] = -1;
    /* slirp4netns writes "1" once tap0 is up and configured. */
    struct pollfd pf = {.fd = readyp[0], .events = POLLIN};
    char c = 0;
    if (poll(&pf, 1, SLIRP_READY_MS) != 1 || read(readyp[0], &c, 1) != 1 || c != '1') {
        rc = wr_errorf(err, WR_E_IO, "", "slirp4netns did not bring the network up within %d ms", SLIRP_READY_MS);
        wr_slirp_stop(s);
    }
out:
    posix_spawn_file_actions_destroy(&fa);
    for (int fd = SLIRP_FD_NETNS; fd < SLIRP_FD_LAST; fd++)
        if (hi[fd] > 0)
            close(hi[fd]);
    int left[] = {exitp[0], exitp[1], readyp[0], readyp[1]};
    for (size_t i = 0; i < 4; i++)
        if (left[i] >= 0)
            close(left[i]);
    return rc;
}

void wr_slirp_stop(wr_slirp *s)
{
    if (s->exit_fd >= 0)
        close(s->exit_fd); /* slirp4netns exits when it sees EOF */
    s->exit_fd = -1;
    if (s->pid > 0) {
        int st;
        bool reaped = false;
        /* Bounded wait: a slirp4netns that does not notice is killed. */
        for (int i = 0; i < SLIRP_STOP_POLLS && !reaped; i++) {
            reaped = waitpid(s->pid, &st, WNOHANG) != 0;
            if (!reaped)
                usleep(SLIRP_STOP_POLL_US);
        }
        if (!reaped && kill(s->pid, SIGKILL) == 0)
            waitpid(s->pid, &st, 0);
    }
    s->pid = -1;
}
