/* Warm launchers: a warrant-launch process (launcher.c) per command,
 * started in the command's fresh cgroups ahead of the request.
 *
 * Why: a process entering a cgroup takes the kernel's global
 * cgroup_threadgroup_rwsem for writing, and the first writer after a
 * quiet spell waits for an RCU grace period (5-15 ms measured on a v1
 * hierarchy), which every agent run, seconds apart, used to pay. A
 * launcher pays it before the run exists; the run writes its limits into
 * the launcher's cgroups, then releases it. On v2 the launcher is cloned
 * straight into its cgroup (CLONE_INTO_CGROUP) and there is no attach at
 * all. The guarantee is the old one: every process of the command is in
 * its limited cgroups before bwrap runs, because the launcher joins them
 * before it reads its launch and the limits are written before the launch
 * is sent. */
#include "executor/executor_internal.h"
#include "executor/launch_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

#define READY_TIMEOUT_MS 10000        /* a join waits for one grace period; far less than this */
#define RETRY_MS         1000         /* after a failed start: the worker does not spin */
#define SETTLE_MS        20           /* after a command: its result is still being sealed and sent */
#define SPAWN_STACK      (256 * 1024) /* room for a sanitizer build's frames */
#define NS_PER_MS        1000000L
#define NS_PER_S         1000000000L

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Every rlimit of a segment goes in its message: none can be left out. */
_Static_assert(sizeof((wr_launch_spec *)0)->rl / sizeof((wr_launch_spec *)0)->rl[0] <= WR_LAUNCH_MAX_RL,
               "wr_launch_spec holds more rlimits than a launch message");

/* ---- one launcher --------------------------------------------------------- */

/* What the child between clone and exec needs: plain syscalls only (it
 * shares our memory on the vfork path, and is a copy of a threaded process
 * on the clone3 path). */
typedef struct spawn_args {
    const char *path;
    char *const *argv;
    int sock, devnull;
    int cg[WR_CG_NCTRL];
    int ncg;
    pid_t parent;
} spawn_args;

/* Not instrumented by ASan: it runs on a stack of our making that the
 * sanitizer does not know, and never returns to unpoison its frames. */
__attribute__((no_sanitize_address)) static int spawn_child(void *arg)
{
    const spawn_args *a = arg;
    static char *const no_env[] = {NULL};
    /* 0, 1: /dev/null; 2 stays (launch errors before the command's fds are
     * in place go to our log); 3: the socket; 4..: the cgroups to join. */
    int top = WR_LAUNCH_CG_FD + a->ncg, src[WR_LAUNCH_CG_FD + WR_CG_NCTRL], tmp[WR_LAUNCH_CG_FD + WR_CG_NCTRL];
    src[0] = src[1] = a->devnull;
    src[2] = -1;
    src[WR_LAUNCH_SOCK_FD] = a->sock;
    for (int i = 0; i < a->ncg; i++)
        src[WR_LAUNCH_CG_FD + i] = a->cg[i];
    for (int i = 0; i < top; i++)
        if (src[i] >= 0 && (tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, top)) < 0)
            _exit(127);
    for (int i = 0; i < top; i++)
        if (src[i] >= 0 && dup2(tmp[i], i) < 0)
            _exit(127);
    syscall(SYS_close_range, (unsigned)top, ~0U, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != a->parent)
        _exit(127);
    execve(a->path, a->argv, no_env);
    _exit(127);
}

/* On v2: a child born in the cgroup (no attach, no grace period). A copy
 * of this process, not sharing its memory: clone3 has no libc wrapper that
 * gives the child its own stack. -1 with errno ENOSYS/E2BIG/EINVAL where
 * the kernel lacks it. */
static pid_t clone_into(int cgroup_fd, spawn_args *a)
{
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.cgroup = (uint64_t)cgroup_fd;
    pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
    if (pid == 0)
        spawn_child(a);
    return pid;
}

/* Elsewhere: a vfork-style child (no page-table copy of a large server)
 * that execs the launcher at once; the launcher joins its cgroups itself,
 * so we do not wait for that. */
