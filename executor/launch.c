/* Launch and supervision: checks every command's sandbox plan before
 * anything runs, then has each pipeline segment started as its own bwrap
 * by the command's warm launcher (pool.c, launcher.c: the privilege drop
 * happens there), and watches output, exits, the wall clock and the
 * cancel fd in one poll loop. */
#include "executor/executor_internal.h"
#include "executor/launch_proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILL_GRACE_MS 1000 /* SIGTERM -> SIGKILL */
#define DRAIN_MS      2000 /* output still open after every segment exited */
#define READ_CHUNK    65536
/* the seccomp, config and status slots, and one per declared path: one
 * message to the launcher carries them all, with the namespaces to join */
#define MAX_SLOTS  (WR_LAUNCH_MAX_FDS - 2)
#define STOP_POLLS 200 /* ms to wait for a SIGSTOPped bwrap */

/* Deadlines follow CLOCK_MONOTONIC, not wr_ctx: a timeout must measure
 * real elapsed time even when a test fixes the wall clock. */
static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int data_fd(const char *name, const void *data, size_t len, wr_error *err)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return wr_errorf(err, WR_E_IO, "", "memfd_create: %s", strerror(errno)), -1;
    if (pwrite(fd, data, len, 0) != (ssize_t)len) { /* the offset stays at 0 for bwrap's read */
        close(fd);
        return wr_errorf(err, WR_E_IO, "", "memfd write: %s", strerror(errno)), -1;
    }
    return fd;
}

typedef enum init_state {
    INIT_SILENT = 0, /* init never spoke: the sandbox was not set up */
    INIT_STARTED,
    INIT_EXEC_FAILED,
    INIT_SETUP_FAILED,
    INIT_EXITED,
} init_state;

typedef struct seg {
    pid_t pid; /* the outer bwrap */
    int pidfd;
    bool exited;
    int code; /* bwrap's exit code, 128+N for a signal, -1 unknown */
    int errfd;
    int statfd; /* read end of the status pipe (bwrap's and init's lines) */
    int cfgw;   /* init's configuration pipe while it is held back: write end */
    int cfgr;   /* and a read end, so that a sandbox already gone cannot make the write raise SIGPIPE */
    char sbuf[1024];
    size_t slen;
    pid_t ns_init;                  /* host pid of the sandbox's pid 1 (bwrap's "child-pid") */
    int init_pidfd;                 /* pins it: reaped by us if bwrap dies before it */
    ino_t pidns;                    /* its pid namespace */
    init_state init;                /* what init reported */
    int wait_status;                /* INIT_EXITED: the command's raw wait status */
    int init_errno;                 /* INIT_EXEC_FAILED, INIT_SETUP_FAILED */
    char stage[32];                 /* INIT_SETUP_FAILED */
    int64_t spawned_ms, running_ms; /* bwrap forked; init reported the command started (0: not yet) */
} seg;

/* Threads on the whole system, from /proc/loadavg ("0.1 0.2 0.3 1/82 99").
 * RLIMIT_NPROC is checked against every thread of the real uid on the
 * host, not only the sandbox's: applied as is, max_processes would be
 * shared by all concurrent runs and by whatever else the user runs (a
 * desktop session could run nothing). So a run may create max_processes
 * more than the system already runs: an upper bound on what the uid has,
 * read in one small file (counting the uid's own threads means a walk of
 * /proc costing ~0.3 ms a run). A fork bomb stays bounded and dies at the
 * timeout with the rest of the sandbox. */
static int64_t system_threads(void)
{
    char buf[128];
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *slash = strchr(buf, '/');
    return slash ? strtoll(slash + 1, NULL, 10) : 0;
}

static void set_rlimits(wr_launch_spec *s, const wr_plan *p)
{
    const struct {
        int res;
        int64_t v;
    } want[] = {
        {RLIMIT_CPU, p->rl.cpu_sec},       {RLIMIT_AS, p->rl.as_bytes},   {RLIMIT_NPROC, p->rl.nproc},
        {RLIMIT_FSIZE, p->rl.fsize_bytes}, {RLIMIT_NOFILE, p->rl.nofile},
    };
    s->nrl = 0;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        if (want[i].v <= 0)
            continue;
        struct rlimit cur;
        rlim_t v = (rlim_t)want[i].v;
        if (want[i].res == RLIMIT_NPROC)
            v += (rlim_t)system_threads();
        /* Never above the current hard limit: only root may raise it. */
        if (getrlimit(want[i].res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && v > cur.rlim_max)
            v = cur.rlim_max;
        s->rl[s->nrl].res = want[i].res;
        s->rl[s->nrl].v = v;
        s->nrl++;
    }
    /* No core dumps: a crashing command would write its memory (secrets
     * from its environment) into the write paths. */
    s->rl[s->nrl].res = RLIMIT_CORE;
    s->rl[s->nrl].v = 0;
    s->nrl++;
}

/* The command's configuration for warrant-init (environment, Landlock
 * rules) goes through a pipe that init drains at start: unlike a memfd or
 * a file, nothing of it stays readable once the sandbox is up, and it
 * never appears in an environ. The pipe is sized to hold it all, so the
 * write never blocks. The read end is returned; *wfd gets the write end:
 * the configuration is written once the work due before the command
 * (release_config) is done, while bwrap sets the sandbox up. */
static int config_fd(size_t len, int *wfd, wr_error *err)
{
    int pp[2];
    *wfd = -1;
    if (pipe2(pp, O_CLOEXEC) != 0)
        return wr_errorf(err, WR_E_IO, "", "pipe: %s", strerror(errno)), -1;
    int cap = fcntl(pp[1], F_GETPIPE_SZ);
    if (cap >= 0 && (size_t)cap < len)
        cap = fcntl(pp[1], F_SETPIPE_SZ, (int)len);
    if (cap < 0 || (size_t)cap < len) {
        wr_errorf(err, WR_E_LIMIT, "", "the command's environment (%zu bytes) does not fit in a pipe: %s", len,
                  strerror(errno));
        close(pp[0]);
        close(pp[1]);
        return -1;
    }
    *wfd = pp[1];
    return pp[0];
}

