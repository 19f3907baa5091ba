/* receipts/: the server key, sealing into the chain, single-receipt
 * verification and chain verification (store and directory) against
 * concrete tampering: deletion, swap, duplicate, alteration, re-signing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "receipts/receipts_internal.h" /* the compiled superset schema */

#define ZEROS     "0000000000000000000000000000000000000000000000000000000000000000"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct fixture {
    char root[64], dir[80], out[80];
    int64_t now;
    wr_ctx ctx;
    wr_keypair kp;
    wr_store *st;
} fixture;

static int64_t clock_fn(void *ud)
{
    return ((fixture *)ud)->now++;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/wr-receipts-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/state", f->root);
    snprintf(f->out, sizeof f->out, "%s/out", f->root);
    f->now = 1795000000000;
    f->ctx = wr_ctx_system();
    f->ctx.now_ms = clock_fn;
    f->ctx.ud = f;
    wr_error err = {0};
    if (wr_server_key_load_or_create(f->dir, &f->ctx, &f->kp, &err) != WR_OK ||
        wr_store_open(f->dir, &f->st, &err) != WR_OK) {
        fprintf(stderr, "setup: %s\n", err.message);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    wr_store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static json_object *build(fixture *f, const char *execution_id, const char *status)
{
    wr_strv done = {0};
    wr_strv_push(&done, "cmd_1");
    wr_receipt_approval ap = {"apr_1", "alice@example.com", "cli", "0123456789abcdef", "approver_key"};
    wr_receipt_input in = {
        .execution_id = execution_id,
        .contract_id = "contract_1",
        .contract_sha256 = EMPTY_SHA,
        .status = status,
        .started_ms = f->now,
        .ended_ms = f->now + 10,
        .has_exit_code = true,
        .exit_code = 0,
        .stdout_hash = EMPTY_SHA,
        .stderr_hash = EMPTY_SHA,
        .stdout_stream_sha256 = EMPTY_SHA,
        .stderr_stream_sha256 = EMPTY_SHA,
        .stdout_bytes = 0,
        .completed_command_ids = &done,
        .policy_profile = "default",
        .policy_schema_version = "csc.policy.v0.1",
        .policy_sha256 = EMPTY_SHA,
        .sandbox_profile_id = "default",
        .sandbox_profile_sha256 = EMPTY_SHA,
        .decision = "needs_approval",
        .reason_code = "APPROVAL_REQUIRED",
        .approvals = &ap,
        .napprovals = 1,
        .agent_id = "agent-1",
    };
    json_object *r = wr_receipt_build(&in);
    wr_strv_free(&done);
    return r;
}

static json_object *seal(fixture *f, const char *execution_id)
{
    json_object *r = build(f, execution_id, "success"), *s = NULL;
    wr_error err = {0};
    int rc = wr_receipt_seal(f->st, &f->kp, &f->ctx, NULL, r, execution_id, &s, &err);
    if (rc)
        fprintf(stderr, "seal: %s\n", err.message);
    assert_int_equal(rc, WR_OK);
    json_object_put(r);
    return s;
}

static void seal_n(fixture *f, int n)
{
    for (int i = 1; i <= n; i++) {
        char id[32];
        snprintf(id, sizeof id, "exe_%d", i);
        json_object_put(seal(f, id));
    }
}

static unsigned mode_of(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
}

/* ---- server key ----------------------------------------------------------- */

static void test_server_key(void **state)
{
    fixture *f = *state;
    assert_int_equal(mode_of(f->root, "state"), 0700);
    assert_int_equal(mode_of(f->dir, "receipt-signing.key"), 0600);
    unsigned char raw[32];
    char hex[65], want[17];
    wr_sha256_hex(f->kp.pk, 32, hex);
    memcpy(want, hex, 16);
    want[16] = 0;
    assert_string_equal(f->kp.key_id, want);

    wr_keypair again;
    wr_error err = {0};
    assert_int_equal(wr_server_key_load_or_create(f->dir, &f->ctx, &again, &err), WR_OK);
    assert_memory_equal(again.pk, f->kp.pk, 32); /* loaded, not replaced */
    assert_int_equal(wr_server_pubkey_load(f->dir, raw, &err), WR_OK);
    assert_memory_equal(raw, f->kp.pk, 32);

    /* The .pub is derived: a deleted one comes back. */
    char p[256];
    snprintf(p, sizeof p, "%s/receipt-signing.pub", f->dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(wr_server_pubkey_load(f->dir, raw, &err), WR_OK);
    assert_int_equal(wr_server_key_load_or_create(f->dir, &f->ctx, &again, &err), WR_OK);
    assert_int_equal(access(p, F_OK), 0);

    snprintf(p, sizeof p, "%s/receipt-signing.key", f->dir);
    assert_int_equal(chmod(p, 0640), 0);
    assert_int_equal(wr_server_key_load_or_create(f->dir, &f->ctx, &again, &err), WR_E_DENIED);
    assert_non_null(strstr(err.message, "group or others"));
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(wr_server_pubkey_load(f->root, raw, &err), WR_E_NOTFOUND);
    wr_keypair_wipe(&again);
}

/* Servers starting together on a fresh state dir agree on one key. */
static void test_server_key_race(void **state)
{
    fixture *f = *state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/fresh", f->root);
    enum {
        N = 6
    };
    int pipes[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            wr_keypair kp;
            wr_error err = {0};
            wr_ctx ctx = wr_ctx_system();
            if (wr_server_key_load_or_create(dir, &ctx, &kp, &err) != WR_OK)
                _exit(3);
            _exit(write(pipes[i][1], kp.pk, WR_PK_LEN) == WR_PK_LEN ? 0 : 4);
        }
        close(pipes[i][1]);
    }
    unsigned char first[WR_PK_LEN];
    for (int i = 0; i < N; i++) {
        unsigned char pk[WR_PK_LEN];
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(read(pipes[i][0], pk, WR_PK_LEN), WR_PK_LEN);
        close(pipes[i][0]);
        if (i == 0)
            memcpy(first, pk, WR_PK_LEN);
        assert_memory_equal(pk, first, WR_PK_LEN);
    }
    unsigned char pub[WR_PK_LEN];
    wr_error err = {0};
    assert_int_equal(wr_server_pubkey_load(dir, pub, &err), WR_OK);
    assert_memory_equal(pub, first, WR_PK_LEN);
}

/* ---- seal and verify ------------------------------------------------------ */

static void test_seal_links_and_verifies(void **state)
{
    fixture *f = *state;
    json_object *r1 = seal(f, "exe_1"), *r2 = seal(f, "exe_2");
    wr_error err = {0};
    assert_int_equal(json_object_get_int64(json_object_object_get(r1, "seq")), 1);
    assert_string_equal(json_object_get_string(json_object_object_get(r1, "prev_receipt_sha256")), ZEROS);
    char h1[65];
    assert_int_equal(wr_receipt_hash(r1, h1, &err), WR_OK);
    assert_string_equal(json_object_get_string(json_object_object_get(r2, "prev_receipt_sha256")), h1);
    assert_int_equal(json_object_get_int64(json_object_object_get(r2, "seq")), 2);
    assert_string_equal(json_object_get_string(json_object_object_get(r2, "execution_mode")), "hardened");
    assert_string_equal(json_object_get_string(json_object_object_get(r2, "runner_version")), WR_VERSION);
    assert_string_equal(json_object_get_string(json_object_object_get(r2, "signing_key_id")), f->kp.key_id);
    assert_int_equal(wr_receipt_verify(r1, f->kp.pk, &err), WR_OK);

    /* What the store holds is the canonical signed form of what came back. */
    char *stored = NULL, *canon = wr_canonical_json(r2, false, NULL, &err);
    assert_int_equal(wr_store_get_receipt(f->st, "exe_2", &stored, &err), WR_OK);
    assert_string_equal(stored, canon);
    int64_t head;
    char head_sha[65], h2[65];
    assert_int_equal(wr_store_chain_head(f->st, &head, head_sha, &err), WR_OK);
    assert_int_equal(wr_receipt_hash(r2, h2, &err), WR_OK);
    assert_int_equal(head, 2);
    assert_string_equal(head_sha, h2);
    free(stored);
    free(canon);

    /* Rejections, each with its reason. */
    wr_keypair other;
    assert_int_equal(wr_key_generate(&f->ctx, &other, &err), WR_OK);
    assert_int_equal(wr_receipt_verify(r1, other.pk, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "not by the given public key"));
    json_object_object_add(r1, "exit_code", json_object_new_int(1));
    assert_int_equal(wr_receipt_verify(r1, f->kp.pk, &err), WR_E_CRYPTO);
    assert_string_equal(err.message, "signature does not verify: the content was altered after signing");
    json_object_object_add(r1, "surprise", json_object_new_int(1));
    assert_int_equal(wr_receipt_verify(r1, f->kp.pk, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "warrant.receipt.schema.json"));
    json_object_object_del(r1, "surprise");
    json_object_object_del(r1, "signature");
    assert_int_equal(wr_receipt_verify(r1, f->kp.pk, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "not signed"));
    /* Re-signed with another key: signing_key_id still names ours. */
    json_object_object_del(r1, "signing_key_id");
    assert_int_equal(wr_receipt_sign(r1, &other, &f->ctx, &err), WR_OK);
    assert_int_equal(wr_receipt_verify(r1, other.pk, &err), WR_OK);
    assert_int_equal(wr_receipt_verify(r1, f->kp.pk, &err), WR_E_CRYPTO);
    wr_keypair_wipe(&other);
    json_object_put(r1);
    json_object_put(r2);
}

static void test_seal_refuses_incomplete_receipt(void **state)
{
    fixture *f = *state;
    json_object *r = build(f, "exe_bad", "success"), *s = NULL;
    json_object_object_del(r, "exit_code"); /* required for success by CSC */
    wr_error err = {0};
    assert_int_equal(wr_receipt_seal(f->st, &f->kp, &f->ctx, NULL, r, "exe_bad", &s, &err), WR_E_INVALID);
    assert_null(s);
    assert_non_null(strstr(err.message, "refusing to seal"));
    assert_int_equal(wr_receipt_seal(f->st, &f->kp, &f->ctx, NULL, r, "exe_other", &s, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "execution_id does not match"));
    json_object_put(r);
    int64_t head;
    char sha[65];
    assert_int_equal(wr_store_chain_head(f->st, &head, sha, &err), WR_OK);
    assert_int_equal(head, 0); /* nothing entered the chain */
    assert_string_equal(sha, ZEROS);

    /* Blocked receipts carry no exit code or hashes and still seal. */
    wr_receipt_input in = {.execution_id = "exe_blocked",
                           .contract_id = "c",
                           .contract_sha256 = EMPTY_SHA,
                           .status = "blocked",
                           .policy_profile = "default",
                           .error = "denied: ARGV_PREFIX_DENIED"};
    r = wr_receipt_build(&in);
    assert_int_equal(wr_receipt_seal(f->st, &f->kp, &f->ctx, NULL, r, "exe_blocked", &s, &err), WR_OK);
    assert_null(json_object_object_get(s, "exit_code"));
    assert_int_equal(wr_receipt_verify(s, f->kp.pk, &err), WR_OK);
    json_object_put(r);
    json_object_put(s);
}

/* ---- chain: store ----------------------------------------------------------- */

static void sql(fixture *f, const char *stmt)
{
    char db[128];
    snprintf(db, sizeof db, "%s/warrant.db", f->dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(h, stmt, NULL, NULL, &msg);
    if (rc)
        fprintf(stderr, "sql: %s\n", msg);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(h);
}

/* A verification's result: code, and msg within its message (unless NULL). */
static void expect_result(int rc, const wr_error *err, int code, const char *msg)
{
    if (rc != code || (msg && !strstr(err->message, msg)))
        fprintf(stderr, "got %d: %s\n", rc, err->message);
    assert_int_equal(rc, code);
    if (msg)
        assert_non_null(strstr(err->message, msg));
}

static void expect_store(fixture *f, int code, const char *msg)
{
    wr_error err = {0};
    int64_t n = -1;
    int rc = wr_chain_verify_store(f->st, f->kp.pk, &n, &err);
    expect_result(rc, &err, code, msg);
}

static void test_chain_store_ok_and_deleted(void **state)
{
    fixture *f = *state;
    expect_store(f, WR_OK, NULL); /* empty chain */
    seal_n(f, 5);
    wr_error err = {0};
    int64_t n = 0;
    assert_int_equal(wr_chain_verify_store(f->st, f->kp.pk, &n, &err), WR_OK);
    assert_int_equal(n, 5);
    sql(f, "DELETE FROM receipts WHERE seq = 3");
    expect_store(f, WR_E_INVALID, "seq 3: gap: seq 3 is missing (seq 4 follows seq 2)");
}

/* Longer than one batch of the parallel walk: the first problem is still
 * the one reported, wherever the batches split. */
static void test_chain_store_long(void **state)
{
    fixture *f = *state;
    seal_n(f, 1100);
    wr_error err = {0};
    int64_t n = 0;
    assert_int_equal(wr_chain_verify_store(f->st, f->kp.pk, &n, &err), WR_OK);
    assert_int_equal(n, 1100);
    sql(f, "DELETE FROM receipts WHERE seq = 1000");
    sql(f, "UPDATE receipts SET json = replace(json, '\"agent-1\"', '\"agent-2\"') WHERE seq = 1050");
    expect_store(f, WR_E_INVALID, "seq 1000: gap: seq 1000 is missing (seq 1001 follows seq 999)");
    sql(f, "UPDATE receipts SET json = replace(json, '\"agent-1\"', '\"agent-2\"') WHERE seq = 600");
    expect_store(f, WR_E_CRYPTO, "seq 600: altered");
}

static void test_chain_store_swapped(void **state)
{
    fixture *f = *state;
    seal_n(f, 4);
    sql(f, "UPDATE receipts SET json = CASE seq WHEN 2 THEN (SELECT json FROM receipts WHERE seq = 3)"
           " ELSE (SELECT json FROM receipts WHERE seq = 2) END WHERE seq IN (2, 3)");
    expect_store(f, WR_E_INVALID, "seq 3: reordered: found in place of seq 2");
}

static void test_chain_store_altered(void **state)
{
    fixture *f = *state;
    seal_n(f, 4);
    sql(f, "UPDATE receipts SET json = replace(json, '\"exit_code\":0', '\"exit_code\":7') WHERE seq = 2");
    expect_store(f, WR_E_CRYPTO, "seq 2: altered: /signature/signature: signature does not verify");
}

static void test_chain_store_truncated(void **state)
{
    fixture *f = *state;
    seal_n(f, 4);
    sql(f, "DELETE FROM receipts WHERE seq = 4");
    expect_store(f, WR_E_INVALID, "the chain head is seq 4 but the receipts end at seq 3");
}

static void test_chain_store_resigned(void **state)
{
    fixture *f = *state;
    seal_n(f, 3);
    /* A consistent chain signed by another key is still not ours. */
    wr_keypair other;
    wr_error err = {0};
    assert_int_equal(wr_key_generate(&f->ctx, &other, &err), WR_OK);
    expect_store(f, WR_OK, NULL);
    assert_int_equal(wr_chain_verify_store(f->st, other.pk, NULL, &err), WR_E_CRYPTO);
    assert_non_null(strstr(err.message, "seq 1: altered: /signature/key_id: signed by key"));
    wr_keypair_wipe(&other);
}

/* ---- chain: directory --------------------------------------------------- */

static int export_fn(void *ud, int64_t seq, const char *json)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%06lld.json", (const char *)ud, (long long)seq);
    return wr_write_file_atomic(path, json, strlen(json), 0644, NULL) != WR_OK;
}

static void export_dir(fixture *f, int n)
{
    seal_n(f, n);
    assert_int_equal(mkdir(f->out, 0700), 0);
    wr_error err = {0};
    assert_int_equal(wr_store_iter_receipts(f->st, export_fn, f->out, &err), WR_OK);
}

static char *out_path(fixture *f, const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", f->out, name);
    return p;
}

static void expect_dir(fixture *f, const unsigned char *pk, int code, const char *msg)
{
    wr_error err = {0};
    int64_t n = -1;
    int rc = wr_chain_verify_dir(f->out, pk, &n, &err);
    expect_result(rc, &err, code, msg);
}

static void test_chain_dir(void **state)
{
    fixture *f = *state;
    export_dir(f, 12); /* 000010.json and on: numeric order matters */
    wr_error err = {0};
    int64_t n = 0;
    assert_int_equal(wr_chain_verify_dir(f->out, f->kp.pk, &n, &err), WR_OK);
    assert_int_equal(n, 12);

    /* Re-serialised (not canonical) but unchanged: still the same receipt. */
    json_object *pretty = wr_json_read_file(out_path(f, "000003.json"), NULL, &err);
    char *orig;
    size_t orig_len;
    assert_int_equal(wr_read_file(out_path(f, "000003.json"), 1 << 20, &orig, &orig_len, &err), WR_OK);
    const char *text = json_object_to_json_string_ext(pretty, JSON_C_TO_STRING_PRETTY);
    assert_int_equal(wr_write_file_atomic(out_path(f, "000003.json"), text, strlen(text), 0644, &err), WR_OK);
    expect_dir(f, f->kp.pk, WR_OK, NULL);
    assert_int_equal(wr_write_file_atomic(out_path(f, "000003.json"), orig, orig_len, 0644, &err), WR_OK);
    json_object_put(pretty);
    free(orig);

    /* duplicate: a stray copy next to the original */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cd '%s' && cp 000005.json '000005 copy.json'", f->out);
    assert_int_equal(system(cmd), 0);
    expect_dir(f, f->kp.pk, WR_E_INVALID, "seq 5: duplicate seq (");
    assert_int_equal(unlink(out_path(f, "000005 copy.json")), 0);

    /* swapped contents */
    snprintf(cmd, sizeof cmd, "cd '%s' && mv 000007.json t && mv 000008.json 000007.json && mv t 000008.json", f->out);
    assert_int_equal(system(cmd), 0);
    expect_dir(f, f->kp.pk, WR_E_INVALID, "seq 8: reordered: found in place of seq 7 (000007.json)");
    assert_int_equal(system(cmd), 0); /* swap back */
    expect_dir(f, f->kp.pk, WR_OK, NULL);

    /* one byte flipped */
    char *buf;
    size_t len;
    assert_int_equal(wr_read_file(out_path(f, "000004.json"), 1 << 20, &buf, &len, &err), WR_OK);
    char *p = strstr(buf, "\"agent-1\"");
    p[1] = 'A';
    assert_int_equal(wr_write_file_atomic(out_path(f, "000004.json"), buf, len, 0644, &err), WR_OK);
    expect_dir(f, f->kp.pk, WR_E_CRYPTO, "seq 4: altered: /signature/signature: signature does not verify");
    p[1] = 'a';
    assert_int_equal(wr_write_file_atomic(out_path(f, "000004.json"), buf, len, 0644, &err), WR_OK);
    free(buf);

    /* deleted from the middle */
    assert_int_equal(unlink(out_path(f, "000010.json")), 0);
    expect_dir(f, f->kp.pk, WR_E_INVALID, "seq 10: gap: seq 10 is missing (seq 11 follows seq 9)");
}

/* The walk reads each receipt into the tree of the one before it: a chain
 * whose receipts change shape (blocked ones lack the exit code, the output
 * hashes and the approvals, and carry an error) verifies, and a change in
 * a receipt of the same shape as the one before it is still caught. */
static void test_chain_dir_changing_shapes(void **state)
{
    fixture *f = *state;
    for (int i = 1; i <= 9; i++) {
        char id[32], error[64];
        snprintf(id, sizeof id, "exe_%d", i);
        snprintf(error, sizeof error, "denied: rule %d of %s", i, i % 2 ? "a" : "a longer policy");
        wr_receipt_input blocked = {.execution_id = id,
                                    .contract_id = "c",
                                    .contract_sha256 = EMPTY_SHA,
                                    .status = "blocked",
                                    .policy_profile = "default",
                                    .error = error};
        json_object *r = i % 3 == 0 ? build(f, id, "success") : wr_receipt_build(&blocked), *s = NULL;
        wr_error err = {0};
        assert_int_equal(wr_receipt_seal(f->st, &f->kp, &f->ctx, NULL, r, id, &s, &err), WR_OK);
        json_object_put(r);
        json_object_put(s);
    }
    export_dir(f, 0);
    wr_error err = {0};
    int64_t n = 0;
    assert_int_equal(wr_chain_verify_dir(f->out, f->kp.pk, &n, &err), WR_OK);
    assert_int_equal(n, 9);
    expect_store(f, WR_OK, NULL);
    /* 000005.json follows a blocked receipt of its shape */
    char *buf;
    size_t len;
    assert_int_equal(wr_read_file(out_path(f, "000005.json"), 1 << 20, &buf, &len, &err), WR_OK);
    char *p = strstr(buf, "rule 5");
    assert_non_null(p);
    p[5] = '6';
    assert_int_equal(wr_write_file_atomic(out_path(f, "000005.json"), buf, len, 0644, &err), WR_OK);
    expect_dir(f, f->kp.pk, WR_E_CRYPTO, "seq 5: altered: /signature/signature: signature does not verify");
    free(buf);
}

static void test_chain_dir_resigned_and_relinked(void **state)
{
    fixture *f = *state;
    export_dir(f, 3);
    /* not a regular file: refused by its path, without blocking on it */
    assert_int_equal(mkfifo(out_path(f, "000004.json"), 0600), 0);
    char fifo_msg[300];
    snprintf(fifo_msg, sizeof fifo_msg, "%s is not a regular file", out_path(f, "000004.json"));
    expect_dir(f, f->kp.pk, WR_E_INVALID, fifo_msg);
    assert_int_equal(unlink(out_path(f, "000004.json")), 0);

    /* Re-sign receipt 2 with another key after changing it: caught by key. */
    wr_keypair other;
    wr_error err = {0};
    assert_int_equal(wr_key_generate(&f->ctx, &other, &err), WR_OK);
    json_object *r = wr_json_read_file(out_path(f, "000002.json"), NULL, &err);
    json_object_object_add(r, "exit_code", json_object_new_int(3));
    json_object_object_del(r, "signature");
    assert_int_equal(wr_receipt_sign(r, &other, &f->ctx, &err), WR_OK);
    char *c = wr_canonical_json(r, false, NULL, &err);
    assert_int_equal(wr_write_file_atomic(out_path(f, "000002.json"), c, strlen(c), 0644, &err), WR_OK);
    free(c);
    expect_dir(f, f->kp.pk, WR_E_CRYPTO, "seq 2: altered: /signature/key_id: signed by key");
    /* Even with the right key (an insider), the next link breaks. */
    json_object_object_del(r, "signature");
    assert_int_equal(wr_receipt_sign(r, &f->kp, &f->ctx, &err), WR_OK);
    c = wr_canonical_json(r, false, NULL, &err);
    assert_int_equal(wr_write_file_atomic(out_path(f, "000002.json"), c, strlen(c), 0644, &err), WR_OK);
    free(c);
    expect_dir(f, f->kp.pk, WR_E_INVALID, "seq 3: broken link: prev_receipt_sha256 is not the hash of seq 2");
    json_object_put(r);
    wr_keypair_wipe(&other);

    /* garbage and missing directories */
    assert_int_equal(wr_write_file_atomic(out_path(f, "000001.json"), "{\"seq\":", 7, 0644, &err), WR_OK);
    expect_dir(f, f->kp.pk, WR_E_INVALID, "000001.json: not a valid JSON receipt");
    assert_int_equal(wr_chain_verify_dir("/nonexistent/x", f->kp.pk, NULL, &err), WR_E_NOTFOUND);
}

/* Replaces the first `from` in an exported receipt file by `to`. */
static void rewrite(fixture *f, const char *name, const char *from, const char *to)
{
    char *buf;
    size_t len;
    wr_error err = {0};
    assert_int_equal(wr_read_file(out_path(f, name), 1 << 20, &buf, &len, &err), WR_OK);
    char *at = strstr(buf, from);
    assert_non_null(at);
    size_t flen = strlen(from), tlen = strlen(to);
    char *next = malloc(len - flen + tlen + 1);
    size_t head = (size_t)(at - buf);
    memcpy(next, buf, head);
    memcpy(next + head, to, tlen);
    memcpy(next + head + tlen, at + flen, len - head - flen + 1);
    assert_int_equal(wr_write_file_atomic(out_path(f, name), next, len - flen + tlen, 0644, &err), WR_OK);
    free(next);
    free(buf);
}

/* The store's tree head, as a signed checkpoint gives it to an auditor. */
static wr_tree_head head_of(fixture *f)
{
    char *note = NULL;
    wr_checkpoint cp;
    wr_error err = {0};
    assert_int_equal(wr_checkpoint_publish(f->st, &f->kp, &f->ctx, &note, &err), WR_OK);
    assert_int_equal(wr_checkpoint_verify(note, f->kp.pk, NULL, &cp, &err), WR_OK);
    free(note);
    wr_tree_head h = {.size = cp.size};
    memcpy(h.root, cp.root, sizeof h.root);
    return h;
}

static void expect_anchored(fixture *f, const wr_tree_head *head, int code, const char *msg)
{
    wr_error err = {0};
    int rc = wr_chain_verify_dir_anchored(f->out, f->kp.pk, head, 1, NULL, &err);
    expect_result(rc, &err, code, msg);
}

/* Receipt files that are not the canonical bytes the log hashed: a valid
 * signature over the file's own text must not make it the leaf. */
static void test_chain_dir_not_canonical(void **state)
{
    fixture *f = *state;
    export_dir(f, 4);
    wr_tree_head head = head_of(f);
    char *orig;
    size_t orig_len;
    wr_error err = {0};
    assert_int_equal(wr_read_file(out_path(f, "000003.json"), 1 << 20, &orig, &orig_len, &err), WR_OK);

    /* The same signed receipt with its signature object's members in
     * another order: the chain and the tree are over its canonical form. */
    json_object *r = wr_json_parse(orig, orig_len, NULL, &err), *sig = NULL;
    assert_true(json_object_object_get_ex(r, "signature", &sig));
    const char *b64 = wr_receipt_str(sig, "signature");
    char member[160];
    snprintf(member, sizeof member, "\"signature\":\"%s\",", b64);
    rewrite(f, "000003.json", member, "");
    char moved[200];
    snprintf(moved, sizeof moved, "{%s\"algorithm\"", member);
    rewrite(f, "000003.json", "{\"algorithm\"", moved);
    expect_dir(f, f->kp.pk, WR_OK, NULL);
    expect_anchored(f, &head, WR_OK, NULL);

    /* A string written with an escape, trailing white space: the same receipt. */
    rewrite(f, "000003.json", "\"agent-1\"", "\"\\u0061gent-1\"");
    expect_anchored(f, &head, WR_OK, NULL);
    char *longer = malloc(orig_len + 4);
    memcpy(longer, orig, orig_len);
    memcpy(longer + orig_len, "\n\t ", 3);
    assert_int_equal(wr_write_file_atomic(out_path(f, "000003.json"), longer, orig_len + 3, 0644, &err), WR_OK);
    expect_anchored(f, &head, WR_OK, NULL);
    /* Trailing bytes that are not white space: not a JSON receipt. */
    longer[orig_len] = 'x';
    assert_int_equal(wr_write_file_atomic(out_path(f, "000003.json"), longer, orig_len + 1, 0644, &err), WR_OK);
    expect_anchored(f, &head, WR_E_INVALID, "000003.json: not a valid JSON receipt");
    free(longer);

    /* Signed by the log's key, but over bytes that are not canonical (the
     * members of "effect_summary" out of order): another implementation
     * verifies the canonical form, so this one must not accept it either.
     * Receipt 4 is the last, so no later link would tell. */
    assert_int_equal(wr_write_file_atomic(out_path(f, "000003.json"), orig, orig_len, 0644, &err), WR_OK);
    char *buf;
    size_t len;
    assert_int_equal(wr_read_file(out_path(f, "000004.json"), 1 << 20, &buf, &len, &err), WR_OK);
    json_object *r4 = wr_json_parse(buf, len, NULL, &err), *eff = NULL;
    assert_true(json_object_object_get_ex(r4, "effect_summary", &eff));
    char *eff_text = wr_canonical_json(eff, false, NULL, &err);
    json_object_object_get_ex(r4, "signature", &sig);
    snprintf(member, sizeof member, "\"signature\":\"%s\",", wr_receipt_str(sig, "signature"));
    rewrite(f, "000004.json", member, "");
    rewrite(f, "000004.json", eff_text, "{\"secrets_used\":0,\"network_used\":false,\"files_written\":0}");
    free(buf);
    assert_int_equal(wr_read_file(out_path(f, "000004.json"), 1 << 20, &buf, &len, &err), WR_OK);
    char *forged = wr_sign_b64(&f->kp, buf, len);
    char signed_member[160];
    snprintf(signed_member, sizeof signed_member, "\"signature\":\"%s\",\"signed_at\"", forged);
    rewrite(f, "000004.json", "\"signed_at\"", signed_member);
    expect_dir(f, f->kp.pk, WR_E_CRYPTO, "seq 4: altered: /signature/signature: signature does not verify");
    free(forged);
    free(buf);
    free(eff_text);
    json_object_put(r4);
    json_object_put(r);
    free(orig);
}

/* ---- bundle --------------------------------------------------------------- */

static void test_bundle_export_errors(void **state)
{
    fixture *f = *state;
    seal_n(f, 2);
    wr_error err = {0};
    const unsigned char out[] = "hello\n";
    char bundle[128];
    snprintf(bundle, sizeof bundle, "%s/b.tar.gz", f->root);
    /* exe_1 claims the empty-output hash; stored output must match it. */
    assert_int_equal(wr_store_put_output(f->st, "exe_1", out, 0, out, 0, &err), WR_OK);
    assert_int_equal(wr_store_put_policy(f->st, EMPTY_SHA, "{}", &err), WR_OK);
    int rc = wr_bundle_export(f->st, "exe_1", bundle, &err);
    if (rc != WR_E_NOTFOUND)
        fprintf(stderr, "export: %s\n", err.message);
    /* The receipt names approval apr_1, which the store does not have. */
    assert_int_equal(rc, WR_E_NOTFOUND);
    assert_non_null(strstr(err.message, "lacks an approval artifact"));
    assert_int_equal(access(bundle, F_OK), -1);
    assert_int_equal(wr_bundle_export(f->st, "exe_nope", bundle, &err), WR_E_NOTFOUND);
    assert_int_equal(wr_bundle_verify(bundle, f->kp.pk, &err), WR_E_IO);
}

/* ---- disk full ---------------------------------------------------------------- */

/* A child seals until the file size limit (standing in for a full disk)
 * makes the store fail: it must fail with an error, not crash, and
 * afterwards the database is intact, the chain verifies and every receipt
 * whose seal returned WR_OK is there. */
static void test_disk_full(void **state)
{
    fixture *f = *state;
    seal_n(f, 3);
    /* Room for some receipts more than the database and its WAL have now. */
    rlim_t limit = 0;
    for (int i = 0; i < 2; i++) {
        char p[128];
        struct stat st;
        snprintf(p, sizeof p, "%s/warrant.db%s", f->dir, i ? "-wal" : "");
        if (stat(p, &st) == 0 && (rlim_t)st.st_size > limit)
            limit = (rlim_t)st.st_size;
    }
    limit += 1024 * 1024;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* write() then fails with EFBIG */
        struct rlimit rl = {.rlim_cur = limit, .rlim_max = limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(3);
        int ok = 0, code = 0;
        for (int i = 0; i < 100000 && !code; i++) {
            char id[32];
            snprintf(id, sizeof id, "exe_full_%d", i);
            json_object *r = build(f, id, "success"), *s = NULL;
            wr_error err = {0};
            if (wr_receipt_seal(f->st, &f->kp, &f->ctx, NULL, r, id, &s, &err) == WR_OK)
                ok++;
            else
                code = err.code;
            json_object_put(r);
            json_object_put(s);
        }
        int res[2] = {ok, code};
        _exit(write(pipefd[1], res, sizeof res) == sizeof res ? 0 : 4);
    }
    close(pipefd[1]);
    int status, res[2] = {0, 0};
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(pipefd[0], res, sizeof res), (ssize_t)sizeof res);
    close(pipefd[0]);
    if (res[0] <= 10)
        fprintf(stderr, "sealed %d before error %d (limit %lu)\n", res[0], res[1], (unsigned long)limit);
    assert_true(res[0] > 10);          /* it did fill up */
    assert_int_equal(res[1], WR_E_IO); /* and then failed cleanly */

    wr_store_close(f->st);
    wr_error err = {0};
    assert_int_equal(wr_store_open(f->dir, &f->st, &err), WR_OK);
    char *check = NULL;
    assert_int_equal(wr_store_integrity_check(f->st, &check, &err), WR_OK);
    assert_string_equal(check, "ok");
    free(check);
    int64_t n = 0;
    assert_int_equal(wr_chain_verify_store(f->st, f->kp.pk, &n, &err), WR_OK);
    assert_int_equal(n, 3 + res[0]);
    char *js = NULL, last[32];
    snprintf(last, sizeof last, "exe_full_%d", res[0] - 1);
    assert_int_equal(wr_store_get_receipt(f->st, last, &js, &err), WR_OK);
    free(js);
    json_object_put(seal(f, "exe_after_full")); /* and the store works again */
}

/* ---- the superset schema against the CSC receipt fixtures ----------------- */

/* Every CSC v0.1 receipt fixture gets the same verdict from our superset:
 * extensions are optional, and nothing CSC forbids becomes allowed. */
static void test_schema_csc_fixtures(void **state)
{
    (void)state;
    const char *csc = getenv("CSC_DIR");
    if (!csc)
        skip();
    wr_error err = {0};
    wr_schema *schema = wr_receipt_schema_new(&err);
    assert_non_null(schema);
    int checked = 0;
    for (int valid = 0; valid < 2; valid++) {
        char path[512];
        snprintf(path, sizeof path, "%s/conformance/receipts/%s.json", csc, valid ? "valid" : "invalid");
        json_object *fixtures = wr_json_read_file(path, NULL, &err);
        assert_non_null(fixtures);
        for (size_t i = 0; i < json_object_array_length(fixtures); i++) {
            json_object *fx = json_object_array_get_idx(fixtures, i);
            bool want = json_object_get_boolean(json_object_object_get(fx, "valid"));
            int rc = wr_schema_validate(schema, json_object_object_get(fx, "input"), &err);
            if ((rc == WR_OK) != want)
                fprintf(stderr, "%s: want %s, got %s\n", json_object_get_string(json_object_object_get(fx, "id")),
                        want ? "valid" : "invalid", err.message);
            assert_int_equal(rc == WR_OK, want);
            checked++;
        }
        json_object_put(fixtures);
    }
    assert_true(checked > 5);
    wr_schema_free(schema);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_key_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_links_and_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_refuses_incomplete_receipt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_store_ok_and_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_store_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_store_swapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_store_altered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_store_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_store_resigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_dir_changing_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_dir_resigned_and_relinked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_dir_not_canonical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle_export_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test(test_schema_csc_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
