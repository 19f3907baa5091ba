/* A small driver over receipts/ and store/ for the script tests:
 *
 *   receipt_driver sign SEED_HEX NOW_MS < receipt.json   signed canonical JSON on stdout
 *   receipt_driver verify PUBKEY < receipt.json          exit 0 valid, 1 with the reason
 *   receipt_driver seal STATE_DIR N                      seals N receipts, one line each once durable
 *   receipt_driver fixture STATE_DIR                     a state dir with an approved, run
 *                                                        execution and a blocked one; prints their ids
 *   receipt_driver integrity STATE_DIR                   wr_store_integrity_check: prints "ok" or the damage
 *   receipt_driver proofs STATE_DIR [SIZE...]            for every tree size n of the store's tree: "n ROOT
 *                                                        INCL CONS", ROOT in hex, INCL/CONS the sha256 of all
 *                                                        inclusion proofs (leaves 0..n-1) / consistency proofs
 *                                                        (sizes 1..n), each as a length byte and its hashes;
 *                                                        every proof is checked by the C verifier, and so is
 *                                                        its tampered twin (must fail). For each SIZE also
 *                                                        "I n i H,H..." and "C n m H,H..." lines.
 *
 * SEED_HEX is a 32-byte Ed25519 seed in hex; PUBKEY is PEM/base64 text or a file. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "receipts/receipts.h"

static int fail(const char *what, const wr_error *err)
{
    fprintf(stderr, "receipt_driver: %s: %s%s%s\n", what, err->path, err->path[0] ? ": " : "", err->message);
    return 1;
}

/* A wr_ctx whose clock is fixed, so signatures are reproducible. */
static int64_t fixed_now(void *ud)
{
    return *(int64_t *)ud;
}

static int keypair_from_hex(const char *hex, wr_keypair *kp, wr_error *err)
{
    unsigned char seed[32];
    if (strlen(hex) != 64)
        return wr_errorf(err, WR_E_INVALID, "", "seed must be 64 hex digits");
    for (int i = 0; i < 32; i++)
        if (sscanf(hex + 2 * i, "%2hhx", &seed[i]) != 1)
            return wr_errorf(err, WR_E_INVALID, "", "bad seed hex");
    crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
    wr_key_id(kp->pk, kp->key_id);
    return WR_OK;
}

static json_object *read_stdin(wr_error *err)
{
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, stdin);
    return wr_json_parse(buf, n, NULL, err);
}

static int do_sign(const char *seed_hex, const char *now)
{
    wr_error err = {0};
    wr_keypair kp;
    int64_t t = strtoll(now, NULL, 10);
    wr_ctx ctx = wr_ctx_system();
    ctx.now_ms = fixed_now;
    ctx.ud = &t;
    json_object *r = read_stdin(&err);
    if (!r || keypair_from_hex(seed_hex, &kp, &err) != WR_OK)
        return fail("sign", &err);
    if (wr_receipt_sign(r, &kp, &ctx, &err) != WR_OK)
        return fail("sign", &err);
    char *c = wr_canonical_json(r, false, NULL, &err);
    fputs(c, stdout);
    free(c);
    json_object_put(r);
    return 0;
}

static int do_verify(const char *key)
{
    wr_error err = {0};
    unsigned char pk[WR_PK_LEN];
    if (wr_pubkey_parse(key, pk, &err) != WR_OK && wr_pubkey_load(key, pk, &err) != WR_OK)
        return fail("key", &err);
    json_object *r = read_stdin(&err);
    if (!r)
        return fail("verify", &err);
    int rc = wr_receipt_verify(r, pk, &err);
    json_object_put(r);
    if (rc)
        return fail("verify", &err);
    puts("valid");
    return 0;
}

static json_object *sample(const wr_ctx *ctx, const char *execution_id, const char *status,
                           const wr_receipt_approval *aps, size_t naps, const char *out_hex, const char *err_hex)
{
    wr_strv done = {0};
    wr_strv_push(&done, "cmd_1");
    int64_t now = wr_now_ms(ctx);
    wr_receipt_input in = {
        .execution_id = execution_id,
        .contract_id = "contract_driver",
        .contract_sha256 = "1111111111111111111111111111111111111111111111111111111111111111",
        .status = status,
        .started_ms = now - 5,
        .ended_ms = now,
        .completed_command_ids = &done,
        .policy_profile = "driver",
        .policy_schema_version = "csc.policy.v0.1",
        .policy_sha256 = "2222222222222222222222222222222222222222222222222222222222222222",
        .decision = strcmp(status, "blocked") ? "allow" : "deny",
        .reason_code = strcmp(status, "blocked") ? "ALLOW" : "COMMAND_NOT_ALLOWED",
        .approvals = aps,
        .napprovals = naps,
        .agent_id = "agent-driver",
    };
    if (strcmp(status, "blocked") != 0) {
        in.has_exit_code = true;
        in.stdout_hash = in.stdout_stream_sha256 = out_hex;
        in.stderr_hash = in.stderr_stream_sha256 = err_hex;
        in.sandbox_profile_id = "default";
    } else {
        in.error = "command not allowed: curl";
    }
    json_object *r = wr_receipt_build(&in);
    wr_strv_free(&done);
    return r;
}

