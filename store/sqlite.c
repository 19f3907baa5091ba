/* store — the embedded SQLite backend, the only place with SQL.
 *
 * Durability: WAL with synchronous=FULL, so a commit is on disk (WAL fsync)
 * before any call returns; a SIGKILL or power loss loses at most the
 * transaction in flight. Concurrency: writes start with BEGIN IMMEDIATE
 * (the write lock is taken before anything is read, so a read-then-write
 * can never hit SQLITE_BUSY_SNAPSHOT half way) and other processes wait on
 * the busy timeout. Schema changes are numbered migrations; the database
 * records the version it is at in PRAGMA user_version. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"

#define DB_NAME         "warrant.db"
#define BUSY_TIMEOUT_MS 15000
#define ZERO_SHA256     "0000000000000000000000000000000000000000000000000000000000000000"

/* Append only: migrations[i] takes a database from version i to i + 1.
 * Never edit a released entry; add a new one. */
static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE contracts("
    "  sha256 TEXT PRIMARY KEY,"
    "  contract_id TEXT NOT NULL,"
    "  agent_id TEXT,"
    "  json TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX contracts_by_id ON contracts(contract_id);"
    "CREATE TABLE decisions("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  contract_sha256 TEXT NOT NULL,"
    "  json TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX decisions_by_contract ON decisions(contract_sha256);"
    "CREATE TABLE policies("
    "  sha256 TEXT PRIMARY KEY,"
    "  json TEXT NOT NULL);"
    "CREATE TABLE approval_requests("
    "  request_id TEXT PRIMARY KEY,"
    "  contract_id TEXT,"
    "  contract_sha256 TEXT NOT NULL,"
    "  agent_id TEXT,"
    "  status TEXT NOT NULL CHECK (status IN"
    "    ('pending','approved','denied','expired','consumed','revoked')),"
    "  contract_json TEXT,"
    "  decision_json TEXT,"
    "  reason TEXT,"
    "  required_approvals INTEGER NOT NULL,"
    "  requested_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL);"
    "CREATE INDEX approval_requests_by_contract ON approval_requests(contract_sha256);"
    /* At most one pending request per contract, even across processes. */
    "CREATE UNIQUE INDEX approval_requests_one_pending ON approval_requests(contract_sha256)"
    "  WHERE status = 'pending';"
    "CREATE TABLE approvals("
    "  approval_id TEXT PRIMARY KEY,"
    "  request_id TEXT,"
    "  contract_sha256 TEXT NOT NULL,"
    "  approver_identity TEXT NOT NULL,"
    "  json TEXT NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX approvals_by_contract ON approvals(contract_sha256);"
    /* Separate from approvals: an artifact only ever seen inline can be revoked too. */
    "CREATE TABLE revocations("
    "  approval_id TEXT PRIMARY KEY,"
    "  reason TEXT,"
    "  revoked_ms INTEGER NOT NULL);"
    "CREATE TABLE executions("
    "  execution_id TEXT PRIMARY KEY,"
    "  contract_sha256 TEXT,"
    "  status TEXT NOT NULL,"
    "  started_ms INTEGER);"
    /* The replay ledger: the PRIMARY KEY is what makes single use race-proof. */
    "CREATE TABLE consumed_approvals("
    "  approval_id TEXT PRIMARY KEY,"
    "  execution_id TEXT NOT NULL REFERENCES executions(execution_id),"
    "  consumed_ms INTEGER NOT NULL);"
    "CREATE TABLE outputs("
    "  execution_id TEXT PRIMARY KEY REFERENCES executions(execution_id),"
    "  stdout BLOB NOT NULL,"
    "  stderr BLOB NOT NULL);"
    "CREATE TABLE receipts("
    "  seq INTEGER PRIMARY KEY CHECK (seq > 0),"
    "  execution_id TEXT NOT NULL UNIQUE REFERENCES executions(execution_id),"
    "  contract_id TEXT,"
    "  status TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  json TEXT NOT NULL);"
    "CREATE TABLE chain_head("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  seq INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL);"
    "INSERT INTO chain_head VALUES (1, 0, '" ZERO_SHA256 "');",
    /* 2: the receipts' Merkle tree (every complete aligned subtree, by
     * hash_id) and the signed checkpoints. Filled for older databases by
     * catch_up_tree on open (SQL has no SHA-256). */
    "CREATE TABLE tlog_hashes("
    "  id INTEGER PRIMARY KEY CHECK (id >= 0),"
    "  hash BLOB NOT NULL CHECK (length(hash) = 32));"
    "CREATE TABLE checkpoints("
    "  tree_size INTEGER PRIMARY KEY CHECK (tree_size >= 0),"
    "  root BLOB NOT NULL CHECK (length(root) = 32),"
    "  note TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL);",
    /* 3: an agent's quota usage (every run asks) read from indexes over
     * its own window, not a scan of every contract ever stored reading
     * each one's text (~25 ms per run with 30 000 stored). bytes: the
     * contract's length in bytes. */
    "ALTER TABLE contracts ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;"
    "UPDATE contracts SET bytes = length(CAST(json AS BLOB));"
    "CREATE INDEX contracts_by_agent ON contracts(agent_id, created_ms, bytes);"
    "CREATE INDEX approval_requests_pending_by_agent ON approval_requests(agent_id, expires_ms)"
    "  WHERE status = 'pending';",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* Statements are kept prepared for the connection's life: preparing costs
 * as much as running most of them, and a server runs the same few per run.
 * Keyed by the SQL literal's address (every statement here is one). */
#define STMT_CACHE_MAX 64
typedef struct cached_stmt {
    const char *sql;
    sqlite3_stmt *st;
    bool in_use;
} cached_stmt;

typedef struct sq {
    sqlite3 *db;
    char path[PATH_MAX];
    cached_stmt cache[STMT_CACHE_MAX];
    size_t ncache;
} sq;

static int fail(sq *q, int rc, const char *what, wr_error *err)
{
    int code = WR_E_IO;
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        code = WR_E_CONFLICT;
        break;
    case SQLITE_NOMEM:
        code = WR_E_NOMEM;
        break;
    case SQLITE_TOOBIG:
        code = WR_E_LIMIT;
        break;
    default:
        break;
    }
    return wr_errorf(err, code, q->path, "%s: %s", what, sqlite3_errmsg(q->db));
}

static int nomem(wr_error *err)
{
    return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
}

/* A statement from the cache, or a new one (cached while there is room;
 * a statement already in use, e.g. by an outer loop, gets a fresh copy). */
