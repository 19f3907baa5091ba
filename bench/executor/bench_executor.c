/* Median wall time of the executor running /bin/true in its sandbox
 * (plan, path checks, seccomp export, privilege drop, cgroup, bwrap,
 * warrant-init, Landlock, supervision, artifact walk) with a server's pool
 * of warm launchers, against a bare bwrap with the same mounts and
 * namespaces, started with fork/exec and waited for; and the layers one by
 * one: the executor without the pool (a launcher started per command, the
 * cgroup attach on the path), without Landlock, without a cgroup, and bare
 * bwrap plus warrant-init (with and without its Landlock rules) or plus the
 * seccomp filter. Runs alternate so that drift in machine load hits every
 * variant alike. */
#include "bench_util.h"
#include "executor/executor_internal.h"

#include <fcntl.h>
#include <grp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Between runs: past the grace period a cold cgroup attach waits for, and
 * past the window after the pool's own refill (pool.c, SETTLE_MS after a
 * run) in which another attach would be cheap. */
#define GAP_MS 100

#define MAX_DATA_FDS 8 /* synthetic /etc files, at WR_SLOT_FIRST.. */

static int above_slots(int fd)
{
    return fd < 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, WR_SLOT_FIRST + MAX_DATA_FDS);
}

/* fd at slot in the child, inheritable (dup2 onto itself would keep
 * close-on-exec). */
static void install(int fd, int slot)
{
    if (fd == slot)
        fcntl(fd, F_SETFD, 0);
    else
        dup2(fd, slot);
}

/* Bare bwrap, started like the executor starts it (fork, exec) but with
 * nothing else: no seccomp, rlimits, pipes or supervision. drop: as root,
 * become the sandbox user first (what `setpriv --reuid --regid
 * --clear-groups bwrap ...` does), because bwrap costs more unprivileged.
 * The synthetic /etc files travel as data fds, as in the executor. cfg:
 * warrant-init's configuration when argv runs it (status to /dev/null).
 * seccomp: the plan's BPF program at its slot, for argv with --seccomp. */
