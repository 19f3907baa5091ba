/* approvals/: the queue, signed artifacts and every refusal rule of issue #6,
 * against real SQLite state dirs in temporary directories. Each refusal is
 * asserted by its own reason text, so a check that silently stops running
 * (or fires for the wrong cause) fails here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// cmocka needs the includes above first
#include <cmocka.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "approvals/approvals.h"

#define NOW              1795000000000LL /* 2026-11-18T…Z, fixed */
#define MIN              60000LL
#define RACERS           50
#define RACING_PROCESSES 8

typedef struct clock_ud {
    int64_t now;
} clock_ud;

static int64_t fixed_now(void *ud)
{
    return ((clock_ud *)ud)->now;
}
static void real_random(void *ud, void *buf, size_t len)
{
    (void)ud;
    randombytes_buf(buf, len);
}

typedef struct fx {
    char dir[64];
    clock_ud clock;
    wr_ctx ctx;
    wr_store *st;
    wr_contracts *cs;
    wr_keypair alice, bob, carol, dave, mallory, server;
    wr_policy *policy;
} fx;

/* ---- fixtures ---------------------------------------------------------------- */

static char *b64(const wr_keypair *k)
{
    return wr_base64_encode(k->pk, WR_PK_LEN);
}

/* alice and bob may approve anything up to high; carol only low risk; dave
 * only repository mutations. mallory is nobody's key. */
static wr_policy *make_policy(fx *f, bool allow_window, const char *interactive, int64_t max_lifetime,
                              const char *more_approvers)
{
    char *a = b64(&f->alice), *b = b64(&f->bob), *c = b64(&f->carol), *dv = b64(&f->dave);
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "policy_schema_version: csc.policy.v0.1\n"
             "name: approvals-test\n"
             "allow_commands: [git, ls]\n"
             "allowed_effect_types: [observe, mutate_repo]\n"
             "allowed_risk_classes: [low, medium, high]\n"
             "max_timeout_sec: 60\n"
             "network: deny\n"
             "allow_secret_refs: false\n"
             "allowed_cwd_prefixes: [/workspace]\n"
             "allowed_read_prefixes: [/workspace]\n"
             "allowed_write_prefixes: [/workspace]\n"
             "approvers:\n"
             "  - identity: alice@example.com\n"
             "    public_key: \"%s\"\n"
             "    may_approve: {risk_classes: [low, medium, high], effect_types: [observe, mutate_repo]}\n"
             "  - identity: bob@example.com\n"
             "    public_key: \"%s\"\n"
             "    may_approve: {risk_classes: [low, medium, high], effect_types: [observe, mutate_repo]}\n"
             "  - identity: carol@example.com\n"
             "    public_key: \"%s\"\n"
             "    may_approve: {risk_classes: [low], effect_types: [observe, mutate_repo]}\n"
             "  - identity: dave@example.com\n"
             "    public_key: \"%s\"\n"
             "    may_approve: {risk_classes: [medium, high], effect_types: [mutate_repo]}\n"
             "%s"
             "approval:\n"
             "  max_lifetime_sec: %lld\n"
             "  allow_time_window: %s\n"
             "  interactive_risk_classes: [%s]\n"
             "  request_ttl_sec: 3600\n",
             a, b, c, dv, more_approvers, (long long)max_lifetime, allow_window ? "true" : "false", interactive);
    free(a);
    free(b);
    free(c);
    free(dv);
    wr_policy *p = NULL;
    wr_error err = {0};
    int rc = wr_policy_load_yaml(yaml, strlen(yaml), &p, &err);
    if (rc != WR_OK)
        fprintf(stderr, "policy: %s: %s\n", err.path, err.message);
    assert_int_equal(rc, WR_OK);
    return p;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wr-approvals-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->clock.now = NOW;
    f->ctx = wr_ctx_system();
    f->ctx.now_ms = fixed_now;
    f->ctx.random = real_random;
    f->ctx.ud = &f->clock;
    wr_error err = {0};
    assert_int_equal(wr_store_open(f->dir, &f->st, &err), WR_OK);
    assert_non_null(f->cs = wr_contracts_new(&err));
    wr_keypair *keys[] = {&f->alice, &f->bob, &f->carol, &f->dave, &f->mallory, &f->server};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_int_equal(wr_key_generate(&f->ctx, keys[i], &err), WR_OK);
    f->policy = make_policy(f, false, "", 3600, "");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    wr_policy_free(f->policy);
    wr_contracts_free(f->cs);
    wr_store_close(f->st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A contract needing approval (human_required or dual control). Only
 * contract_id, justification and the initiating user vary between tests. */
static wr_contract *make_contract(fx *f, const char *id, const char *mode, const char *user, const char *why)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"version\":\"csc.v0.1\",\"contract_id\":\"%s\",\"intent\":\"inspect the repository\","
             "\"actor\":{\"agent_id\":\"agent-1\",\"session_id\":\"s-1\",\"initiating_user\":\"%s\","
             "\"delegation_scope\":\"repo\"},"
             "\"commands\":[{\"id\":\"cmd_1\",\"exec\":{\"argv\":[\"git\",\"status\"]},\"cwd\":\"/workspace\","
             "\"read_paths\":[\"/workspace/**\"],\"write_paths\":[],\"network\":\"deny\",\"env_allow\":[],"
             "\"secret_refs\":[],\"timeout_sec\":10,\"proposed_effect_type\":\"observe\"}],"
             "\"risk_class\":\"medium\",\"approval_mode\":\"%s\",\"justification\":\"%s\"}",
             id, user, mode, why);
    wr_contract *ct = NULL;
    wr_error err = {0};
    int rc = wr_contract_parse(f->cs, json, strlen(json), &ct, &err);
    if (rc != WR_OK)
        fprintf(stderr, "contract: %s: %s\n", err.path, err.message);
    assert_int_equal(rc, WR_OK);
    return ct;
}

