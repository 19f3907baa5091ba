/* store/: durability settings, migrations, every table's API, and the
 * race-proof parts (single-use consumption, chain appends) under threads
 * and processes sharing one state dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

typedef struct fixture {
    char dir[64];
    wr_store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wr-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    strcat(f->dir, "/state"); /* let wr_store_open create it */
    wr_error err = {0};
    if (wr_store_open(f->dir, &f->st, &err) != WR_OK) {
        fprintf(stderr, "open: %s\n", err.message);
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
    snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(f->dir) - 6), f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static unsigned mode_of(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s%s%s", dir, name ? "/" : "", name ? name : "");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
}

static void test_open_modes_and_pragmas(void **state)
{
    fixture *f = *state;
    assert_int_equal(mode_of(f->dir, NULL), 0700);
    assert_int_equal(mode_of(f->dir, "warrant.db"), 0600);
    assert_string_equal(wr_store_dir(f->st), f->dir);

    char db[256];
    snprintf(db, sizeof db, "%s/warrant.db", f->dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 3); /* 3: the quota's indexes */
    sqlite3_finalize(q);
    sqlite3_close(h);

    char *res = NULL;
    wr_error err = {0};
    assert_int_equal(wr_store_integrity_check(f->st, &res, &err), WR_OK);
    assert_string_equal(res, "ok");
    free(res);
}

