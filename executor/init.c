/* warrant-init: pid 1 of every sandbox (bwrap --as-pid-1 execs it after
 * the mounts and the seccomp filter are in place).
 *
 * It reads its configuration (the command's environment and the Landlock
 * rules) from a pipe, applies Landlock, starts the command, reaps every
 * process of the pid namespace and reports the command's raw wait status
 * on the status pipe. So the executor learns how the command ended from a
 * real wait status, never from the command's output or exit-code
 * conventions, and secrets never sit in an environ outside the sandbox.
 * Protocol: init_proto.h. Plain libc only: it runs on every command. */
#include "executor/init_proto.h"
#include "executor/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_SETUP 127 /* init's own exit code when the command never ran */
#define MAX_ENV    4096
#define MAX_RULES  1024
#define ARG_FIRST  4 /* argv: init STATUS_FD CONFIG_FD EXE ARGV0 ... */

typedef struct config {
    char *buf;
    size_t len;
    char *env[MAX_ENV + 1];
    int nenv;
    wr_ll_rule rules[MAX_RULES];
    int nrules;
    int abi;
    int tcp; /* WR_LL_TCP_ANY, WR_LL_TCP_NONE or a port (landlock.h) */
} config;

static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
    char line[256];
    int n = snprintf(line, sizeof line, "{ \"" WR_INIT_KEY "\": ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
    va_end(ap);
    memcpy(line + n, " }\n", 3);
    if (write(fd, line, (size_t)n + 3) < 0)
        return; /* nobody listens any more: nothing else to tell */
}

static void fail_setup(int sfd, const char *stage, int e)
{
    report(sfd, "\"" WR_INIT_SETUP_FAILED "\", \"stage\": \"%s\", \"errno\": %d", stage, e);
    _exit(EXIT_SETUP);
}

/* Reads the whole configuration pipe (the executor writes it once the
 * run may start and closes its end); it must end with WR_CFG_END. */
static int read_config(int fd, config *c)
{
    size_t cap = 4096, len = 0;
    c->buf = malloc(cap);
    for (;;) {
        if (!c->buf)
            return -1;
        ssize_t n = read(fd, c->buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len + 1 == cap) {
            if (cap >= WR_INIT_CONFIG_MAX)
                return errno = E2BIG, -1;
            cap *= 2;
            c->buf = realloc(c->buf, cap);
        }
    }
    close(fd);
    c->buf[len] = 0;
    c->len = len;
    bool complete = false;
    for (char *p = c->buf; p < c->buf + len; p += strlen(p) + 1) {
        char tag = *p;
        const char *v = p + 1;
        wr_ll_kind kind;
        if (complete)
            return errno = EINVAL, -1; /* nothing after the end */
        if (tag == WR_CFG_END)
            complete = true;
        else if (tag == WR_CFG_ENV && c->nenv < MAX_ENV)
            c->env[c->nenv++] = p + 1;
        else if (tag == WR_CFG_LANDLOCK_ABI)
            c->abi = atoi(v);
        else if (tag == WR_CFG_TCP)
            c->tcp = atoi(v);
        else if (c->nrules < MAX_RULES && wr_ll_kind_of(tag, &kind))
            c->rules[c->nrules++] = (wr_ll_rule){kind, v};
        else
            return errno = EINVAL, -1; /* unknown tag or too many: never run half-configured */
    }
    if (!complete)
        return errno = ENODATA, -1; /* closed unwritten or cut short: the run was stopped */
    c->env[c->nenv] = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc <= ARG_FIRST)
        return EXIT_SETUP;
    int sfd = atoi(argv[1]), cfd = atoi(argv[2]);
    const char *exe = argv[3];
    /* Not dumpable: the command (same uid) cannot open /proc/1/mem or fds. */
    if (fcntl(sfd, F_SETFD, FD_CLOEXEC) != 0)
        return EXIT_SETUP;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fail_setup(sfd, "dumpable", errno);
    config *c = calloc(1, sizeof *c); /* large for a stack */
    if (!c || read_config(cfd, c) != 0)
        fail_setup(sfd, "config", c ? errno : ENOMEM);
    const char *stage = NULL;
    if (c->abi > 0 && wr_landlock_apply(c->abi, c->rules, c->nrules, c->tcp, &stage) != 0)
        fail_setup(sfd, stage, errno);

    /* posix_spawn starts the command with clone(CLONE_VM|CLONE_VFORK): no
     * page tables copied, and its result is the exec's own errno once the
     * command is running or could not be, with no pipe to wait on. */
    posix_spawnattr_t attr;
    sigset_t none;
    sigemptyset(&none);
    if (posix_spawnattr_init(&attr) != 0 || posix_spawnattr_setsigmask(&attr, &none) != 0 ||
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK) != 0)
        fail_setup(sfd, "spawn", ENOMEM);
    pid_t child = -1;
    int e = posix_spawn(&child, exe, NULL, &attr, argv + ARG_FIRST, c->env);
    posix_spawnattr_destroy(&attr);
    if (e)
        report(sfd, "\"" WR_INIT_EXEC_FAILED "\", \"errno\": %d", e);
    else
        report(sfd, "\"" WR_INIT_STARTED "\"");
    explicit_bzero(c->buf, c->len); /* the environment (secrets) went to the command */
    free(c->buf);
    free(c);
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return EXIT_SETUP; /* no child left: the command never started */
        if (w != child)
            continue; /* an orphan of the namespace, reaped */
        if (!e)
            report(sfd, "\"" WR_INIT_EXITED "\", \"wait-status\": %d", st);
        /* Leaving kills whatever the command left behind in the namespace. */
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
}
