/* Each sandbox layer's own cost, measured alone in forked children with
 * the variants alternating (wall medians on a shared machine swing by more
 * than a layer costs):
 * - seccomp: attaching each socket-family profile's build-time program (a
 *   binary tree of syscall numbers, refused families in aligned blocks)
 *   against the same filter exported as libseccomp's default linear chain.
 *   The kernel emulates the program for every syscall number when bwrap
 *   attaches it (its action cache), so the attach follows the length of
 *   the path to each syscall's verdict;
 * - Landlock: warrant-init's wr_landlock_apply of the bench plan's rules
 *   (the host's paths of the same names), against nothing;
 * - warrant-init: fork and exec of /bin/true through warrant-init (its
 *   configuration read, the command spawned and reaped; Landlock off)
 *   against /bin/true exec'd directly.
 * usage: bench_layers [ROUNDS] */
#include "bench_util.h"
#include "executor/executor_internal.h"

#include "executor/landlock.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINEAR 1 /* SCMP_FLTATR_CTL_OPTIMIZE: libseccomp's default chain */

/* The filter of fam exported as a linear chain (what was shipped before). */
static int linear_program(wr_sock_families fam, unsigned char **bpf, size_t *len)
{
    wr_error err = {0};
    scmp_filter_ctx ctx = wr_seccomp_filter(fam, &err);
    FILE *f = ctx ? tmpfile() : NULL;
    int rc = -1;
    long size;
    if (f && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, LINEAR) == 0 && seccomp_export_bpf(ctx, fileno(f)) == 0 &&
        (size = lseek(fileno(f), 0, SEEK_END)) > 0 && (*bpf = malloc((size_t)size)) &&
        pread(fileno(f), *bpf, (size_t)size, 0) == size) {
        *len = (size_t)size;
        rc = 0;
    }
    if (f)
        fclose(f);
    if (ctx)
        seccomp_release(ctx);
    return rc;
}

/* What one forked child measures and writes to *slot (microseconds). */
typedef int (*child_fn)(const void *arg, double *slot);

/* Runs fn in a fresh child; its time, or -1 when it failed. */
static double in_child(child_fn fn, const void *arg, double *slot)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg, slot));
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? *slot : -1;
}

static int attach(const void *arg, double *slot)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return 1;
    double t0 = bench_now_ms();
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, arg) != 0)
        return 1;
    *slot = (bench_now_ms() - t0) * 1e3;
    return 0;
}

typedef struct rules {
    wr_ll_rule v[64];
    int n, abi;
} rules;

static int landlock(const void *arg, double *slot)
{
    const rules *r = arg;
    const char *stage;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return 1;
    double t0 = bench_now_ms();
    if (r && wr_landlock_apply(r->abi, r->v, r->n, WR_LL_TCP_NONE, &stage) != 0)
        return 1;
    *slot = (bench_now_ms() - t0) * 1e3;
    return 0;
}

typedef struct init_run {
    const char *init; /* NULL: /bin/true directly */
    const char *cfg;
    size_t cfglen;
} init_run;

/* /bin/true, through init or not, started and waited for by this child. */
static int start_true(const void *arg, double *slot)
{
    const init_run *x = arg;
    int cp[2], null = open("/dev/null", O_RDWR);
    if (null < 0 || pipe(cp) != 0 || write(cp[1], x->cfg, x->cfglen) != (ssize_t)x->cfglen)
        return 1;
    close(cp[1]);
    double t0 = bench_now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        char cfd[16], sfd[16];
        snprintf(cfd, sizeof cfd, "%d", cp[0]);
        snprintf(sfd, sizeof sfd, "%d", null);
        char *const env[] = {NULL};
        if (x->init)
            execle(x->init, x->init, sfd, cfd, "/bin/true", "true", (char *)NULL, env);
        else
            execle("/bin/true", "true", (char *)NULL, env);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 1;
    *slot = (bench_now_ms() - t0) * 1e3;
    return 0;
}

/* Alternates a and b for rounds and prints both medians (microseconds). */
static int compare(const char *what, const char *na, child_fn fa, const void *a, const char *nb, child_fn fb,
                   const void *b, int rounds, double *shared, double **t)
{
    for (int i = 0; i < rounds; i++)
        if ((t[0][i] = in_child(fa, a, shared)) < 0 || (t[1][i] = in_child(fb, b, shared)) < 0) {
            fprintf(stderr, "bench_layers: %s failed\n", what);
            return -1;
        }
    double ma = bench_median(t[0], rounds), mb = bench_median(t[1], rounds);
    printf("  %-34s %s %7.1f us | %s %7.1f us | %+.1f us\n", what, na, ma, nb, mb, mb - ma);
    return 0;
}