/* Runs sql on the store's file over a connection of its own. */
static void exec_sql(fixture *f, const char *sql)
{
    char db[256];
    snprintf(db, sizeof db, "%s/warrant.db", f->dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static int no_checkpoint(void *ud, int64_t size, const char *note)
{
    (void)ud, (void)size, (void)note;
    return 0;
}

/* A statement that cannot be kept (it fails to prepare) is finalised and
 * its error returned: tables gone from under the store are an error, never
 * a hang (release() once called itself on this path). The first call sees
 * the change (SQLite re-reads the schema); the next ones fail to prepare. */
static void test_statement_that_fails_to_prepare(void **state)
{
    fixture *f = *state;
    exec_sql(f, "DROP TABLE decisions; DROP TABLE checkpoints");
    wr_error err = {0};
    assert_int_equal(wr_store_put_decision(f->st, SHA_A, "{}", 1, &err), WR_E_IO);
    assert_non_null(strstr(err.message, "no such table: decisions"));
    char *json = NULL;
    assert_int_equal(wr_store_get_decision(f->st, SHA_A, &json, &err), WR_E_IO);
    assert_null(json);
    /* a walk over rows releases its statement, made or not */
    assert_int_equal(wr_store_iter_checkpoints(f->st, no_checkpoint, NULL, &err), WR_E_IO);
    assert_non_null(strstr(err.message, "no such table: checkpoints"));
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    exec_sql(f, "PRAGMA user_version = 99");
    wr_store *other = NULL;
    wr_error err = {0};
    assert_int_equal(wr_store_open(f->dir, &other, &err), WR_E_VERSION);
    assert_null(other);
    assert_non_null(strstr(err.message, "schema version 99 was written by a newer warrant"));
}

static void test_loose_dir_refused(void **state)
{
    fixture *f = *state;
    assert_int_equal(chmod(f->dir, 0770), 0);
    wr_store *other = NULL;
    wr_error err = {0};
    assert_int_equal(wr_store_open(f->dir, &other, &err), WR_E_DENIED);
    assert_non_null(strstr(err.message, "group or world writable"));
    assert_int_equal(chmod(f->dir, 0700), 0);
    assert_int_equal(wr_store_open("", &other, &err), WR_E_INVALID);
}

static void test_contracts_decisions_policies(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    char *js = NULL;
    assert_int_equal(wr_store_put_contract(f->st, "c1", SHA_A, "agent", "{\"v\":1}", 1000, &err), WR_OK);
    assert_int_equal(wr_store_put_contract(f->st, "c1", SHA_A, "agent", "{\"v\":1}", 1001, &err), WR_OK);
    assert_int_equal(wr_store_put_contract(f->st, "c1", SHA_B, "agent", "{\"v\":2}", 2000, &err), WR_OK);
    assert_int_equal(wr_store_get_contract(f->st, "c1", &js, &err), WR_OK);
    assert_string_equal(js, "{\"v\":2}"); /* latest by id */
    free(js);
    assert_int_equal(wr_store_get_contract(f->st, SHA_A, &js, &err), WR_OK);
    assert_string_equal(js, "{\"v\":1}");
    free(js);
    assert_int_equal(wr_store_get_contract(f->st, "nope", &js, &err), WR_E_NOTFOUND);
    assert_null(js);
    assert_non_null(strstr(err.message, "'nope'"));

    assert_int_equal(wr_store_get_decision(f->st, SHA_A, &js, &err), WR_E_NOTFOUND);
    assert_int_equal(wr_store_put_decision(f->st, SHA_A, "{\"d\":\"deny\"}", 1, &err), WR_OK);
    assert_int_equal(wr_store_put_decision(f->st, SHA_A, "{\"d\":\"allow\"}", 1, &err), WR_OK);
    assert_int_equal(wr_store_get_decision(f->st, SHA_A, &js, &err), WR_OK);
    assert_string_equal(js, "{\"d\":\"allow\"}");
    free(js);

    assert_int_equal(wr_store_put_policy(f->st, SHA_B, "{\"p\":1}", &err), WR_OK);
    assert_int_equal(wr_store_put_policy(f->st, SHA_B, "{\"p\":1}", &err), WR_OK);
    assert_int_equal(wr_store_get_policy(f->st, SHA_B, &js, &err), WR_OK);
    assert_string_equal(js, "{\"p\":1}");
    free(js);
    assert_int_equal(wr_store_put_policy(f->st, "", "{}", &err), WR_E_INVALID);
}

static wr_approval_request mkreq(const char *id, const char *sha, const char *status, int64_t at)
{
    return (wr_approval_request){.request_id = (char *)id,
                                 .contract_id = "c1",
                                 .contract_sha256 = (char *)sha,
                                 .agent_id = "agent",
                                 .status = (char *)status,
                                 .contract_json = "{}",
                                 .decision_json = "{}",
                                 .required_approvals = 2,
                                 .requested_at_ms = at,
                                 .expires_at_ms = at + 1000};
}

static int count_req(void *ud, const wr_approval_request *r)
{
    strcat(ud, r->request_id);
    return 0;
}

/* An agent's quota usage counts what it stored in the window, in bytes, and
 * its pending requests; and it costs the same however much every agent
 * stored before: one agent flooding the store (1 000 contracts a day is
 * within its quota) must not make every other agent's runs slower. */
#define FLOOD_CONTRACTS   30000
#define STR_(x)           #x
#define STR(x)            STR_(x)
#define USAGE_CALLS       15
#define USAGE_BUDGET_NSEC (5 * 1000 * 1000) /* the median call; an index seek takes microseconds */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_agent_usage(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    assert_int_equal(wr_store_put_contract(f->st, "c1", SHA_A, "agent", "{\"v\":\"\xc3\xa9\"}", 5000, &err), WR_OK);
    assert_int_equal(wr_store_put_contract(f->st, "c2", SHA_B, "agent", "{\"v\":2}", 6000, &err), WR_OK);
    assert_int_equal(wr_store_put_contract(f->st, "c0", "cc", "agent", "{\"old\":1}", 1000, &err), WR_OK);
    assert_int_equal(wr_store_put_contract(f->st, "c3", "dd", "other", "{\"v\":3}", 6000, &err), WR_OK);
    wr_approval_request pending = mkreq("r1", SHA_A, "pending", 5000), done = mkreq("r2", SHA_B, "approved", 5000),
                        stale = mkreq("r3", "cc", "pending", 1000);
    assert_int_equal(wr_store_put_approval_request(f->st, &pending, NULL, &err), WR_OK);
    assert_int_equal(wr_store_put_approval_request(f->st, &done, NULL, &err), WR_OK);
    assert_int_equal(wr_store_put_approval_request(f->st, &stale, NULL, &err), WR_OK);
    wr_agent_usage u;
    assert_int_equal(wr_store_agent_usage(f->st, "agent", 2000, 5500, &u, &err), WR_OK);
    assert_int_equal(u.contracts, 2);
    assert_int_equal(u.contract_bytes, 10 + 7); /* bytes: é is two */
    assert_int_equal(u.pending_requests, 1);

    exec_sql(
        f, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " STR(
               FLOOD_CONTRACTS) ")"
                                " INSERT INTO contracts(sha256, contract_id, agent_id, json, created_ms)"
                                " SELECT printf('%064x', i), 'flood', 'flooder', printf('%.1000c', 'x'), 7000 FROM n");
    int64_t ns[USAGE_CALLS];
    for (int i = 0; i < USAGE_CALLS; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(wr_store_agent_usage(f->st, "agent", 2000, 5500, &u, &err), WR_OK);
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[i] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    }
    assert_int_equal(u.contracts, 2);
    qsort(ns, USAGE_CALLS, sizeof ns[0], cmp_i64);
    if (ns[USAGE_CALLS / 2] > USAGE_BUDGET_NSEC)
        fail_msg("agent usage takes %.1f ms with %d contracts of another agent stored", ns[USAGE_CALLS / 2] / 1e6,
                 FLOOD_CONTRACTS);
}

