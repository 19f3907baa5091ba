/* Median wall time of the executor running /bin/true in its sandbox
 * (plan, path checks, seccomp export, privilege drop, bwrap, supervision,
 * artifact walk, its own cgroup) against a bare bwrap with the same mounts
 * and namespaces, started with posix_spawn and waited for; and the
 * executor once more with the cgroup layer off (a cgroup root with nothing
 * under it), whose difference is what the per-command cgroup costs. Runs
 * alternate so that drift in machine load hits every side alike. */
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

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Bare bwrap, started like the executor starts it (fork, exec) but with
 * nothing else: no seccomp, rlimits, pipes or supervision. drop: as root,
 * become the sandbox user first (what `setpriv --reuid --regid
 * --clear-groups bwrap ...` does), because bwrap costs more unprivileged.
 * The synthetic /etc files travel as data fds, as in the executor. */
static int bare_run(const wr_plan *p, char *const *argv, char *const *envp, bool drop)
{
    int fds[8], nfds = 0;
    for (size_t i = 0; i < p->nops && nfds < 8; i++) {
        if (p->ops[i].kind != WR_OP_FILE)
            continue;
        int fd = memfd_create("bench", MFD_CLOEXEC);
        size_t len = strlen(p->ops[i].data);
        if (fd < 0 || write(fd, p->ops[i].data, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
            return -1;
        fds[nfds++] = fd;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        for (int i = 0; i < nfds; i++)
            dup2(fds[i], WR_SLOT_FIRST + i);
        if (drop && (setgroups(0, NULL) || setresgid(p->gid, p->gid, p->gid) || setresuid(p->uid, p->uid, p->uid)))
            _exit(126);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* One executor run of /bin/true; 0 on success. */
static int exec_once(const wr_exec_request *req, wr_error *err)
{
    wr_exec_result *r = NULL;
    if (wr_exec_run(req, &r, err) != WR_OK || r->status != WR_EXEC_SUCCESS) {
        fprintf(stderr, "bench: executor run failed: %s\n%.*s\n", r && r->error ? r->error : err->message,
                r ? (int)r->err.captured_len : 0, r ? (const char *)r->err.captured : "");
        wr_exec_result_free(r);
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
    char nocg[] = "/tmp/wr-bench-nocg-XXXXXX";
    if (!mkdtemp(nocg))
        return perror("mkdtemp"), 2;
    wr_exec_request req_nocg = req;
    req_nocg.cgroup_root = nocg;
    wr_error err = {0};

    /* The bare command: the executor's own plan, rendered with plain paths
     * and without seccomp, privilege drop or supervision. */
    wr_plan plan;
    wr_strv bargv, benv;
    if (wr_plan_build(&req, 0, false, &plan, &err) != WR_OK ||
        wr_plan_render(&plan, 0, 0, true_argv, &bargv, &err) != WR_OK || wr_plan_envp(&plan, &benv, &err) != WR_OK) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 2;
    }
    bool root = geteuid() == 0;
    double *te = calloc((size_t)runs, sizeof *te), *tb = calloc((size_t)runs, sizeof *tb),
           *tr = calloc((size_t)runs, sizeof *tr), *tn = calloc((size_t)runs, sizeof *tn);
    const char *cg_mode = wr_cg_mode_name(plan.cg.mode);
    for (int i = -3; i < runs; i++) { /* 3 warm-up rounds */
        double tn0 = now_ms();
        if (exec_once(&req_nocg, &err) != 0)
            return 1;
        double t0 = now_ms();
        if (exec_once(&req, &err) != 0)
            return 1;
        double t1 = now_ms();
        if (i >= 0)
            tn[i] = t0 - tn0;
        if (bare_run(&plan, bargv.v, benv.v, root) != 0) {
            fprintf(stderr, "bench: bare bwrap failed\n");
            return 1;
        }
        double t2 = now_ms();
        if (root && bare_run(&plan, bargv.v, benv.v, false) != 0) {
            fprintf(stderr, "bench: bare bwrap as root failed\n");
            return 1;
        }
        double t3 = now_ms();
        if (i >= 0) {
            te[i] = t1 - t0;
            tb[i] = t2 - t1;
            tr[i] = t3 - t2;
        }
    }
    double me = median(te, runs), mb = median(tb, runs);
    printf("runs: %d, interleaved; sandbox user uid %u%s\n", runs, (unsigned)plan.uid,
           root ? " (executor and bare bwrap drop from root)" : "");
    printf("executor /bin/true median:   %.2f ms\n", me);
    printf("bare bwrap /bin/true median: %.2f ms (same user, same mounts)\n", mb);
    if (root)
        printf("bare bwrap as root median:   %.2f ms (for reference: no privilege drop)\n", median(tr, runs));
    printf("ratio executor/bare: %.3f (target <= 1.15)\n", me / mb);
    double mn = median(tn, runs);
    printf("executor without cgroup:     %.2f ms (cgroup layer: %s, costs %.2f ms = %.3fx)\n", mn, cg_mode, me - mn,
           me / mn);
    free(tn);
    rmdir(nocg);
    free(te);
    free(tr);
    free(tb);
    wr_strv_free(&bargv);
    wr_strv_free(&benv);
    wr_plan_free(&plan);
    rmdir(dir);
    return 0;
}
