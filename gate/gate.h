/* gate — the one door through which a contract becomes an execution.
 * It evaluates the policy itself (never trusting an earlier decision),
 * checks and atomically consumes approvals, runs the executor, and seals a
 * signed, chained receipt for every outcome — success, failure, denial,
 * pending approval, expiry, cancellation. Nothing else calls the executor.
 *
 * A wr_gate is shared by the server's threads: every function is safe to
 * call concurrently. */
#ifndef WR_GATE_H
#define WR_GATE_H

#include "contracts/contracts.h"
#include "policies/policies.h"

/* Only gate/ sees the store and the executor: the build gives the server
 * and the clients an include path without executor.h (server: without
 * store.h too), so everything they need from below goes through here. */

typedef struct wr_gate wr_gate;

/* What the gate tells an observer (metrics, logs): called on the thread that
 * did the work, so it must be quick and thread-safe. */
typedef enum wr_gate_event_kind {
    WR_GATE_DECISION, /* a policy evaluation: outcome = allow|deny|needs_approval, reason = its code */
    WR_GATE_SEALED,   /* a receipt stored: outcome = its status, execution_id set */
    WR_GATE_APPROVAL, /* an approval decision: outcome = accepted|refused|denied|revoked */
} wr_gate_event_kind;

typedef struct wr_gate_event {
    wr_gate_event_kind kind;
    const char *identity; /* the client identity, else the contract's agent */
    const char *execution_id;
    const char *outcome;
    const char *reason;
    const char *operation;    /* decision: "check", "propose" or "run" */
    double sandbox_start_sec; /* sealed: launch to the first command running in its sandbox; < 0: none ran */
    double seconds;           /* decision: evaluation; sealed: request to durable receipt */
} wr_gate_event;

#define WR_GATE_LAUNCHERS_MAX 64 /* the executor's WR_LAUNCH_POOL_MAX */

typedef struct wr_gate_config {
    const char *state_dir;   /* required */
    const char *policy_path; /* NULL: the bundled pack policy_pack */
    const char *policy_pack; /* bundled pack when policy_path is NULL; NULL: "default" */
    const wr_ctx *ctx;       /* copied */
    char *const *host_env;   /* values for env_allow names; NULL: none */
    /* Besides the state dir, paths no contract may expose whatever the
     * policy allows (token file, TLS key, config); NULL-terminated or NULL. */
    const char *const *protected_paths;
    /* Quotas per client identity, so that one agent cannot fill the state
     * dir: contracts stored in the last 24 h (count and bytes) and approval
     * requests pending at once; 0: the defaults (1000, 16 MiB, 64). The
     * local CLI (no client identity) is not held to them. */
    int64_t max_contracts_per_agent, max_contract_bytes_per_agent, max_pending_per_agent;
    void (*observer)(void *ud, const wr_gate_event *ev); /* NULL: none */
    void *observer_ud;
    /* Where per-command cgroups go: a delegated v2 parent or a v1 mount
     * base; NULL: $WARRANT_CGROUP_ROOT, else /sys/fs/cgroup. */
    const char *cgroup_root;
    /* Warm launchers (wr_launch_pool_new), started first thing at open so
     * their cgroup attach overlaps the rest of the start-up: 0 none (each
     * command starts its own), < 0 the executor's default, at most
     * WR_GATE_LAUNCHERS_MAX; refill keeps the pool full (servers), else
     * the launchers serve the process's first runs (a one-shot CLI). */
    int launchers;
    bool launchers_refill;
} wr_gate_config;

/* The state dir when none is given: $WARRANT_STATE_DIR, else
 * $XDG_STATE_HOME/warrant, else $HOME/.local/state/warrant. warrantd and
 * warrant share it, so approvers and auditors find the server's queue and
 * receipts without flags. WR_E_NOTFOUND when none of them is set. */
int wr_gate_default_state_dir(char *buf, size_t len);

int wr_gate_open(const wr_gate_config *cfg, wr_gate **out, wr_error *err);
void wr_gate_close(wr_gate *g);

/* Makes a run's live mark (STATE_DIR/running/ID) ahead of the request, up
 * to WR_GATE_MARKS_AHEAD of them: a server calls it between runs, so that
 * the file system work is off the runs' path. Thread-safe. */
#define WR_GATE_MARKS_AHEAD 4
void wr_gate_prepare_run(wr_gate *g);

/* Loads a new policy and swaps it in atomically; on any error the active
 * policy stays and err says why. Runs in progress keep the policy they began with. */
int wr_gate_reload_policy(wr_gate *g, const char *path, wr_error *err);
/* The active policy, held until wr_gate_policy_release. */
const wr_policy *wr_gate_policy_acquire(wr_gate *g);
void wr_gate_policy_release(wr_gate *g, const wr_policy *p);

/* What the sandbox enforces on this host under the active policy
 * (wr_exec_host_isolation): for describe_policy. New reference or NULL. */
json_object *wr_gate_isolation(wr_gate *g);
const wr_contracts *wr_gate_contracts(wr_gate *g);
const wr_ctx *wr_gate_ctx(wr_gate *g);