/* A version 2 database (before the quota's indexes) gets its contracts'
 * sizes when it is opened. */
static void test_migration_sizes_contracts(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    assert_int_equal(wr_store_put_contract(f->st, "c1", SHA_A, "agent", "{\"v\":\"\xc3\xa9\"}", 5000, &err), WR_OK);
    wr_store_close(f->st);
    exec_sql(f, "DROP INDEX contracts_by_agent; DROP INDEX approval_requests_pending_by_agent;"
                "ALTER TABLE contracts DROP COLUMN bytes; PRAGMA user_version = 2");
    assert_int_equal(wr_store_open(f->dir, &f->st, &err), WR_OK);
    wr_agent_usage u;
    assert_int_equal(wr_store_agent_usage(f->st, "agent", 0, 5000, &u, &err), WR_OK);
    assert_int_equal(u.contracts, 1);
    assert_int_equal(u.contract_bytes, 10);
}

static void test_approval_requests(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    char *existing = (char *)"x";
    wr_approval_request r = mkreq("r1", SHA_A, "pending", 10);
    assert_int_equal(wr_store_put_approval_request(f->st, &r, &existing, &err), WR_OK);
    assert_null(existing);
    r = mkreq("r2", SHA_A, "pending", 20);
    assert_int_equal(wr_store_put_approval_request(f->st, &r, &existing, &err), WR_OK);
    assert_string_equal(existing, "r1"); /* pending one is reused */
    free(existing);
    r = mkreq("r1", SHA_B, "pending", 30);
    assert_int_equal(wr_store_put_approval_request(f->st, &r, NULL, &err), WR_E_CONFLICT);
    r = mkreq("r3", SHA_B, "bogus", 30);
    assert_int_equal(wr_store_put_approval_request(f->st, &r, NULL, &err), WR_E_INVALID);
    r = mkreq("r3", SHA_B, "pending", 30);
    assert_int_equal(wr_store_put_approval_request(f->st, &r, NULL, &err), WR_OK);

    wr_approval_request got;
    assert_int_equal(wr_store_get_approval_request(f->st, "r1", &got, &err), WR_OK);
    assert_string_equal(got.contract_sha256, SHA_A);
    assert_string_equal(got.status, "pending");
    assert_int_equal(got.required_approvals, 2);
    assert_int_equal(got.expires_at_ms, 1010);
    assert_null(got.reason);
    wr_approval_request_clear(&got);
    assert_int_equal(wr_store_get_approval_request(f->st, "r9", &got, &err), WR_E_NOTFOUND);

    assert_int_equal(wr_store_set_approval_request_status(f->st, "r1", "pending", "denied", "no", &err), WR_OK);
    assert_int_equal(wr_store_set_approval_request_status(f->st, "r1", "pending", "approved", NULL, &err),
                     WR_E_CONFLICT);
    assert_non_null(strstr(err.message, "is denied, not pending"));
    assert_int_equal(wr_store_set_approval_request_status(f->st, "r9", NULL, "approved", NULL, &err), WR_E_NOTFOUND);
    assert_int_equal(wr_store_set_approval_request_status(f->st, "r1", NULL, "weird", NULL, &err), WR_E_INVALID);

    /* Denied, so a new pending request for the same contract is possible. */
    r = mkreq("r4", SHA_A, "pending", 40);
    assert_int_equal(wr_store_put_approval_request(f->st, &r, &existing, &err), WR_OK);
    assert_null(existing);
    assert_int_equal(wr_store_find_approval_request(f->st, SHA_A, &got, &err), WR_OK);
    assert_string_equal(got.request_id, "r4");
    wr_approval_request_clear(&got);
    assert_int_equal(wr_store_get_approval_request(f->st, "r1", &got, &err), WR_OK);
    assert_string_equal(got.reason, "no");
    wr_approval_request_clear(&got);

    char seen[64] = "";
    assert_int_equal(wr_store_list_approval_requests(f->st, "pending", count_req, seen, &err), WR_OK);
    assert_string_equal(seen, "r4r3"); /* newest first */
    seen[0] = 0;
    assert_int_equal(wr_store_list_approval_requests(f->st, NULL, count_req, seen, &err), WR_OK);
    assert_string_equal(seen, "r4r3r1");
}

