/* store — durable state of a state dir: contracts, decisions, approval
 * requests and artifacts, the consumed-approval ledger, executions, receipts
 * and the receipt chain head. SQLite (WAL, synchronous=FULL) is the embedded
 * backend; callers see only this interface so that a PostgreSQL backend can
 * be added behind it (wr_store_ops) without touching them.
 *
 * Every function is one transaction and is safe to call from several
 * threads on one wr_store (an internal mutex serialises them) and from
 * several processes on one state dir (SQLite locking with a busy timeout).
 * Callbacks (list/iter functions) run inside that call, under the mutex:
 * they must not call back into the same wr_store. */
#ifndef WR_STORE_H
#define WR_STORE_H

#include "lib/lib.h"

typedef struct wr_store wr_store;

/* Opens (creating with mode 0700 / 0600) DIR/warrant.db and migrates it.
 * A database written by a newer schema version is WR_E_VERSION. */
int wr_store_open(const char *state_dir, wr_store **out, wr_error *err);
void wr_store_close(wr_store *s);
const char *wr_store_dir(const wr_store *s);

/* ---- contracts and decisions ------------------------------------------- */
/* Idempotent by sha256. */
int wr_store_put_contract(wr_store *s, const char *contract_id, const char *sha256, const char *agent_id,
                          const char *contract_json, int64_t now_ms, wr_error *err);
/* By contract_id (latest stored) or by sha256. *json_out malloc'd. */
int wr_store_get_contract(wr_store *s, const char *id_or_sha256, char **json_out, wr_error *err);
int wr_store_put_decision(wr_store *s, const char *contract_sha256, const char *decision_json, int64_t now_ms,
                          wr_error *err);

/* Policies by canonical sha256 (idempotent), so bundles carry the exact policy. */
int wr_store_put_policy(wr_store *s, const char *sha256, const char *policy_json, wr_error *err);
int wr_store_get_policy(wr_store *s, const char *sha256, char **json_out, wr_error *err);
/* What one agent holds: contracts stored since since_ms (count and JSON
 * bytes) and approval requests still pending at now_ms. The gate's quotas. */
typedef struct wr_agent_usage {
    int64_t contracts, contract_bytes, pending_requests;
} wr_agent_usage;
int wr_store_agent_usage(wr_store *s, const char *agent_id, int64_t since_ms, int64_t now_ms, wr_agent_usage *out,
                         wr_error *err);
/* The newest decision stored for a contract hash. */
int wr_store_get_decision(wr_store *s, const char *contract_sha256, char **json_out, wr_error *err);

/* ---- approval requests ------------------------------------------------- */
typedef struct wr_approval_request {
    char *request_id;
    char *contract_id;
    char *contract_sha256;
    char *agent_id;
    char *status; /* pending | approved | denied | expired | consumed | revoked */
    char *contract_json;
    char *decision_json;
    char *reason; /* deny/revoke reason, may be NULL */
    int required_approvals;
    int64_t requested_at_ms, expires_at_ms;
} wr_approval_request;

/* Inserts unless a pending request for the same contract_sha256 exists, in
 * which case nothing is inserted, WR_OK is returned and that request's id is
 * put in *existing_id_out (malloc'd; set to NULL when r was inserted;
 * existing_id_out itself may be NULL). A duplicate request_id is WR_E_CONFLICT. */
int wr_store_put_approval_request(wr_store *s, const wr_approval_request *r, char **existing_id_out, wr_error *err);
int wr_store_get_approval_request(wr_store *s, const char *request_id, wr_approval_request *out, wr_error *err);
/* The newest request for a contract hash (any status); WR_E_NOTFOUND if none. */
int wr_store_find_approval_request(wr_store *s, const char *contract_sha256, wr_approval_request *out, wr_error *err);
/* status NULL = all. Calls fn for each, newest first; fn returns non-zero to stop. */
int wr_store_list_approval_requests(wr_store *s, const char *status, int (*fn)(void *ud, const wr_approval_request *r),
                                    void *ud, wr_error *err);