static int bare_run(const wr_plan *p, char *const *argv, char *const *envp, bool drop, const wr_strv *cfg, bool seccomp)
{
    int fds[MAX_DATA_FDS], nfds = 0, cp[2] = {-1, -1}, bpf = -1;
    if (seccomp && ((bpf = memfd_create("bench-bpf", MFD_CLOEXEC)) < 0 ||
                    write(bpf, p->bpf, p->bpf_len) != (ssize_t)p->bpf_len || lseek(bpf, 0, SEEK_SET) != 0))
        return -1;
    for (size_t i = 0; i < p->nops && nfds < MAX_DATA_FDS; i++) {
        if (p->ops[i].kind != WR_OP_FILE)
            continue;
        int fd = memfd_create("bench", MFD_CLOEXEC);
        size_t len = strlen(p->ops[i].data);
        if (fd < 0 || write(fd, p->ops[i].data, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
            return -1;
        fds[nfds++] = fd;
    }
    if (cfg) {
        if (pipe2(cp, O_CLOEXEC) != 0)
            return -1;
        for (size_t i = 0; i < cfg->n; i++)
            if (write(cp[1], cfg->v[i], strlen(cfg->v[i]) + 1) < 0)
                return -1;
        close(cp[1]);
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* Every source above the slots first: installing one slot must not
         * close a source still to be installed (init then read /dev/null
         * as its configuration whenever the config pipe had fd 4 or 5). */
        int null = above_slots(open("/dev/null", O_RDWR));
        int cfgfd = above_slots(cp[0]);
        bpf = above_slots(bpf);
        for (int i = 0; i < nfds; i++)
            fds[i] = above_slots(fds[i]);
        dup2(null, 0);
        dup2(null, 1);
        if (cfg) {
            install(null, WR_SLOT_BWRAP_STATUS);
            install(null, WR_SLOT_INIT_STATUS);
            install(cfgfd, WR_SLOT_INIT_CONFIG);
        }
        if (bpf >= 0)
            install(bpf, WR_SLOT_SECCOMP);
        for (int i = 0; i < nfds; i++)
            install(fds[i], WR_SLOT_FIRST + i);
        if (drop && (setgroups(0, NULL) || setresgid(p->gid, p->gid, p->gid) || setresuid(p->uid, p->uid, p->uid)))
            _exit(126);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (cp[0] >= 0)
        close(cp[0]);
    if (bpf >= 0)
        close(bpf);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* init's configuration as records (the bench writes them one by one). */
static int config_records(const wr_plan *p, wr_strv *out, wr_error *err)
{
    char *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    if (wr_plan_config(p, &buf, &len, err) != WR_OK)
        return -1;
    for (size_t at = 0; at < len; at += strlen(buf + at) + 1)
        wr_strv_push(out, buf + at);
    free(buf);
    return 0;
}

static int exec_run(wr_exec_request *req, wr_error *err)
{
    wr_exec_result *r = NULL;
    if (wr_exec_run(req, &r, err) != WR_OK || r->status != WR_EXEC_SUCCESS) {
        fprintf(stderr, "bench: executor run failed: %s\n%.*s\n", r && r->error ? r->error : err->message,
                r ? (int)r->err.captured_len : 0, r ? (const char *)r->err.captured : "");
        return -1;
    }
    wr_exec_result_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 50;
    if (runs < 1)
        runs = 50;
    /* "exec-only": the executor with warm launchers alone, no warm-up (what
     * syscalls.sh counts with strace on this thread); "exec-bare": it and
     * bare bwrap only, alternating (the ratio, with less time for the
     * machine's load to drift between the two) */
    bool exec_only = argc > 2 && !strcmp(argv[2], "exec-only");
    bool exec_bare = argc > 2 && !strcmp(argv[2], "exec-bare");
    char dir[] = "/tmp/wr-bench-XXXXXX";
    if (!mkdtemp(dir))
        return perror("mkdtemp"), 2;
    chmod(dir, 0755);

    char *true_argv[] = {"/bin/true", NULL};
    wr_strv seg = {true_argv, 1};
    char *reads[] = {dir, NULL};
    wr_command cmd = {.id = "bench",
                      .segments = &seg,
                      .nsegments = 1,
                      .cwd = dir,
                      .read_paths = {reads, 1},
                      .network = WR_NET_DENY,
                      .timeout_sec = 30};
    wr_contract ct = {.contract_id = "ct_bench", .commands = &cmd, .ncommands = 1};
    wr_sandbox_limits lim = {.run_as = "nobody",
                             .cpu_sec = 60,
                             .memory_mb = 1024,
                             .max_processes = 1024,
                             .max_file_mb = 512,
                             .max_open_files = 256,
                             .tmp_mb = 64,
                             .output_cap_bytes = 1024 * 1024};
    wr_ctx ctx = wr_ctx_system();
    wr_exec_request req = {.contract = &ct, .limits = &lim, .cancel_fd = -1, .ctx = &ctx};
    wr_error err = {0};

    /* The bare command: the executor's own plan, rendered with plain paths
     * and without seccomp, privilege drop or supervision; then the same
     * with warrant-init as pid 1 (with and without its Landlock rules). */
    wr_plan plan, plan_noll;
    wr_strv bargv, sargv, iargv, benv, cfg, cfg_noll;
    /* Warm launchers as a server keeps them; the variant without a cgroup
     * gets its own pool (launchers without cgroups) so that it differs by
     * the cgroup alone. */
    const char *no_cgroup = "/nonexistent-warrant-bench"; /* rlimits only */
    wr_launch_pool *pool = NULL, *pool_nocg = NULL;
    if (wr_launch_pool_new(NULL, WR_LAUNCH_POOL_DEFAULT, true, &ctx, &pool, &err) != WR_OK ||
        wr_launch_pool_new(no_cgroup, WR_LAUNCH_POOL_DEFAULT, true, &ctx, &pool_nocg, &err) != WR_OK) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 2;
    }
    wr_exec_request noll = req, nocg = req, sync = req;
    req.launchers = noll.launchers = pool;
    noll.landlock = -1;
    nocg.cgroup_root = no_cgroup;
    nocg.launchers = pool_nocg;
    if (wr_plan_build(&req, 0, false, &plan, &err) != WR_OK || wr_plan_build(&noll, 0, false, &plan_noll, &err) ||
        wr_plan_render(&plan, 0, 0, true_argv, &bargv, &err) != WR_OK ||
        wr_plan_render(&plan, WR_RENDER_SECCOMP, 0, true_argv, &sargv, &err) != WR_OK ||
        wr_plan_render(&plan, WR_RENDER_INIT, 0, true_argv, &iargv, &err) != WR_OK ||
        wr_plan_envp(&plan, &benv, &err) != WR_OK || config_records(&plan, &cfg, &err) ||
        config_records(&plan_noll, &cfg_noll, &err)) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 2;
    }
    bool root = geteuid() == 0;
    enum {
        EXEC,
        EXEC_SYNC,
        EXEC_NOLL,
        EXEC_NOCG,
        BARE_INIT,
        BARE_INIT_NOLL,
        BARE_SECCOMP,
        BARE,
        BARE_ROOT,
        NV
    };
    static const char *const names[NV] = {
        [EXEC] = "executor, every layer (warm launcher)",
        [EXEC_SYNC] = "executor, launcher started per run",
        [EXEC_NOLL] = "executor, Landlock off",
        [EXEC_NOCG] = "executor, no cgroup (rlimits)",
        [BARE_INIT] = "bare bwrap + warrant-init + Landlock",
        [BARE_INIT_NOLL] = "bare bwrap + warrant-init",
        [BARE_SECCOMP] = "bare bwrap + seccomp",
        [BARE] = "bare bwrap (same user, same mounts)",
        [BARE_ROOT] = "bare bwrap as root (reference)",
    };
    const struct timespec gap = {0, GAP_MS * 1000000L};
    double *t[NV];
    for (int v = 0; v < NV; v++)
        t[v] = calloc((size_t)runs, sizeof *t[v]);
    for (int i = exec_only ? 0 : -3; i < runs; i++) { /* 3 warm-up rounds */
        for (int v = 0; v < NV; v++) {
            if ((v == BARE_ROOT && !root) || (exec_only && v != EXEC) || (exec_bare && v != EXEC && v != BARE))
                continue;
            /* Agent runs come seconds apart: a cgroup attach is cheap only
             * right after another one (the RCU grace period it waits for
             * has just passed), which back-to-back runs would hide. */
            nanosleep(&gap, NULL);
            double t0 = bench_now_ms();
            int rc = v == EXEC             ? exec_run(&req, &err)
                     : v == EXEC_SYNC      ? exec_run(&sync, &err)
                     : v == EXEC_NOLL      ? exec_run(&noll, &err)
                     : v == EXEC_NOCG      ? exec_run(&nocg, &err)
                     : v == BARE_INIT      ? bare_run(&plan, iargv.v, benv.v, root, &cfg, false)
                     : v == BARE_INIT_NOLL ? bare_run(&plan, iargv.v, benv.v, root, &cfg_noll, false)
                     : v == BARE_SECCOMP   ? bare_run(&plan, sargv.v, benv.v, root, NULL, true)
                                           : bare_run(&plan, bargv.v, benv.v, v == BARE && root, NULL, false);
            if (rc != 0) {
                fprintf(stderr, "bench: %s failed\n", names[v]);
                return 1;
            }
            if (i >= 0)
                t[v][i] = bench_now_ms() - t0;
        }
    }
    if (exec_only) {
        printf("executor, every layer (warm launcher): median %.2f ms over %d runs\n", bench_median(t[EXEC], runs),
               runs);
    } else if (exec_bare) {
        double e = bench_median(t[EXEC], runs), b = bench_median(t[BARE], runs);
        printf("executor, every layer (warm launcher) median %.2f ms; bare bwrap median %.2f ms; ratio %.3f over %d "
               "runs\n",
               e, b, e / b, runs);
    } else {
        double m[NV];
        printf("runs: %d, interleaved, %d ms apart; sandbox user uid %u%s; Landlock ABI %d\n", runs, GAP_MS,
               (unsigned)plan.uid, root ? " (executor and bare bwrap drop from root)" : "", plan.landlock_abi);
        for (int v = 0; v < NV; v++) {
            if (v == BARE_ROOT && !root)
                continue;
            m[v] = bench_median(t[v], runs);
            printf("%-40s median %7.2f ms\n", names[v], m[v]);
        }
        printf("layers over bare bwrap: warrant-init as pid 1 %+.2f ms, its Landlock rules %+.2f ms, seccomp %+.2f ms; "
               "cgroup %+.2f ms with a warm launcher, %+.2f ms with one started per run\n",
               m[BARE_INIT_NOLL] - m[BARE], m[BARE_INIT] - m[BARE_INIT_NOLL], m[BARE_SECCOMP] - m[BARE],
               m[EXEC] - m[EXEC_NOCG], m[EXEC_SYNC] - m[EXEC_NOCG]);
        printf("ratio executor/bare: %.3f (target <= 1.15); without the pool %.3f\n", m[EXEC] / m[BARE],
               m[EXEC_SYNC] / m[BARE]);
    }
    wr_launch_pool_free(pool);
    wr_launch_pool_free(pool_nocg);
    for (int v = 0; v < NV; v++)
        free(t[v]);
    wr_strv_free(&bargv);
    wr_strv_free(&sargv);
    wr_strv_free(&iargv);
    wr_strv_free(&benv);
    wr_strv_free(&cfg);
    wr_strv_free(&cfg_noll);
    wr_plan_free(&plan);
    wr_plan_free(&plan_noll);
    rmdir(dir);
    return 0;
}