static int collect_approval(void *ud, const char *id, const char *json, bool revoked)
{
    char *s = ud;
    sprintf(s + strlen(s), "%s%s%s;", id, revoked ? "!" : "", json);
    return 0;
}

static void test_approvals_and_consumption(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    assert_int_equal(wr_store_put_approval(f->st, "a1", NULL, SHA_A, "alice", "{1}", 99, 1, &err), WR_OK);
    assert_int_equal(wr_store_put_approval(f->st, "a2", "r1", SHA_A, "bob", "{2}", 99, 2, &err), WR_OK);
    assert_int_equal(wr_store_put_approval(f->st, "a1", NULL, SHA_A, "alice", "{1}", 99, 3, &err), WR_E_CONFLICT);
    assert_int_equal(wr_store_revoke_approval(f->st, "a2", "lost key", 5, &err), WR_OK);
    assert_int_equal(wr_store_revoke_approval(f->st, "a2", "again", 6, &err), WR_E_CONFLICT);
    char seen[128] = "";
    assert_int_equal(wr_store_list_approvals(f->st, SHA_A, collect_approval, seen, &err), WR_OK);
    assert_string_equal(seen, "a1{1};a2!{2};");
    assert_true(wr_store_approval_revoked(f->st, "a2"));
    assert_false(wr_store_approval_revoked(f->st, "a1"));
    assert_false(wr_store_approval_consumed(f->st, "a1"));

    wr_strv ids = {0};
    wr_strv_push(&ids, "a1");
    assert_int_equal(wr_store_begin_execution(f->st, "e1", SHA_A, &ids, 10, &err), WR_OK);
    assert_true(wr_store_approval_consumed(f->st, "a1"));
    assert_int_equal(wr_store_begin_execution(f->st, "e2", SHA_A, &ids, 11, &err), WR_E_CONFLICT);
    assert_string_equal(err.message, "approval 'a1' was already consumed");
    assert_int_equal(wr_store_begin_execution(f->st, "e1", SHA_A, NULL, 12, &err), WR_E_CONFLICT);
    wr_strv_free(&ids);

    /* All or nothing: a revoked id rolls back the others and the execution. */
    wr_strv_push(&ids, "a3");
    wr_strv_push(&ids, "a2");
    assert_int_equal(wr_store_begin_execution(f->st, "e3", SHA_A, &ids, 13, &err), WR_E_CONFLICT);
    assert_string_equal(err.message, "approval 'a2' has been revoked");
    assert_false(wr_store_approval_consumed(f->st, "a3"));
    wr_strv_free(&ids);
    wr_strv_push(&ids, "a3");
    assert_int_equal(wr_store_begin_execution(f->st, "e3", SHA_A, &ids, 14, &err), WR_OK);
    wr_strv_free(&ids);
}

/* A run's records before exec are one transaction: a consumed approval
 * refuses the execution and leaves neither its contract nor its decision. */