/* Changes status only if the current one is from_status (NULL = any):
 * otherwise WR_E_CONFLICT naming the current status; WR_E_NOTFOUND if no
 * such request. reason NULL keeps the stored reason. */
int wr_store_set_approval_request_status(wr_store *s, const char *request_id, const char *from_status,
                                         const char *to_status, const char *reason, wr_error *err);
void wr_approval_request_clear(wr_approval_request *r);

/* ---- approval artifacts ------------------------------------------------ */
int wr_store_put_approval(wr_store *s, const char *approval_id, const char *request_id, const char *contract_sha256,
                          const char *approver_identity, const char *artifact_json, int64_t expires_at_ms,
                          int64_t now_ms, wr_error *err);
/* Artifacts stored for a contract hash, oldest first (revoked ones included,
 * flagged). fn returns non-zero to stop. */
int wr_store_list_approvals(wr_store *s, const char *contract_sha256,
                            int (*fn)(void *ud, const char *approval_id, const char *artifact_json, bool revoked),
                            void *ud, wr_error *err);
/* A revocation is recorded by approval id even if the artifact was never
 * stored (it may only have been seen inline); revoking twice is WR_E_CONFLICT. */
int wr_store_revoke_approval(wr_store *s, const char *approval_id, const char *reason, int64_t now_ms, wr_error *err);
/* Both fail closed: true when the store cannot answer. */
bool wr_store_approval_revoked(wr_store *s, const char *approval_id);
bool wr_store_approval_consumed(wr_store *s, const char *approval_id);

/* ---- executions: atomic consumption of single-use approvals ------------
 * In one transaction: refuses (WR_E_CONFLICT, err names the id) if any of
 * consume_ids is already in the consumed ledger or revoked; otherwise
 * records them as consumed by execution_id and inserts the execution row
 * (status "running"). Two racing callers with the same id: exactly one wins. */
int wr_store_begin_execution(wr_store *s, const char *execution_id, const char *contract_sha256,
                             const wr_strv *consume_ids, int64_t now_ms, wr_error *err);
/* Everything a run records before its command starts, in one durable
 * transaction (one fsync): the contract, the decision and, when
 * execution_id is set, the execution row with consume_ids consumed exactly
 * as wr_store_begin_execution does. Without execution_id (a proposal, a run
 * refused before it starts): contract and decision only. */
typedef struct wr_run_record {
    const char *contract_id, *contract_sha256, *agent_id, *contract_json;
    const char *decision_json; /* NULL: no decision */
    const char *execution_id;  /* NULL: no execution */
    const wr_strv *consume_ids;
    const char *consumed_request_id; /* with execution_id: this approval request becomes "consumed" */
    int64_t now_ms;
} wr_run_record;
int wr_store_record_run(wr_store *s, const wr_run_record *r, wr_error *err);
/* Executions still "running" (no receipt yet), oldest first, with their
 * contract sha256 ("" when unknown): parallel lists, caller frees. */
int wr_store_list_running(wr_store *s, wr_strv *ids_out, wr_strv *contract_sha256_out, wr_error *err);
/* Captured output kept for evidence bundles; once per execution
 * (WR_E_CONFLICT otherwise). get returns NUL-terminated malloc'd buffers. */
int wr_store_put_output(wr_store *s, const char *execution_id, const unsigned char *out, size_t out_len,
                        const unsigned char *errb, size_t err_len, wr_error *err);
int wr_store_get_output(wr_store *s, const char *execution_id, unsigned char **out, size_t *out_len,
                        unsigned char **errb, size_t *err_len, wr_error *err);

/* ---- receipts and the chain --------------------------------------------
 * seal is called inside the transaction with the next seq and the previous
 * receipt's sha256 (64 zeros for the first); it returns the signed receipt's
 * canonical JSON (malloc'd) and its sha256. The row and the new chain head
 * are committed together, durably, before wr_store_append_receipt returns,
 * with the run's captured output when output is given (as put_output).
 * Group commit: seals from threads sharing the wr_store that arrive while
 * one commits are sealed together in the next transaction, one fsync for
 * all; each caller returns only once its own receipt is durable, and one
 * that fails does not fail the others. seal may run on another caller's
 * thread (while this one waits). */