/* Every call that names a client identity checks it here, once: the
 * contract's actor.agent_id must equal it (NULL: local CLI, unchecked).
 * A mismatch is WR_E_DENIED at /actor/agent_id with one message, "identity
 * mismatch: ...". */

/* Approval requests waiting for a human (for the metrics gauge). */
int wr_gate_count_pending_approvals(wr_gate *g, long *out, wr_error *err);

/* Decision only; nothing stored (so a refusal leaves no receipt). */
int wr_gate_check(wr_gate *g, const wr_contract *ct, const char *client_identity, wr_decision **out, wr_error *err);

typedef struct wr_proposal {
    wr_decision *decision;
    bool has_request; /* needs_approval: a request was queued (or found) */
    char request_id[WR_ID_MAX];
    /* Identity refused (WR_E_DENIED): the sealed blocked receipt, since
     * every refusal of a storing call leaves a trace. */
    json_object *refusal_receipt;
} wr_proposal;
/* Stores contract and decision; queues an approval request if needed. */
int wr_gate_propose(wr_gate *g, const wr_contract *ct, const char *client_identity, wr_proposal *out, wr_error *err);
void wr_proposal_clear(wr_proposal *p);

/* A stored contract by contract_id or sha256. */
int wr_gate_load_contract(wr_gate *g, const char *id, wr_contract **out, wr_error *err);

/* Handles are authorized on every use: another agent's receipt or request
 * is WR_E_NOTFOUND, exactly like a missing one. */
/* The signed receipt of execution_id (owned by the caller). */
int wr_gate_get_receipt(wr_gate *g, const char *client_identity, const char *execution_id, json_object **out,
                        wr_error *err);

/* ---- the transparency log (docs/transparency-log.md) --------------------
 * Checkpoints are signed with the server key and kept in the store. */
/* Signs and keeps a checkpoint when the log grew past the newest one
 * (*published says whether it did; may be NULL). */
int wr_gate_publish_checkpoint(wr_gate *g, bool *published, wr_error *err);
/* The tree size of the newest stored checkpoint (0: none yet); signs nothing. */
int wr_gate_checkpoint_size(wr_gate *g, int64_t *size, wr_error *err);

typedef struct wr_gate_checkpoint {
    char *note;         /* the newest checkpoint, a signed note */
    int64_t size;       /* its tree size */
    json_object *proof; /* a proof file's JSON against it; NULL when none was asked */
} wr_gate_checkpoint;
/* The newest checkpoint (published first when the log grew) and, with
 * old_size >= 0, the consistency proof from old_size to it. */
int wr_gate_get_checkpoint(wr_gate *g, int64_t old_size, wr_gate_checkpoint *out, wr_error *err);
/* The newest checkpoint and the inclusion proof of a receipt from
 * wr_gate_get_receipt against it. */
int wr_gate_receipt_inclusion(wr_gate *g, json_object *receipt, wr_gate_checkpoint *out, wr_error *err);
void wr_gate_checkpoint_clear(wr_gate_checkpoint *c);

typedef struct wr_gate_approval {
    char status[16]; /* pending, approved, denied, expired, consumed, revoked */
    char contract_id[WR_ID_MAX];
    char contract_sha256[WR_SHA256_HEX_LEN];
    int required_approvals;
    int approvals_valid; /* distinct approvers with a usable artifact */
    int64_t expires_at_ms;
    json_object *approvals; /* stored artifacts, oldest first (owned) */
} wr_gate_approval;
int wr_gate_get_approval(wr_gate *g, const char *client_identity, const char *request_id, wr_gate_approval *out,
                         wr_error *err);
void wr_gate_approval_clear(wr_gate_approval *a);

/* Verifies a signed approval exactly like a run would (the server's own key
 * refused as an approver's) and stores it for the next run. request_id
 * receives the request it approves. WR_E_IO/NOMEM/INTERNAL are faults of
 * the server; any other code is a refusal (err says why, err.path points
 * into the artifact). */
int wr_gate_submit_approval(wr_gate *g, json_object *artifact, char request_id[WR_ID_MAX], wr_error *err);

/* ---- the approver's side (the web console; docs/approvals.md) ----------
 * JSON views for approvers, and their decisions. Agent-written strings are
 * copied as they are: the console escapes them. */

/* Requests an approver can still act on (pending, or approved and unused),
 * newest first, at most 100: wr_approval_state_json objects. */
int wr_gate_approver_queue(wr_gate *g, json_object **out, wr_error *err);
/* One request in full: that view plus the whole stored contract, the
 * decision made afresh under the active policy (with the gating risk class
 * and the effects needing approval), the stored artifacts (revoked,
 * consumed), the policy's max_lifetime_sec and the server's time. */
int wr_gate_approver_request(wr_gate *g, const char *request_id, json_object **out, wr_error *err);
/* approve: artifact must name approver and be bound to the request's
 * contract; then wr_gate_submit_approval. deny, revoke: approver must be
 * declared in the active policy; the reason recorded names them; revoke
 * takes one approval_id (of this request) or NULL for the whole request.
 * *state_out: the request's view afterwards. */