static void test_record_run(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    wr_approval_request req = {.request_id = "r1", .contract_sha256 = SHA_A, .status = "approved"};
    assert_int_equal(wr_store_put_approval_request(f->st, &req, NULL, &err), WR_OK);
    wr_strv ids = {0};
    wr_strv_push(&ids, "a1");
    wr_run_record rec = {.contract_id = "c1",
                         .contract_sha256 = SHA_A,
                         .agent_id = "agent",
                         .contract_json = "{\"v\":1}",
                         .decision_json = "{\"d\":1}",
                         .execution_id = "e1",
                         .consume_ids = &ids,
                         .consumed_request_id = "r1",
                         .now_ms = 10};
    assert_int_equal(wr_store_record_run(f->st, &rec, &err), WR_OK);
    assert_true(wr_store_approval_consumed(f->st, "a1"));
    wr_approval_request got = {0};
    assert_int_equal(wr_store_get_approval_request(f->st, "r1", &got, &err), WR_OK);
    assert_string_equal(got.status, "consumed");
    wr_approval_request_clear(&got);
    char *json = NULL;
    assert_int_equal(wr_store_get_decision(f->st, SHA_A, &json, &err), WR_OK);
    assert_string_equal(json, "{\"d\":1}");
    free(json);

    rec.contract_sha256 = SHA_B;
    rec.execution_id = "e2";
    assert_int_equal(wr_store_record_run(f->st, &rec, &err), WR_E_CONFLICT);
    assert_string_equal(err.message, "approval 'a1' was already consumed");
    assert_int_equal(wr_store_get_contract(f->st, SHA_B, &json, &err), WR_E_NOTFOUND);
    assert_int_equal(wr_store_get_decision(f->st, SHA_B, &json, &err), WR_E_NOTFOUND);
    rec.execution_id = NULL; /* contract and decision only */
    assert_int_equal(wr_store_record_run(f->st, &rec, &err), WR_OK);
    assert_int_equal(wr_store_get_contract(f->st, SHA_B, &json, &err), WR_OK);
    free(json);
    wr_strv_free(&ids);
}

static void test_output(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    const unsigned char out[] = {'h', 'i', 0, 'x'};
    assert_int_equal(wr_store_put_output(f->st, "e9", out, sizeof out, NULL, 0, &err), WR_OK);
    assert_int_equal(wr_store_put_output(f->st, "e9", out, sizeof out, NULL, 0, &err), WR_E_CONFLICT);
    unsigned char *o, *e;
    size_t ol, el;
    assert_int_equal(wr_store_get_output(f->st, "e9", &o, &ol, &e, &el, &err), WR_OK);
    assert_int_equal(ol, 4);
    assert_memory_equal(o, out, 4);
    assert_int_equal(el, 0);
    assert_non_null(e);
    free(o);
    free(e);
    assert_int_equal(wr_store_get_output(f->st, "e8", &o, &ol, &e, &el, &err), WR_E_NOTFOUND);
    assert_null(o);
}

/* A seal function that records what the store handed it. */
typedef struct sealer {
    int64_t seq;
    char prev[WR_SHA256_HEX_LEN];
    bool fail;
} sealer;

static int seal_fn(void *ud, int64_t seq, const char prev[WR_SHA256_HEX_LEN], char **json_out,
                   char sha_out[WR_SHA256_HEX_LEN], wr_error *err)
{
    sealer *s = ud;
    if (s->fail)
        return wr_errorf(err, WR_E_CRYPTO, "", "signing failed");
    s->seq = seq;
    memcpy(s->prev, prev, WR_SHA256_HEX_LEN);
    char buf[200];
    snprintf(buf, sizeof buf, "{\"seq\":%lld,\"prev\":\"%s\"}", (long long)seq, prev);
    wr_sha256_hex(buf, strlen(buf), sha_out);
    *json_out = strdup(buf);
    return WR_OK;
}

static int collect_receipt(void *ud, int64_t seq, const char *json)
{
    char *s = ud;
    sprintf(s + strlen(s), "%lld:%zu;", (long long)seq, strlen(json));
    return seq == 2; /* stop after the second */
}