static int do_seal(const char *dir, const char *count)
{
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_keypair kp;
    wr_store *st = NULL;
    if (wr_server_key_load_or_create(dir, &ctx, &kp, &err) != WR_OK || wr_store_open(dir, &st, &err) != WR_OK)
        return fail(dir, &err);
    char empty[WR_SHA256_HEX_LEN];
    wr_sha256_hex("", 0, empty);
    int rc = 0;
    for (long i = 0, n = strtol(count, NULL, 10); i < n && !rc; i++) {
        char id[WR_ID_MAX];
        wr_random_id(&ctx, "exe_", id, sizeof id);
        json_object *r = sample(&ctx, id, "success", NULL, 0, empty, empty), *signed_r = NULL;
        if (wr_receipt_seal(st, &kp, &ctx, NULL, r, id, &signed_r, &err) != WR_OK) {
            rc = fail("seal", &err);
        } else {
            /* Printed only after seal returned: the receipt is durable now. */
            char *c = wr_canonical_json(signed_r, false, NULL, &err);
            printf("%s\n", c);
            fflush(stdout);
            free(c);
        }
        json_object_put(r);
        json_object_put(signed_r);
    }
    wr_store_close(st);
    wr_keypair_wipe(&kp);
    return rc;
}

/* An approval artifact signed by the approver's own key (the approvals
 * module's rule, which is the receipt rule). */
static json_object *approval(const wr_ctx *ctx, const wr_keypair *alice, const char *contract_sha)
{
    char at[WR_TIME_LEN], exp[WR_TIME_LEN];
    wr_time_format(wr_now_ms(ctx), at);
    wr_time_format(wr_now_ms(ctx) + 3600000, exp);
    char *pk = wr_base64_encode(alice->pk, WR_PK_LEN);
    char text[2048];
    snprintf(text, sizeof text,
             "{\"approval_version\":\"csc.approval.v0.1\",\"approval_id\":\"apr_driver\",\"contract_sha256\":\"%s\","
             "\"approver\":{\"identity\":\"alice@example.com\",\"method\":\"cli\"},\"approved_at\":\"%s\","
             "\"expires_at\":\"%s\",\"scope\":\"single_execution\","
             "\"signature\":{\"algorithm\":\"ed25519\",\"key_id\":\"%s\",\"public_key\":\"%s\"}}",
             contract_sha, at, exp, alice->key_id, pk);
    free(pk);
    json_object *a = wr_json_parse(text, strlen(text), NULL, NULL);
    size_t len;
    char *payload = wr_canonical_json(a, false, &len, NULL);
    char *sig = wr_sign_b64(alice, payload, len);
    json_object_object_add(json_object_object_get(a, "signature"), "signature", json_object_new_string(sig));
    free(payload);
    free(sig);
    return a;
}

