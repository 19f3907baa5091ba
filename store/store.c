/* store — the front of the store: argument checks, the state dir, and one
 * mutex per wr_store so that threads can share it; every call is forwarded
 * to the backend (store_internal.h), which makes it one transaction. */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_internal.h"

struct wr_store {
    const wr_store_ops *ops;
    void *impl;
    char *dir;
    pthread_mutex_t mu; /* the backend connection */
    /* Group commit: seals queue here while one caller commits a batch. */
    pthread_mutex_t seal_mu;
    pthread_cond_t sealed;
    wr_seal_request *queue, **queue_tail;
    bool sealing;
};

static int missing(wr_error *err, const char *fn, const char *what)
{
    return wr_errorf(err, WR_E_INVALID, "", "%s: %s is missing", fn, what);
}

/* Empty identifiers would make rows nobody can address again. */
static bool blank(const char *s)
{
    return !s || !*s;
}

static bool blank_ids(const wr_strv *ids)
{
    for (size_t i = 0; ids && i < ids->n; i++)
        if (blank(ids->v[i]))
            return true;
    return false;
}

static bool valid_request_status(const char *s)
{
    static const char *const st[] = {"pending", "approved", "denied", "expired", "consumed", "revoked"};
    for (size_t i = 0; s && i < sizeof st / sizeof st[0]; i++)
        if (!strcmp(s, st[i]))
            return true;
    return false;
}