int wr_gate_approver_approve(wr_gate *g, const char *approver, const char *request_id, json_object *artifact,
                             json_object **state_out, wr_error *err);
int wr_gate_approver_deny(wr_gate *g, const char *approver, const char *request_id, const char *reason,
                          json_object **state_out, wr_error *err);
int wr_gate_approver_revoke(wr_gate *g, const char *approver, const char *request_id, const char *approval_id,
                            const char *reason, json_object **state_out, wr_error *err);
/* The newest receipts (at most WR_GATE_RECENT_RECEIPTS), newest first:
 * {seq, receipt, verified, verify_error?, linked?} (signature checked with
 * the server key; linked: the receipt before it hashes to its prev). */
#define WR_GATE_RECENT_RECEIPTS 20
int wr_gate_recent_receipts(wr_gate *g, json_object **out, wr_error *err);
/* seq of the newest receipt (0: none yet). */
int wr_gate_receipt_head(wr_gate *g, int64_t *seq, wr_error *err);

/* A file and its sha256 (bare hex). */
typedef struct wr_gate_digest {
    const char *path;
    const char *sha256;
} wr_gate_digest;

/* What a capsule run records in its receipt (in-toto style materials and
 * products; docs/capsules.md). Plain values, copied into the receipt. */
typedef struct wr_gate_provenance {
    const char *capsule_name, *capsule_version;
    const char *capsule_sha256;      /* of the .capsule file */
    const char *signer_key_id;       /* NULL: unsigned */
    const wr_gate_digest *materials; /* each file of the capsule, relative path */
    size_t nmaterials;
    const wr_gate_digest *products; /* each output file, relative to the output directory */
    size_t nproducts;
    const char *reproduces; /* execution id of the run this one repeats, or NULL */
    bool reproduced;        /* with reproduces: the products are the original's */
} wr_gate_provenance;

/* Output as it is produced: stream 1 stdout, 2 stderr. */
typedef void (*wr_gate_output_fn)(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len);

typedef struct wr_run_request {
    const wr_contract *contract;
    const char *client_identity;   /* must equal actor.agent_id; NULL: local CLI, unchecked */
    json_object *const *approvals; /* artifacts supplied with the call */
    size_t napprovals;
    int64_t wait_for_approval_ms; /* 0: return pending at once; bounded by policy */
    /* Called about once a second while waiting for approval; may be NULL. */
    void (*on_wait)(void *ud, int64_t waited_ms, const char *request_id);
    /* In-band approval (MCP elicitation) on the requesting agent's own
     * session. An agent never approves itself: this is asked only when the
     * connection's token is marked elicitation:human (elicitation_human is
     * the person the operator says answers there) and the policy allows it
     * (wr_approval_interactive_allowed). Returns 1 for an explicit accept,
     * 0 otherwise. NULL: not available. */
    int (*ask_human)(void *ud, const wr_contract *ct, const wr_decision *d, const char *request_id);
    const char *elicitation_human; /* NULL: elicitation is never an approval */
    wr_gate_output_fn on_output;
    void *ud;
    int cancel_fd; /* readable => cancel; -1: none */
    /* Memory the run needs (MB): 0 uses the policy's sandbox.memory_mb; a
     * lower value narrows the sandbox to it; a higher one is refused with a
     * blocked receipt (a capsule declares its limits, the policy caps them). */
    int64_t memory_mb;
    /* Capsule runs (capsules/): recorded in the receipt whatever the
     * outcome. When the sandbox ran, collect_products gets the files it
     * wrote (absolute paths) before the receipt is sealed, to fill
     * provenance->products and ->reproduced; what it points to must live
     * until wr_gate_run returns. NULL: not a capsule run. */
    wr_gate_provenance *provenance;
    void (*collect_products)(void *ud, const wr_gate_digest *written, size_t n, bool incomplete, wr_gate_provenance *p);
    void *provenance_ud;
} wr_run_request;

/* Captured output of one stream (the first cap bytes, all commands in order). */
typedef struct wr_run_stream {
    unsigned char *captured;
    size_t captured_len;
    bool truncated;
    uint64_t total_bytes; /* everything the commands wrote */
} wr_run_stream;

/* A run's outcome, typed: callers never read it back out of the receipt. */
typedef struct wr_run_outcome {
    json_object *receipt; /* signed, durable; always set when WR_OK */
    const char *status;   /* success, failed, blocked, expired, cancelled (static) */
    char execution_id[WR_ID_MAX];
    bool has_exit_code;
    int exit_code;
    char *error;                /* why it did not succeed; NULL on success */
    wr_decision *decision;      /* may be NULL (e.g. identity refused before evaluation) */
    bool pending;               /* blocked because approval is pending */
    char request_id[WR_ID_MAX]; /* the approval request, when one exists */
    wr_run_stream out, err;     /* captured output (empty when nothing ran) */
} wr_run_outcome;

/* Returns WR_OK whenever a receipt was sealed (whatever its status). */
int wr_gate_run(wr_gate *g, const wr_run_request *req, wr_run_outcome *out, wr_error *err);
void wr_run_outcome_clear(wr_run_outcome *o);

#endif