static wr_contract *plain_contract(fx *f)
{
    return make_contract(f, "contract-1", "human_required", "fabio", "tests");
}

static wr_decision *decide(fx *f, const wr_policy *p, const wr_contract *ct)
{
    wr_decision *d = NULL;
    wr_error err = {0};
    assert_int_equal(wr_policy_evaluate(p, ct, &f->ctx, &d, &err), WR_OK);
    assert_int_equal(d->kind, WR_NEEDS_APPROVAL);
    return d;
}

static json_object *sign_full(fx *f, const wr_keypair *k, const char *identity, const char *method, const char *sha,
                              int64_t approved, int64_t expires, bool window)
{
    wr_approval_params ap = {.identity = identity,
                             .method = method,
                             .contract_sha256 = sha,
                             .approved_at_ms = approved,
                             .expires_at_ms = expires,
                             .time_window = window,
                             .reason = "looks fine"};
    json_object *a = NULL;
    wr_error err = {0};
    assert_int_equal(wr_approval_sign(k, &ap, &f->ctx, &a, &err), WR_OK);
    return a;
}

static json_object *sign(fx *f, const wr_keypair *k, const char *identity, const wr_contract *ct)
{
    return sign_full(f, k, identity, "cli", ct->sha256, NOW - MIN, NOW + 30 * MIN, false);
}

/* Runs the authorisation with the given supplied artifacts. */
static wr_authz_status authorize(fx *f, const wr_policy *p, const wr_contract *ct, json_object **arts, size_t n,
                                 wr_authz *out)
{
    wr_decision *d = decide(f, p, ct);
    wr_error err = {0};
    assert_int_equal(wr_approvals_authorize(f->st, p, ct, d, arts, n, &f->server, &f->ctx, out, &err), WR_OK);
    wr_decision_free(d);
    return out->status;
}

/* Asserts a refusal (or other status) and that its reason contains want. */
static void expect(fx *f, const wr_policy *p, const wr_contract *ct, json_object **arts, size_t n,
                   wr_authz_status status, const char *want)
{
    wr_authz az;
    wr_authz_status got = authorize(f, p, ct, arts, n, &az);
    if (got != status || !strstr(az.reason, want))
        fail_msg("status %d (want %d), reason \"%s\" (want \"%s\")", got, status, az.reason, want);
    wr_authz_clear(&az);
}

/* alice's artifact for ct, checked once (and so stored) by the gate's rules. */
static json_object *granted(fx *f, const wr_contract *ct)
{
    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    wr_authz az;
    assert_int_equal(authorize(f, f->policy, ct, &a, 1, &az), WR_AUTHZ_GRANTED);
    wr_authz_clear(&az);
    return a;
}

static const char *aid(json_object *a)
{
    return json_object_get_string(json_object_object_get(a, "approval_id"));
}

static int consume(wr_store *st, const char *exec_id, const char *sha, const char *approval_id, wr_error *err)
{
    wr_strv ids = {0};
    assert_int_equal(wr_strv_push(&ids, approval_id), WR_OK);
    int rc = wr_store_begin_execution(st, exec_id, sha, &ids, NOW, err);
    wr_strv_free(&ids);
    return rc;
}

/* ---- signing and granting ------------------------------------------------------- */

static void test_grant_and_signature_shape(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    json_object *sig = json_object_object_get(a, "signature");
    assert_string_equal(json_object_get_string(json_object_object_get(sig, "algorithm")), "ed25519");
    assert_string_equal(json_object_get_string(json_object_object_get(sig, "key_id")), f->alice.key_id);
    assert_string_equal(json_object_get_string(json_object_object_get(a, "scope")), "single_execution");
    assert_int_equal(strncmp(aid(a), "apv_", 4), 0);

    wr_authz az;
    assert_int_equal(authorize(f, f->policy, ct, &a, 1, &az), WR_AUTHZ_GRANTED);
    assert_int_equal(az.nuses, 1);
    assert_string_equal(az.uses[0].identity, "alice@example.com");
    assert_string_equal(az.uses[0].method, "cli");
    assert_string_equal(az.uses[0].key_id, f->alice.key_id);
    assert_string_equal(az.uses[0].approval_id, aid(a));
    assert_true(az.uses[0].single_use);
    wr_authz_clear(&az);

    /* a valid supplied artifact is stored: the next run finds it unsupplied */
    assert_int_equal(authorize(f, f->policy, ct, NULL, 0, &az), WR_AUTHZ_GRANTED);
    assert_string_equal(az.uses[0].approval_id, aid(a));
    wr_authz_clear(&az);

    /* nothing supplied, nothing stored for another contract: pending */
    wr_contract *other = make_contract(f, "contract-2", "human_required", "fabio", "tests");
    expect(f, f->policy, other, NULL, 0, WR_AUTHZ_PENDING, "0 of 1 required approval");
    wr_contract_free(other);
    json_object_put(a);
    wr_contract_free(ct);
}