static void lock(wr_store *s)
{
    pthread_mutex_lock(&s->mu);
}
static void unlock(wr_store *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* The state dir holds the signing key and the database: it must be ours
 * alone. Created 0700; an existing one that others may write to is refused
 * (they could swap the database or the key under us). */
static int prepare_dir(const char *dir, wr_error *err)
{
    /* Missing parents too (the default ~/.local/state/warrant on a fresh
     * account), owner-only like the dir itself. */
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return wr_errorf(err, WR_E_LIMIT, "", "state dir path is too long");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return wr_errorf(err, WR_E_IO, dir, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return wr_errorf(err, WR_E_IO, dir, "cannot create state dir: %s", strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0)
        return wr_errorf(err, WR_E_IO, dir, "cannot stat state dir: %s", strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return wr_errorf(err, WR_E_INVALID, dir, "state dir is not a directory");
    if (st.st_mode & 022)
        return wr_errorf(err, WR_E_DENIED, dir, "state dir is group or world writable (mode %03o); chmod 700 it",
                         (unsigned)(st.st_mode & 0777));
    return WR_OK;
}

int wr_store_open(const char *state_dir, wr_store **out, wr_error *err)
{
    if (!out)
        return missing(err, "store open", "out");
    *out = NULL;
    if (blank(state_dir))
        return missing(err, "store open", "state dir");
    int rc = prepare_dir(state_dir, err);
    if (rc)
        return rc;
    wr_store *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(state_dir))) {
        free(s);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    s->ops = &wr_store_sqlite_ops;
    rc = s->ops->open(state_dir, &s->impl, err);
    if (rc) {
        free(s->dir);
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->seal_mu, NULL);
    pthread_cond_init(&s->sealed, NULL);
    s->queue_tail = &s->queue;
    *out = s;
    return WR_OK;
}

void wr_store_close(wr_store *s)
{
    if (!s)
        return;
    s->ops->close(s->impl);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->seal_mu);
    pthread_cond_destroy(&s->sealed);
    free(s->dir);
    free(s);
}

const char *wr_store_dir(const wr_store *s)
{
    return s ? s->dir : NULL;
}

/* ---- contracts, decisions, policies ------------------------------------- */

int wr_store_put_contract(wr_store *s, const char *contract_id, const char *sha256, const char *agent_id,
                          const char *contract_json, int64_t now_ms, wr_error *err)
{
    if (!s || blank(contract_id) || blank(sha256) || !contract_json)
        return missing(err, "put contract", "store, contract id, sha256 or json");
    lock(s);
    int rc = s->ops->put_contract(s->impl, contract_id, sha256, agent_id, contract_json, now_ms, err);
    unlock(s);
    return rc;
}

int wr_store_get_contract(wr_store *s, const char *id_or_sha256, char **json_out, wr_error *err)
{
    if (!s || blank(id_or_sha256) || !json_out)
        return missing(err, "get contract", "store, id or output");
    lock(s);
    int rc = s->ops->get_contract(s->impl, id_or_sha256, json_out, err);
    unlock(s);
    return rc;
}

int wr_store_put_decision(wr_store *s, const char *contract_sha256, const char *decision_json, int64_t now_ms,
                          wr_error *err)
{
    if (!s || blank(contract_sha256) || !decision_json)
        return missing(err, "put decision", "store, contract sha256 or json");
    lock(s);
    int rc = s->ops->put_decision(s->impl, contract_sha256, decision_json, now_ms, err);
    unlock(s);
    return rc;
}

int wr_store_agent_usage(wr_store *s, const char *agent_id, int64_t since_ms, int64_t now_ms, wr_agent_usage *out,
                         wr_error *err)
{
    if (!s || blank(agent_id) || !out)
        return missing(err, "agent usage", "store, agent id or output");
    lock(s);
    int rc = s->ops->agent_usage(s->impl, agent_id, since_ms, now_ms, out, err);
    unlock(s);
    return rc;
}

int wr_store_get_decision(wr_store *s, const char *contract_sha256, char **json_out, wr_error *err)
{
    if (!s || blank(contract_sha256) || !json_out)
        return missing(err, "get decision", "store, sha256 or output");
    lock(s);
    int rc = s->ops->get_decision(s->impl, contract_sha256, json_out, err);
    unlock(s);
    return rc;
}

int wr_store_put_policy(wr_store *s, const char *sha256, const char *policy_json, wr_error *err)
{
    if (!s || blank(sha256) || !policy_json)
        return missing(err, "put policy", "store, sha256 or json");
    lock(s);
    int rc = s->ops->put_policy(s->impl, sha256, policy_json, err);
    unlock(s);
    return rc;
}

int wr_store_get_policy(wr_store *s, const char *sha256, char **json_out, wr_error *err)
{
    if (!s || blank(sha256) || !json_out)
        return missing(err, "get policy", "store, sha256 or output");
    lock(s);
    int rc = s->ops->get_policy(s->impl, sha256, json_out, err);
    unlock(s);
    return rc;
}

/* ---- approval requests -------------------------------------------------- */

int wr_store_put_approval_request(wr_store *s, const wr_approval_request *r, char **existing_id_out, wr_error *err)
{
    if (existing_id_out)
        *existing_id_out = NULL;
    if (!s || !r || blank(r->request_id) || blank(r->contract_sha256))
        return missing(err, "put approval request", "store, request id or contract sha256");
    if (!valid_request_status(r->status))
        return wr_errorf(err, WR_E_INVALID, "", "put approval request: invalid status '%s'",
                         r->status ? r->status : "(null)");
    lock(s);
    int rc = s->ops->put_approval_request(s->impl, r, existing_id_out, err);
    unlock(s);
    return rc;
}

int wr_store_get_approval_request(wr_store *s, const char *request_id, wr_approval_request *out, wr_error *err)
{
    if (!s || blank(request_id) || !out)
        return missing(err, "get approval request", "store, id or output");
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = s->ops->get_approval_request(s->impl, request_id, out, err);
    unlock(s);
    return rc;
}

int wr_store_find_approval_request(wr_store *s, const char *contract_sha256, wr_approval_request *out, wr_error *err)
{
    if (!s || blank(contract_sha256) || !out)
        return missing(err, "find approval request", "store, sha256 or output");
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = s->ops->find_approval_request(s->impl, contract_sha256, out, err);
    unlock(s);
    return rc;
}

int wr_store_list_approval_requests(wr_store *s, const char *status, int (*fn)(void *ud, const wr_approval_request *r),
                                    void *ud, wr_error *err)
{
    if (!s || !fn)
        return missing(err, "list approval requests", "store or callback");
    if (status && !valid_request_status(status))
        return wr_errorf(err, WR_E_INVALID, "", "list approval requests: invalid status '%s'", status);
    lock(s);
    int rc = s->ops->list_approval_requests(s->impl, status, fn, ud, err);
    unlock(s);
    return rc;
}

int wr_store_set_approval_request_status(wr_store *s, const char *request_id, const char *from_status,
                                         const char *to_status, const char *reason, wr_error *err)
{
    if (!s || blank(request_id))
        return missing(err, "set approval request status", "store or request id");
    if (!valid_request_status(to_status) || (from_status && !valid_request_status(from_status)))
        return wr_errorf(err, WR_E_INVALID, "", "set approval request status: invalid status '%s'",
                         valid_request_status(to_status) ? from_status
                         : to_status                     ? to_status
                                                         : "(null)");
    lock(s);
    int rc = s->ops->set_approval_request_status(s->impl, request_id, from_status, to_status, reason, err);
    unlock(s);
    return rc;
}

void wr_approval_request_clear(wr_approval_request *r)
{
    if (!r)
        return;
    free(r->request_id);
    free(r->contract_id);
    free(r->contract_sha256);
    free(r->agent_id);
    free(r->status);
    free(r->contract_json);
    free(r->decision_json);
    free(r->reason);
    memset(r, 0, sizeof *r);
}

/* ---- approval artifacts ------------------------------------------------- */

int wr_store_put_approval(wr_store *s, const char *approval_id, const char *request_id, const char *contract_sha256,
                          const char *approver_identity, const char *artifact_json, int64_t expires_at_ms,
                          int64_t now_ms, wr_error *err)
{
    if (!s || blank(approval_id) || blank(contract_sha256) || blank(approver_identity) || !artifact_json)
        return missing(err, "put approval", "store, approval id, contract sha256, approver or json");
    lock(s);
    int rc = s->ops->put_approval(s->impl, approval_id, request_id, contract_sha256, approver_identity, artifact_json,
                                  expires_at_ms, now_ms, err);
    unlock(s);
    return rc;
}

int wr_store_list_approvals(wr_store *s, const char *contract_sha256,
                            int (*fn)(void *ud, const char *approval_id, const char *artifact_json, bool revoked),
                            void *ud, wr_error *err)
{
    if (!s || blank(contract_sha256) || !fn)
        return missing(err, "list approvals", "store, sha256 or callback");
    lock(s);
    int rc = s->ops->list_approvals(s->impl, contract_sha256, fn, ud, err);
    unlock(s);
    return rc;
}

int wr_store_revoke_approval(wr_store *s, const char *approval_id, const char *reason, int64_t now_ms, wr_error *err)
{
    if (!s || blank(approval_id))
        return missing(err, "revoke approval", "store or approval id");
    lock(s);
    int rc = s->ops->revoke_approval(s->impl, approval_id, reason, now_ms, err);
    unlock(s);
    return rc;
}

/* Both predicates fail closed: if the store cannot answer, the approval
 * counts as revoked/consumed, so a database error never lets one through. */
static bool fail_closed(wr_store *s, const char *approval_id,
                        int (*op)(void *impl, const char *approval_id, bool *yes_out, wr_error *err))
{
    if (!s || blank(approval_id))
        return true;
    bool yes = true;
    lock(s);
    if (op(s->impl, approval_id, &yes, NULL) != WR_OK)
        yes = true;
    unlock(s);
    return yes;
}

bool wr_store_approval_revoked(wr_store *s, const char *approval_id)
{
    return fail_closed(s, approval_id, s ? s->ops->approval_revoked : NULL);
}

bool wr_store_approval_consumed(wr_store *s, const char *approval_id)
{
    return fail_closed(s, approval_id, s ? s->ops->approval_consumed : NULL);
}

/* ---- executions and output ---------------------------------------------- */

int wr_store_list_running(wr_store *s, wr_strv *ids_out, wr_strv *contract_sha256_out, wr_error *err)
{
    memset(ids_out, 0, sizeof *ids_out);
    memset(contract_sha256_out, 0, sizeof *contract_sha256_out);
    if (!s)
        return missing(err, "list running executions", "store");
    lock(s);
    int rc = s->ops->list_running(s->impl, ids_out, contract_sha256_out, err);
    unlock(s);
    if (rc != WR_OK) {
        wr_strv_free(ids_out);
        wr_strv_free(contract_sha256_out);
    }
    return rc;
}

int wr_store_begin_execution(wr_store *s, const char *execution_id, const char *contract_sha256,
                             const wr_strv *consume_ids, int64_t now_ms, wr_error *err)
{
    if (!s || blank(execution_id) || blank(contract_sha256))
        return missing(err, "begin execution", "store, execution id or contract sha256");
    if (blank_ids(consume_ids))
        return missing(err, "begin execution", "approval id");
    lock(s);
    int rc = s->ops->begin_execution(s->impl, execution_id, contract_sha256, consume_ids, now_ms, err);
    unlock(s);
    return rc;
}

int wr_store_record_run(wr_store *s, const wr_run_record *r, wr_error *err)
{
    if (!s || !r || blank(r->contract_id) || blank(r->contract_sha256) || !r->contract_json ||
        (r->execution_id && !*r->execution_id) || blank_ids(r->consume_ids))
        return missing(err, "record run", "store, contract id, sha256, json, execution id or approval id");
    lock(s);
    int rc = s->ops->record_run(s->impl, r, err);
    unlock(s);
    return rc;
}

int wr_store_put_output(wr_store *s, const char *execution_id, const unsigned char *out, size_t out_len,
                        const unsigned char *errb, size_t err_len, wr_error *err)
{
    if (!s || blank(execution_id) || (!out && out_len) || (!errb && err_len))
        return missing(err, "put output", "store, execution id or buffer");
    lock(s);
    int rc = s->ops->put_output(s->impl, execution_id, out, out_len, errb, err_len, err);
    unlock(s);
    return rc;
}

int wr_store_get_output(wr_store *s, const char *execution_id, unsigned char **out, size_t *out_len,
                        unsigned char **errb, size_t *err_len, wr_error *err)
{
    if (!s || blank(execution_id) || !out || !out_len || !errb || !err_len)
        return missing(err, "get output", "store, execution id or output");
    *out = *errb = NULL;
    *out_len = *err_len = 0;
    lock(s);
    int rc = s->ops->get_output(s->impl, execution_id, out, out_len, errb, err_len, err);
    unlock(s);
    return rc;
}

/* ---- receipts ------------------------------------------------------------ */

/* Group commit. A caller queues its request; if no batch is being
 * committed it becomes the leader: it takes the whole queue, seals it in
 * one transaction (the connection's mutex held, the queue's released so
 * that others keep queueing), marks every request done and wakes the
 * waiters. A waiter whose request is still queued leads the next batch. */
int wr_store_append_receipt(wr_store *s, const char *execution_id, const char *contract_id, const char *status,
                            const wr_store_output *output, wr_receipt_seal_fn seal, void *ud, int64_t *seq_out,
                            wr_error *err)
{
    if (!s || blank(execution_id) || blank(status) || !seal ||
        (output && ((!output->out && output->out_len) || (!output->err && output->err_len))))
        return missing(err, "append receipt", "store, execution id, status, seal function or output buffer");
    wr_seal_request me = {
        .execution_id = execution_id,
        .contract_id = contract_id,
        .status = status,
        .output = output,
        .seal = seal,
        .ud = ud,
        .err = err,
    };
    pthread_mutex_lock(&s->seal_mu);
    *s->queue_tail = &me;
    s->queue_tail = &me.next;
    while (!me.done) {
        if (s->sealing) {
            pthread_cond_wait(&s->sealed, &s->seal_mu);
            continue;
        }
        wr_seal_request *batch = s->queue;
        s->queue = NULL;
        s->queue_tail = &s->queue;
        s->sealing = true;
        pthread_mutex_unlock(&s->seal_mu);

        wr_error commit_err = {0};
        lock(s);
        int rc = s->ops->append_receipts(s->impl, batch, &commit_err);
        unlock(s);

        pthread_mutex_lock(&s->seal_mu);
        for (wr_seal_request *r = batch, *next; r; r = next) {
            next = r->next; /* r belongs to a waiter that may return once done */
            if (rc != WR_OK && r->rc == WR_OK) {
                r->rc = rc;
                if (r->err)
                    *r->err = commit_err;
            }
            r->done = true;
        }
        s->sealing = false;
        pthread_cond_broadcast(&s->sealed);
    }
    pthread_mutex_unlock(&s->seal_mu);
    if (me.rc == WR_OK && seq_out)
        *seq_out = me.seq;
    return me.rc;
}

int wr_store_get_receipt(wr_store *s, const char *execution_id, char **json_out, wr_error *err)
{
    if (!s || blank(execution_id) || !json_out)
        return missing(err, "get receipt", "store, execution id or output");
    lock(s);
    int rc = s->ops->get_receipt(s->impl, execution_id, json_out, err);
    unlock(s);
    return rc;
}

int wr_store_chain_head(wr_store *s, int64_t *seq_out, char sha256_out[WR_SHA256_HEX_LEN], wr_error *err)
{
    if (!s || !seq_out || !sha256_out)
        return missing(err, "chain head", "store or output");
    lock(s);
    int rc = s->ops->chain_head(s->impl, seq_out, sha256_out, err);
    unlock(s);
    return rc;
}

int wr_store_iter_receipts(wr_store *s, int (*fn)(void *ud, int64_t seq, const char *json), void *ud, wr_error *err)
{
    if (!s || !fn)
        return missing(err, "iterate receipts", "store or callback");
    lock(s);
    int rc = s->ops->iter_receipts(s->impl, fn, ud, err);
    unlock(s);
    return rc;
}

int wr_store_integrity_check(wr_store *s, char **result_out, wr_error *err)
{
    if (!s || !result_out)
        return missing(err, "integrity check", "store or output");
    lock(s);
    int rc = s->ops->integrity_check(s->impl, result_out, err);
    unlock(s);
    return rc;
}

/* ---- the Merkle tree and checkpoints ------------------------------------- */

int wr_store_tree(wr_store *s, wr_tree_query what, int64_t arg, int64_t size, wr_tree_head *head,
                  wr_merkle_proof *proof, wr_error *err)
{
    if (!s || !head || (what != WR_TREE_ROOT && !proof))
        return missing(err, "tree", "store or output");
    if (proof)
        proof->n = 0;
    lock(s);
    int rc = s->ops->tree(s->impl, what, arg, size, head, proof, err);
    unlock(s);
    return rc;
}

int wr_store_iter_tree(wr_store *s, int (*fn)(void *ud, int level, int64_t index, const wr_merkle_hash h), void *ud,
                       wr_error *err)
{
    if (!s || !fn)
        return missing(err, "iterate tree", "store or callback");
    lock(s);
    int rc = s->ops->iter_tree(s->impl, fn, ud, err);
    unlock(s);
    return rc;
}

int wr_store_put_checkpoint(wr_store *s, int64_t size, const wr_merkle_hash root, const char *note, int64_t now_ms,
                            wr_error *err)
{
    if (!s || size < 0 || !root || blank(note))
        return missing(err, "put checkpoint", "store, size, root or note");
    lock(s);
    int rc = s->ops->put_checkpoint(s->impl, size, root, note, now_ms, err);
    unlock(s);
    return rc;
}

int wr_store_get_checkpoint(wr_store *s, int64_t size, int64_t *size_out, char **note_out, wr_error *err)
{
    if (!s || !size_out || !note_out)
        return missing(err, "get checkpoint", "store or output");
    *note_out = NULL;
    lock(s);
    int rc = s->ops->get_checkpoint(s->impl, size, size_out, note_out, err);
    unlock(s);
    return rc;
}

int wr_store_iter_checkpoints(wr_store *s, int (*fn)(void *ud, int64_t size, const char *note), void *ud, wr_error *err)
{
    if (!s || !fn)
        return missing(err, "iterate checkpoints", "store or callback");
    lock(s);
    int rc = s->ops->iter_checkpoints(s->impl, fn, ud, err);
    unlock(s);
    return rc;
}

int wr_store_list_executions(wr_store *s, const char *status,
                             int (*fn)(void *ud, const char *execution_id, int64_t started_ms), void *ud, wr_error *err)
{
    if (!s || blank(status) || !fn)
        return missing(err, "list executions", "store, status or callback");
    lock(s);
    int rc = s->ops->list_executions(s->impl, status, fn, ud, err);
    unlock(s);
    return rc;
}