/* Starts one segment through the command's launcher (the last one in the
 * launcher itself, the others in children it forks). fds in/out/errw
 * become 0/1/2 in bwrap; statw is the write end of its status pipe
 * (bwrap's and init's lines). */
static int start_segment(const wr_plan *p, wr_launcher *l, const wr_netns *net, size_t segment, bool last,
                         char *const *argv, size_t cfglen, int in, int out, int errw, int statw, seg *sg, wr_error *err)
{
    wr_launch_spec s;
    int src[WR_LAUNCH_MAX_FDS];
    memset(&s, 0, sizeof s);
    s.net = net;
    s.argv = argv;
    s.slots = src;
    s.drop_root = p->drop_root;
    s.group = p->owner_gid;
    s.ngroups = p->dynamic ? 1 : 0;
    s.uid = p->uid;
    s.gid = p->gid;
    /* not the server's: files the command creates get the usual modes;
     * group-writable under a dynamic uid, whose files go to its owner with
     * the owner's group, so the owner's later runs can still edit them */
    s.umask = p->dynamic ? 002 : 022;
    set_rlimits(&s, p);
    int owned[WR_LAUNCH_MAX_FDS];
    int nowned = 0, rc = WR_OK;
    src[0] = in;
    src[1] = out;
    src[2] = errw;
    src[WR_SLOT_BWRAP_STATUS] = statw;
    src[WR_SLOT_INIT_STATUS] = statw;
    /* Each bwrap reads the seccomp program and the file data from its own
     * fresh descriptor: a shared file offset would leave the next segment
     * an empty read. */
    int fd = data_fd("wr-seccomp", p->bpf, p->bpf_len, err);
    if (fd < 0)
        return err ? err->code : WR_E_IO;
    owned[nowned++] = fd;
    src[WR_SLOT_SECCOMP] = fd;
    if ((fd = config_fd(cfglen, &sg->cfgw, err)) < 0) {
        close(owned[0]);
        return err ? err->code : WR_E_IO;
    }
    owned[nowned++] = fd;
    src[WR_SLOT_INIT_CONFIG] = fd;
    if ((sg->cfgr = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        for (int i = 0; i < nowned; i++)
            close(owned[i]);
        return wr_errorf(err, WR_E_IO, "", "dup: %s", strerror(errno));
    }
    s.nslots = WR_SLOT_FIRST;
    for (size_t i = 0; i < p->nops && rc == WR_OK; i++) {
        const wr_plan_op *op = &p->ops[i];
        int f = wr_plan_op_fd(op, WR_RENDER_FDS | WR_RENDER_SECCOMP | WR_RENDER_INIT, segment);
        if (f == WR_OP_NO_FD)
            continue;
        if (s.nslots >= MAX_SLOTS || nowned >= MAX_SLOTS) {
            rc = wr_errorf(err, WR_E_LIMIT, "", "too many declared paths for one sandbox");
            break;
        }
        if (f == WR_OP_DATA_FD) {
            f = data_fd("wr-file", op->data, strlen(op->data), err);
            if (f < 0) {
                rc = err ? err->code : WR_E_IO;
                break;
            }
            owned[nowned++] = f;
        }
        src[s.nslots++] = f;
    }
    pid_t pid = -1;
    if (rc == WR_OK)
        rc = wr_launcher_launch(l, &s, !last, &pid, err);
    if (rc == WR_OK) {
        sg->pid = pid;
        sg->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    }
    for (int i = 0; i < nowned; i++)
        close(owned[i]);
    return rc;
}

enum kill_reason {
    KILL_NONE = 0,
    KILL_TIMEOUT,
    KILL_CANCEL,
    KILL_OUTPUT
};

/* Sends sig to every process in the segment's pid namespace, found by the
 * namespace inode: a grandchild that left the process group or session is
 * still in the namespace. */
static void signal_namespace(const seg *sg, int sig)
{
    if (!sg->pidns)
        return;
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%ld/ns/pid", pid);
        if (stat(path, &st) == 0 && st.st_ino == sg->pidns)
            kill((pid_t)pid, sig);
    }
    closedir(d);
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* pid of a process's parent, from /proc (0 when unknown). */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *pp = strstr(buf, "\nPPid:");
    return pp ? (pid_t)strtol(pp + 7, NULL, 10) : 0;
}

/* The sandbox's pid 1, reported by bwrap: pinned with a pidfd at once, and
 * accepted only if it is still bwrap's child (bwrap is not reaped yet, so
 * its pid cannot have been reused; the pidfd being alive after the check
 * shows the check saw the pinned process). Its pid namespace is what a
 * kill reaches. */
static void found_init(seg *sg, long pid)
{
    if (sg->init_pidfd >= 0 || pid <= 0 || pid > INT32_MAX)
        return;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0)
        return;
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%ld/ns/pid", pid);
    /* A child still in our own pid namespace is bwrap setting up, not the
     * sandbox: signalling "its namespace" would reach every process of the
     * sandbox user on the host. */
    struct stat self;
    if (parent_of((pid_t)pid) != sg->pid || stat(path, &st) != 0 || stat("/proc/self/ns/pid", &self) != 0 ||
        st.st_ino == self.st_ino || syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) != 0) {
        close(fd);
        return;
    }
    sg->init_pidfd = fd;
    sg->ns_init = (pid_t)pid;
    sg->pidns = st.st_ino;
}

