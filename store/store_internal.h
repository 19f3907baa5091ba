/* store — private: the backend interface behind store/store.h.
 *
 * store.c is the front: it validates arguments, creates the state dir and
 * serialises calls on one wr_store with a mutex, then forwards each call to
 * a backend through this table. Each backend call is exactly one
 * transaction (append_receipts: one for a whole batch of seals) (writes take the write lock up front). All SQL lives in
 * the backend file (sqlite.c); a PostgreSQL backend for several servers sharing one queue is one more table like
 * wr_store_sqlite_ops (e.g. selected by a "postgresql://" state URL in wr_store_open) and no caller changes. */
#ifndef WR_STORE_INTERNAL_H
#define WR_STORE_INTERNAL_H

#include "store/store.h"

/* One receipt waiting to be sealed; the front queues them so that seals
 * arriving together share one transaction (group commit). */
typedef struct wr_seal_request {
    const char *execution_id, *contract_id, *status;
    const wr_store_output *output; /* NULL: none */
    wr_receipt_seal_fn seal;
    void *ud;
    wr_error *err; /* this request's error */
    int rc;        /* this request's outcome (the commit's is the batch's) */
    int64_t seq;
    bool done; /* committed or failed: the waiting caller may return */
    struct wr_seal_request *next;
} wr_seal_request;

typedef struct wr_store_ops {
    const char *name;
    int (*open)(const char *state_dir, void **impl, wr_error *err);
    void (*close)(void *impl);

    int (*put_contract)(void *impl, const char *contract_id, const char *sha256, const char *agent_id,
                        const char *contract_json, int64_t now_ms, wr_error *err);
    int (*get_contract)(void *impl, const char *id_or_sha256, char **json_out, wr_error *err);
    int (*put_decision)(void *impl, const char *contract_sha256, const char *decision_json, int64_t now_ms,
                        wr_error *err);
    int (*get_decision)(void *impl, const char *contract_sha256, char **json_out, wr_error *err);
    int (*agent_usage)(void *impl, const char *agent_id, int64_t since_ms, int64_t now_ms, wr_agent_usage *out,
                       wr_error *err);
    int (*put_policy)(void *impl, const char *sha256, const char *policy_json, wr_error *err);
    int (*get_policy)(void *impl, const char *sha256, char **json_out, wr_error *err);

    int (*put_approval_request)(void *impl, const wr_approval_request *r, char **existing_id_out, wr_error *err);
    int (*get_approval_request)(void *impl, const char *request_id, wr_approval_request *out, wr_error *err);
    int (*find_approval_request)(void *impl, const char *contract_sha256, wr_approval_request *out, wr_error *err);
    int (*list_approval_requests)(void *impl, const char *status, int (*fn)(void *ud, const wr_approval_request *r),
                                  void *ud, wr_error *err);
    int (*set_approval_request_status)(void *impl, const char *request_id, const char *from_status,
                                       const char *to_status, const char *reason, wr_error *err);

    int (*put_approval)(void *impl, const char *approval_id, const char *request_id, const char *contract_sha256,
                        const char *approver_identity, const char *artifact_json, int64_t expires_at_ms, int64_t now_ms,
                        wr_error *err);
    int (*list_approvals)(void *impl, const char *contract_sha256,
                          int (*fn)(void *ud, const char *approval_id, const char *artifact_json, bool revoked),
                          void *ud, wr_error *err);
    int (*revoke_approval)(void *impl, const char *approval_id, const char *reason, int64_t now_ms, wr_error *err);
    /* *yes_out is set on WR_OK. */
    int (*approval_revoked)(void *impl, const char *approval_id, bool *yes_out, wr_error *err);
    int (*approval_consumed)(void *impl, const char *approval_id, bool *yes_out, wr_error *err);

    int (*begin_execution)(void *impl, const char *execution_id, const char *contract_sha256,
                           const wr_strv *consume_ids, int64_t now_ms, wr_error *err);
    int (*record_run)(void *impl, const wr_run_record *r, wr_error *err);
    int (*list_running)(void *impl, wr_strv *ids_out, wr_strv *contract_sha256_out, wr_error *err);
    int (*put_output)(void *impl, const char *execution_id, const unsigned char *out, size_t out_len,
                      const unsigned char *errb, size_t err_len, wr_error *err);
    int (*get_output)(void *impl, const char *execution_id, unsigned char **out, size_t *out_len, unsigned char **errb,
                      size_t *err_len, wr_error *err);

    /* Every request of the list in one transaction; each one's outcome in
     * its rc, the commit's returned. */
    int (*append_receipts)(void *impl, wr_seal_request *batch, wr_error *err);
    int (*get_receipt)(void *impl, const char *execution_id, char **json_out, wr_error *err);
    int (*chain_head)(void *impl, int64_t *seq_out, char sha256_out[WR_SHA256_HEX_LEN], wr_error *err);
    int (*iter_receipts)(void *impl, int (*fn)(void *ud, int64_t seq, const char *json), void *ud, wr_error *err);

    int (*integrity_check)(void *impl, char **result_out, wr_error *err);

    int (*tree)(void *impl, wr_tree_query what, int64_t arg, int64_t size, wr_tree_head *head, wr_merkle_proof *proof,
                wr_error *err);
    int (*iter_tree)(void *impl, int (*fn)(void *ud, int level, int64_t index, const wr_merkle_hash h), void *ud,
                     wr_error *err);
    int (*put_checkpoint)(void *impl, int64_t size, const wr_merkle_hash root, const char *note, int64_t now_ms,
                          wr_error *err);
    int (*get_checkpoint)(void *impl, int64_t size, int64_t *size_out, char **note_out, wr_error *err);
    int (*iter_checkpoints)(void *impl, int (*fn)(void *ud, int64_t size, const char *note), void *ud, wr_error *err);
    int (*list_executions)(void *impl, const char *status,
                           int (*fn)(void *ud, const char *execution_id, int64_t started_ms), void *ud, wr_error *err);
} wr_store_ops;

extern const wr_store_ops wr_store_sqlite_ops;

#endif