static int do_fixture(const char *dir)
{
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_keypair kp, alice;
    wr_store *st = NULL;
    if (wr_server_key_load_or_create(dir, &ctx, &kp, &err) != WR_OK || wr_store_open(dir, &st, &err) != WR_OK ||
        wr_key_generate(&ctx, &alice, &err) != WR_OK)
        return fail(dir, &err);
    int rc = WR_OK;
    /* policy naming alice as approver; its canonical hash goes into the receipt */
    char *alice_pem = wr_pubkey_pem(alice.pk);
    json_object *policy = json_object_new_object();
    json_object_object_add(policy, "policy_version", json_object_new_string("csc.policy.v0.1"));
    json_object *approvers = json_object_new_array(), *ap = json_object_new_object();
    json_object_object_add(ap, "identity", json_object_new_string("alice@example.com"));
    json_object_object_add(ap, "public_key", json_object_new_string(alice_pem));
    json_object_array_add(approvers, ap);
    json_object_object_add(policy, "approvers", approvers);
    free(alice_pem);
    char policy_sha[WR_SHA256_HEX_LEN], contract_sha[WR_SHA256_HEX_LEN];
    const char *contract_text = "{\"contract_id\":\"contract_driver\",\"intent\":\"print h\\u00e9llo\",\"note\":null}";
    json_object *contract = wr_json_parse(contract_text, strlen(contract_text), NULL, &err);
    char *policy_canon = wr_canonical_json(policy, false, NULL, &err);
    wr_canonical_sha256(policy, false, policy_sha, &err);
    wr_canonical_sha256(contract, true, contract_sha, &err);
    char decision[512];
    snprintf(decision, sizeof decision,
             "{\"contract_id\":\"contract_driver\",\"contract_sha256\":\"%s\",\"decision\":\"needs_approval\"}",
             contract_sha);
    json_object *artifact = approval(&ctx, &alice, contract_sha);
    int64_t now = wr_now_ms(&ctx);
    wr_strv consume = {0};
    wr_strv_push(&consume, "apr_driver");
    const unsigned char out[] = "h\xc3\xa9llo\n", errb[] = "warning: x\n";
    char out_hex[WR_SHA256_HEX_LEN], err_hex[WR_SHA256_HEX_LEN];
    wr_sha256_hex(out, sizeof out - 1, out_hex);
    wr_sha256_hex(errb, sizeof errb - 1, err_hex);
    if (wr_store_put_policy(st, policy_sha, policy_canon, &err) ||
        wr_store_put_contract(st, "contract_driver", contract_sha, "agent-driver", contract_text, now, &err) ||
        wr_store_put_decision(st, contract_sha, decision, now, &err) ||
        wr_store_put_approval(st, "apr_driver", NULL, contract_sha, "alice@example.com", wr_json_compact(artifact),
                              now + 3600000, now, &err) ||
        wr_store_begin_execution(st, "exe_fixture_run", contract_sha, &consume, now, &err) ||
        wr_store_put_output(st, "exe_fixture_run", out, sizeof out - 1, errb, sizeof errb - 1, &err))
        rc = fail("fixture", &err);
    wr_receipt_approval used = {"apr_driver", "alice@example.com", "cli", alice.key_id, "approver_key"};
    const char *ids[] = {"exe_fixture_run", "exe_fixture_blocked"};
    for (int i = 0; rc == WR_OK && i < 2; i++) {
        json_object *r = sample(&ctx, ids[i], i ? "blocked" : "success", i ? NULL : &used, i ? 0 : 1, out_hex, err_hex);
        json_object_object_add(r, "contract_sha256", json_object_new_string(contract_sha));
        json_object_object_add(r, "policy_sha256", json_object_new_string(policy_sha));
        json_object_object_add(r, "decision", json_object_new_string("needs_approval"));
        json_object *signed_r = NULL;
        if (wr_receipt_seal(st, &kp, &ctx, NULL, r, ids[i], &signed_r, &err) != WR_OK)
            rc = fail("seal", &err);
        else
            puts(ids[i]);
        json_object_put(r);
        json_object_put(signed_r);
    }
    wr_strv_free(&consume);
    json_object_put(artifact);
    json_object_put(contract);
    json_object_put(policy);
    free(policy_canon);
    wr_store_close(st);
    wr_keypair_wipe(&kp);
    wr_keypair_wipe(&alice);
    return rc ? 1 : 0;
}

static int do_integrity(const char *dir)
{
    wr_error err = {0};
    wr_store *st = NULL;
    char *res = NULL;
    if (wr_store_open(dir, &st, &err) != WR_OK)
        return fail(dir, &err);
    int rc = wr_store_integrity_check(st, &res, &err);
    if (res)
        puts(res);
    free(res);
    wr_store_close(st);
    return rc ? fail("integrity", &err) : 0;
}

static void hex_proof(const wr_merkle_proof *p)
{
    for (size_t i = 0; i < p->n; i++) {
        char hex[2 * WR_MERKLE_HASH_LEN + 1];
        sodium_bin2hex(hex, sizeof hex, p->h[i], WR_MERKLE_HASH_LEN);
        printf("%s%s", i ? "," : "", hex);
    }
    putchar('\n');
}

static void digest_proof(crypto_hash_sha256_state *s, const wr_merkle_proof *p)
{
    unsigned char n = (unsigned char)p->n;
    crypto_hash_sha256_update(s, &n, 1);
    for (size_t i = 0; i < p->n; i++)
        crypto_hash_sha256_update(s, p->h[i], WR_MERKLE_HASH_LEN);
}

/* A proof that verified must stop verifying when one bit of it changes. */
static bool tamper_rejected(wr_merkle_proof *p, int (*verify)(const wr_merkle_proof *p, const void *ud), const void *ud)
{
    if (!p->n)
        return true;
    p->h[p->n - 1][0] ^= 1;
    bool rejected = verify(p, ud) != WR_OK;
    p->h[p->n - 1][0] ^= 1;
    return rejected;
}