/* One status line, from bwrap ("child-pid", "exit-code") or from init
 * (init_proto.h). Only these two processes hold the pipe: the command
 * never sees it. */
static void status_line(seg *sg, const char *line, size_t len)
{
    json_object *o = wr_json_parse(line, len, NULL, NULL), *v;
    if (!o)
        return;
    if (json_object_object_get_ex(o, "child-pid", &v))
        found_init(sg, (long)json_object_get_int64(v));
    if (json_object_object_get_ex(o, WR_INIT_KEY, &v) && json_object_is_type(v, json_type_string)) {
        const char *what = json_object_get_string(v);
        json_object *x;
        if (!strcmp(what, WR_INIT_STARTED)) {
            sg->init = INIT_STARTED;
        } else if (!strcmp(what, WR_INIT_EXITED) && json_object_object_get_ex(o, "wait-status", &x)) {
            sg->init = INIT_EXITED;
            sg->wait_status = json_object_get_int(x);
        } else if (!strcmp(what, WR_INIT_EXEC_FAILED) || !strcmp(what, WR_INIT_SETUP_FAILED)) {
            sg->init = what[0] == 'e' ? INIT_EXEC_FAILED : INIT_SETUP_FAILED;
            if (json_object_object_get_ex(o, "errno", &x))
                sg->init_errno = json_object_get_int(x);
            if (json_object_object_get_ex(o, "stage", &x))
                snprintf(sg->stage, sizeof sg->stage, "%s", json_object_get_string(x));
        }
    }
    json_object_put(o);
}

/* Reads what the status pipe holds and handles every complete line. */
static void read_status(seg *sg)
{
    while (sg->statfd >= 0) {
        ssize_t got = read(sg->statfd, sg->sbuf + sg->slen, sizeof sg->sbuf - sg->slen);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0 || errno != EAGAIN)
                close(sg->statfd), sg->statfd = -1;
            return;
        }
        sg->slen += (size_t)got;
        char *nl;
        while ((nl = memchr(sg->sbuf, '\n', sg->slen)) != NULL) {
            size_t n = (size_t)(nl - sg->sbuf) + 1;
            status_line(sg, sg->sbuf, n - 1);
            memmove(sg->sbuf, sg->sbuf + n, sg->slen - n);
            sg->slen -= n;
        }
        if (sg->slen == sizeof sg->sbuf)
            sg->slen = 0; /* no line is this long: drop the garbage */
    }
}

/* bwrap's pid 1, from /proc when bwrap has not reported it yet. */
static void find_child(seg *sg)
{
    char path[96], buf[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)sg->pid, (int)sg->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = 0;
    found_init(sg, strtol(buf, NULL, 10));
}

/* Stops a bwrap that is still setting up: once stopped it cannot fork, so
 * the pid 1 it may have just cloned is known, pinned for reap_init, and
 * dies with it instead of waiting forever for bwrap's go-ahead. */
