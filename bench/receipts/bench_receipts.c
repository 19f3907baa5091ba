/* Receipts signed per second (wr_receipt_seal into a store: sign + one
 * durable transaction each, the Merkle tree appended in it) and verified
 * per second: `verify chain --dir --checkpoint` over an exported chain of N
 * receipts (read, parse, schema, key id, signature, link, the tree against
 * the checkpoint) and wr_chain_verify_store (the same, plus the store's
 * tree node by node), each on one thread and by CPU time, beside one
 * thread of libsodium verifying the same receipts' signatures in a bare
 * loop. Target: the directory walk >= 70 % of that raw rate. The walk with
 * a worker per CPU is printed too, apart. The tree's cost on sealing is
 * measured against the build of the commit before it by run.sh.
 *
 * usage: bench_receipts [CHAIN_LEN=100000] [DURABLE_DIR=/tmp] [SEALS=300]
 * The long chain is built on /dev/shm (tmpfs): building it with an fsync
 * per receipt on a disk would only measure the disk. Sealing is measured
 * both on DURABLE_DIR (what a server pays) and on tmpfs (the CPU cost). */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "receipts/receipts_internal.h" /* the worker-count knob */

#define MAX_SEALERS 32
#define ROUNDS      3    /* interleaved raw/walk rounds; the median is reported */
#define RAW_SAMPLE  4096 /* receipts whose signatures the raw loop verifies */
#define RAW_VERIFY  20000

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return s[n / 2];
}

/* The raw baseline's input: signatures and signing payloads of receipts
 * spread over the exported chain. Ed25519 verification takes variable
 * time, so the loop verifies the chain's own signatures, not one made up;
 * each payload is rebuilt the way the signing rule defines it (canonical
 * JSON without signature.signature), not the way the walk cuts it. */
typedef struct signatures {
    unsigned char (*sig)[crypto_sign_BYTES];
    char **msg;
    size_t *len, n;
} signatures;

static void signatures_free(signatures *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->msg[i]);
    free(s->sig);
    free(s->msg);
    free(s->len);
}

static int load_signatures(const char *dir, int64_t count, signatures *s)
{
    size_t want = count < RAW_SAMPLE ? (size_t)count : RAW_SAMPLE;
    *s = (signatures){malloc(want * sizeof *s->sig), calloc(want, sizeof *s->msg), calloc(want, sizeof *s->len), 0};
    for (; s->sig && s->msg && s->len && s->n < want; s->n++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%06lld.json", dir, (long long)(1 + (int64_t)s->n * count / (int64_t)want));
        wr_error err = {0};
        json_object *r = wr_json_read_file(path, NULL, &err), *sig = NULL;
        const char *b64 =
            r && json_object_object_get_ex(r, "signature", &sig) ? wr_receipt_str(sig, "signature") : NULL;
        size_t n = 0;
        if (!b64 || wr_base64_decode(b64, s->sig[s->n], crypto_sign_BYTES, &n, &err) != WR_OK)
            return fprintf(stderr, "bench: %s: no signature\n", path), json_object_put(r), 1;
        json_object_object_del(sig, "signature");
        s->msg[s->n] = wr_canonical_json(r, false, &s->len[s->n], &err);
        json_object_put(r);
        if (!s->msg[s->n])
            return fprintf(stderr, "bench: %s: %s\n", path, err.message), 1;
    }
    return s->n == want ? 0 : (fprintf(stderr, "bench: out of memory\n"), 1);
}

