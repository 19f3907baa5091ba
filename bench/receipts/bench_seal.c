/* Seals N receipts into a fresh state dir and prints the rate by wall
 * clock and by this process's CPU time (steady on a shared machine).
 * run.sh compiles this one file against two builds — the commit before the
 * Merkle tree and this one — so that only the library code differs; it
 * uses nothing the older build lacks.
 *
 * usage: bench_seal N PARENT_DIR   (PARENT_DIR: /dev/shm for the CPU cost,
 * a disk for what a server pays) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "receipts/receipts.h"

static double seconds(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: bench_seal N PARENT_DIR\n"), 2;
    long n = atol(argv[1]);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/wr-seal-XXXXXX", argv[2]);
    if (!mkdtemp(dir))
        return perror(dir), 1;
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_keypair kp;
    wr_store *st;
    wr_schema *schema = NULL;
    if (wr_server_key_load_or_create(dir, &ctx, &kp, &err) || wr_store_open(dir, &st, &err) ||
        !(schema = wr_receipt_schema_new(&err)))
        return fprintf(stderr, "bench_seal: %s\n", err.message), 1;
    static const char *hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        char id[WR_ID_MAX];
        snprintf(id, sizeof id, "exe_%08ld", i);
        wr_receipt_input in = {
            .execution_id = id,
            .contract_id = "contract_bench",
            .contract_sha256 = hex,
            .status = "success",
            .started_ms = wr_now_ms(&ctx) - 12,
            .ended_ms = wr_now_ms(&ctx),
            .has_exit_code = true,
            .stdout_hash = hex,
            .stderr_hash = hex,
            .policy_profile = "default",
            .policy_schema_version = "csc.policy.v0.1",
            .policy_sha256 = hex,
            .sandbox_profile_id = "bwrap-default",
            .sandbox_profile_sha256 = hex,
            .decision = "allow",
            .reason_code = "ALLOW",
            .agent_id = "agent-bench",
        };
        json_object *r = wr_receipt_build(&in), *s = NULL;
        if (wr_receipt_seal(st, &kp, &ctx, schema, r, id, &s, &err))
            return fprintf(stderr, "seal: %s\n", err.message), 1;
        json_object_put(r);
        json_object_put(s);
    }
    double wall = seconds(CLOCK_MONOTONIC) - w0, cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("%ld seals: %.0f /s wall, %.0f /s of CPU time (%.1f us CPU each)\n", n, n / wall, n / cpu, 1e6 * cpu / n);
    wr_schema_free(schema);
    wr_store_close(st);
    wr_keypair_wipe(&kp);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