static void kill_setup(seg *sg)
{
    kill(sg->pid, SIGSTOP);
    siginfo_t si;
    for (int i = 0; i < STOP_POLLS; i++) {
        memset(&si, 0, sizeof si);
        if (syscall(SYS_waitid, P_PIDFD, sg->pidfd, &si, WSTOPPED | WEXITED | WNOHANG | WNOWAIT, NULL) != 0 ||
            si.si_pid != 0)
            break;
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    read_status(sg);
    find_child(sg);
    if (sg->ns_init > 0)
        kill(sg->ns_init, SIGKILL);
    kill(sg->pid, SIGKILL);
}

/* After bwrap is gone: if it died before its pid 1 (killed), that pid 1
 * was re-parented to us (PR_SET_CHILD_SUBREAPER) and is reaped here,
 * through its pidfd so no other child's wait can be taken. ECHILD means
 * bwrap reaped it itself. */
static void reap_init(seg *sg)
{
    if (sg->init_pidfd < 0)
        return;
    struct pollfd pf = {.fd = sg->init_pidfd, .events = POLLIN};
    siginfo_t si;
    if (poll(&pf, 1, DRAIN_MS) == 1)
        syscall(SYS_waitid, P_PIDFD, sg->init_pidfd, &si, WEXITED | WNOHANG, NULL);
    close(sg->init_pidfd);
    sg->init_pidfd = -1;
}

typedef struct cmd_outcome {
    int64_t sandbox_start_ms; /* the first segment: bwrap forked to its command running; -1: never ran */
    int exit_code;
    char error[512];
    bool failed;
    enum kill_reason killed;
} cmd_outcome;

static void describe_signal(int sig, char *buf, size_t len)
{
    const char *abbr = sigabbrev_np(sig);
    snprintf(buf, len, "killed by signal SIG%s (exit %d)", abbr ? abbr : "?", 128 + sig);
}

/* How a segment ended, from init's report of the command's wait status
 * and bwrap's own exit: never from anything the command printed, and in
 * words of ours only (no output reaches a receipt field). *code is the
 * exit code (128+N for signal N); returns false when it succeeded. */
static bool segment_outcome(const seg *sg, const char *argv0, int *code, bool *sigpipe, char *why, size_t len)
{
    *sigpipe = false;
    switch (sg->init) {
    case INIT_EXITED:
        if (WIFSIGNALED(sg->wait_status)) {
            *code = 128 + WTERMSIG(sg->wait_status);
            *sigpipe = WTERMSIG(sg->wait_status) == SIGPIPE;
            describe_signal(WTERMSIG(sg->wait_status), why, len);
            return true;
        }
        *code = WEXITSTATUS(sg->wait_status);
        snprintf(why, len, "exited with status %d", *code);
        return *code != 0;
    case INIT_EXEC_FAILED:
        *code = 127;
        snprintf(why, len, "could not start: exec %.200s: %s", argv0, strerror(sg->init_errno));
        return true;
    case INIT_SETUP_FAILED:
        *code = 127;
        snprintf(why, len, "could not start: sandbox setup failed (%s: %s)", sg->stage, strerror(sg->init_errno));
        return true;
    case INIT_STARTED:
        *code = sg->code;
        if (sg->code > 128 && sg->code < 128 + NSIG)
            snprintf(why, len, "ended without a status: the sandbox's init was killed (bwrap exit %d)", sg->code);
        else
            snprintf(why, len, "ended without a status (bwrap exit %d)", sg->code);
        return true;
    case INIT_SILENT:
        break;
    }
    *code = sg->code;
    if (sg->code < 0)
        snprintf(why, len, "ended with an unknown status (SIGCHLD is ignored by the executor's process)");
    else if (sg->code > 128 && sg->code < 128 + NSIG)
        snprintf(why, len, "could not start: sandbox setup was killed (exit %d)", sg->code);
    else
        snprintf(why, len, "could not start: sandbox setup failed (exit %d)", sg->code);
    return true;
}

static bool set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

/* Collects a segment's exit: its code, or 128+N when a signal killed it. */
static void reap(seg *sg, int flags)
{
    int st;
    if (sg->pid <= 0 || sg->exited)
        return;
    pid_t w = waitpid(sg->pid, &st, flags);
    if (w == sg->pid) {
        sg->exited = true;
        sg->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else if (w < 0 && errno == ECHILD) {
        /* SIGCHLD is ignored in this process: the kernel reaped it. */
        sg->exited = true;
        sg->code = -1;
    }
}

/* Reads what is there (a few chunks per wake-up, so a flood cannot starve
 * the clock and the other fds) into the capture; closes *fd at EOF. */
static int read_stream(int *fd, wr_capture *c, unsigned char *buf, wr_error *err)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t got = read(*fd, buf, READ_CHUNK);
        if (got > 0) {
            int rc = wr_capture_feed(c, buf, (size_t)got, err);
            if (rc != WR_OK)
                return rc;
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return WR_OK;
        close(*fd);
        *fd = -1;
        return WR_OK;
    }
    return WR_OK;
}

/* What is due before a command runs but not before its sandbox is set
 * up (release_config): the run's sandbox profile and its min_strength
 * check (with the first command), the snapshot of the command's write
 * paths. */
typedef struct pre_exec {
    wr_exec_result *r;
    const wr_plan *plans; /* every command's */
    size_t nplans;
    size_t command;
    wr_snapshot *before; /* taken here, the caller's to free */
} pre_exec;

typedef struct run_io {
    const wr_exec_request *req;
    wr_capture *cout, *cerr;
    const wr_run_net *net; /* of the current command */
    bool *before_run_due;  /* req->before_run is still to be called */
    pre_exec *pre;
} run_io;

static int profile(wr_exec_result *r, const wr_exec_request *req, const wr_plan *plans, size_t nplans, wr_error *err);
static int check_strength(wr_exec_result *r, const wr_exec_request *req, wr_error *err);

/* A run below its policy's min_strength: blocked, never run (r says why). */
#define BLOCKED_BY_STRENGTH WR_E_DENIED

static int pre_exec_work(const run_io *io, wr_error *err)
{
    pre_exec *pe = io->pre;
    int rc = WR_OK;
    if (pe->command == 0) {
        rc = profile(pe->r, io->req, pe->plans, pe->nplans, err);
        if (rc == WR_OK)
            rc = check_strength(pe->r, io->req, err);
        if (rc == WR_OK && pe->r->status == WR_EXEC_BLOCKED)
            return BLOCKED_BY_STRENGTH;
    }
    return rc == WR_OK ? wr_snapshot_take(&pe->plans[pe->command], &pe->before, err) : rc;
}

/* The command's sandboxes are setting up and wait for their configuration:
 * what is due before the command runs is done now, overlapping bwrap's
 * work (pre_exec, then the caller's pre-exec commit, req->before_run, with
 * the first command), and only once it is done is the configuration
 * written. If anything fails, the pipes close unwritten and warrant-init
 * runs nothing (a configuration without its end record). */
static int release_config(const run_io *io, seg *segs, size_t n, const char *cfg, size_t cfglen, int rc, wr_error *err)
{
    if (rc == WR_OK)
        rc = pre_exec_work(io, err);
    if (rc == WR_OK && *io->before_run_due) {
        *io->before_run_due = false;
        rc = io->req->before_run(io->req->before_run_ud, err);
    }
    for (size_t i = 0; i < n; i++) {
        if (segs[i].cfgw >= 0 && rc == WR_OK && cfglen && write(segs[i].cfgw, cfg, cfglen) != (ssize_t)cfglen)
            rc = wr_errorf(err, WR_E_IO, "", "writing the command's configuration: %s", strerror(errno));
        if (segs[i].cfgw >= 0)
            close(segs[i].cfgw);
        if (segs[i].cfgr >= 0)
            close(segs[i].cfgr);
        segs[i].cfgw = segs[i].cfgr = -1;
    }
    return rc;
}

static int run_command(const run_io *io, const wr_command *cmd, const wr_plan *p, cmd_outcome *oc, wr_error *err)
{
    memset(oc, 0, sizeof *oc);
    oc->sandbox_start_ms = -1;
    size_t n = cmd->nsegments;
    seg *segs = calloc(n, sizeof *segs);
    char *cfg = NULL;
    size_t cfglen = 0;
    int outp[2] = {-1, -1}, devnull = -1, prev_read = -1, rc = WR_OK;
    if (!segs)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (size_t i = 0; i < n; i++)
        segs[i].pidfd = segs[i].errfd = segs[i].statfd = segs[i].init_pidfd = segs[i].cfgw = segs[i].cfgr = -1,
        segs[i].pid = -1;
    /* A launcher already in fresh cgroups (or one started now); the limits
     * go in before it is told anything, so they hold from bwrap's first
     * instruction. */
    wr_launcher l;
    rc = wr_launcher_take(io->req->launchers, &p->cg, io->req->ctx, &l, err);
    if (rc != WR_OK) {
        free(segs);
        return rc;
    }
    const wr_cgroup *cg = &l.cg;
    rc = wr_cgroup_limit(&l.cg, &p->cg, err);
    if (rc == WR_OK)
        rc = wr_plan_config(p, &cfg, &cfglen, err);
    if (rc == WR_OK && (pipe2(outp, O_CLOEXEC) != 0 || (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0))
        rc = wr_errorf(err, WR_E_IO, "", "pipe: %s", strerror(errno));
    io->cout->command_id = io->cerr->command_id = cmd->id;

    for (size_t i = 0; i < n && rc == WR_OK; i++) {
        int ep[2], np[2] = {-1, -1}, sp[2];
        if (pipe2(ep, O_CLOEXEC) != 0) {
            rc = wr_errorf(err, WR_E_IO, "", "pipe: %s", strerror(errno));
            break;
        }
        if (pipe2(sp, O_CLOEXEC) != 0) {
            close(ep[0]), close(ep[1]);
            rc = wr_errorf(err, WR_E_IO, "", "pipe: %s", strerror(errno));
            break;
        }
        segs[i].statfd = sp[0];
        set_nonblock(sp[0]);
        if (i + 1 < n && pipe2(np, O_CLOEXEC) != 0) {
            close(ep[0]), close(ep[1]), close(sp[1]);
            rc = wr_errorf(err, WR_E_IO, "", "pipe: %s", strerror(errno));
            break;
        }
        segs[i].errfd = ep[0];
        set_nonblock(ep[0]);
        wr_strv argv = {0};
        rc = wr_plan_render(p, WR_RENDER_FDS | WR_RENDER_SECCOMP | WR_RENDER_INIT, i, cmd->segments[i].v, &argv, err);
        if (rc == WR_OK)
            rc = start_segment(p, &l, io->net->active ? &io->net->ns : NULL, i, i + 1 == n, argv.v, cfglen,
                               i == 0 ? devnull : prev_read, i + 1 < n ? np[1] : outp[1], ep[1], sp[1], &segs[i], err);
        segs[i].spawned_ms = wr_now_ms(io->req->ctx);
        wr_strv_free(&argv);
        close(ep[1]);
        close(sp[1]);
        if (prev_read >= 0)
            close(prev_read);
        prev_read = np[0];
        if (np[1] >= 0)
            close(np[1]);
    }
    if (prev_read >= 0)
        close(prev_read);
    if (outp[1] >= 0)
        close(outp[1]);
    if (outp[0] >= 0)
        set_nonblock(outp[0]);
    if (devnull >= 0)
        close(devnull);
    rc = release_config(io, segs, n, cfg, cfglen, rc, err);
    if (cfg) /* may hold secret values; the pipes have their copies */
        explicit_bzero(cfg, cfglen);
    free(cfg);

    int64_t now = mono_ms();
    int64_t deadline = cmd->timeout_sec > 0 && cmd->timeout_sec < INT32_MAX ? now + cmd->timeout_sec * 1000 : INT64_MAX;
    int64_t kill_at = INT64_MAX, drain_until = INT64_MAX;
    int64_t kill_bytes = io->req->limits ? io->req->limits->output_kill_bytes : 0;
    bool killed_hard = false;
    unsigned char *buf = malloc(READ_CHUNK);
    if (!buf && rc == WR_OK)
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc != WR_OK) {
        /* Could not start everything: stop what did start. */
        for (size_t i = 0; i < n; i++)
            if (segs[i].pid > 0)
                kill(segs[i].pid, SIGKILL);
    }

    for (;;) {
        bool all_exited = true;
        for (size_t i = 0; i < n; i++)
            if (segs[i].pid > 0 && !segs[i].exited)
                all_exited = false;
        struct pollfd pf[3 * WR_CONTRACT_MAX_SEGMENTS + 2];
        size_t np = 0;
        if (outp[0] >= 0)
            pf[np++] = (struct pollfd){.fd = outp[0], .events = POLLIN};
        for (size_t i = 0; i < n; i++) {
            if (segs[i].errfd >= 0)
                pf[np++] = (struct pollfd){.fd = segs[i].errfd, .events = POLLIN};
            if (segs[i].statfd >= 0)
                pf[np++] = (struct pollfd){.fd = segs[i].statfd, .events = POLLIN};
            if (segs[i].pidfd >= 0 && !segs[i].exited)
                pf[np++] = (struct pollfd){.fd = segs[i].pidfd, .events = POLLIN};
        }
        bool have_cancel = io->req->cancel_fd >= 0 && oc->killed == KILL_NONE;
        if (have_cancel)
            pf[np++] = (struct pollfd){.fd = io->req->cancel_fd, .events = POLLIN};
        if (all_exited) {
            bool open_out = outp[0] >= 0;
            for (size_t i = 0; i < n; i++)
                open_out = open_out || segs[i].errfd >= 0;
            if (!open_out)
                break;
            if (drain_until == INT64_MAX)
                drain_until = mono_ms() + DRAIN_MS;
        }
        now = mono_ms();
        int64_t next = deadline;
        if (kill_at < next)
            next = kill_at;
        if (drain_until < next)
            next = drain_until;
        int timeout = next == INT64_MAX ? -1 : (int)(next > now ? (next - now > 60000 ? 60000 : next - now) : 0);
        /* pidfd_open can fail on old kernels: fall back to polling waitpid. */
        for (size_t i = 0; i < n; i++)
            if (segs[i].pid > 0 && !segs[i].exited && segs[i].pidfd < 0 && (timeout < 0 || timeout > 50))
                timeout = 50;
        int pr = poll(pf, np, timeout);
        if (pr < 0 && errno != EINTR) {
            rc = wr_errorf(err, WR_E_IO, "", "poll: %s", strerror(errno));
            for (size_t i = 0; i < n; i++)
                if (segs[i].pid > 0 && !segs[i].exited)
                    kill(segs[i].pid, SIGKILL);
            kill_at = 0;
        }
        for (size_t k = 0; pr > 0 && k < np; k++) {
            if (!pf[k].revents)
                continue;
            int fd = pf[k].fd;
            if (fd == io->req->cancel_fd) {
                oc->killed = KILL_CANCEL;
                continue;
            }
            seg *owner = NULL; /* stays NULL for the shared stdout pipe */
            for (size_t i = 0; i < n; i++)
                if (segs[i].errfd == fd || segs[i].pidfd == fd || segs[i].statfd == fd)
                    owner = &segs[i];
            if (owner && owner->pidfd == fd) {
                reap(owner, WNOHANG);
                continue;
            }
            if (owner && owner->statfd == fd) {
                read_status(owner);
                if (!owner->running_ms && (owner->init == INIT_STARTED || owner->init == INIT_EXITED))
                    owner->running_ms = wr_now_ms(io->req->ctx);
                continue;
            }
            int *fdp = owner ? &owner->errfd : &outp[0];
            wr_capture *c = owner ? io->cerr : io->cout;
            if (read_stream(fdp, c, buf, err) != WR_OK) {
                rc = err ? err->code : WR_E_NOMEM;
                kill_at = 0;
            }
            if (kill_bytes > 0 && (int64_t)c->cmd_raw_bytes > kill_bytes && oc->killed == KILL_NONE) {
                oc->killed = KILL_OUTPUT;
                snprintf(oc->error, sizeof oc->error, "%s exceeded the output limit of %lld bytes: command killed",
                         c == io->cout ? "stdout" : "stderr", (long long)kill_bytes);
                kill_at = 0; /* a hard cap: no grace */
            }
        }
        for (size_t i = 0; i < n; i++)
            if (segs[i].pidfd < 0)
                reap(&segs[i], WNOHANG);
        now = mono_ms();
        if (oc->killed == KILL_NONE && now >= deadline)
            oc->killed = KILL_TIMEOUT;
        if (oc->killed != KILL_NONE && kill_at == INT64_MAX) {
            /* Grace: SIGTERM every process of the sandbox; the outer bwrap
             * is left alone (killing it would SIGKILL at once). */
            bool setting_up = false;
            for (size_t i = 0; i < n; i++)
                if (!segs[i].exited && segs[i].pid > 0) {
                    read_status(&segs[i]);
                    if (segs[i].pidns)
                        signal_namespace(&segs[i], SIGTERM);
                    else
                        setting_up = true;
                }
            /* A bwrap still setting up may already have forked its pid 1,
             * which killing bwrap alone would leave behind: bwrap is
             * stopped first, and the cgroup, where there is one, holds
             * everything. */
            for (size_t i = 0; setting_up && i < n; i++)
                if (!segs[i].exited && segs[i].pid > 0 && !segs[i].pidns)
                    kill_setup(&segs[i]);
            if (setting_up)
                wr_cgroup_kill(cg); /* and whatever they forked meanwhile */
            kill_at = now + KILL_GRACE_MS;
        }
        if (now >= kill_at && !killed_hard) {
            /* SIGKILL the namespace's init: the kernel then kills every
             * process left in it; bwrap's die-with-parent covers the rest. */
            for (size_t i = 0; i < n; i++)
                if (!segs[i].exited) {
                    read_status(&segs[i]);
                    if (segs[i].ns_init > 0)
                        kill(segs[i].ns_init, SIGKILL);
                    signal_namespace(&segs[i], SIGKILL);
                    if (segs[i].pid > 0)
                        kill(segs[i].pid, SIGKILL);
                }
            wr_cgroup_kill(cg);
            killed_hard = true;
        }
        if (all_exited && now >= drain_until) {
            /* Every segment is gone but something still holds a pipe open:
             * stop waiting for it. */
            if (outp[0] >= 0)
                close(outp[0]), outp[0] = -1;
            for (size_t i = 0; i < n; i++) {
                if (segs[i].errfd >= 0)
                    close(segs[i].errfd), segs[i].errfd = -1;
            }
        }
    }
    free(buf);
    for (size_t i = 0; i < n; i++) {
        reap(&segs[i], 0);
        segs[i].exited = true;
        if (segs[i].pidfd >= 0)
            close(segs[i].pidfd);
        read_status(&segs[i]); /* init's last line is in before bwrap exits */
        reap_init(&segs[i]);
        if (segs[i].statfd >= 0)
            close(segs[i].statfd);
    }
    wr_launcher_discard(&l, false);              /* still waiting only when a launch failed */
    wr_cgroup_retire(io->req->launchers, &l.cg); /* whatever outlived the segments dies here */

    if (rc == WR_OK) {
        char why[256];
        if (oc->killed == KILL_TIMEOUT) {
            oc->exit_code = 124;
            snprintf(oc->error, sizeof oc->error, "timeout after %llds: command %s killed", (long long)cmd->timeout_sec,
                     cmd->id);
        } else if (oc->killed == KILL_CANCEL) {
            oc->exit_code = 124;
            snprintf(oc->error, sizeof oc->error, "cancelled");
        } else if (oc->killed == KILL_OUTPUT) {
            oc->exit_code = 128 + SIGKILL;
        } else {
            /* Rightmost failing segment decides (like pipefail). An upstream
             * segment killed by SIGPIPE only saw its reader finish early. */
            for (size_t i = 0; i < n; i++) {
                int c;
                bool sigpipe;
                if (!segment_outcome(&segs[i], cmd->segments[i].v[0], &c, &sigpipe, why, sizeof why) ||
                    (i + 1 < n && sigpipe))
                    continue;
                oc->exit_code = c;
                if (n > 1)
                    snprintf(oc->error, sizeof oc->error, "command %s: pipeline segment %zu (%s) %s", cmd->id, i + 1,
                             cmd->segments[i].v[0], why);
                else
                    snprintf(oc->error, sizeof oc->error, "command %s %s", cmd->id, why);
            }
        }
        oc->failed = oc->killed != KILL_NONE || oc->error[0];
    }
    if (n && segs[0].running_ms)
        oc->sandbox_start_ms = segs[0].running_ms - segs[0].spawned_ms;
    free(segs);
    return rc;
}

/* Arguments reach execve: bound them here too (the contract parser does the
 * same), so an oversized argument is a clear refusal, not an E2BIG from
 * inside bwrap. */
static int check_argv(const wr_command *cmd, wr_error *err)
{
    if (cmd->nsegments == 0 || cmd->nsegments > WR_CONTRACT_MAX_SEGMENTS)
        return wr_errorf(err, WR_E_DENIED, "", "command %s has %zu segments (1..%d allowed)", cmd->id, cmd->nsegments,
                         WR_CONTRACT_MAX_SEGMENTS);
    for (size_t s = 0; s < cmd->nsegments; s++) {
        const wr_strv *a = &cmd->segments[s];
        if (a->n == 0 || !a->v[0][0])
            return wr_errorf(err, WR_E_DENIED, "", "command %s: empty argv", cmd->id);
        if (a->n > WR_CONTRACT_MAX_ARGV)
            return wr_errorf(err, WR_E_DENIED, "", "command %s: %zu arguments (limit %d)", cmd->id, a->n,
                             WR_CONTRACT_MAX_ARGV);
        for (size_t i = 0; i < a->n; i++) {
            size_t len = strlen(a->v[i]);
            if (len > WR_CONTRACT_MAX_ARG_BYTES)
                return wr_errorf(err, WR_E_DENIED, "", "command %s: argument %zu is %zu bytes (limit %d)", cmd->id, i,
                                 len, WR_CONTRACT_MAX_ARG_BYTES);
        }
    }
    return WR_OK;
}

void wr_exec_result_free(wr_exec_result *r)
{
    if (!r)
        return;
    free(r->error);
    wr_strv_free(&r->completed_command_ids);
    free(r->failed_command_id);
    free(r->out.captured);
    free(r->err.captured);
    for (size_t i = 0; i < r->nartifacts; i++)
        free(r->artifacts[i].path);
    free(r->artifacts);
    json_object_put(r->sandbox_profile);
    json_object_put(r->network);
    json_object_put(r->isolation);
    free(r);
}

static int set_error(wr_exec_result *r, const char *msg, wr_error *err)
{
    free(r->error);
    r->error = strdup(msg);
    return r->error ? WR_OK : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
}

/* The sandbox profile of the run: every command's plan; its canonical
 * sha256 is what the receipt records. */
static int profile(wr_exec_result *r, const wr_exec_request *req, const wr_plan *plans, size_t nplans, wr_error *err)
{
    json_object *o = json_object_new_object(), *cmds = json_object_new_array();
    json_object_object_add(o, "version", json_object_new_int(1));
    json_object_object_add(o, "commands", cmds);
    for (size_t i = 0; i < nplans; i++) {
        json_object *c = json_object_new_object();
        json_object_object_add(c, "id", json_object_new_string(req->contract->commands[i].id));
        json_object_object_add(c, "plan", wr_plan_to_json(&plans[i]));
        json_object_array_add(cmds, c);
    }
    r->sandbox_profile = o;
    int rc = wr_canonical_sha256(o, false, r->sandbox_profile_sha256, err);
    if (rc == WR_OK)
        snprintf(r->sandbox_profile_id, sizeof r->sandbox_profile_id, "bwrap-%s-%.16s",
                 req->limits && req->limits->seccomp_strict ? "strict" : "default", r->sandbox_profile_sha256);
    return rc;
}

/* The run's isolation facts; below the policy's min_strength it is
 * blocked before anything runs, never run weaker. */
static int check_strength(wr_exec_result *r, const wr_exec_request *req, wr_error *err)
{
    r->isolation = wr_exec_isolation(r->sandbox_profile, &r->isolation_score);
    if (!r->isolation)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    int64_t min = req->limits ? req->limits->min_strength : 0;
    if (r->isolation_score >= min)
        return WR_OK;
    json_object *cg = NULL, *ll = NULL;
    json_object_object_get_ex(r->isolation, "cgroup", &cg);
    json_object_object_get_ex(r->isolation, "landlock_abi", &ll);
    char msg[300];
    snprintf(msg, sizeof msg,
             "isolation strength %d on this host is below the policy's min_strength %lld (cgroup %s, Landlock ABI "
             "%d; see docs/isolation.md)",
             r->isolation_score, (long long)min, json_object_get_string(cg), json_object_get_int(ll));
    r->status = WR_EXEC_BLOCKED;
    return set_error(r, msg, err);
}

int wr_exec_run(const wr_exec_request *req, wr_exec_result **out, wr_error *err)
{
    *out = NULL;
    if (!req || !req->contract || !req->ctx)
        return wr_errorf(err, WR_E_INVALID, "", "wr_exec_run: contract and ctx are required");
    const wr_contract *ct = req->contract;
    wr_exec_result *r = calloc(1, sizeof *r);
    if (!r)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    r->started_ms = wr_now_ms(req->ctx);
    r->sandbox_start_ms = -1;
    /* A sandbox's pid 1 whose bwrap was killed comes back to us, not to the
     * host's init (which, in a container, may never reap it): reap_init. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    wr_plan *plans = calloc(ct->ncommands ? ct->ncommands : 1, sizeof *plans);
    wr_capture cout, cerr;
    memset(&cout, 0, sizeof cout);
    memset(&cerr, 0, sizeof cerr);
    wr_run_net *nets = calloc(ct->ncommands ? ct->ncommands : 1, sizeof *nets);
    size_t nplans = 0, nnets = 0;
    bool before_run_due = req->before_run != NULL;
    int rc = plans && nets ? WR_OK : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc == WR_OK)
        rc = wr_capture_init(&cout, &r->out, WR_STDOUT, req, err);
    if (rc == WR_OK)
        rc = wr_capture_init(&cerr, &r->err, WR_STDERR, req, err);
    if (rc != WR_OK)
        goto done;

    /* Every command's sandbox is checked before the first one runs: a
     * refusal anywhere means nothing runs. */
    for (size_t i = 0; i < ct->ncommands; i++) {
        wr_error e = {0};
        int prc = check_argv(&ct->commands[i], &e);
        if (prc == WR_OK)
            prc = wr_plan_build(req, i, true, &plans[i], &e);
        if (prc == WR_OK) {
            nplans++;
            /* Its network namespace too: a mode that cannot be built here
             * (no user namespaces, no slirp4netns) is refused, not widened.
             * nets[i] is safe to free whatever this returns. */
            prc = wr_run_net_prepare(&plans[i], &nets[i], &e);
            nnets++;
        }
        if (prc == WR_E_DENIED || prc == WR_E_INVALID) {
            r->status = WR_EXEC_BLOCKED;
            char msg[900];
            snprintf(msg, sizeof msg, "command %s: %s", ct->commands[i].id, e.message);
            rc = set_error(r, msg, err);
            goto done;
        }
        if (prc != WR_OK) {
            *err = e;
            rc = prc;
            goto done;
        }
    }
    if (ct->ncommands == 0) {
        r->status = WR_EXEC_BLOCKED;
        rc = set_error(r, "contract has no commands", err);
        goto done;
    }
    pre_exec pre = {r, plans, nplans, 0, NULL};
    run_io io = {req, &cout, &cerr, NULL, &before_run_due, &pre};
    for (size_t i = 0; rc == WR_OK && i < ct->ncommands; i++) {
        const wr_command *cmd = &ct->commands[i];
        cmd_outcome oc = {.sandbox_start_ms = -1};
        io.net = &nets[i];
        pre.command = i;
        pre.before = NULL;
        rc = wr_run_net_start(&nets[i], req, err);
        if (rc == WR_OK)
            rc = run_command(&io, cmd, &plans[i], &oc, err);
        wr_snapshot *before = pre.before;
        if (rc == BLOCKED_BY_STRENGTH && r->status == WR_EXEC_BLOCKED) {
            /* its sandbox was set up but got no configuration: nothing ran */
            rc = WR_OK;
            wr_run_net_finish(&nets[i], r);
            wr_snapshot_free(before);
            break;
        }
        if (r->sandbox_start_ms < 0)
            r->sandbox_start_ms = oc.sandbox_start_ms;
        wr_run_net_finish(&nets[i], r);
        if (rc == WR_OK)
            rc = wr_capture_flush(&cout, err);
        if (rc == WR_OK)
            rc = wr_capture_flush(&cerr, err);
        if (rc == WR_OK)
            rc = wr_snapshot_diff(before, &plans[i], r, err);
        if (rc == WR_OK && plans[i].dynamic)
            rc = wr_uid_handback(&plans[i], err);
        wr_snapshot_free(before);
        if (rc != WR_OK)
            break;
        for (size_t k = 0; k < plans[i].nops; k++)
            if (plans[i].ops[k].kind == WR_OP_SETENV && !strcmp(plans[i].ops[k].origin, "secret"))
                r->secrets_used++;
        r->exit_code = oc.exit_code;
        if (oc.failed) {
            r->status = WR_EXEC_FAILED;
            r->timed_out = oc.killed == KILL_TIMEOUT;
            r->cancelled = oc.killed == KILL_CANCEL;
            r->output_killed = oc.killed == KILL_OUTPUT;
            r->failed_command_id = strdup(cmd->id);
            rc = r->failed_command_id ? set_error(r, oc.error, err) : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            break;
        }
        if (wr_strv_push(&r->completed_command_ids, cmd->id) != WR_OK)
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
done:
    if (cout.md)
        wr_capture_finish(&cout);
    if (cerr.md)
        wr_capture_finish(&cerr);
    wr_capture_free(&cout);
    wr_capture_free(&cerr);
    for (size_t i = 0; i < nnets; i++)
        wr_run_net_free(&nets[i]);
    free(nets);
    for (size_t i = 0; i < nplans; i++)
        wr_plan_free(&plans[i]);
    free(plans);
    if (before_run_due) {
        /* Nothing ran (blocked, or the sandbox could not start): the
         * caller's commit still happens, and its failure is what counts. */
        wr_error e = {0};
        int brc = req->before_run(req->before_run_ud, &e);
        if (brc != WR_OK) {
            if (err)
                *err = e;
            rc = brc;
        }
    }
    r->ended_ms = wr_now_ms(req->ctx);
    if (rc != WR_OK) {
        wr_exec_result_free(r);
        return rc;
    }
    *out = r;
    return WR_OK;
}

int wr_exec_plan_json(const wr_exec_request *req, size_t command_index, json_object **out, wr_error *err)
{
    *out = NULL;
    wr_plan p;
    int rc = wr_plan_build(req, command_index, false, &p, err);
    if (rc != WR_OK)
        return rc;
    *out = wr_plan_to_json(&p);
    wr_plan_free(&p);
    return WR_OK;
}