/* ---- replay -------------------------------------------------------------------------- */

static void test_replay_same_process_and_after_reopen(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *a = granted(f, ct);
    wr_error err = {0};
    assert_int_equal(consume(f->st, "exe_1", ct->sha256, aid(a), &err), WR_OK);

    expect(f, f->policy, ct, &a, 1, WR_AUTHZ_REFUSED, "has already been used (scope single_execution)");
    /* the store itself refuses a second consumption too */
    assert_int_equal(consume(f->st, "exe_2", ct->sha256, aid(a), &err), WR_E_CONFLICT);

    /* consumption is durable: a fresh handle (a restarted server) sees it */
    wr_store_close(f->st);
    assert_int_equal(wr_store_open(f->dir, &f->st, &err), WR_OK);
    expect(f, f->policy, ct, &a, 1, WR_AUTHZ_REFUSED, "has already been used (scope single_execution)");
    expect(f, f->policy, ct, NULL, 0, WR_AUTHZ_PENDING, "has already been used");
    json_object_put(a);
    wr_contract_free(ct);
}

static void test_replay_from_second_process(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *a = granted(f, ct);
    wr_error err = {0};
    assert_int_equal(consume(f->st, "exe_1", ct->sha256, aid(a), &err), WR_OK);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* another process on the same state dir, with its own connection */
        wr_store *st = NULL;
        wr_error e = {0};
        if (wr_store_open(f->dir, &st, &e) != WR_OK)
            _exit(10);
        wr_decision *d = NULL;
        if (wr_policy_evaluate(f->policy, ct, &f->ctx, &d, &e) != WR_OK)
            _exit(11);
        wr_authz z;
        int rc = wr_approvals_authorize(st, f->policy, ct, d, &a, 1, &f->server, &f->ctx, &z, &e);
        int code = rc != WR_OK                                                         ? 12
                   : z.status != WR_AUTHZ_REFUSED                                      ? 13
                   : !strstr(z.reason, "has already been used")                        ? 14
                   : consume(st, "exe_child", ct->sha256, aid(a), &e) != WR_E_CONFLICT ? 15
                                                                                       : 0;
        _exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    json_object_put(a);
    wr_contract_free(ct);
}

/* ---- the race -------------------------------------------------------------------------- */

typedef struct racer {
    fx *f;
    const wr_contract *ct;
    json_object *artifact;
    int index;
    int result; /* 1 won, 0 lost cleanly, -1 unexpected */
} racer;

/* One consumer as the gate runs it: its own store connection, authorise,
 * then begin the execution that consumes the approval. */
static int race_once(fx *f, const wr_contract *ct, json_object *artifact, const char *exec_id)
{
    wr_store *st = NULL;
    wr_error e = {0};
    if (wr_store_open(f->dir, &st, &e) != WR_OK)
        return -1;
    int result = -1;
    wr_decision *d = NULL;
    wr_authz z = {0};
    if (wr_policy_evaluate(f->policy, ct, &f->ctx, &d, &e) == WR_OK &&
        wr_approvals_authorize(st, f->policy, ct, d, &artifact, 1, &f->server, &f->ctx, &z, &e) == WR_OK) {
        if (z.status == WR_AUTHZ_REFUSED && strstr(z.reason, "has already been used")) {
            result = 0; /* lost before even trying: the winner already committed */
        } else if (z.status == WR_AUTHZ_GRANTED) {
            int rc = consume(st, exec_id, ct->sha256, z.uses[0].approval_id, &e);
            result = rc == WR_OK ? 1 : rc == WR_E_CONFLICT ? 0 : -1;
        }
    }
    wr_authz_clear(&z);
    wr_decision_free(d);
    wr_store_close(st);
    return result;
}

static void *racer_main(void *arg)
{
    racer *r = arg;
    char exec_id[32];
    snprintf(exec_id, sizeof exec_id, "exe_thread_%d", r->index);
    r->result = race_once(r->f, r->ct, r->artifact, exec_id);
    return NULL;
}

static void test_fifty_racing_consumers_one_wins(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *a = granted(f, ct);
    /* Each racer gets its own copies: json-c objects are not thread-safe
     * (reference counts, cached serialisations), the policy is shared as
     * the server shares it. */
    const char *text = json_object_to_json_string(a);
    json_object *copies[RACERS];
    wr_contract *cts[RACERS];
    racer rs[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        copies[i] = wr_json_parse(text, strlen(text), NULL, NULL);
        assert_non_null(copies[i]);
        cts[i] = plain_contract(f);
        rs[i] = (racer){f, cts[i], copies[i], i, -1};
    }
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
    int won = 0, lost = 0;
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        won += rs[i].result == 1;
        lost += rs[i].result == 0;
        json_object_put(copies[i]);
        wr_contract_free(cts[i]);
    }
    assert_int_equal(won, 1);
    assert_int_equal(lost, RACERS - 1);
    json_object_put(a);
    wr_contract_free(ct);
}