typedef int (*wr_receipt_seal_fn)(void *ud, int64_t seq, const char prev_sha256[WR_SHA256_HEX_LEN],
                                  char **signed_json_out, char sha256_out[WR_SHA256_HEX_LEN], wr_error *err);
typedef struct wr_store_output {
    const unsigned char *out, *err;
    size_t out_len, err_len;
} wr_store_output;
int wr_store_append_receipt(wr_store *s, const char *execution_id, const char *contract_id, const char *status,
                            const wr_store_output *output, wr_receipt_seal_fn seal, void *ud, int64_t *seq_out,
                            wr_error *err);
int wr_store_get_receipt(wr_store *s, const char *execution_id, char **json_out, wr_error *err);
/* The chain head: seq of the newest receipt (0 when there is none) and its
 * sha256 (64 zeros then). Lets a verifier notice receipts cut off the end. */
int wr_store_chain_head(wr_store *s, int64_t *seq_out, char sha256_out[WR_SHA256_HEX_LEN], wr_error *err);
/* In seq order; fn returns non-zero to stop. */
int wr_store_iter_receipts(wr_store *s, int (*fn)(void *ud, int64_t seq, const char *json), void *ud, wr_error *err);

/* ---- the receipts' Merkle tree (RFC 9162) and its checkpoints ----------
 * Leaf i (from 0) is the canonical JSON of the receipt with seq i + 1; the
 * tree grows in the same transaction as the chain. */
typedef enum wr_tree_query {
    WR_TREE_ROOT,        /* head only */
    WR_TREE_INCLUSION,   /* and the inclusion proof of leaf `arg` */
    WR_TREE_CONSISTENCY, /* and the consistency proof from size `arg` */
} wr_tree_query;
typedef struct wr_tree_head {
    int64_t size;
    wr_merkle_hash root;
} wr_tree_head;
/* The tree at size (-1: its current size) in one read transaction;
 * proof may be NULL for WR_TREE_ROOT. A size beyond the tree is WR_E_NOTFOUND. */
int wr_store_tree(wr_store *s, wr_tree_query what, int64_t arg, int64_t size, wr_tree_head *head,
                  wr_merkle_proof *proof, wr_error *err);
/* Every stored hash in the order appends wrote them (leaf n, then the
 * subtrees it completed, lowest first), for a check against the receipts;
 * fn returns non-zero to stop. */
int wr_store_iter_tree(wr_store *s, int (*fn)(void *ud, int level, int64_t index, const wr_merkle_hash h), void *ud,
                       wr_error *err);
/* Keeps a signed checkpoint note of the tree at size, refusing one whose
 * root the tree contradicts; the first one stored for a size stays. */
int wr_store_put_checkpoint(wr_store *s, int64_t size, const wr_merkle_hash root, const char *note, int64_t now_ms,
                            wr_error *err);
/* The checkpoint of exactly size, or the largest one (size -1); WR_E_NOTFOUND if none. */
int wr_store_get_checkpoint(wr_store *s, int64_t size, int64_t *size_out, char **note_out, wr_error *err);
/* Oldest first; fn returns non-zero to stop. */
int wr_store_iter_checkpoints(wr_store *s, int (*fn)(void *ud, int64_t size, const char *note), void *ud,
                              wr_error *err);
/* Executions in a status (e.g. "running" left by a crash), oldest first. */
int wr_store_list_executions(wr_store *s, const char *status,
                             int (*fn)(void *ud, const char *execution_id, int64_t started_ms), void *ud,
                             wr_error *err);

/* The raw SQLite integrity check ("ok" on success), for tests and `warrant doctor`.
 * When the check runs but finds damage: WR_E_IO and *result_out still holds the report. */
int wr_store_integrity_check(wr_store *s, char **result_out, wr_error *err);

#endif