static int prepare(sq *q, sqlite3_stmt **st, const char *sql)
{
    for (size_t i = 0; i < q->ncache; i++)
        if (q->cache[i].sql == sql && !q->cache[i].in_use) {
            q->cache[i].in_use = true;
            *st = q->cache[i].st;
            return SQLITE_OK;
        }
    int rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_OK && q->ncache < STMT_CACHE_MAX)
        q->cache[q->ncache++] = (cached_stmt){sql, *st, true};
    return rc;
}

/* Done with a statement from prep: a cached one is reset and its bindings
 * (pointers into the caller's memory) dropped; others are finalised. Every
 * statement from prep ends here, never in sqlite3_finalize (the cache
 * would keep a freed statement). */
static void release(sq *q, sqlite3_stmt *st)
{
    for (size_t i = 0; st && i < q->ncache; i++)
        if (q->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            q->cache[i].in_use = false;
            return;
        }
    sqlite3_finalize(st);
}

/* Prepares sql (a literal: the cache key is its address) and binds its
 * parameters from fmt: 't' text (NULL binds NULL), 'i' int64, 'b' blob
 * (pointer, size_t). Bound memory must outlive the statement
 * (SQLITE_STATIC): every statement here is released in the call that made
 * it. */
static int vprep(sq *q, sqlite3_stmt **st, const char *what, wr_error *err, const char *sql, const char *fmt,
                 va_list ap)
{
    int rc = prepare(q, st, sql);
    if (rc != SQLITE_OK)
        return fail(q, rc, what, err);
    for (int i = 1; fmt && fmt[i - 1]; i++) {
        switch (fmt[i - 1]) {
        case 't':
            rc = sqlite3_bind_text(*st, i, va_arg(ap, const char *), -1, SQLITE_STATIC);
            break;
        case 'i':
            rc = sqlite3_bind_int64(*st, i, va_arg(ap, int64_t));
            break;
        default: {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(*st, i, n ? p : "", n, SQLITE_STATIC);
        }
        }
        if (rc != SQLITE_OK) {
            rc = fail(q, rc, what, err);
            release(q, *st);
            *st = NULL;
            return rc;
        }
    }
    return WR_OK;
}

static int prep(sq *q, sqlite3_stmt **st, const char *what, wr_error *err, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vprep(q, st, what, err, sql, fmt, ap);
    va_end(ap);
    return rc;
}

/* One step: WR_OK with *row telling whether a row came back. */
static int step(sq *q, sqlite3_stmt *st, bool *row, const char *what, wr_error *err)
{
    int rc = sqlite3_step(st);
    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return WR_OK;
    return fail(q, rc, what, err);
}

/* Runs a statement that returns no rows. */
static int run(sq *q, const char *what, wr_error *err, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, fmt);
    int rc = vprep(q, &st, what, err, sql, fmt, ap);
    va_end(ap);
    if (rc)
        return rc;
    bool row;
    rc = step(q, st, &row, what, err);
    release(q, st);
    return rc;
}

/* BEGIN, COMMIT and ROLLBACK are kept prepared too: sqlite3_exec parsed
 * them on every transaction, two per run. */
static int begin(sq *q, bool write, wr_error *err)
{
    return run(q, "begin transaction", err, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL);
}

/* Commits when rc is WR_OK, otherwise rolls back; returns the outcome. */
static int finish(sq *q, int rc, wr_error *err)
{
    if (rc == WR_OK && (rc = run(q, "commit", err, "COMMIT", NULL)) == WR_OK)
        return WR_OK;
    if (!sqlite3_get_autocommit(q->db))
        run(q, "rollback", NULL, "ROLLBACK", NULL);
    return rc;
}

/* Copies a text column; NULL stays NULL. */
static int col_dup(sqlite3_stmt *st, int i, char **out, wr_error *err)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    *out = NULL;
    if (!t)
        return sqlite3_column_type(st, i) == SQLITE_NULL ? WR_OK : nomem(err);
    *out = strdup((const char *)t);
    return *out ? WR_OK : nomem(err);
}

/* Reads the one row a lookup found into out. */
typedef int (*row_reader)(sqlite3_stmt *st, void *out, wr_error *err);

/* A lookup by one key in a read transaction: WR_E_NOTFOUND (message
 * "<notfound> '<key>'") when there is no row. */
static int lookup(sq *q, const char *what, const char *notfound, const char *sql, const char *key, row_reader rd,
                  void *out, wr_error *err)
{
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(q, &st, what, err, sql, "t", key);
    if (rc == WR_OK) {
        bool row;
        rc = step(q, st, &row, what, err);
        if (rc == WR_OK && !row)
            rc = wr_errorf(err, WR_E_NOTFOUND, "", "%s '%s'", notfound, key);
        if (rc == WR_OK)
            rc = rd(st, out, err);
        release(q, st);
    }
    return finish(q, rc, err);
}

static int read_text(sqlite3_stmt *st, void *out, wr_error *err)
{
    return col_dup(st, 0, out, err);
}

static int get_text(sq *q, const char *what, const char *notfound, const char *key, char **json_out, wr_error *err,
                    const char *sql)
{
    *json_out = NULL;
    return lookup(q, what, notfound, sql, key, read_text, json_out, err);
}

/* ---- open and migrate --------------------------------------------------- */

static int catch_up_tree(sq *q, wr_error *err);

/* SQLite would create the file 0644 minus umask; the database holds
 * contracts and command output, so it is created 0600 by us first (and a
 * looser existing one is tightened). SQLite gives -wal and -shm the mode
 * of the database file. O_NOFOLLOW: never follow a planted symlink. */
static int create_db_file(const char *path, wr_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return wr_errorf(err, WR_E_IO, path, "cannot open database: %s", strerror(errno));
    struct stat st;
    int rc = WR_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = wr_errorf(err, WR_E_IO, path, "database is not a regular file");
    else if ((st.st_mode & 077) && fchmod(fd, 0600) != 0)
        rc = wr_errorf(err, WR_E_IO, path, "cannot chmod database to 0600: %s", strerror(errno));
    close(fd);
    return rc;
}

static int read_version(sq *q, int *version, wr_error *err)
{
    sqlite3_stmt *st;
    int rc = prep(q, &st, "read schema version", err, "PRAGMA user_version", NULL);
    if (rc)
        return rc;
    bool row;
    rc = step(q, st, &row, "read schema version", err);
    *version = row ? sqlite3_column_int(st, 0) : 0;
    release(q, st);
    return rc;
}

static int migrate(sq *q, wr_error *err)
{
    int rc = begin(q, true, err);
    if (rc)
        return rc;
    int version = 0;
    rc = read_version(q, &version, err);
    if (rc == WR_OK && version > SCHEMA_VERSION)
        rc = wr_errorf(err, WR_E_VERSION, q->path,
                       "database schema version %d was written by a newer warrant (this one supports up to %d)",
                       version, SCHEMA_VERSION);
    for (; rc == WR_OK && version < SCHEMA_VERSION; version++) {
        int src = sqlite3_exec(q->db, migrations[version], NULL, NULL, NULL);
        if (src != SQLITE_OK) {
            rc = fail(q, src, "schema migration", err);
            break;
        }
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", version + 1);
        src = sqlite3_exec(q->db, pragma, NULL, NULL, NULL);
        if (src != SQLITE_OK)
            rc = fail(q, src, "schema migration", err);
    }
    return finish(q, rc, err);
}