static void test_racing_processes_one_wins(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *a = granted(f, ct);
    pid_t pids[RACING_PROCESSES];
    fflush(NULL);
    for (int i = 0; i < RACING_PROCESSES; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char exec_id[32];
            snprintf(exec_id, sizeof exec_id, "exe_proc_%d", i);
            int r = race_once(f, ct, a, exec_id);
            _exit(r == 1 ? 0 : r == 0 ? 1 : 2);
        }
    }
    int won = 0, lost = 0;
    for (int i = 0; i < RACING_PROCESSES; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        won += WEXITSTATUS(status) == 0;
        lost += WEXITSTATUS(status) == 1;
    }
    assert_int_equal(won, 1);
    assert_int_equal(lost, RACING_PROCESSES - 1);
    json_object_put(a);
    wr_contract_free(ct);
}

typedef struct opener {
    fx *f;
    wr_contract *ct;
    char id[WR_ID_MAX];
    int rc;
} opener;

static void *opener_main(void *arg)
{
    opener *o = arg;
    wr_store *st = NULL;
    wr_decision *d = NULL;
    wr_error e = {0};
    o->rc = wr_store_open(o->f->dir, &st, &e);
    if (o->rc == WR_OK)
        o->rc = wr_policy_evaluate(o->f->policy, o->ct, &o->f->ctx, &d, &e);
    if (o->rc == WR_OK)
        o->rc = wr_approval_request_open(st, o->ct, d, o->f->policy, &o->f->ctx, o->id, &e);
    wr_decision_free(d);
    wr_store_close(st);
    return NULL;
}

/* Several servers proposing the same contract at once share one request. */
static void test_concurrent_proposals_share_one_request(void **state)
{
    fx *f = *state;
    enum {
        N = 10
    };
    opener os[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        os[i] = (opener){.f = f, .ct = plain_contract(f), .rc = -1};
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, opener_main, &os[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(os[i].rc, WR_OK);
        assert_string_equal(os[i].id, os[0].id);
        wr_contract_free(os[i].ct);
    }
}

/* ---- one refusal each ----------------------------------------------------------------- */

static void test_expired_and_not_yet_valid(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *old =
        sign_full(f, &f->alice, "alice@example.com", "cli", ct->sha256, NOW - 90 * MIN, NOW - 30 * MIN, false);
    expect(f, f->policy, ct, &old, 1, WR_AUTHZ_EXPIRED, "expired at");
    /* the boundary: expires_at == now is already expired */
    json_object *edge = sign_full(f, &f->alice, "alice@example.com", "cli", ct->sha256, NOW - 30 * MIN, NOW, false);
    expect(f, f->policy, ct, &edge, 1, WR_AUTHZ_EXPIRED, "expired at");
    json_object *future =
        sign_full(f, &f->alice, "alice@example.com", "cli", ct->sha256, NOW + 10 * MIN, NOW + 40 * MIN, false);
    expect(f, f->policy, ct, &future, 1, WR_AUTHZ_REFUSED, "is not yet valid");
    /* longer than the policy allows */
    json_object *lng =
        sign_full(f, &f->alice, "alice@example.com", "cli", ct->sha256, NOW - MIN, NOW + 120 * MIN, false);
    expect(f, f->policy, ct, &lng, 1, WR_AUTHZ_REFUSED, "exceeds the policy maximum of 3600s");
    json_object_put(old);
    json_object_put(edge);
    json_object_put(future);
    json_object_put(lng);
    wr_contract_free(ct);
}

static void test_tampered_fields(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    static const char *const fields[] = {"expires_at", "approval_id", "reason", "identity", "scope"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_object *a = sign(f, &f->alice, "alice@example.com", ct);
        json_object *who = json_object_object_get(a, "approver");
        if (!strcmp(fields[i], "expires_at"))
            json_object_object_add(a, "expires_at", json_object_new_string("2026-11-18T09:59:59.000Z"));
        else if (!strcmp(fields[i], "approval_id"))
            json_object_object_add(a, "approval_id", json_object_new_string("apv_forged"));
        else if (!strcmp(fields[i], "reason"))
            json_object_object_add(a, "reason", json_object_new_string("looks fine!"));
        else if (!strcmp(fields[i], "identity"))
            json_object_object_add(who, "identity", json_object_new_string("bob@example.com"));
        else
            json_object_object_add(a, "scope", json_object_new_string("time_window"));
        expect(f, f->policy, ct, &a, 1, WR_AUTHZ_REFUSED, "signature does not verify with key");
        json_object_put(a);
    }
    wr_contract_free(ct);
}

static void test_wrong_contract_hash(void **state)
{
    fx *f = *state;
    wr_contract *a_ct = plain_contract(f);
    /* B differs from A only in justification, C only in contract_id */
    wr_contract *b_ct = make_contract(f, "contract-1", "human_required", "fabio", "tests, honestly");
    wr_contract *c_ct = make_contract(f, "contract-1-other", "human_required", "fabio", "tests");
    assert_string_not_equal(a_ct->sha256, b_ct->sha256);
    json_object *a = sign(f, &f->alice, "alice@example.com", a_ct);
    expect(f, f->policy, b_ct, &a, 1, WR_AUTHZ_REFUSED, "is bound to contract");
    expect(f, f->policy, c_ct, &a, 1, WR_AUTHZ_REFUSED, "is bound to contract");
    wr_authz az;
    assert_int_equal(authorize(f, f->policy, a_ct, &a, 1, &az), WR_AUTHZ_GRANTED);
    wr_authz_clear(&az);
    /* stored for A, it still does not count for B */
    expect(f, f->policy, b_ct, NULL, 0, WR_AUTHZ_PENDING, "0 of 1");
    json_object_put(a);
    wr_contract_free(a_ct);
    wr_contract_free(b_ct);
    wr_contract_free(c_ct);
}

static void test_unknown_key_and_identity_mismatch(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *m = sign(f, &f->mallory, "alice@example.com", ct);
    expect(f, f->policy, ct, &m, 1, WR_AUTHZ_REFUSED, "is not the key of any approver declared in the policy");
    /* bob's key claiming to be alice */
    json_object *b = sign(f, &f->bob, "alice@example.com", ct);
    expect(f, f->policy, ct, &b, 1, WR_AUTHZ_REFUSED,
           "claims identity alice@example.com but is signed with the key of approver bob@example.com");
    /* a public_key that does not belong to key_id */
    json_object *x = sign(f, &f->alice, "alice@example.com", ct);
    char *bobpk = b64(&f->bob);
    json_object_object_add(json_object_object_get(x, "signature"), "public_key", json_object_new_string(bobpk));
    free(bobpk);
    expect(f, f->policy, ct, &x, 1, WR_AUTHZ_REFUSED, "signature.public_key does not match key_id");
    json_object_put(m);
    json_object_put(b);
    json_object_put(x);
    wr_contract_free(ct);
}

static void test_approver_not_allowed_for_risk_or_effect(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f); /* risk medium; carol may approve low only */
    json_object *c = sign(f, &f->carol, "carol@example.com", ct);
    expect(f, f->policy, ct, &c, 1, WR_AUTHZ_REFUSED, "approver carol@example.com may not approve risk class medium");
    /* a human approving the contract vouches for all its effects: dave may
     * approve repository mutations only, and this one observes */
    json_object *d = sign(f, &f->dave, "dave@example.com", ct);
    expect(f, f->policy, ct, &d, 1, WR_AUTHZ_REFUSED, "approver dave@example.com may not approve effect type observe");
    json_object_put(c);
    json_object_put(d);
    wr_contract_free(ct);
}

