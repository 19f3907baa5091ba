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

#include "approvals/approvals.h"
#include "contracts/contracts.h"
#include "executor/executor.h"
#include "policies/policies.h"
#include "receipts/receipts.h"
#include "store/store.h"

typedef struct wr_gate wr_gate;

typedef struct wr_gate_config {
    const char *state_dir;   /* required */
    const char *policy_path; /* NULL: the bundled default policy */
    const wr_ctx *ctx;       /* copied */
    char *const *host_env;   /* values for env_allow names; NULL: none */
    /* Besides the state dir, paths no contract may expose whatever the
     * policy allows (token file, TLS key, config); NULL-terminated or NULL. */
    const char *const *protected_paths;
} wr_gate_config;

/* The state dir when none is given: $WARRANT_STATE_DIR, else
 * $XDG_STATE_HOME/warrant, else $HOME/.local/state/warrant. warrantd and
 * warrant share it, so approvers and auditors find the server's queue and
 * receipts without flags. WR_E_NOTFOUND when none of them is set. */
int wr_gate_default_state_dir(char *buf, size_t len);

int wr_gate_open(const wr_gate_config *cfg, wr_gate **out, wr_error *err);
void wr_gate_close(wr_gate *g);

/* Loads a new policy and swaps it in atomically; on any error the active
 * policy stays and err says why. Runs in progress keep the policy they began with. */
int wr_gate_reload_policy(wr_gate *g, const char *path, wr_error *err);
/* The active policy, held until wr_gate_policy_release. */
const wr_policy *wr_gate_policy_acquire(wr_gate *g);
void wr_gate_policy_release(wr_gate *g, const wr_policy *p);

wr_store *wr_gate_store(wr_gate *g);
const wr_contracts *wr_gate_contracts(wr_gate *g);
const wr_keypair *wr_gate_server_key(wr_gate *g);
const wr_ctx *wr_gate_ctx(wr_gate *g);

/* Decision only; nothing stored. */
int wr_gate_check(wr_gate *g, const wr_contract *ct, wr_decision **out, wr_error *err);

typedef struct wr_proposal {
    wr_decision *decision;
    bool has_request; /* needs_approval: a request was queued (or found) */
    char request_id[WR_ID_MAX];
} wr_proposal;
/* Stores contract and decision; queues an approval request if needed.
 * The actor must equal client_identity (NULL: no identity check). */
int wr_gate_propose(wr_gate *g, const wr_contract *ct, const char *client_identity, wr_proposal *out, wr_error *err);
void wr_proposal_clear(wr_proposal *p);

/* A stored contract by contract_id or sha256. */
int wr_gate_load_contract(wr_gate *g, const char *id, wr_contract **out, wr_error *err);

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
    wr_output_fn on_output;
    void *ud;
    int cancel_fd; /* readable => cancel; -1: none */
} wr_run_request;

typedef struct wr_run_outcome {
    json_object *receipt;       /* signed, durable; always set when WR_OK */
    const char *status;         /* receipt status (points into receipt) */
    wr_decision *decision;      /* may be NULL (e.g. identity refused before evaluation) */
    bool pending;               /* blocked because approval is pending */
    char request_id[WR_ID_MAX]; /* the approval request, when one exists */
    wr_exec_stream out, err;    /* captured output (empty when nothing ran) */
} wr_run_outcome;

/* Returns WR_OK whenever a receipt was sealed (whatever its status). */
int wr_gate_run(wr_gate *g, const wr_run_request *req, wr_run_outcome *out, wr_error *err);
void wr_run_outcome_clear(wr_run_outcome *o);

/* Seals a blocked receipt for a contract refused before evaluation (bad
 * identity, unparseable approvals...), so that every refusal leaves a trace. */
int wr_gate_refuse(wr_gate *g, const wr_contract *ct, const char *error, json_object **receipt_out, wr_error *err);

#endif