static void test_receipt_chain(void **state)
{
    fixture *f = *state;
    wr_error err = {0};
    sealer s = {0};
    int64_t seq = 0;
    char zeros[65];
    memset(zeros, '0', 64);
    zeros[64] = 0;
    assert_int_equal(wr_store_append_receipt(f->st, "e1", "c1", "success", NULL, seal_fn, &s, &seq, &err), WR_OK);
    assert_int_equal(seq, 1);
    assert_string_equal(s.prev, zeros);
    char *first = NULL;
    assert_int_equal(wr_store_get_receipt(f->st, "e1", &first, &err), WR_OK);
    char want[65];
    wr_sha256_hex(first, strlen(first), want);
    free(first);

    s.fail = true;
    assert_int_equal(wr_store_append_receipt(f->st, "e2", "c1", "failed", NULL, seal_fn, &s, &seq, &err), WR_E_CRYPTO);
    assert_int_equal(wr_store_get_receipt(f->st, "e2", &first, &err), WR_E_NOTFOUND);
    assert_null(first);
    s.fail = false;
    assert_int_equal(wr_store_append_receipt(f->st, "e2", "c1", "failed", NULL, seal_fn, &s, &seq, &err), WR_OK);
    assert_int_equal(seq, 2); /* the failed seal did not use up a seq */
    assert_string_equal(s.prev, want);
    assert_int_equal(wr_store_append_receipt(f->st, "e2", "c1", "failed", NULL, seal_fn, &s, &seq, &err),
                     WR_E_CONFLICT);
    assert_non_null(strstr(err.message, "already has a receipt"));
    assert_int_equal(wr_store_append_receipt(f->st, "e3", NULL, "blocked", NULL, seal_fn, &s, &seq, &err), WR_OK);
    assert_int_equal(seq, 3);

    char seen[128] = "";
    assert_int_equal(wr_store_iter_receipts(f->st, collect_receipt, seen, &err), WR_OK);
    assert_string_equal(seen, "1:83;2:83;"); /* the callback stopped the walk */
}

/* Checks seq runs 1..n and each test receipt names its predecessor's hash. */
typedef struct walk {
    int64_t n;
    char prev[WR_SHA256_HEX_LEN];
    bool ok;
} walk;

static int walk_fn(void *ud, int64_t seq, const char *json)
{
    walk *w = ud;
    char want[200];
    snprintf(want, sizeof want, "{\"seq\":%lld,\"prev\":\"%s\"}", (long long)seq, w->prev);
    if (seq != w->n + 1 || strcmp(json, want) != 0)
        w->ok = false;
    w->n = seq;
    wr_sha256_hex(json, strlen(json), w->prev);
    return 0;
}

static void assert_chain(wr_store *st, int64_t n)
{
    walk w = {.ok = true};
    memset(w.prev, '0', 64);
    wr_error err = {0};
    assert_int_equal(wr_store_iter_receipts(st, walk_fn, &w, &err), WR_OK);
    assert_true(w.ok);
    assert_int_equal(w.n, n);
}

/* ---- concurrency ---------------------------------------------------------- */

typedef struct racer {
    wr_store *st;
    int index;
    int wins;
    int conflicts;
} racer;

static void *consume_thread(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 20; i++) {
        char exec_id[32], appr[32];
        snprintf(exec_id, sizeof exec_id, "t%d-%d", r->index, i);
        snprintf(appr, sizeof appr, "appr-%d", i);
        wr_strv ids = {0};
        wr_strv_push(&ids, appr);
        wr_error err = {0};
        int rc = wr_store_begin_execution(r->st, exec_id, SHA_A, &ids, 1, &err);
        if (rc == WR_OK)
            r->wins++;
        else if (rc == WR_E_CONFLICT)
            r->conflicts++;
        wr_strv_free(&ids);
    }
    return NULL;
}

static void *append_thread(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 25; i++) {
        char exec_id[32];
        snprintf(exec_id, sizeof exec_id, "x%d-%d", r->index, i);
        sealer s = {0};
        wr_error err = {0};
        if (wr_store_append_receipt(r->st, exec_id, "c", "success", NULL, seal_fn, &s, NULL, &err) == WR_OK)
            r->wins++;
    }
    return NULL;
}

/* Group commit: 16 threads seal at once, so seals queue while one commits
 * and later batches carry several (the sealing callback of a queued
 * receipt then runs on the batch leader's thread). In every batch some
 * seals fail (the callback, a second receipt for one execution): they are
 * rolled back alone, the others commit, and the chain has no gap. */
#define GROUP_THREADS 16
#define GROUP_SEALS   12
typedef struct group_sealer {
    sealer s;
    pthread_t owner;
    bool foreign; /* sealed on another caller's thread */
} group_sealer;

static int group_seal_fn(void *ud, int64_t seq, const char prev[WR_SHA256_HEX_LEN], char **json_out,
                         char sha_out[WR_SHA256_HEX_LEN], wr_error *err)
{
    group_sealer *g = ud;
    g->foreign = !pthread_equal(g->owner, pthread_self());
    usleep(500); /* a slow signer: the others queue meanwhile */
    return seal_fn(&g->s, seq, prev, json_out, sha_out, err);
}