static void test_revoked(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    wr_decision *d = decide(f, f->policy, ct);
    char rid[WR_ID_MAX];
    wr_error err = {0};
    assert_int_equal(wr_approval_request_open(f->st, ct, d, f->policy, &f->ctx, rid, &err), WR_OK);
    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, a, &f->ctx, &err), WR_OK);
    assert_int_equal(wr_approval_revoke(f->st, aid(a), "changed my mind", &f->ctx, &err), WR_OK);
    expect(f, f->policy, ct, &a, 1, WR_AUTHZ_REFUSED, "has been revoked");
    /* and the store will not consume it either */
    assert_int_equal(consume(f->st, "exe_r", ct->sha256, aid(a), &err), WR_E_CONFLICT);
    wr_decision_free(d);
    json_object_put(a);
    wr_contract_free(ct);
}

static void test_self_approval(void **state)
{
    fx *f = *state;
    wr_contract *ct = make_contract(f, "contract-self", "human_required", "alice@example.com", "tests");
    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    expect(f, f->policy, ct, &a, 1, WR_AUTHZ_REFUSED,
           "self-approval refused: alice@example.com is the initiating user of this contract");
    json_object_put(a);
    wr_contract_free(ct);
}

/* Issue 11: the agent that asks never approves, even holding a declared
 * approver's key under its own name. */
static void test_agent_never_approves_itself(void **state)
{
    fx *f = *state;
    char *mk = b64(&f->mallory), extra[256];
    snprintf(extra, sizeof extra,
             "  - identity: agent-1\n    public_key: \"%s\"\n"
             "    may_approve: {risk_classes: [low, medium, high], effect_types: [observe]}\n",
             mk);
    free(mk);
    wr_policy *p = make_policy(f, false, "", 3600, extra);
    wr_contract *ct = plain_contract(f);
    json_object *a = sign(f, &f->mallory, "agent-1", ct);
    expect(f, p, ct, &a, 1, WR_AUTHZ_REFUSED,
           "self-approval refused: agent-1 is the agent that requests this contract");
    json_object_put(a);
    wr_contract_free(ct);
    wr_policy_free(p);
}

/* Issue 11: the risk class that gates approval is the contract's raised to
 * its classified effects' minimum (configurable), never lowered. */
static void test_risk_class_from_classification(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f); /* risk medium, effect observe */
    wr_policy *raised =
        make_policy(f, false, "]\n  effect_risk_classes: {observe: critical}\n  interactive_effect_types: [", 3600, "");
    wr_decision *d = decide(f, raised, ct);
    assert_string_equal(d->risk_class, "critical");
    wr_decision_free(d);
    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    expect(f, raised, ct, &a, 1, WR_AUTHZ_REFUSED, "approver alice@example.com may not approve risk class critical");
    wr_policy_free(raised);

    /* a lower minimum never lowers what the agent declared */
    wr_policy *lower =
        make_policy(f, false, "]\n  effect_risk_classes: {observe: low}\n  interactive_effect_types: [", 3600, "");
    d = decide(f, lower, ct);
    assert_string_equal(d->risk_class, "medium");
    wr_decision_free(d);
    json_object *c = sign(f, &f->carol, "carol@example.com", ct);
    expect(f, lower, ct, &c, 1, WR_AUTHZ_REFUSED, "approver carol@example.com may not approve risk class medium");
    wr_policy_free(lower);
    json_object_put(a);
    json_object_put(c);
    wr_contract_free(ct);
}