/* Verifications per second of CPU time, RAW_VERIFY of them over the set. */
static double raw_verify_rate(const signatures *s, const unsigned char pk[WR_PK_LEN])
{
    double t = cpu_s();
    for (long i = 0; i < RAW_VERIFY; i++) {
        size_t k = (size_t)i % s->n;
        if (crypto_sign_verify_detached(s->sig[k], (const unsigned char *)s->msg[k], s->len[k], pk) != 0) {
            fprintf(stderr, "bench: a receipt's signature does not verify\n");
            exit(1);
        }
    }
    return RAW_VERIFY / (cpu_s() - t);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_object *sample(const wr_ctx *ctx, const char *id)
{
    static const char *hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    wr_strv done = {0};
    wr_strv_push(&done, "cmd_1");
    int64_t t = wr_now_ms(ctx);
    wr_receipt_approval ap = {"apr_bench", "alice@example.com", "cli", "0123456789abcdef", "approver_key"};
    wr_receipt_input in = {
        .execution_id = id,
        .contract_id = "contract_bench",
        .contract_sha256 = hex,
        .status = "success",
        .started_ms = t - 12,
        .ended_ms = t,
        .has_exit_code = true,
        .stdout_hash = hex,
        .stderr_hash = hex,
        .stdout_stream_sha256 = hex,
        .stderr_stream_sha256 = hex,
        .stdout_bytes = 4096,
        .completed_command_ids = &done,
        .policy_profile = "default",
        .policy_schema_version = "csc.policy.v0.1",
        .policy_sha256 = hex,
        .sandbox_profile_id = "bwrap-default",
        .sandbox_profile_sha256 = hex,
        .decision = "needs_approval",
        .reason_code = "APPROVAL_REQUIRED",
        .approvals = &ap,
        .napprovals = 1,
        .agent_id = "agent-bench",
    };
    json_object *r = wr_receipt_build(&in);
    wr_strv_free(&done);
    return r;
}

/* Seals n receipts into a fresh state dir under parent; returns receipts/s. */
static double seal_rate(const char *parent, long n, char *dir_out, size_t dir_len)
{
    snprintf(dir_out, dir_len, "%s/wr-bench-XXXXXX", parent);
    if (!mkdtemp(dir_out))
        return perror(dir_out), 0;
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_keypair kp;
    wr_store *st;
    wr_schema *schema = NULL; /* compiled once, as the gate does */
    if (wr_server_key_load_or_create(dir_out, &ctx, &kp, &err) || wr_store_open(dir_out, &st, &err) ||
        !(schema = wr_receipt_schema_new(&err))) {
        fprintf(stderr, "bench: %s\n", err.message);
        exit(1);
    }
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char id[WR_ID_MAX];
        snprintf(id, sizeof id, "exe_%08ld", i);
        json_object *r = sample(&ctx, id), *s = NULL;
        if (wr_receipt_seal(st, &kp, &ctx, schema, r, id, &s, &err)) {
            fprintf(stderr, "seal: %s\n", err.message);
            exit(1);
        }
        json_object_put(r);
        json_object_put(s);
    }
    double rate = (double)n / (now_s() - t0);
    wr_schema_free(schema);
    wr_store_close(st);
    wr_keypair_wipe(&kp);
    return rate;
}

/* Signs a checkpoint of the whole chain and exports it as `warrant
 * receipts export` does (one canonical file per receipt) into out. */
typedef struct exporter {
    const char *dir;
    int rc;
} exporter;

static int export_one(void *ud, int64_t seq, const char *json)
{
    exporter *x = ud;
    char path[512];
    snprintf(path, sizeof path, "%s/%06lld.json", x->dir, (long long)seq);
    FILE *f = fopen(path, "w");
    x->rc = !f || fputs(json, f) < 0;
    if (f)
        x->rc |= fclose(f) != 0;
    return x->rc;
}

