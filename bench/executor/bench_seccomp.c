/* What attaching the seccomp program costs, as bwrap attaches it before
 * exec: each socket-family profile's build-time program (a binary tree of
 * syscall numbers, refused families in aligned blocks) against the same
 * filter exported as libseccomp's default linear chain, attached in forked
 * children alternately. The kernel emulates the program for every syscall
 * number of the architecture at attach time (its action cache), so the
 * attach follows the length of the path to each syscall's verdict.
 * usage: bench_seccomp [ROUNDS] */
#include "bench_util.h"
#include "executor/executor_internal.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Microseconds one attach of prog took, in a fresh child. */
static double attach_us(const struct sock_fprog *prog, double *slot)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            _exit(1);
        double t0 = bench_now_ms();
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) != 0)
            _exit(1);
        *slot = (bench_now_ms() - t0) * 1e3;
        _exit(0);
    }
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? *slot : -1;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    if (rounds < 1)
        rounds = 2000;
    static const char *const names[] = {"unix", "inet", "inet+netlink-route"};
    /* the children write their times here */
    double *shared = mmap(NULL, sizeof(double), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *t[2];
    for (int v = 0; v < 2; v++)
        t[v] = calloc((size_t)rounds, sizeof(double));
    if (shared == MAP_FAILED || !t[0] || !t[1])
        return 2;
    printf("seccomp attach, %d rounds alternating, median:\n", rounds);
    for (size_t fam = 0; fam < wr_seccomp_nprograms; fam++) {
        unsigned char *lin;
        size_t lin_len;
        if (linear_program((wr_sock_families)fam, &lin, &lin_len) != 0) {
            fprintf(stderr, "bench_seccomp: cannot export the linear program\n");
            return 2;
        }
        struct sock_fprog prog[2] = {
            {(unsigned short)(lin_len / sizeof(struct sock_filter)), (struct sock_filter *)lin},
            {(unsigned short)(wr_seccomp_programs[fam].len / sizeof(struct sock_filter)),
             (struct sock_filter *)wr_seccomp_programs[fam].code},
        };
        for (int i = 0; i < rounds; i++)
            for (int v = 0; v < 2; v++)
                if ((t[v][i] = attach_us(&prog[v], shared)) < 0) {
                    fprintf(stderr, "bench_seccomp: attach failed\n");
                    return 1;
                }
        double lm = bench_median(t[0], rounds), tm = bench_median(t[1], rounds);
        printf("  %-20s linear chain %3u insns %6.1f us | shipped tree %3u insns %6.1f us | ratio %.2f\n", names[fam],
               prog[0].len, lm, prog[1].len, tm, tm / lm);
        free(lin);
    }
    return 0;
}