static void test_dual_control(void **state)
{
    fx *f = *state;
    wr_contract *ct = make_contract(f, "contract-dual", "dual_control_required", "fabio", "tests");
    json_object *a1 = sign(f, &f->alice, "alice@example.com", ct);
    json_object *a2 = sign(f, &f->alice, "alice@example.com", ct);
    json_object *b = sign(f, &f->bob, "bob@example.com", ct);

    json_object *same_approver[] = {a1, a2};
    expect(f, f->policy, ct, same_approver, 2, WR_AUTHZ_REFUSED, "dual control: alice@example.com approved twice");
    json_object *same_artifact[] = {b, b};
    expect(f, f->policy, ct, same_artifact, 2, WR_AUTHZ_REFUSED, "was supplied twice; each artifact counts once");

    /* one of two: pending, and the valid one is kept for later */
    wr_contract *fresh = make_contract(f, "contract-dual-2", "dual_control_required", "fabio", "tests");
    json_object *fa = sign(f, &f->alice, "alice@example.com", fresh);
    json_object *fb = sign(f, &f->bob, "bob@example.com", fresh);
    expect(f, f->policy, fresh, &fa, 1, WR_AUTHZ_PENDING, "1 of 2 required approval");
    wr_authz az;
    assert_int_equal(authorize(f, f->policy, fresh, &fb, 1, &az), WR_AUTHZ_GRANTED);
    assert_int_equal(az.nuses, 2);
    assert_string_not_equal(az.uses[0].identity, az.uses[1].identity);
    assert_string_not_equal(az.uses[0].key_id, az.uses[1].key_id);
    wr_authz_clear(&az);

    /* two identities sharing one key are one approver */
    char *apk = b64(&f->alice), extra[256];
    snprintf(extra, sizeof extra,
             "  - identity: alice-alt@example.com\n    public_key: \"%s\"\n"
             "    may_approve: {risk_classes: [medium], effect_types: [observe]}\n",
             apk);
    free(apk);
    wr_policy *shared = make_policy(f, false, "", 3600, extra);
    wr_contract *third = make_contract(f, "contract-dual-3", "dual_control_required", "fabio", "tests");
    json_object *one = sign(f, &f->alice, "alice@example.com", third);
    json_object *alt = sign(f, &f->alice, "alice-alt@example.com", third);
    json_object *same_key[] = {one, alt};
    expect(f, shared, third, same_key, 2, WR_AUTHZ_REFUSED, "are signed with the same key");
    wr_policy_free(shared);
    wr_contract_free(third);
    json_object_put(one);
    json_object_put(alt);

    json_object *ok[] = {a1, b};
    assert_int_equal(authorize(f, f->policy, ct, ok, 2, &az), WR_AUTHZ_GRANTED);
    assert_int_equal(az.nuses, 2);
    wr_authz_clear(&az);
    json_object_put(a1);
    json_object_put(a2);
    json_object_put(b);
    json_object_put(fa);
    json_object_put(fb);
    wr_contract_free(ct);
    wr_contract_free(fresh);
}

static void test_server_key(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *s = sign(f, &f->server, "warrantd", ct);
    expect(f, f->policy, ct, &s, 1, WR_AUTHZ_REFUSED,
           "is signed with the server's receipt key, which is not an approver's key");
    /* in-band approvals count only where the policy enables them */
    json_object *e =
        sign_full(f, &f->server, "agent-1-user", "elicitation", ct->sha256, NOW - MIN, NOW + 5 * MIN, false);
    expect(f, f->policy, ct, &e, 1, WR_AUTHZ_REFUSED,
           "in-band approval (elicitation) is not enabled by policy approvals-test for risk class medium");
    /* the risk class alone is not enough: every effect type must be listed too */
    wr_policy *risk_only = make_policy(f, false, "medium", 3600, "");
    expect(f, risk_only, ct, &e, 1, WR_AUTHZ_REFUSED,
           "in-band approval (elicitation) is not enabled by policy approvals-test for effect type observe");
    wr_policy_free(risk_only);
    wr_policy *interactive = make_policy(f, false, "medium]\n  interactive_effect_types: [observe", 3600, "");
    wr_authz az;
    assert_int_equal(authorize(f, interactive, ct, &e, 1, &az), WR_AUTHZ_GRANTED);
    assert_string_equal(az.uses[0].method, "elicitation");
    assert_true(az.uses[0].client_attested);
    wr_authz_clear(&az);
    /* recorded under the requesting agent's own name, it never counts */
    json_object *own = sign_full(f, &f->server, "agent-1", "elicitation", ct->sha256, NOW - MIN, NOW + 5 * MIN, false);
    expect(f, interactive, ct, &own, 1, WR_AUTHZ_REFUSED,
           "self-approval refused: agent-1 is the agent that requests this contract");
    json_object_put(own);
    /* a human's key cannot pose as an in-band approval */
    json_object *h =
        sign_full(f, &f->alice, "alice@example.com", "elicitation", ct->sha256, NOW - MIN, NOW + 5 * MIN, false);
    expect(f, interactive, ct, &h, 1, WR_AUTHZ_REFUSED, "method elicitation is reserved");
    wr_policy_free(interactive);
    json_object_put(s);
    json_object_put(e);
    json_object_put(h);
    wr_contract_free(ct);
}