/* The bench plan (bench_executor's: /bin/true, one read path) and init's
 * configuration for it. */
static int bench_plan(const char *dir, int landlock_abi, char **cfg, size_t *len)
{
    static char *true_argv[] = {"/bin/true", NULL};
    char *reads[] = {(char *)dir, NULL};
    wr_strv seg = {true_argv, 1};
    wr_command cmd = {.id = "bench",
                      .segments = &seg,
                      .nsegments = 1,
                      .cwd = (char *)dir,
                      .read_paths = {reads, 1},
                      .network = WR_NET_DENY,
                      .timeout_sec = 30};
    wr_contract ct = {.contract_id = "ct_bench", .commands = &cmd, .ncommands = 1};
    wr_sandbox_limits lim = {.run_as = "nobody", .memory_mb = 1024, .max_processes = 1024};
    wr_ctx ctx = wr_ctx_system();
    wr_exec_request req = {.contract = &ct, .limits = &lim, .cancel_fd = -1, .ctx = &ctx, .landlock = landlock_abi};
    wr_plan p;
    wr_error err = {0};
    int rc = wr_plan_build(&req, 0, false, &p, &err);
    if (rc == WR_OK)
        rc = wr_plan_config(&p, cfg, len, &err);
    if (rc != WR_OK)
        fprintf(stderr, "bench_layers: %s\n", err.message);
    wr_plan_free(&p);
    return rc;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    if (rounds < 1)
        rounds = 1000;
    static const char *const names[] = {"unix", "inet", "inet+netlink-route"};
    /* the children write their times here */
    double *shared = mmap(NULL, sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *t[2];
    for (int v = 0; v < 2; v++)
        t[v] = calloc((size_t)rounds, sizeof(double));
    if (shared == MAP_FAILED || !t[0] || !t[1])
        return 2;
    printf("each layer alone, %d rounds alternating, medians:\n", rounds);
    for (size_t fam = 0; fam < wr_seccomp_nprograms; fam++) {
        unsigned char *lin;
        size_t lin_len;
        if (linear_program((wr_sock_families)fam, &lin, &lin_len) != 0) {
            fprintf(stderr, "bench_layers: cannot export the linear program\n");
            return 2;
        }
        struct sock_fprog prog[2] = {
            {(unsigned short)(lin_len / sizeof(struct sock_filter)), (struct sock_filter *)lin},
            {(unsigned short)(wr_seccomp_programs[fam].len / sizeof(struct sock_filter)),
             (struct sock_filter *)wr_seccomp_programs[fam].code},
        };
        char what[64], na[32], nb[32];
        snprintf(what, sizeof what, "seccomp attach, %s", names[fam]);
        snprintf(na, sizeof na, "linear %3u insns", prog[0].len);
        snprintf(nb, sizeof nb, "tree %3u insns", prog[1].len);
        int rc = compare(what, na, attach, &prog[0], nb, attach, &prog[1], rounds, shared, t);
        free(lin);
        if (rc != 0)
            return 1;
    }

    char dir[] = "/tmp/wr-bench-XXXXXX", init[4096];
    char *cfg = NULL, *cfg_noll = NULL;
    size_t len, len_noll;
    wr_error err = {0};
    const char *why;
    rules r = {.abi = wr_landlock_abi(&why)};
    if (!mkdtemp(dir) || bench_plan(dir, 0, &cfg, &len) != WR_OK || bench_plan(dir, -1, &cfg_noll, &len_noll) ||
        wr_exec_helper_path(WR_INIT_NAME, init, sizeof init, &err) != WR_OK)
        return 2;
    for (size_t at = 0; at < len && r.n < (int)(sizeof r.v / sizeof *r.v); at += strlen(cfg + at) + 1)
        if (wr_ll_kind_of(cfg[at], &r.v[r.n].kind))
            r.v[r.n++].path = cfg + at + 1;
    int rc = 0;
    if (r.abi > 0) {
        char what[64];
        snprintf(what, sizeof what, "Landlock, %d rules, ABI %d", r.n, r.abi);
        rc = compare(what, "none", landlock, NULL, "applied", landlock, &r, rounds, shared, t);
    }
    init_run direct = {NULL, cfg_noll, len_noll}, via = {init, cfg_noll, len_noll};
    if (rc == 0)
        rc = compare("warrant-init (no Landlock)", "true", start_true, &direct, "init+true", start_true, &via, rounds,
                     shared, t);
    free(cfg);
    free(cfg_noll);
    rmdir(dir);
    return rc == 0 ? 0 : 1;
}