static pid_t clone_vfork(spawn_args *a)
{
    void *stack = mmap(NULL, SPAWN_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -1;
#ifdef __SANITIZE_ADDRESS__
    /* An earlier mapping at this address may have left poisoned shadow. */
    ASAN_UNPOISON_MEMORY_REGION(stack, SPAWN_STACK);
#endif
    pid_t pid = clone(spawn_child, (char *)stack + SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
    int e = errno;
    munmap(stack, SPAWN_STACK);
    errno = e;
    return pid;
}

static void launcher_init(wr_launcher *l)
{
    memset(l, 0, sizeof *l);
    l->pid = -1;
    l->pidfd = l->sock = -1;
    wr_cgroup_init(&l->cg);
}

int wr_launcher_start(const wr_cg_plan *cg, const wr_ctx *ctx, wr_launcher *l, wr_error *err)
{
    launcher_init(l);
    char path[PATH_MAX], parent[24], ncg[8];
    int sp[2] = {-1, -1}, devnull = -1;
    int rc = wr_exec_helper_path(WR_LAUNCH_NAME, path, sizeof path, err);
    if (rc == WR_OK)
        rc = wr_cgroup_make(cg, ctx, &l->cg, err);
    if (rc == WR_OK && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0 ||
                        (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0))
        rc = wr_errorf(err, WR_E_IO, "", "warrant-launch: %s", strerror(errno));
    if (rc != WR_OK)
        goto out;
    spawn_args a = {.path = path, .sock = sp[1], .devnull = devnull, .parent = getpid()};
    char *argv[] = {path, parent, ncg, NULL};
    a.argv = argv;
    snprintf(parent, sizeof parent, "%d", (int)a.parent);
    pid_t pid = -1;
    if (l->cg.mode == WR_CG_V2) {
        snprintf(ncg, sizeof ncg, "0"); /* born inside: nothing to join */
        pid = clone_into(l->cg.procs_fd[0], &a);
        if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL)) {
            /* before Linux 5.7: the launcher joins through cgroup.procs */
            if ((a.cg[0] = openat(l->cg.procs_fd[0], "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0) {
                rc = wr_errorf(err, WR_E_IO, "", "cgroup %s/cgroup.procs: %s", l->cg.dir[0], strerror(errno));
                goto out;
            }
            a.ncg = 1;
        } else if (pid < 0) {
            /* never started outside its cgroup */
            rc = wr_errorf(err, WR_E_IO, "", "clone3 into %s: %s", l->cg.dir[0], strerror(errno));
            goto out;
        }
    } else {
        for (int i = 0; i < WR_CG_NCTRL; i++)
            if (l->cg.procs_fd[i] >= 0)
                a.cg[a.ncg++] = l->cg.procs_fd[i];
    }
    if (pid < 0) {
        snprintf(ncg, sizeof ncg, "%d", a.ncg);
        pid = clone_vfork(&a);
    }
    int e = errno;
    if (l->cg.mode == WR_CG_V2 && a.ncg)
        close(a.cg[0]);
    if (pid < 0) {
        rc = wr_errorf(err, WR_E_IO, "", "starting warrant-launch: %s", strerror(e));
        goto out;
    }
    l->pid = pid;
    l->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    l->sock = sp[0];
    sp[0] = -1;
out:
    /* the launcher holds its own copies of what it joins */
    for (int i = 0; i < WR_CG_NCTRL; i++)
        if (l->cg.procs_fd[i] >= 0)
            close(l->cg.procs_fd[i]), l->cg.procs_fd[i] = -1;
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    if (devnull >= 0)
        close(devnull);
    if (rc != WR_OK)
        wr_launcher_discard(l, true);
    return rc;
}

int wr_launcher_ready(wr_launcher *l, wr_error *err)
{
    if (l->ready)
        return WR_OK;
    struct pollfd pf = {.fd = l->sock, .events = POLLIN};
    unsigned char answer = 0;
    int pr;
    do
        pr = poll(&pf, 1, READY_TIMEOUT_MS);
    while (pr < 0 && errno == EINTR);
    if (pr == 0)
        return wr_errorf(err, WR_E_IO, "", "warrant-launch did not join its cgroups within %d ms", READY_TIMEOUT_MS);
    ssize_t n = pr > 0 ? read(l->sock, &answer, 1) : -1;
    if (n != 1)
        return wr_errorf(err, WR_E_IO, "", "warrant-launch exited before joining its cgroups");
    if (answer)
        return wr_errorf(err, WR_E_IO, "", "warrant-launch could not join its cgroups: %s", strerror(answer));
    l->ready = true;
    return WR_OK;
}

/* Sends everything of iov, the fds with the first byte. */
static int send_all(int sock, struct iovec *iov, int niov, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * WR_LAUNCH_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
    if (nfds) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    while (mh.msg_iovlen) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        mh.msg_control = NULL; /* the fds went with the first byte */
        mh.msg_controllen = 0;
        while (mh.msg_iovlen && (size_t)n >= mh.msg_iov->iov_len) {
            n -= (ssize_t)mh.msg_iov->iov_len;
            mh.msg_iov++;
            mh.msg_iovlen--;
        }
        if (mh.msg_iovlen) {
            mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + n;
            mh.msg_iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int wr_launcher_launch(wr_launcher *l, const wr_launch_spec *s, bool fork, pid_t *pid, wr_error *err)
{
    *pid = -1;
    wr_launch_msg m;
    memset(&m, 0, sizeof m);
    m.magic = WR_LAUNCH_MAGIC;
    m.flags = (fork ? WR_LAUNCH_FORK : 0) | (s->drop_root ? WR_LAUNCH_DROP_ROOT : 0);
    m.uid = s->uid;
    m.gid = s->gid;
    m.groups[0] = s->group;
    m.ngroups = (uint32_t)s->ngroups;
    m.umask = s->umask;
    m.userns = m.netns = -1;
    int fds[WR_LAUNCH_MAX_FDS], nfds = 0;
    if (s->nslots > WR_LAUNCH_MAX_FDS - 2)
        return wr_errorf(err, WR_E_LIMIT, "", "too many declared paths for one sandbox");
    for (int i = 0; i < s->nslots; i++)
        fds[nfds++] = s->slots[i];
    m.nslots = (uint32_t)s->nslots;
    if (s->net && s->net->userns_fd >= 0)
        m.userns = nfds, fds[nfds++] = s->net->userns_fd;
    if (s->net)
        m.netns = nfds, fds[nfds++] = s->net->netns_fd;
    for (int i = 0; i < s->nrl; i++) {
        m.rl[i].res = s->rl[i].res;
        m.rl[i].v = (uint64_t)s->rl[i].v;
        m.nrl++;
    }
    size_t bytes = 0;
    for (char *const *a = s->argv; *a; a++, m.argc++)
        bytes += strlen(*a) + 1;
    if (bytes > WR_LAUNCH_MAX_ARGV_BYTES || m.argc > WR_LAUNCH_MAX_ARGS)
        return wr_errorf(err, WR_E_LIMIT, "", "the sandbox's argv is too long (%zu bytes)", bytes);
    m.argv_bytes = (uint32_t)bytes;
    char *args = malloc(bytes ? bytes : 1);
    if (!args)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    size_t off = 0;
    for (char *const *a = s->argv; *a; a++) {
        size_t n = strlen(*a) + 1;
        memcpy(args + off, *a, n);
        off += n;
    }
    struct iovec iov[2] = {{&m, sizeof m}, {args, bytes}};
    int sent = send_all(l->sock, iov, 2, fds, nfds), e = errno;
    explicit_bzero(args, bytes);
    free(args);
    if (sent != 0)
        return wr_errorf(err, WR_E_IO, "", "warrant-launch: %s", strerror(e));
    if (!fork) {
        /* it is becoming bwrap: its pid is the segment's, reaped by the
         * supervisor, never killed as a waiting launcher */
        *pid = l->pid;
        close(l->sock);
        if (l->pidfd >= 0)
            close(l->pidfd);
        l->sock = l->pidfd = -1;
        l->pid = -1;
        return WR_OK;
    }
    int32_t answer = 0;
    if (!wr_launch_read_full(l->sock, &answer, sizeof answer))
        return wr_errorf(err, WR_E_IO, "", "warrant-launch exited before starting a pipeline segment");
    if (answer <= 0)
        return wr_errorf(err, WR_E_IO, "", "warrant-launch: clone: %s", strerror(-answer));
    *pid = (pid_t)answer;
    return WR_OK;
}

void wr_launcher_discard(wr_launcher *l, bool destroy_cg)
{
    if (l->sock >= 0)
        close(l->sock);
    if (l->pidfd >= 0) {
        siginfo_t si;
        syscall(SYS_pidfd_send_signal, l->pidfd, SIGKILL, NULL, 0);
        syscall(SYS_waitid, P_PIDFD, l->pidfd, &si, WEXITED, NULL);
        close(l->pidfd);
    } else if (l->pid > 0) {
        kill(l->pid, SIGKILL);
        waitpid(l->pid, NULL, 0);
    }
    l->sock = l->pidfd = -1;
    l->pid = -1;
    if (destroy_cg)
        wr_cgroup_destroy(&l->cg);
}

/* A waiting launcher says nothing: anything readable is its exit. */
static bool waiting(const wr_launcher *l)
{
    struct pollfd pf = {.fd = l->sock, .events = POLLIN};
    return l->sock >= 0 && poll(&pf, 1, 0) == 0;
}

/* ---- the pool ------------------------------------------------------------- */

struct wr_launch_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* a launcher was taken, or stop */
    wr_cg_plan cg;       /* the shape every launcher's cgroups have */
    wr_host_facts facts; /* probed once, for every run's plan */
    wr_cg_plan last;     /* the limits of the last run that took a launcher (no parents) */
    bool has_last;       /* written into new launchers' cgroups ahead: the next run's are likely the same */
    wr_ctx ctx;
    wr_launcher *held; /* oldest first */
    size_t n, size;
    wr_cgroup *retired; /* ended runs' cgroups, emptied, for the worker to remove */
    size_t nretired, cap_retired;
    size_t active;                /* commands between take and retire */
    struct timespec settle_until; /* after_ms: the worker stays idle until then while it holds launchers */
    bool stop, has_worker, warned;
    pthread_t worker;
};

/* The pool's deadlines, on its condition variable's clock: monotonic, so
 * that a step of the wall clock cannot hold the worker idle. */
static struct timespec after_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += ms % 1000 * NS_PER_MS;
    if (t.tv_nsec >= NS_PER_S) {
        t.tv_sec++;
        t.tv_nsec -= NS_PER_S;
    }
    return t;
}

static bool passed(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void *refill_worker(void *arg)
{
    wr_launch_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        /* Woken by the end of a command whose result is not out yet: a
         * refill or rmdir now would take the CPU from it (the woken worker
         * preempted the run's thread for 0.4-1.1 ms). Unless the pool is
         * empty, the work waits a moment. */
        if (p->n && !passed(&p->settle_until)) {
            pthread_cond_timedwait(&p->cv, &p->mu, &p->settle_until);
            continue;
        }
        if (p->nretired) {
            wr_cgroup c = p->retired[--p->nretired];
            pthread_mutex_unlock(&p->mu);
            wr_cgroup_destroy(&c);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        /* A launcher joining its cgroups holds the kernel's cgroup_mutex
         * through an RCU grace period and then blocks every fork and exit
         * on the host for a moment: done while a command starts, it slows
         * that command. So the pool is refilled once no command is running,
         * unless it is empty. */
        if (p->n >= p->size || (p->active && p->n)) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        wr_cg_plan last = p->last;
        bool limit = p->has_last;
        pthread_mutex_unlock(&p->mu);
        wr_launcher l;
        wr_error e = {0};
        int rc = wr_launcher_start(&p->cg, &p->ctx, &l, &e);
        if (rc == WR_OK) {
            rc = wr_launcher_ready(&l, &e);
            if (rc == WR_OK && limit)
                rc = wr_cgroup_limit(&l.cg, &last, &e); /* the run then finds them in place */
            if (rc != WR_OK)
                wr_launcher_discard(&l, true);
        }
        pthread_mutex_lock(&p->mu);
        if (rc == WR_OK && !p->stop) {
            p->held[p->n++] = l;
            p->warned = false;
            continue;
        }
        if (rc == WR_OK) {
            pthread_mutex_unlock(&p->mu);
            wr_launcher_discard(&l, true);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        /* Runs still work (each starts its own launcher): say so once. */
        if (!p->warned)
            wr_log(&p->ctx, WR_LOG_WARNING, "sandbox", "warm launchers unavailable, runs start their own: %s",
                   e.message);
        p->warned = true;
        struct timespec until = after_ms(RETRY_MS);
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int wr_launch_pool_new(const char *cgroup_root, size_t size, bool refill, const wr_ctx *ctx, wr_launch_pool **out,
                       wr_error *err)
{
    *out = NULL;
    if (size == 0 || size > WR_LAUNCH_POOL_MAX)
        return wr_errorf(err, WR_E_INVALID, "", "launcher pool size %zu: 1..%d", size, WR_LAUNCH_POOL_MAX);
    wr_launch_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->held = calloc(size, sizeof *p->held))) {
        free(p);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->ctx = *ctx;
    p->size = size;
    /* The launchers' cgroups: which limits apply is the run's plan,
     * written when it takes a launcher. */
    int rc = wr_host_facts_probe(cgroup_root, &p->facts, err);
    if (rc == WR_OK)
        rc = wr_cg_plan_for(&p->facts.cg, NULL, &p->cg, err);
    if (rc == WR_OK && refill) {
        p->has_worker = pthread_create(&p->worker, NULL, refill_worker, p) == 0;
        if (!p->has_worker)
            rc = wr_errorf(err, WR_E_IO, "", "launcher pool: cannot start its worker");
    }
    for (size_t i = 0; rc == WR_OK && !refill && i < size; i++) {
        rc = wr_launcher_start(&p->cg, &p->ctx, &p->held[p->n], err);
        p->n += rc == WR_OK;
    }
    if (rc != WR_OK) {
        wr_launch_pool_free(p);
        return rc;
    }
    *out = p;
    return WR_OK;
}

void wr_launch_pool_free(wr_launch_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->has_worker)
        pthread_join(p->worker, NULL);
    for (size_t i = 0; i < p->n; i++)
        wr_launcher_discard(&p->held[i], true);
    for (size_t i = 0; i < p->nretired; i++)
        wr_cgroup_destroy(&p->retired[i]);
    free(p->retired);
    wr_cg_plan_free(&p->cg);
    wr_host_facts_free(&p->facts);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->held);
    free(p);
}

const wr_host_facts *wr_launch_pool_facts(const wr_launch_pool *p, const char *cgroup_root)
{
    if (!p)
        return NULL;
    const char *mine = p->facts.cgroup_root;
    bool same = (!mine || !*mine) ? !cgroup_root || !*cgroup_root : cgroup_root && !strcmp(mine, cgroup_root);
    return same ? &p->facts : NULL;
}

size_t wr_launch_pool_pids(wr_launch_pool *p, pid_t *pids, size_t max)
{
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (; n < p->n && n < max; n++)
        pids[n] = p->held[n].pid;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Queues c for the worker to remove (p->mu held); false when there is no
 * worker to do it, or no room. */
static bool hand_over(wr_launch_pool *p, wr_cgroup *c)
{
    if (!p->has_worker || p->stop || c->mode == WR_CG_NONE)
        return false;
    if (p->nretired == p->cap_retired) {
        size_t cap = p->cap_retired ? 2 * p->cap_retired : p->size + 1;
        wr_cgroup *r = realloc(p->retired, cap * sizeof *r);
        if (!r)
            return false;
        p->retired = r, p->cap_retired = cap;
    }
    p->retired[p->nretired++] = *c;
    wr_cgroup_init(c);
    return true;
}

void wr_cgroup_retire(wr_launch_pool *p, wr_cgroup *c)
{
    /* What outlived the run dies now; only the directories' removal waits.
     * It takes the kernel's cgroup_mutex, which a launcher being put into
     * its cgroups holds for an RCU grace period: off the run's path. */
    if (c->mode != WR_CG_NONE && !wr_cgroup_empty(c))
        wr_cgroup_kill(c);
    bool queued = false;
    if (p) {
        pthread_mutex_lock(&p->mu);
        p->active--;
        p->settle_until = after_ms(SETTLE_MS);
        queued = hand_over(p, c);
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    if (!queued)
        wr_cgroup_destroy(c);
}

/* The pool's oldest launcher into *l when it was made for cg's cgroups and
 * is still alive; counts the command as active either way (p->active,
 * until wr_cgroup_retire). */
static bool take_warm(wr_launch_pool *p, const wr_cg_plan *cg, wr_launcher *l)
{
    pthread_mutex_lock(&p->mu);
    p->active++;
    while (p->n && wr_cgroup_under(&p->held[0].cg, cg)) {
        wr_launcher c = p->held[0];
        memmove(p->held, p->held + 1, --p->n * sizeof *p->held);
        p->last = *cg; /* its limits, for the launchers to come */
        memset(p->last.parent, 0, sizeof p->last.parent);
        p->has_last = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        /* One that died meanwhile (killed, OOM) is replaced, not used. */
        if ((c.ready ? waiting(&c) : wr_launcher_ready(&c, NULL) == WR_OK)) {
            *l = c;
            return true;
        }
        wr_launcher_discard(&c, true);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return false;
}

int wr_launcher_take(wr_launch_pool *p, const wr_cg_plan *cg, const wr_ctx *ctx, wr_launcher *l, wr_error *err)
{
    if (p && take_warm(p, cg, l))
        return WR_OK;
    /* The synchronous path: correct, only slower by the attach. */
    int rc = wr_launcher_start(cg, ctx, l, err);
    if (rc == WR_OK && (rc = wr_launcher_ready(l, err)) != WR_OK)
        wr_launcher_discard(l, true);
    if (rc != WR_OK && p) { /* no command to retire */
        pthread_mutex_lock(&p->mu);
        p->active--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}