static void test_time_window(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *w = sign_full(f, &f->alice, "alice@example.com", "cli", ct->sha256, NOW - MIN, NOW + 30 * MIN, true);
    expect(f, f->policy, ct, &w, 1, WR_AUTHZ_REFUSED, "scope time_window is not allowed by the policy");
    /* allowed: reusable until expiry, never consumed */
    wr_policy *windows = make_policy(f, true, "", 3600, "");
    wr_authz az;
    assert_int_equal(authorize(f, windows, ct, &w, 1, &az), WR_AUTHZ_GRANTED);
    assert_false(az.uses[0].single_use);
    wr_authz_clear(&az);
    assert_int_equal(authorize(f, windows, ct, &w, 1, &az), WR_AUTHZ_GRANTED);
    wr_authz_clear(&az);
    f->clock.now = NOW + 30 * MIN;
    expect(f, windows, ct, &w, 1, WR_AUTHZ_EXPIRED, "expired at");
    wr_policy_free(windows);
    json_object_put(w);
    wr_contract_free(ct);
}

static void test_malformed_artifacts(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *notobj = json_object_new_string("approve!");
    expect(f, f->policy, ct, &notobj, 1, WR_AUTHZ_REFUSED, "not a JSON object");
    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    json_object_object_del(a, "signature");
    expect(f, f->policy, ct, &a, 1, WR_AUTHZ_REFUSED, "approval artifact invalid");
    json_object *b = sign(f, &f->alice, "alice@example.com", ct);
    json_object_object_add(json_object_object_get(b, "approver"), "method", json_object_new_string("telepathy"));
    expect(f, f->policy, ct, &b, 1, WR_AUTHZ_REFUSED, "approval artifact invalid: /approver/method");
    json_object *c = sign(f, &f->alice, "alice@example.com", ct);
    json_object_object_add(json_object_object_get(c, "signature"), "signature", json_object_new_string("AAAA"));
    expect(f, f->policy, ct, &c, 1, WR_AUTHZ_REFUSED, "signature does not verify");
    json_object *many[20];
    for (size_t i = 0; i < 20; i++)
        many[i] = c;
    expect(f, f->policy, ct, many, 20, WR_AUTHZ_REFUSED, "too many approval artifacts supplied");
    /* sign refuses bad parameters instead of producing a useless artifact */
    wr_approval_params bad = {.identity = "alice@example.com",
                              .method = "cli",
                              .contract_sha256 = "abc",
                              .approved_at_ms = NOW,
                              .expires_at_ms = NOW + MIN};
    json_object *out = NULL;
    wr_error err = {0};
    assert_int_equal(wr_approval_sign(&f->alice, &bad, &f->ctx, &out, &err), WR_E_INVALID);
    assert_null(out);
    json_object_put(notobj);
    json_object_put(a);
    json_object_put(b);
    json_object_put(c);
    wr_contract_free(ct);
}

/* ---- the queue ------------------------------------------------------------------------- */

static void test_request_lifecycle(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    wr_decision *d = decide(f, f->policy, ct);
    char rid[WR_ID_MAX], again[WR_ID_MAX];
    wr_error err = {0};
    assert_int_equal(wr_approval_request_open(f->st, ct, d, f->policy, &f->ctx, rid, &err), WR_OK);
    assert_int_equal(strncmp(rid, "apr_", 4), 0);
    assert_int_equal(strlen(rid), 4 + 32);
    assert_int_equal(wr_approval_request_open(f->st, ct, d, f->policy, &f->ctx, again, &err), WR_OK);
    assert_string_equal(rid, again); /* one pending request per contract */

    wr_approval_state s;
    assert_int_equal(wr_approval_state_get(f->st, rid, &f->ctx, &s, &err), WR_OK);
    assert_string_equal(s.status, "pending");
    assert_string_equal(s.request.contract_sha256, ct->sha256);
    assert_int_equal(s.request.required_approvals, 1);
    assert_int_equal(s.request.requested_at_ms, NOW);
    assert_int_equal(s.request.expires_at_ms, NOW + 3600 * 1000LL);
    wr_policy *stored = NULL;
    assert_int_equal(wr_approval_request_policy(f->st, &s.request, &stored, &err), WR_OK);
    assert_string_equal(stored->sha256, f->policy->sha256);
    wr_policy_free(stored);
    wr_approval_state_clear(&s);

    /* submit_approval path: checked, stored, request approved */
    json_object *a = sign_full(f, &f->alice, "alice@example.com", "cli", ct->sha256, NOW, NOW + 30 * MIN, false);
    char used_rid[WR_ID_MAX];
    assert_int_equal(wr_approval_accept(f->st, f->policy, a, f->server.pk, &f->ctx, used_rid, &err), WR_OK);
    assert_string_equal(used_rid, rid);
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, a, &f->ctx, &err), WR_OK); /* idempotent */
    char *status = NULL;
    json_object *arts = NULL;
    assert_int_equal(wr_approval_status(f->st, rid, &f->ctx, &status, &arts, &err), WR_OK);
    assert_string_equal(status, "approved");
    assert_int_equal(json_object_array_length(arts), 1);
    free(status);
    json_object_put(arts);

    /* used: consumed, and the next proposal opens a new request */
    assert_int_equal(consume(f->st, "exe_l", ct->sha256, aid(a), &err), WR_OK);
    assert_int_equal(wr_approval_status(f->st, rid, &f->ctx, &status, &arts, &err), WR_OK);
    assert_string_equal(status, "consumed");
    free(status);
    json_object_put(arts);
    f->clock.now = NOW + MIN;
    assert_int_equal(wr_approval_request_open(f->st, ct, d, f->policy, &f->ctx, again, &err), WR_OK);
    assert_string_not_equal(rid, again);
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, a, &f->ctx, &err), WR_E_CONFLICT);
    assert_non_null(strstr(err.message, "has already been used"));

    /* time runs out */
    f->clock.now = NOW + MIN + 3600 * 1000LL;
    assert_int_equal(wr_approval_status(f->st, again, &f->ctx, &status, &arts, &err), WR_OK);
    assert_string_equal(status, "expired");
    free(status);
    json_object_put(arts);
    assert_int_equal(wr_approval_status(f->st, "apr_nope", &f->ctx, &status, &arts, &err), WR_E_NOTFOUND);
    wr_decision_free(d);
    json_object_put(a);
    wr_contract_free(ct);
}