static int configure(sq *q, wr_error *err)
{
    /* Defensive mode: no writable_schema tricks can corrupt the file. */
    sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(q->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    /* Every commit is already durable in the WAL: checkpointing it into the
     * database on close (each CLI command) would cost two more fsyncs per
     * process. The automatic checkpoint (every 1000 pages) bounds the WAL. */
    sqlite3_db_config(q->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
    sqlite3_stmt *st;
    int rc = prep(q, &st, "enable WAL", err, "PRAGMA journal_mode = WAL", NULL);
    if (rc)
        return rc;
    bool row;
    rc = step(q, st, &row, "enable WAL", err);
    if (rc == WR_OK && (!row || sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0))
        rc = wr_errorf(err, WR_E_IO, q->path, "enable WAL: the database refused journal_mode=WAL");
    release(q, st);
    if (rc)
        return rc;
    int src = sqlite3_exec(q->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return fail(q, src, "configure database", err);
    return migrate(q, err);
}

static void sq_close(void *impl)
{
    sq *q = impl;
    if (!q)
        return;
    for (size_t i = 0; i < q->ncache; i++)
        sqlite3_finalize(q->cache[i].st);
    sqlite3_close(q->db);
    free(q);
}

static int sq_open(const char *state_dir, void **impl, wr_error *err)
{
    sq *q = calloc(1, sizeof *q);
    if (!q)
        return nomem(err);
    if ((size_t)snprintf(q->path, sizeof q->path, "%s/%s", state_dir, DB_NAME) >= sizeof q->path) {
        free(q);
        return wr_errorf(err, WR_E_INVALID, state_dir, "state dir path is too long");
    }
    int rc = create_db_file(q->path, err);
    if (rc) {
        free(q);
        return rc;
    }
    /* NOMUTEX: the front serialises access to this handle. */
    int src =
        sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
    if (src != SQLITE_OK) {
        rc = q->db ? fail(q, src, "open database", err) : nomem(err);
        sq_close(q);
        return rc;
    }
    sqlite3_extended_result_codes(q->db, 1);
    rc = configure(q, err);
    if (rc == WR_OK)
        rc = catch_up_tree(q, err);
    if (rc) {
        sq_close(q);
        return rc;
    }
    *impl = q;
    return WR_OK;
}

/* ---- contracts, decisions, policies ------------------------------------- */

static int insert_contract(sq *q, const char *contract_id, const char *sha256, const char *agent_id,
                           const char *contract_json, int64_t now_ms, wr_error *err)
{
    return run(q, "put contract", err,
               "INSERT INTO contracts(sha256, contract_id, agent_id, json, created_ms, bytes)"
               " VALUES (?1, ?2, ?3, ?4, ?5, length(CAST(?4 AS BLOB))) ON CONFLICT(sha256) DO NOTHING",
               "tttti", sha256, contract_id, agent_id, contract_json, now_ms);
}

static int sq_put_contract(void *impl, const char *contract_id, const char *sha256, const char *agent_id,
                           const char *contract_json, int64_t now_ms, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = insert_contract(q, contract_id, sha256, agent_id, contract_json, now_ms, err);
    return finish(q, rc, err);
}

static int sq_get_contract(void *impl, const char *id_or_sha256, char **json_out, wr_error *err)
{
    /* A hash match wins over an id match; among ids, the latest stored. */
    return get_text(impl, "get contract", "no contract with id or sha256", id_or_sha256, json_out, err,
                    "SELECT json FROM contracts WHERE sha256 = ?1 OR contract_id = ?1"
                    " ORDER BY sha256 = ?1 DESC, created_ms DESC, rowid DESC LIMIT 1");
}

static int insert_decision(sq *q, const char *contract_sha256, const char *decision_json, int64_t now_ms, wr_error *err)
{
    return run(q, "put decision", err, "INSERT INTO decisions(contract_sha256, json, created_ms) VALUES (?,?,?)", "tti",
               contract_sha256, decision_json, now_ms);
}

static int sq_put_decision(void *impl, const char *contract_sha256, const char *decision_json, int64_t now_ms,
                           wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = insert_decision(q, contract_sha256, decision_json, now_ms, err);
    return finish(q, rc, err);
}

static int sq_get_decision(void *impl, const char *contract_sha256, char **json_out, wr_error *err)
{
    return get_text(impl, "get decision", "no decision for contract sha256", contract_sha256, json_out, err,
                    "SELECT json FROM decisions WHERE contract_sha256 = ? ORDER BY id DESC LIMIT 1");
}

static int sq_agent_usage(void *impl, const char *agent_id, int64_t since_ms, int64_t now_ms, wr_agent_usage *out,
                          wr_error *err)
{
    sq *q = impl;
    sqlite3_stmt *st = NULL;
    int rc = prep(q, &st, "agent usage", err,
                  "SELECT COUNT(*), COALESCE(SUM(bytes), 0), (SELECT COUNT(*) FROM approval_requests"
                  "  WHERE agent_id = ?1 AND status = 'pending' AND expires_ms > ?3)"
                  " FROM contracts WHERE agent_id = ?1 AND created_ms >= ?2",
                  "tii", agent_id, since_ms, now_ms);
    bool row = false;
    if (rc == WR_OK)
        rc = step(q, st, &row, "agent usage", err);
    if (rc == WR_OK && row) {
        out->contracts = sqlite3_column_int64(st, 0);
        out->contract_bytes = sqlite3_column_int64(st, 1);
        out->pending_requests = sqlite3_column_int64(st, 2);
    }
    release(q, st);
    return rc;
}

static int sq_put_policy(void *impl, const char *sha256, const char *policy_json, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = run(q, "put policy", err, "INSERT INTO policies(sha256, json) VALUES (?,?) ON CONFLICT DO NOTHING", "tt",
                 sha256, policy_json);
    return finish(q, rc, err);
}

static int sq_get_policy(void *impl, const char *sha256, char **json_out, wr_error *err)
{
    return get_text(impl, "get policy", "no policy with sha256", sha256, json_out, err,
                    "SELECT json FROM policies WHERE sha256 = ?");
}

/* ---- approval requests -------------------------------------------------- */

#define REQUEST_COLUMNS                                                                                                \
    "SELECT request_id, contract_id, contract_sha256, agent_id, status, contract_json, decision_json, reason,"         \
    " required_approvals, requested_ms, expires_ms FROM approval_requests "

static int read_request(sqlite3_stmt *st, void *out, wr_error *err)
{
    wr_approval_request *r = out;
    char **text[] = {&r->request_id, &r->contract_id,   &r->contract_sha256, &r->agent_id,
                     &r->status,     &r->contract_json, &r->decision_json,   &r->reason};
    memset(r, 0, sizeof *r);
    for (int i = 0; i < (int)(sizeof text / sizeof text[0]); i++) {
        int rc = col_dup(st, i, text[i], err);
        if (rc) {
            wr_approval_request_clear(r);
            return rc;
        }
    }
    r->required_approvals = sqlite3_column_int(st, 8);
    r->requested_at_ms = sqlite3_column_int64(st, 9);
    r->expires_at_ms = sqlite3_column_int64(st, 10);
    return WR_OK;
}

static int sq_put_approval_request(void *impl, const wr_approval_request *r, char **existing_id_out, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    bool row = false;
    if (!strcmp(r->status, "pending")) {
        rc = prep(q, &st, "put approval request", err,
                  "SELECT request_id FROM approval_requests WHERE contract_sha256 = ? AND status = 'pending'", "t",
                  r->contract_sha256);
        if (rc == WR_OK)
            rc = step(q, st, &row, "put approval request", err);
        if (rc == WR_OK && row && existing_id_out)
            rc = col_dup(st, 0, existing_id_out, err);
        release(q, st);
    }
    if (rc == WR_OK && !row) {
        rc = run(q, "put approval request", err,
                 "INSERT INTO approval_requests(request_id, contract_id, contract_sha256, agent_id, status,"
                 " contract_json, decision_json, reason, required_approvals, requested_ms, expires_ms)"
                 " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 "ttttttttiii", r->request_id, r->contract_id, r->contract_sha256, r->agent_id, r->status,
                 r->contract_json, r->decision_json, r->reason, (int64_t)r->required_approvals, r->requested_at_ms,
                 r->expires_at_ms);
        if (rc == WR_E_CONFLICT)
            rc = wr_errorf(err, WR_E_CONFLICT, "", "approval request '%s' already exists", r->request_id);
    }
    return finish(q, rc, err);
}

static int sq_get_approval_request(void *impl, const char *request_id, wr_approval_request *out, wr_error *err)
{
    return lookup(impl, "get approval request", "no approval request", REQUEST_COLUMNS "WHERE request_id = ?",
                  request_id, read_request, out, err);
}

static int sq_find_approval_request(void *impl, const char *contract_sha256, wr_approval_request *out, wr_error *err)
{
    return lookup(impl, "find approval request", "no approval request for contract sha256",
                  REQUEST_COLUMNS "WHERE contract_sha256 = ? ORDER BY requested_ms DESC, rowid DESC LIMIT 1",
                  contract_sha256, read_request, out, err);
}

static int sq_list_approval_requests(void *impl, const char *status, int (*fn)(void *ud, const wr_approval_request *r),
                                     void *ud, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(q, &st, "list approval requests", err,
              REQUEST_COLUMNS "WHERE ?1 IS NULL OR status = ?1 ORDER BY requested_ms DESC, rowid DESC", "t", status);
    for (bool row = true; rc == WR_OK && row;) {
        rc = step(q, st, &row, "list approval requests", err);
        if (rc || !row)
            break;
        wr_approval_request r;
        rc = read_request(st, &r, err);
        if (rc)
            break;
        int stop = fn(ud, &r);
        wr_approval_request_clear(&r);
        if (stop)
            break;
    }
    release(q, st);
    return finish(q, rc, err);
}

static int sq_set_approval_request_status(void *impl, const char *request_id, const char *from_status,
                                          const char *to_status, const char *reason, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc)
        return rc;
    rc = run(q, "set approval request status", err,
             "UPDATE approval_requests SET status = ?1, reason = COALESCE(?2, reason)"
             " WHERE request_id = ?3 AND (?4 IS NULL OR status = ?4)",
             "tttt", to_status, reason, request_id, from_status);
    if (rc == WR_OK && sqlite3_changes(q->db) == 0) {
        /* Say why: no such request, or it is no longer in from_status. */
        sqlite3_stmt *st;
        rc = prep(q, &st, "set approval request status", err,
                  "SELECT status FROM approval_requests WHERE request_id = ?", "t", request_id);
        bool row = false;
        if (rc == WR_OK)
            rc = step(q, st, &row, "set approval request status", err);
        if (rc == WR_OK && !row)
            rc = wr_errorf(err, WR_E_NOTFOUND, "", "no approval request '%s'", request_id);
        else if (rc == WR_OK)
            rc = wr_errorf(err, WR_E_CONFLICT, "", "approval request '%s' is %s, not %s", request_id,
                           (const char *)sqlite3_column_text(st, 0), from_status);
        release(q, st);
    } else if (rc == WR_E_CONFLICT) {
        rc = wr_errorf(err, WR_E_CONFLICT, "", "another request for the same contract is already pending");
    }
    return finish(q, rc, err);
}

/* ---- approval artifacts ------------------------------------------------- */

static int sq_put_approval(void *impl, const char *approval_id, const char *request_id, const char *contract_sha256,
                           const char *approver_identity, const char *artifact_json, int64_t expires_at_ms,
                           int64_t now_ms, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = run(q, "put approval", err,
                 "INSERT INTO approvals(approval_id, request_id, contract_sha256, approver_identity, json,"
                 " expires_ms, created_ms) VALUES (?,?,?,?,?,?,?)",
                 "tttttii", approval_id, request_id, contract_sha256, approver_identity, artifact_json, expires_at_ms,
                 now_ms);
    if (rc == WR_E_CONFLICT)
        rc = wr_errorf(err, WR_E_CONFLICT, "", "approval '%s' is already stored", approval_id);
    return finish(q, rc, err);
}

static int sq_list_approvals(void *impl, const char *contract_sha256,
                             int (*fn)(void *ud, const char *approval_id, const char *artifact_json, bool revoked),
                             void *ud, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(q, &st, "list approvals", err,
              "SELECT a.approval_id, a.json, r.approval_id IS NOT NULL FROM approvals a"
              " LEFT JOIN revocations r ON r.approval_id = a.approval_id"
              " WHERE a.contract_sha256 = ? ORDER BY a.created_ms, a.rowid",
              "t", contract_sha256);
    for (bool row = true; rc == WR_OK && row;) {
        rc = step(q, st, &row, "list approvals", err);
        if (rc || !row)
            break;
        if (fn(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
               sqlite3_column_int(st, 2) != 0))
            break;
    }
    release(q, st);
    return finish(q, rc, err);
}

static int sq_revoke_approval(void *impl, const char *approval_id, const char *reason, int64_t now_ms, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = run(q, "revoke approval", err, "INSERT INTO revocations(approval_id, reason, revoked_ms) VALUES (?,?,?)",
                 "tti", approval_id, reason, now_ms);
    if (rc == WR_E_CONFLICT)
        rc = wr_errorf(err, WR_E_CONFLICT, "", "approval '%s' is already revoked", approval_id);
    return finish(q, rc, err);
}

static int exists(sq *q, const char *what, const char *sql, const char *key, bool *yes, wr_error *err)
{
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(q, &st, what, err, sql, "t", key);
    if (rc == WR_OK)
        rc = step(q, st, yes, what, err);
    release(q, st);
    return finish(q, rc, err);
}

static int sq_approval_revoked(void *impl, const char *approval_id, bool *yes, wr_error *err)
{
    return exists(impl, "approval revoked", "SELECT 1 FROM revocations WHERE approval_id = ?", approval_id, yes, err);
}

static int sq_approval_consumed(void *impl, const char *approval_id, bool *yes, wr_error *err)
{
    return exists(impl, "approval consumed", "SELECT 1 FROM consumed_approvals WHERE approval_id = ?", approval_id, yes,
                  err);
}

/* ---- executions ---------------------------------------------------------- */

static int insert_execution(sq *q, const char *execution_id, const char *contract_sha256, const wr_strv *consume_ids,
                            int64_t now_ms, wr_error *err)
{
    int rc = run(q, "begin execution", err,
                 "INSERT INTO executions(execution_id, contract_sha256, status, started_ms) VALUES (?,?,'running',?)",
                 "tti", execution_id, contract_sha256, now_ms);
    if (rc == WR_E_CONFLICT)
        rc = wr_errorf(err, WR_E_CONFLICT, "", "execution '%s' already exists", execution_id);
    for (size_t i = 0; rc == WR_OK && consume_ids && i < consume_ids->n; i++) {
        const char *id = consume_ids->v[i];
        bool revoked = false;
        sqlite3_stmt *st;
        rc = prep(q, &st, "begin execution", err, "SELECT 1 FROM revocations WHERE approval_id = ?", "t", id);
        if (rc == WR_OK)
            rc = step(q, st, &revoked, "begin execution", err);
        release(q, st);
        if (rc == WR_OK && revoked)
            rc = wr_errorf(err, WR_E_CONFLICT, "", "approval '%s' has been revoked", id);
        if (rc)
            break;
        /* The ledger's PRIMARY KEY decides a race: the second insert fails. */
        rc = run(q, "begin execution", err,
                 "INSERT INTO consumed_approvals(approval_id, execution_id, consumed_ms) VALUES (?,?,?)", "tti", id,
                 execution_id, now_ms);
        if (rc == WR_E_CONFLICT)
            rc = wr_errorf(err, WR_E_CONFLICT, "", "approval '%s' was already consumed", id);
    }
    return rc;
}

static int sq_begin_execution(void *impl, const char *execution_id, const char *contract_sha256,
                              const wr_strv *consume_ids, int64_t now_ms, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = insert_execution(q, execution_id, contract_sha256, consume_ids, now_ms, err);
    return finish(q, rc, err);
}

/* Everything a run records before its command starts, one commit. */
static int sq_record_run(void *impl, const wr_run_record *r, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = insert_contract(q, r->contract_id, r->contract_sha256, r->agent_id, r->contract_json, r->now_ms, err);
    if (rc == WR_OK && r->decision_json)
        rc = insert_decision(q, r->contract_sha256, r->decision_json, r->now_ms, err);
    if (rc == WR_OK && r->execution_id)
        rc = insert_execution(q, r->execution_id, r->contract_sha256, r->consume_ids, r->now_ms, err);
    if (rc == WR_OK && r->execution_id && r->consumed_request_id)
        rc = run(q, "record run", err, "UPDATE approval_requests SET status = 'consumed' WHERE request_id = ?", "t",
                 r->consumed_request_id);
    return finish(q, rc, err);
}

static int sq_list_running(void *impl, wr_strv *ids, wr_strv *shas, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(q, &st, "list running executions", err,
              "SELECT execution_id, COALESCE(contract_sha256, '') FROM executions WHERE status = 'running'"
              " ORDER BY started_ms, rowid",
              "");
    for (bool row = true; rc == WR_OK && row;) {
        rc = step(q, st, &row, "list running executions", err);
        if (rc || !row)
            break;
        if (wr_strv_push(ids, (const char *)sqlite3_column_text(st, 0)) != WR_OK ||
            wr_strv_push(shas, (const char *)sqlite3_column_text(st, 1)) != WR_OK)
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    release(q, st);
    return finish(q, rc, err);
}

/* Output and receipts may exist without begin_execution (a run blocked
 * before anything started), so they create the execution row if needed. */
static int ensure_execution(sq *q, const char *execution_id, const char *status, wr_error *err)
{
    return run(q, "record execution", err,
               "INSERT INTO executions(execution_id, status) VALUES (?1, COALESCE(?2, 'running'))"
               " ON CONFLICT(execution_id) DO UPDATE SET status = COALESCE(?2, status)",
               "tt", execution_id, status);
}

static int insert_output(sq *q, const char *execution_id, const unsigned char *out, size_t out_len,
                         const unsigned char *errb, size_t err_len, wr_error *err)
{
    int rc = run(q, "put output", err, "INSERT INTO outputs(execution_id, stdout, stderr) VALUES (?,?,?)", "tbb",
                 execution_id, (const void *)out, out_len, (const void *)errb, err_len);
    if (rc == WR_E_CONFLICT)
        rc = wr_errorf(err, WR_E_CONFLICT, "", "output of execution '%s' is already stored", execution_id);
    return rc;
}

static int sq_put_output(void *impl, const char *execution_id, const unsigned char *out, size_t out_len,
                         const unsigned char *errb, size_t err_len, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    if (rc)
        return rc;
    rc = ensure_execution(q, execution_id, NULL, err);
    if (rc == WR_OK)
        rc = insert_output(q, execution_id, out, out_len, errb, err_len, err);
    return finish(q, rc, err);
}

typedef struct output_bufs {
    unsigned char **out, **errb;
    size_t *out_len, *err_len;
} output_bufs;

static int blob_dup(sqlite3_stmt *st, int i, unsigned char **out, size_t *len, wr_error *err)
{
    const void *p = sqlite3_column_blob(st, i);
    *len = (size_t)sqlite3_column_bytes(st, i);
    *out = malloc(*len + 1); /* never malloc(0): callers get a real pointer */
    if (!*out)
        return nomem(err);
    if (*len)
        memcpy(*out, p, *len);
    (*out)[*len] = 0;
    return WR_OK;
}

static int read_output(sqlite3_stmt *st, void *out, wr_error *err)
{
    output_bufs *b = out;
    int rc = blob_dup(st, 0, b->out, b->out_len, err);
    return rc ? rc : blob_dup(st, 1, b->errb, b->err_len, err);
}

static int sq_get_output(void *impl, const char *execution_id, unsigned char **out, size_t *out_len,
                         unsigned char **errb, size_t *err_len, wr_error *err)
{
    output_bufs b = {out, errb, out_len, err_len};
    int rc = lookup(impl, "get output", "no output stored for execution",
                    "SELECT stdout, stderr FROM outputs WHERE execution_id = ?", execution_id, read_output, &b, err);
    if (rc) {
        free(*out);
        free(*errb);
        *out = *errb = NULL;
        *out_len = *err_len = 0;
    }
    return rc;
}

/* Runs sql (bound from fmt as in prep) in a read transaction and hands
 * each row to fn until it returns non-zero. */
typedef int (*row_fn)(void *ud, sqlite3_stmt *st);
static int each_row(sq *q, const char *what, row_fn fn, void *ud, wr_error *err, const char *sql, const char *fmt, ...)
{
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, fmt);
    rc = vprep(q, &st, what, err, sql, fmt, ap);
    va_end(ap);
    for (bool row = true; rc == WR_OK && row;) {
        rc = step(q, st, &row, what, err);
        if (rc || !row || fn(ud, st))
            break;
    }
    release(q, st);
    return finish(q, rc, err);
}

/* ---- the Merkle tree ------------------------------------------------------ */

/* Hashes are stored in the order appends write them: leaf n, then the
 * subtrees it completes (one per trailing 1 bit of n). A hash's row id is
 * the number written before it, so each append adds rows at the end of one
 * B-tree (one page, mostly) and reads its siblings from recent pages. */
static int64_t written_before_leaf(int64_t n)
{
    return 2 * n - __builtin_popcountll((unsigned long long)n);
}

static int64_t hash_id(int level, int64_t index)
{
    int64_t n = ((index + 1) << level) - 1; /* the leaf whose append completes it */
    return written_before_leaf(n) + level;
}

/* The last leaf whose append wrote at most `id` rows before it. */
static int64_t leaf_at(int64_t id)
{
    int64_t lo = 0, hi = id;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (written_before_leaf(mid) <= id)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static int tree_read(void *ud, int level, int64_t index, wr_merkle_hash out, wr_error *err)
{
    sq *q = ud;
    sqlite3_stmt *st;
    int rc =
        prep(q, &st, "read tree hash", err, "SELECT hash FROM tlog_hashes WHERE id = ?", "i", hash_id(level, index));
    if (rc)
        return rc;
    bool row;
    rc = step(q, st, &row, "read tree hash", err);
    if (rc == WR_OK && (!row || sqlite3_column_bytes(st, 0) != WR_MERKLE_HASH_LEN))
        rc = wr_errorf(err, WR_E_INTERNAL, q->path, "the Merkle tree has no hash at level %d, index %lld", level,
                       (long long)index);
    if (rc == WR_OK)
        memcpy(out, sqlite3_column_blob(st, 0), WR_MERKLE_HASH_LEN);
    release(q, st);
    return rc;
}

static int tree_write(void *ud, int level, int64_t index, const wr_merkle_hash h, wr_error *err)
{
    return run(ud, "write tree hash", err, "INSERT INTO tlog_hashes(id, hash) VALUES (?,?)", "ib",
               hash_id(level, index), (const void *)h, (size_t)WR_MERKLE_HASH_LEN);
}

/* The number of leaves whose appends wrote exactly `rows` rows, or -1
 * (rows missing at the end: someone edited the file). */
static int64_t leaves_in(int64_t rows)
{
    int64_t n = leaf_at(rows);
    return written_before_leaf(n) == rows ? n : -1;
}

static int tree_size(sq *q, int64_t *size, wr_error *err)
{
    sqlite3_stmt *st;
    int rc = prep(q, &st, "tree size", err, "SELECT COALESCE(MAX(id) + 1, 0) FROM tlog_hashes", NULL);
    bool row = false;
    if (rc == WR_OK && (rc = step(q, st, &row, "tree size", err)) == WR_OK &&
        (*size = leaves_in(sqlite3_column_int64(st, 0))) < 0)
        rc = wr_errorf(err, WR_E_INTERNAL, q->path, "the Merkle tree ends inside an append: its last rows are gone");
    release(q, st);
    return rc;
}

/* Leaf seq - 1 is the receipt's canonical JSON; inside the caller's write
 * transaction, so the tree moves together with the chain. */
static int tree_append(sq *q, int64_t seq, const char *json, wr_error *err)
{
    wr_merkle_hash leaf;
    wr_merkle_leaf_hash(json, strlen(json), leaf);
    return wr_merkle_append(tree_read, tree_write, q, seq - 1, leaf, err);
}

/* A database from before the tree (schema version 1) gets its receipts
 * added once, on open; afterwards every append keeps them together. */
static int catch_up_tree(sq *q, wr_error *err)
{
    int rc = begin(q, true, err);
    int64_t size = 0;
    if (rc == WR_OK)
        rc = tree_size(q, &size, err);
    sqlite3_stmt *st = NULL;
    if (rc == WR_OK)
        rc = prep(q, &st, "catch up tree", err, "SELECT seq, json FROM receipts WHERE seq > ? ORDER BY seq", "i", size);
    for (bool row = true; rc == WR_OK && row;) {
        rc = step(q, st, &row, "catch up tree", err);
        if (rc || !row)
            break;
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq != ++size)
            rc = wr_errorf(err, WR_E_INTERNAL, q->path, "receipt seq %lld follows %lld: cannot build the tree",
                           (long long)seq, (long long)size - 1);
        else
            rc = tree_append(q, seq, (const char *)sqlite3_column_text(st, 1), err);
    }
    release(q, st);
    return finish(q, rc, err);
}

static int sq_tree(void *impl, wr_tree_query what, int64_t arg, int64_t size, wr_tree_head *head,
                   wr_merkle_proof *proof, wr_error *err)
{
    sq *q = impl;
    int64_t n = 0;
    int rc = begin(q, false, err);
    if (rc == WR_OK)
        rc = tree_size(q, &n, err);
    if (rc == WR_OK && size > n)
        rc = wr_errorf(err, WR_E_NOTFOUND, "", "the log has %lld receipts, not %lld", (long long)n, (long long)size);
    if (rc == WR_OK) {
        head->size = size < 0 ? n : size;
        rc = wr_merkle_root(tree_read, q, head->size, head->root, err);
    }
    if (rc == WR_OK && what == WR_TREE_INCLUSION)
        rc = wr_merkle_prove_inclusion(tree_read, q, arg, head->size, proof, err);
    else if (rc == WR_OK && what == WR_TREE_CONSISTENCY)
        rc = wr_merkle_prove_consistency(tree_read, q, arg, head->size, proof, err);
    return finish(q, rc, err);
}

typedef struct tree_rows {
    int (*fn)(void *ud, int level, int64_t index, const wr_merkle_hash h);
    void *ud;
} tree_rows;

static int tree_row(void *ud, sqlite3_stmt *st)
{
    tree_rows *t = ud;
    int64_t id = sqlite3_column_int64(st, 0), n = leaf_at(id);
    int level = (int)(id - written_before_leaf(n));
    return t->fn(t->ud, level, n >> level, sqlite3_column_blob(st, 1));
}

static int sq_iter_tree(void *impl, int (*fn)(void *ud, int level, int64_t index, const wr_merkle_hash h), void *ud,
                        wr_error *err)
{
    tree_rows t = {fn, ud};
    return each_row(impl, "iterate tree", tree_row, &t, err, "SELECT id, hash FROM tlog_hashes ORDER BY id", NULL);
}

/* ---- checkpoints ------------------------------------------------------------ */

static int sq_put_checkpoint(void *impl, int64_t size, const wr_merkle_hash root, const char *note, int64_t now_ms,
                             wr_error *err)
{
    sq *q = impl;
    int64_t n = 0;
    wr_merkle_hash have;
    int rc = begin(q, true, err);
    if (rc == WR_OK)
        rc = tree_size(q, &n, err);
    if (rc == WR_OK && size > n)
        rc = wr_errorf(err, WR_E_INVALID, "", "checkpoint of size %lld but the log has %lld receipts", (long long)size,
                       (long long)n);
    /* Never store a checkpoint the tree contradicts (tlog-checkpoint: a log
     * must not sign two inconsistent ones). */
    if (rc == WR_OK && (rc = wr_merkle_root(tree_read, q, size, have, err)) == WR_OK &&
        memcmp(have, root, WR_MERKLE_HASH_LEN) != 0)
        rc = wr_errorf(err, WR_E_CONFLICT, "", "checkpoint root differs from the tree at size %lld", (long long)size);
    if (rc == WR_OK)
        rc = run(q, "put checkpoint", err,
                 "INSERT INTO checkpoints(tree_size, root, note, created_ms) VALUES (?,?,?,?)"
                 " ON CONFLICT(tree_size) DO NOTHING",
                 "ibti", size, (const void *)root, (size_t)WR_MERKLE_HASH_LEN, note, now_ms);
    return finish(q, rc, err);
}

static int sq_get_checkpoint(void *impl, int64_t size, int64_t *size_out, char **note_out, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = size < 0 ? prep(q, &st, "get checkpoint", err,
                         "SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", NULL)
                  : prep(q, &st, "get checkpoint", err, "SELECT tree_size, note FROM checkpoints WHERE tree_size = ?",
                         "i", size);
    bool row = false;
    if (rc == WR_OK)
        rc = step(q, st, &row, "get checkpoint", err);
    if (rc == WR_OK && !row)
        rc = size < 0 ? wr_errorf(err, WR_E_NOTFOUND, "", "no checkpoint has been published yet")
                      : wr_errorf(err, WR_E_NOTFOUND, "", "no checkpoint of size %lld", (long long)size);
    if (rc == WR_OK) {
        *size_out = sqlite3_column_int64(st, 0);
        rc = col_dup(st, 1, note_out, err);
    }
    release(q, st);
    return finish(q, rc, err);
}

typedef struct checkpoint_rows {
    int (*fn)(void *ud, int64_t size, const char *note);
    void *ud;
} checkpoint_rows;

static int checkpoint_row(void *ud, sqlite3_stmt *st)
{
    checkpoint_rows *c = ud;
    return c->fn(c->ud, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
}

static int sq_iter_checkpoints(void *impl, int (*fn)(void *ud, int64_t size, const char *note), void *ud, wr_error *err)
{
    checkpoint_rows c = {fn, ud};
    return each_row(impl, "iterate checkpoints", checkpoint_row, &c, err,
                    "SELECT tree_size, note FROM checkpoints ORDER BY tree_size", NULL);
}

typedef struct execution_rows {
    int (*fn)(void *ud, const char *execution_id, int64_t started_ms);
    void *ud;
} execution_rows;

static int execution_row(void *ud, sqlite3_stmt *st)
{
    execution_rows *e = ud;
    return e->fn(e->ud, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
}

static int sq_list_executions(void *impl, const char *status,
                              int (*fn)(void *ud, const char *execution_id, int64_t started_ms), void *ud,
                              wr_error *err)
{
    execution_rows e = {fn, ud};
    return each_row(impl, "list executions", execution_row, &e, err,
                    "SELECT execution_id, COALESCE(started_ms, 0) FROM executions WHERE status = ? ORDER BY started_ms",
                    "t", status);
}

/* ---- receipts and the chain head ---------------------------------------- */

/* One receipt (and its run's output) inside the batch's transaction. */
static int append_one(sq *q, wr_seal_request *r)
{
    wr_error *err = r->err;
    sqlite3_stmt *st;
    int64_t head = 0, max_seq = 0, tree = 0;
    char prev[WR_SHA256_HEX_LEN] = "";
    int rc = prep(q, &st, "append receipt", err,
                  "SELECT h.seq, h.sha256, (SELECT COALESCE(MAX(seq), 0) FROM receipts) FROM chain_head h WHERE id = 1",
                  NULL);
    if (rc == WR_OK) {
        bool row;
        rc = step(q, st, &row, "append receipt", err);
        if (rc == WR_OK && !row)
            rc = wr_errorf(err, WR_E_INTERNAL, q->path, "the receipt chain head is missing");
        if (rc == WR_OK) {
            head = sqlite3_column_int64(st, 0);
            max_seq = sqlite3_column_int64(st, 2);
            const char *h = (const char *)sqlite3_column_text(st, 1);
            if (h && strlen(h) == WR_SHA256_HEX_LEN - 1)
                memcpy(prev, h, WR_SHA256_HEX_LEN);
        }
        release(q, st);
    }
    if (rc == WR_OK)
        rc = tree_size(q, &tree, err);
    /* All three move in one transaction; disagreement means someone edited the file. */
    if (rc == WR_OK && (head != max_seq || head != tree || !prev[0]))
        rc = wr_errorf(err, WR_E_INTERNAL, q->path,
                       "receipt chain head (seq %lld) disagrees with receipts (seq %lld) or the tree (%lld leaves)",
                       (long long)head, (long long)max_seq, (long long)tree);
    char *json = NULL;
    char sha[WR_SHA256_HEX_LEN] = "";
    if (rc == WR_OK)
        rc = r->seal(r->ud, head + 1, prev, &json, sha, err);
    if (rc == WR_OK)
        rc = ensure_execution(q, r->execution_id, r->status, err);
    if (rc == WR_OK && r->output)
        rc = insert_output(q, r->execution_id, r->output->out, r->output->out_len, r->output->err, r->output->err_len,
                           err);
    if (rc == WR_OK) {
        rc = run(q, "append receipt", err,
                 "INSERT INTO receipts(seq, execution_id, contract_id, status, sha256, json) VALUES (?,?,?,?,?,?)",
                 "ittttt", head + 1, r->execution_id, r->contract_id, r->status, sha, json);
        if (rc == WR_E_CONFLICT)
            rc = wr_errorf(err, WR_E_CONFLICT, "", "execution '%s' already has a receipt", r->execution_id);
    }
    if (rc == WR_OK)
        rc = tree_append(q, head + 1, json, err);
    if (rc == WR_OK)
        rc = run(q, "append receipt", err, "UPDATE chain_head SET seq = ?, sha256 = ? WHERE id = 1", "it", head + 1,
                 sha);
    free(json);
    if (rc == WR_OK)
        r->seq = head + 1;
    return rc;
}

/* Group commit: the batch shares one transaction, so one fsync. Each
 * receipt sits in a savepoint: one that fails (its seal function, a second
 * receipt for an execution) is rolled back alone and the others commit.
 * Returns the commit's outcome; each request's own in r->rc. */
static int sq_append_receipts(void *impl, wr_seal_request *batch, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, true, err);
    for (wr_seal_request *r = batch; rc == WR_OK && r; r = r->next) {
        if ((rc = run(q, "append receipt", err, "SAVEPOINT seal", NULL)) != WR_OK)
            break;
        r->rc = append_one(q, r);
        if (r->rc != WR_OK)
            rc = run(q, "append receipt", err, "ROLLBACK TO seal", NULL);
        if (rc == WR_OK)
            rc = run(q, "append receipt", err, "RELEASE seal", NULL);
    }
    return finish(q, rc, err);
}

static int sq_get_receipt(void *impl, const char *execution_id, char **json_out, wr_error *err)
{
    return get_text(impl, "get receipt", "no receipt for execution", execution_id, json_out, err,
                    "SELECT json FROM receipts WHERE execution_id = ?");
}

typedef struct head {
    int64_t *seq;
    char *sha;
} head;

static int read_head(sqlite3_stmt *st, void *out, wr_error *err)
{
    head *h = out;
    const char *sha = (const char *)sqlite3_column_text(st, 1);
    if (!sha || strlen(sha) != WR_SHA256_HEX_LEN - 1)
        return wr_errorf(err, WR_E_INTERNAL, "", "the receipt chain head is damaged");
    *h->seq = sqlite3_column_int64(st, 0);
    memcpy(h->sha, sha, WR_SHA256_HEX_LEN);
    return WR_OK;
}

static int sq_chain_head(void *impl, int64_t *seq_out, char sha256_out[WR_SHA256_HEX_LEN], wr_error *err)
{
    head h = {seq_out, sha256_out};
    return lookup(impl, "chain head", "no chain head",
                  "SELECT seq, sha256 FROM chain_head WHERE id = CAST(? AS INTEGER)", "1", read_head, &h, err);
}

static int sq_iter_receipts(void *impl, int (*fn)(void *ud, int64_t seq, const char *json), void *ud, wr_error *err)
{
    sq *q = impl;
    int rc = begin(q, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(q, &st, "iterate receipts", err, "SELECT seq, json FROM receipts ORDER BY seq", NULL);
    for (bool row = true; rc == WR_OK && row;) {
        rc = step(q, st, &row, "iterate receipts", err);
        if (rc || !row)
            break;
        if (fn(ud, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1)))
            break;
    }
    release(q, st);
    return finish(q, rc, err);
}

static int sq_integrity_check(void *impl, char **result_out, wr_error *err)
{
    sq *q = impl;
    *result_out = NULL;
    sqlite3_stmt *st;
    int rc = prep(q, &st, "integrity check", err, "PRAGMA integrity_check", NULL);
    size_t len = 0;
    for (bool row = true; rc == WR_OK && row;) {
        rc = step(q, st, &row, "integrity check", err);
        if (rc || !row)
            break;
        const char *line = (const char *)sqlite3_column_text(st, 0);
        size_t n = line ? strlen(line) : 0;
        char *p = realloc(*result_out, len + n + 2);
        if (!p) {
            rc = nomem(err);
            break;
        }
        *result_out = p;
        if (len)
            p[len++] = '\n';
        memcpy(p + len, line ? line : "", n);
        len += n;
        p[len] = 0;
    }
    release(q, st);
    if (rc == WR_OK && !*result_out)
        rc = wr_errorf(err, WR_E_IO, q->path, "integrity check returned nothing");
    if (rc) {
        free(*result_out);
        *result_out = NULL;
        return rc;
    }
    /* The report itself stays with the caller, also when it is not "ok". */
    if (strcmp(*result_out, "ok") != 0)
        return wr_errorf(err, WR_E_IO, q->path, "integrity check failed: %.200s", *result_out);
    return WR_OK;
}

const wr_store_ops wr_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .put_contract = sq_put_contract,
    .get_contract = sq_get_contract,
    .put_decision = sq_put_decision,
    .get_decision = sq_get_decision,
    .agent_usage = sq_agent_usage,
    .put_policy = sq_put_policy,
    .get_policy = sq_get_policy,
    .put_approval_request = sq_put_approval_request,
    .get_approval_request = sq_get_approval_request,
    .find_approval_request = sq_find_approval_request,
    .list_approval_requests = sq_list_approval_requests,
    .set_approval_request_status = sq_set_approval_request_status,
    .put_approval = sq_put_approval,
    .list_approvals = sq_list_approvals,
    .revoke_approval = sq_revoke_approval,
    .approval_revoked = sq_approval_revoked,
    .approval_consumed = sq_approval_consumed,
    .begin_execution = sq_begin_execution,
    .record_run = sq_record_run,
    .list_running = sq_list_running,
    .put_output = sq_put_output,
    .get_output = sq_get_output,
    .append_receipts = sq_append_receipts,
    .get_receipt = sq_get_receipt,
    .chain_head = sq_chain_head,
    .iter_receipts = sq_iter_receipts,
    .integrity_check = sq_integrity_check,
    .tree = sq_tree,
    .iter_tree = sq_iter_tree,
    .put_checkpoint = sq_put_checkpoint,
    .get_checkpoint = sq_get_checkpoint,
    .iter_checkpoints = sq_iter_checkpoints,
    .list_executions = sq_list_executions,
};