static int checkpoint_and_export(wr_store *st, const char *state_dir, const char *out, wr_tree_head *anchor)
{
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_keypair kp;
    wr_checkpoint cp;
    char *note = NULL;
    exporter x = {out, 0};
    if (wr_server_key_load(state_dir, &kp, &err) || wr_checkpoint_publish(st, &kp, &ctx, &note, &err) ||
        wr_checkpoint_verify(note, kp.pk, NULL, &cp, &err) || wr_store_iter_receipts(st, export_one, &x, &err) ||
        x.rc) {
        fprintf(stderr, "bench: checkpoint/export: %s\n", x.rc ? "cannot write a receipt file" : err.message);
        exit(1);
    }
    anchor->size = cp.size;
    memcpy(anchor->root, cp.root, WR_MERKLE_HASH_LEN);
    free(note);
    wr_keypair_wipe(&kp);
    return 0;
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* The store of a chain of n receipts sealed on tmpfs (dir, open as *st,
 * its key in spk) and its export with a checkpoint of it (out, anchor). */
typedef struct exported {
    char dir[256], out[300];
    wr_store *st;
    unsigned char spk[WR_PK_LEN];
    wr_tree_head anchor;
    double seal_rate;
} exported;

static int export_chain(long n, exported *x)
{
    wr_error err = {0};
    x->seal_rate = seal_rate("/dev/shm", n, x->dir, sizeof x->dir);
    if (wr_store_open(x->dir, &x->st, &err) || wr_server_pubkey_load(x->dir, x->spk, &err))
        return fprintf(stderr, "bench: %s\n", err.message), 1;
    snprintf(x->out, sizeof x->out, "%s-export", x->dir);
    if (mkdir(x->out, 0700) != 0 || checkpoint_and_export(x->st, x->dir, x->out, &x->anchor))
        return perror(x->out), 1;
    return 0;
}

static void exported_free(exported *x)
{
    wr_store_close(x->st);
    rm_rf(x->dir);
    rm_rf(x->out);
}

/* bench_receipts walk [CHAIN_LEN=2000]: one walk of an exported chain on
 * one thread, for a profiler. `valgrind --tool=callgrind
 * --toggle-collect=wr_chain_verify_dir_workers bench_receipts walk 2000`
 * counts the walk's instructions alone (libsodium's under
 * crypto_sign_verify_detached among them). */
static int walk_once(long n)
{
    exported x;
    if (export_chain(n, &x))
        return 1;
    wr_error err = {0};
    int64_t count = 0;
    double t = cpu_s();
    int rc = wr_chain_verify_dir_workers(x.out, x.spk, &x.anchor, 1, 1, &count, &err);
    double took = cpu_s() - t;
    if (rc != WR_OK)
        fprintf(stderr, "verify chain --dir: %s\n", err.message);
    else
        printf("verify chain --dir --checkpoint, 1 thread, one walk: %lld receipts, %.1f us of CPU time each\n",
               (long long)count, 1e6 * took / (double)count);
    exported_free(&x);
    return rc != WR_OK;
}

/* Durable seals per second with `threads` sealers sharing one store (as a
 * server's run workers do): group commit lets seals that arrive together
 * share one transaction and one fsync. */
typedef struct sealer_job {
    wr_store *st;
    const wr_keypair *kp;
    const wr_schema *schema;
    int index;
    long n;
} sealer_job;

static void *sealer_thread(void *arg)
{
    sealer_job *j = arg;
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    for (long i = 0; i < j->n; i++) {
        char id[WR_ID_MAX];
        snprintf(id, sizeof id, "exe_%03d_%08ld", j->index, i);
        json_object *r = sample(&ctx, id), *s = NULL;
        if (wr_receipt_seal(j->st, j->kp, &ctx, j->schema, r, id, &s, &err)) {
            fprintf(stderr, "seal: %s\n", err.message);
            exit(1);
        }
        json_object_put(r);
        json_object_put(s);
    }
    return NULL;
}

static double concurrent_seal_rate(const char *parent, int threads, long total)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/wr-bench-XXXXXX", parent);
    if (!mkdtemp(dir))
        return perror(dir), 0;
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_keypair kp;
    wr_store *st;
    wr_schema *schema = NULL;
    if (wr_server_key_load_or_create(dir, &ctx, &kp, &err) || wr_store_open(dir, &st, &err) ||
        !(schema = wr_receipt_schema_new(&err))) {
        fprintf(stderr, "bench: %s\n", err.message);
        exit(1);
    }
    sealer_job jobs[MAX_SEALERS];
    pthread_t t[MAX_SEALERS];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (sealer_job){st, &kp, schema, i, total / threads};
        pthread_create(&t[i], NULL, sealer_thread, &jobs[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double rate = (double)(total / threads * threads) / (now_s() - t0);
    wr_schema_free(schema);
    wr_store_close(st);
    wr_keypair_wipe(&kp);
    rm_rf(dir);
    return rate;
}

int main(int argc, char **argv)
{
    /* bench_receipts sealers [DURABLE_DIR=/tmp [SEALS=2000]]: only the concurrent seal rates. */
    if (argc > 1 && !strcmp(argv[1], "sealers")) {
        const char *dir = argc > 2 ? argv[2] : "/tmp";
        long total = argc > 3 ? atol(argv[3]) : 2000;
        static const int counts[] = {1, 8, MAX_SEALERS};
        for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
            printf("seal, durable (%s), %2d concurrent sealers %8.0f receipts/s  (%ld seals, group commit)\n", dir,
                   counts[i], concurrent_seal_rate(dir, counts[i], total), total);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "walk"))
        return walk_once(argc > 2 ? atol(argv[2]) : 2000);
    long chain = argc > 1 ? atol(argv[1]) : 100000;
    const char *durable = argc > 2 ? argv[2] : "/tmp";
    long seals = argc > 3 ? atol(argv[3]) : 300;
    if (sodium_init() < 0)
        return 1;
    wr_ctx ctx = wr_ctx_system();

    /* raw libsodium over a payload the size of a real signing payload */
    json_object *r = sample(&ctx, "exe_size");
    size_t plen;
    char *payload = wr_canonical_json(r, false, &plen, NULL);
    json_object_put(r);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];
    crypto_sign_keypair(pk, sk);
    long raw_n = 20000;
    double t0 = now_s();
    for (long i = 0; i < raw_n; i++)
        crypto_sign_detached(sig, NULL, (unsigned char *)payload, plen, sk);
    double raw_sign = (double)raw_n / (now_s() - t0);

    char dir[256];
    double durable_rate = seal_rate(durable, seals, dir, sizeof dir);
    rm_rf(dir);
    exported x;
    if (export_chain(chain, &x))
        return 1;
    double shm_rate = x.seal_rate;
    wr_error err = {0};
    wr_store *st = x.st;
    const unsigned char *spk = x.spk;
    const char *out = x.out;
    wr_tree_head anchor = x.anchor;
    signatures raw_set;
    if (load_signatures(out, anchor.size, &raw_set))
        return 1;
    /* Single-threaded walks against single-threaded libsodium, by CPU time,
     * interleaved round by round: the machine is shared, so only figures
     * taken under the same load compare. The directory walk is what
     * `warrant verify chain --dir --checkpoint` runs. */
    double raw[ROUNDS], dir_rate[ROUNDS], store_rate[ROUNDS], dir_ratio[ROUNDS], store_ratio[ROUNDS];
    int64_t count = 0;
    for (int k = 0; k < ROUNDS; k++) {
        raw[k] = raw_verify_rate(&raw_set, spk);
        double t = cpu_s();
        if (wr_chain_verify_dir_workers(out, spk, &anchor, 1, 1, &count, &err) != WR_OK)
            return fprintf(stderr, "verify chain --dir: %s\n", err.message), 1;
        dir_rate[k] = (double)count / (cpu_s() - t);
        t = cpu_s();
        if (wr_chain_verify_store_workers(st, spk, 1, &count, &err) != WR_OK)
            return fprintf(stderr, "verify chain: %s\n", err.message), 1;
        store_rate[k] = (double)count / (cpu_s() - t);
        dir_ratio[k] = dir_rate[k] / raw[k];
        store_ratio[k] = store_rate[k] / raw[k];
    }
    /* In parallel (one worker per CPU): faster by the clock, but not the
     * figure the target is about. */
    double t_wall = now_s(), t_cpu = cpu_s();
    if (wr_chain_verify_dir_workers(out, spk, &anchor, 1, 0, &count, &err) != WR_OK)
        return fprintf(stderr, "verify chain --dir: %s\n", err.message), 1;
    double par_wall = (double)count / (now_s() - t_wall), par_cpu = (double)count / (cpu_s() - t_cpu);
    signatures_free(&raw_set);
    free(payload);
    exported_free(&x);

    printf("payload                 %zu bytes (canonical receipt without signature.signature)\n", plen);
    printf("libsodium raw sign      %10.0f /s\n", raw_sign);
    printf("seal, durable (%s)   %10.0f receipts/s  (%ld seals, synchronous=FULL: one fsync'd commit each)\n", durable,
           durable_rate, seals);
    printf("seal, tmpfs             %10.0f receipts/s  (%.0f %% of raw sign)\n", shm_rate, 100 * shm_rate / raw_sign);
    printf("libsodium raw verify, 1 thread        %8.0f /s of CPU time  (the chain's own signatures over their "
           "payloads, %zu of them in a loop; median of %d rounds)\n",
           median(raw, ROUNDS), raw_set.n, ROUNDS);
    printf("verify chain --dir --checkpoint, 1 thread %8.0f receipts/s of CPU time over %lld receipts, checkpoint of "
           "size %lld: %.1f %% of raw verify (median of %d interleaved rounds; target >= 70 %%)\n",
           median(dir_rate, ROUNDS), (long long)count, (long long)anchor.size, 100 * median(dir_ratio, ROUNDS), ROUNDS);
    printf("verify chain (store), 1 thread        %8.0f receipts/s of CPU time: %.1f %% of raw verify\n",
           median(store_rate, ROUNDS), 100 * median(store_ratio, ROUNDS));
    printf(
        "verify chain --dir --checkpoint, %ld threads %8.0f receipts/s wall, %.0f receipts/s of CPU time summed over "
        "threads (parallel: not the figure the target compares)\n",
        sysconf(_SC_NPROCESSORS_ONLN), par_wall, par_cpu);
    return 0;
}