static void test_dual_request_deny_and_revoke(void **state)
{
    fx *f = *state;
    wr_contract *ct = make_contract(f, "contract-dual-q", "dual_control_required", "fabio", "tests");
    wr_decision *d = decide(f, f->policy, ct);
    char rid[WR_ID_MAX];
    wr_error err = {0};
    assert_int_equal(wr_approval_request_open(f->st, ct, d, f->policy, &f->ctx, rid, &err), WR_OK);
    wr_approval_state s;
    assert_int_equal(wr_approval_state_get(f->st, rid, &f->ctx, &s, &err), WR_OK);
    assert_int_equal(s.request.required_approvals, 2);
    wr_approval_state_clear(&s);

    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, a, &f->ctx, &err), WR_OK);
    assert_int_equal(wr_approval_state_get(f->st, rid, &f->ctx, &s, &err), WR_OK);
    assert_string_equal(s.status, "pending");
    assert_int_equal(s.approvals_valid, 1);
    wr_approval_state_clear(&s);

    /* bob vetoes: denied, and alice's approval stops counting */
    assert_int_equal(wr_approval_deny(f->st, rid, "not today", &f->ctx, &err), WR_OK);
    assert_int_equal(wr_approval_state_get(f->st, rid, &f->ctx, &s, &err), WR_OK);
    assert_string_equal(s.status, "denied");
    assert_string_equal(s.request.reason, "not today");
    wr_approval_state_clear(&s);
    assert_true(wr_store_approval_revoked(f->st, aid(a)));
    assert_int_equal(wr_approval_deny(f->st, rid, NULL, &f->ctx, &err), WR_E_CONFLICT);
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, a, &f->ctx, &err), WR_E_DENIED);

    /* a new request for the same contract, then revoked as a whole */
    char rid2[WR_ID_MAX];
    assert_int_equal(wr_approval_request_open(f->st, ct, d, f->policy, &f->ctx, rid2, &err), WR_OK);
    assert_string_not_equal(rid, rid2);
    json_object *b = sign(f, &f->bob, "bob@example.com", ct);
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, b, &f->ctx, &err), WR_OK);
    assert_int_equal(wr_approval_revoke(f->st, rid2, NULL, &f->ctx, &err), WR_OK);
    assert_int_equal(wr_approval_state_get(f->st, rid2, &f->ctx, &s, &err), WR_OK);
    assert_string_equal(s.status, "revoked");
    assert_int_equal(s.approvals_valid, 0);
    wr_approval_state_clear(&s);
    assert_true(wr_store_approval_revoked(f->st, aid(b)));
    assert_int_equal(wr_approval_revoke(f->st, "apr_unknown", NULL, &f->ctx, &err), WR_E_NOTFOUND);
    wr_decision_free(d);
    json_object_put(a);
    json_object_put(b);
    wr_contract_free(ct);
}

static void test_check_artifact_without_request(void **state)
{
    fx *f = *state;
    wr_contract *ct = plain_contract(f);
    json_object *a = sign(f, &f->alice, "alice@example.com", ct);
    wr_error err = {0};
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, a, &f->ctx, &err), WR_E_NOTFOUND);
    assert_non_null(strstr(err.message, "no approval request for contract"));
    json_object *s = json_object_new_array();
    assert_int_equal(wr_approval_check_artifact(f->st, f->policy, s, &f->ctx, &err), WR_E_INVALID);
    json_object_put(s);
    json_object_put(a);
    wr_contract_free(ct);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grant_and_signature_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_same_process_and_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_from_second_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifty_racing_consumers_one_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_racing_processes_one_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_proposals_share_one_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_and_not_yet_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_contract_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_identity_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approver_not_allowed_for_risk_or_effect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_approval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_never_approves_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_risk_class_from_classification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dual_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_artifacts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dual_request_deny_and_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_artifact_without_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
