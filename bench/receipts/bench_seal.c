/* Seals N receipts into a fresh state dir, then verifies the chain from
 * the store and from an export of it, printing each rate by wall clock and
 * by this process's CPU time (all threads; steady on a shared machine),
 * beside the CPU time of a raw libsodium verify.
 * run.sh compiles this one file against two builds — the commit before the
 * Merkle tree and this one — so that only the library code differs; it
 * uses nothing the older build lacks.
 *
 * usage: bench_seal N PARENT_DIR   (PARENT_DIR: /dev/shm for the CPU cost,
 * a disk for what a server pays) */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "receipts/receipts.h"

static double seconds(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct clocks {
    double wall, cpu;
} clocks;

static clocks now(void)
{
    return (clocks){seconds(CLOCK_MONOTONIC), seconds(CLOCK_PROCESS_CPUTIME_ID)};
}

static void report(const char *what, long n, clocks t0)
{
    clocks t = now();
    printf("%s: %ld: %.0f /s wall, %.0f /s of CPU time (%.1f us CPU each)\n", what, n, n / (t.wall - t0.wall),
           n / (t.cpu - t0.cpu), 1e6 * (t.cpu - t0.cpu) / n);
}

static int export_one(void *ud, int64_t seq, const char *json)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%06lld.json", (const char *)ud, (long long)seq);
    FILE *f = fopen(path, "w");
    int bad = !f || fputs(json, f) < 0;
    return (f && fclose(f) != 0) || bad;
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
    clocks t0 = now();
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
    report("seal", n, t0);

    int64_t count = 0;
    t0 = now();
    if (wr_chain_verify_store(st, kp.pk, &count, &err))
        return fprintf(stderr, "verify: %s\n", err.message), 1;
    report("verify chain, store", (long)count, t0);
    char out[600];
    snprintf(out, sizeof out, "%s/export", dir);
    if (mkdir(out, 0700) || wr_store_iter_receipts(st, export_one, out, &err))
        return fprintf(stderr, "export failed\n"), 1;
    t0 = now();
    if (wr_chain_verify_dir(out, kp.pk, &count, &err))
        return fprintf(stderr, "verify: %s\n", err.message), 1;
    report("verify chain, dir", (long)count, t0);
    /* The signature check alone, over a receipt-sized message. */
    unsigned char msg[1400] = {0}, sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, msg, sizeof msg, kp.sk);
    t0 = now();
    for (long i = 0; i < n; i++)
        if (crypto_sign_verify_detached(sig, msg, sizeof msg, kp.pk) != 0)
            return 1;
    report("raw libsodium verify", n, t0);
    wr_schema_free(schema);
    wr_store_close(st);
    wr_keypair_wipe(&kp);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