typedef struct group_racer {
    wr_store *st;
    int index, sealed, failed, conflicts, foreign;
} group_racer;

static void *group_thread(void *arg)
{
    group_racer *r = arg;
    for (int i = 0; i < GROUP_SEALS; i++) {
        char exec_id[32];
        /* every fourth seal reuses the previous execution id: a conflict */
        snprintf(exec_id, sizeof exec_id, "g%d-%d", r->index, i % 4 == 3 ? i - 1 : i);
        group_sealer g = {.s.fail = i % 4 == 1, .owner = pthread_self()};
        wr_error err = {0};
        int rc = wr_store_append_receipt(r->st, exec_id, "c", "success", NULL, group_seal_fn, &g, NULL, &err);
        r->sealed += rc == WR_OK;
        r->failed += rc == WR_E_CRYPTO;
        r->conflicts += rc == WR_E_CONFLICT;
        r->foreign += g.foreign;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    fixture *f = *state;
    group_racer r[GROUP_THREADS];
    pthread_t t[GROUP_THREADS];
    for (int i = 0; i < GROUP_THREADS; i++) {
        r[i] = (group_racer){.st = f->st, .index = i};
        assert_int_equal(pthread_create(&t[i], NULL, group_thread, &r[i]), 0);
    }
    int foreign = 0;
    for (int i = 0; i < GROUP_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(r[i].sealed, GROUP_SEALS / 2);
        assert_int_equal(r[i].failed, GROUP_SEALS / 4);
        assert_int_equal(r[i].conflicts, GROUP_SEALS / 4);
        foreign += r[i].foreign;
    }
    assert_true(foreign > 0); /* batches of several happened */
    assert_chain(f->st, GROUP_THREADS * GROUP_SEALS / 2);
    wr_error err = {0};
    wr_tree_head head;
    assert_int_equal(wr_store_tree(f->st, WR_TREE_ROOT, 0, -1, &head, NULL, &err), WR_OK);
    assert_int_equal(head.size, GROUP_THREADS * GROUP_SEALS / 2);
}

static void test_threads_share_a_store(void **state)
{
    fixture *f = *state;
    racer r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (racer){.st = f->st, .index = i};
        pthread_create(&t[i], NULL, consume_thread, &r[i]);
    }
    int wins = 0, conflicts = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        wins += r[i].wins;
        conflicts += r[i].conflicts;
    }
    assert_int_equal(wins, 20); /* each approval id exactly once */
    assert_int_equal(conflicts, 60);

    for (int i = 0; i < 4; i++) {
        r[i] = (racer){.st = f->st, .index = i};
        pthread_create(&t[i], NULL, append_thread, &r[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].wins, 25);
    assert_chain(f->st, 100);
}

/* Several processes, each with its own wr_store on the same dir, race for
 * the same approval ids and append to the one chain. */
static void test_processes_share_a_dir(void **state)
{
    fixture *f = *state;
    enum {
        NPROC = 4
    };
    int pipes[NPROC][2];
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        assert_int_equal(pipe(pipes[p]), 0);
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            wr_store *st;
            wr_error err = {0};
            if (wr_store_open(f->dir, &st, &err) != WR_OK)
                _exit(3);
            racer r = {.st = st, .index = 100 + p};
            consume_thread(&r);
            int appended = r.wins;
            r.wins = 0;
            append_thread(&r);
            wr_store_close(st);
            int res[2] = {appended, r.wins};
            if (write(pipes[p][1], res, sizeof res) != sizeof res)
                _exit(4);
            _exit(0);
        }
        close(pipes[p][1]);
    }
    int wins = 0, appended = 0;
    for (int p = 0; p < NPROC; p++) {
        int status, res[2] = {0, 0};
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(read(pipes[p][0], res, sizeof res), (ssize_t)sizeof res);
        close(pipes[p][0]);
        wins += res[0];
        appended += res[1];
    }
    assert_int_equal(wins, 20);
    assert_int_equal(appended, NPROC * 25);

    assert_chain(f->st, NPROC * 25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_modes_and_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loose_dir_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contracts_decisions_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approval_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_sizes_contracts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_approvals_and_consumption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_that_fails_to_prepare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipt_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_a_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_share_a_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