typedef struct proof_ctx {
    wr_merkle_hash leaf, root, old_root;
    int64_t a, n;
} proof_ctx;

static int verify_incl(const wr_merkle_proof *p, const void *ud)
{
    const proof_ctx *c = ud;
    return wr_merkle_verify_inclusion(c->leaf, c->a, c->n, p, c->root, NULL);
}

static int verify_cons(const wr_merkle_proof *p, const void *ud)
{
    const proof_ctx *c = ud;
    return wr_merkle_verify_consistency(c->a, c->n, c->old_root, c->root, p, NULL);
}

typedef struct leaves {
    wr_merkle_hash *h;
    int64_t n;
} leaves;

static int collect_leaf(void *ud, int64_t seq, const char *json)
{
    leaves *l = ud;
    (void)seq;
    wr_merkle_leaf_hash(json, strlen(json), l->h[l->n++]);
    return 0;
}

static int do_proofs(const char *dir, int nfull, char **full)
{
    wr_error err = {0};
    wr_store *st = NULL;
    wr_tree_head head, old;
    if (wr_store_open(dir, &st, &err) != WR_OK || wr_store_tree(st, WR_TREE_ROOT, 0, -1, &head, NULL, &err) != WR_OK)
        return fail(dir, &err);
    int64_t total = head.size;
    leaves l = {calloc((size_t)total + 1, sizeof *l.h), 0};
    if (!l.h || wr_store_iter_receipts(st, collect_leaf, &l, &err) != WR_OK)
        return fail("leaves", &err);
    int bad = 0;
    for (int64_t n = 1; n <= total; n++) {
        bool show = false;
        for (int k = 0; k < nfull; k++)
            show |= strtoll(full[k], NULL, 10) == n;
        proof_ctx c = {.n = n};
        wr_merkle_proof p;
        if (wr_store_tree(st, WR_TREE_ROOT, 0, n, &head, NULL, &err) != WR_OK)
            return fail("root", &err);
        memcpy(c.root, head.root, sizeof c.root);
        crypto_hash_sha256_state incl, cons;
        crypto_hash_sha256_init(&incl);
        crypto_hash_sha256_init(&cons);
        for (int64_t i = 0; i < n; i++) {
            if (wr_store_tree(st, WR_TREE_INCLUSION, i, n, &head, &p, &err) != WR_OK)
                return fail("inclusion", &err);
            c.a = i;
            memcpy(c.leaf, l.h[i], sizeof c.leaf);
            bad += verify_incl(&p, &c) != WR_OK || !tamper_rejected(&p, verify_incl, &c);
            digest_proof(&incl, &p);
            if (show)
                printf("I %lld %lld ", (long long)n, (long long)i), hex_proof(&p);
        }
        for (int64_t m = 1; m <= n; m++) {
            if (wr_store_tree(st, WR_TREE_CONSISTENCY, m, n, &head, &p, &err) != WR_OK ||
                wr_store_tree(st, WR_TREE_ROOT, 0, m, &old, NULL, &err) != WR_OK)
                return fail("consistency", &err);
            c.a = m;
            memcpy(c.old_root, old.root, sizeof c.old_root);
            bad += verify_cons(&p, &c) != WR_OK || !tamper_rejected(&p, verify_cons, &c);
            digest_proof(&cons, &p);
            if (show)
                printf("C %lld %lld ", (long long)n, (long long)m), hex_proof(&p);
        }
        unsigned char di[32], dc[32];
        char rh[65], ih[65], ch[65];
        crypto_hash_sha256_final(&incl, di);
        crypto_hash_sha256_final(&cons, dc);
        sodium_bin2hex(rh, sizeof rh, c.root, 32);
        sodium_bin2hex(ih, sizeof ih, di, 32);
        sodium_bin2hex(ch, sizeof ch, dc, 32);
        printf("%lld %s %s %s\n", (long long)n, rh, ih, ch);
    }
    free(l.h);
    wr_store_close(st);
    if (bad)
        fprintf(stderr, "receipt_driver: %d proofs failed the C verifier (or their tampered twin passed)\n", bad);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "proofs"))
        return do_proofs(argv[2], argc - 3, argv + 3);
    if (argc == 4 && !strcmp(argv[1], "sign"))
        return do_sign(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "verify"))
        return do_verify(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "seal"))
        return do_seal(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "fixture"))
        return do_fixture(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "integrity"))
        return do_integrity(argv[2]);
    fprintf(stderr,
            "usage: receipt_driver sign SEED_HEX NOW_MS | verify PUBKEY | seal DIR N | fixture DIR | integrity DIR | "
            "proofs DIR [SIZE...]\n");
    return 2;
}
