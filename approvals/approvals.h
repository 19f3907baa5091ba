/* approvals — approval requests and queue, signed CSC v0.1 approval
 * artifacts, verification against the policy's approver trust store,
 * single-use consumption, dual control, expiry and revocation.
 *
 * A signed artifact is the csc.approval.v0.1 object plus
 *   "signature": {"algorithm":"ed25519","key_id":…,"public_key":…,"signature":base64}
 * signed over the canonical JSON of the artifact with only
 * signature.signature removed (the receipt rule); schema
 * schemas/warrant.approval.schema.json. Functions here need a non-NULL err. */
#ifndef WR_APPROVALS_H
#define WR_APPROVALS_H

#include "contracts/contracts.h"
#include "policies/policies.h"
#include "store/store.h"

/* Queues (or finds the pending) request for a needs_approval decision.
 * request_id_out holds WR_ID_MAX bytes. The request's decision_json is the
 * CSC PolicyDecision plus "policy_sha256" of the policy it was made under,
 * which is stored too (wr_store_put_policy); see wr_approval_request_policy.
 * A pending request whose approval was used up or that has expired is
 * closed (consumed/expired) and a new one is opened. */
int wr_approval_request_open(wr_store *st, const wr_contract *ct, const wr_decision *d, const wr_policy *p,
                             const wr_ctx *ctx, char request_id_out[WR_ID_MAX], wr_error *err);

typedef struct wr_approval_params {
    const char *identity; /* approver identity */
    const char *method;   /* cli | api | manual | ticket | elicitation */
    const char *contract_sha256;
    int64_t approved_at_ms;
    int64_t expires_at_ms;
    bool time_window;      /* scope time_window instead of single_execution */
    const char *reason;    /* may be NULL */
    const char *ticket_id; /* may be NULL */
} wr_approval_params;

/* Creates and signs an artifact with the approver's own key. */
int wr_approval_sign(const wr_keypair *key, const wr_approval_params *ap, const wr_ctx *ctx, json_object **artifact_out,
                     wr_error *err);

/* One approval that counts toward a run. */
typedef struct wr_approval_use {
    char *approval_id;
    char *identity;
    char *method;
    char *key_id;
    bool single_use;      /* scope single_execution: must be consumed atomically */
    bool client_attested; /* in-band (elicitation): a client's answer recorded by the server, no human key */
} wr_approval_use;

typedef enum wr_authz_status {
    WR_AUTHZ_GRANTED = 0, /* enough valid approvals: uses[] lists them */
    WR_AUTHZ_PENDING,     /* not enough yet (none, or one of two) */
    WR_AUTHZ_EXPIRED,     /* the only candidates had expired */
    WR_AUTHZ_REFUSED,     /* a supplied artifact was refused: err says why */
} wr_authz_status;

typedef struct wr_authz {
    wr_authz_status status;
    wr_approval_use *uses;
    size_t nuses;
    char reason[512]; /* for PENDING/EXPIRED/REFUSED: precise reason */
} wr_authz;

/* Whether the policy lets an in-band answer (MCP elicitation on a token
 * marked elicitation:human) approve this risk class and these effect types;
 * if not, why (one line) says which is missing. */
bool wr_approval_interactive_allowed(const wr_policy *p, const char *risk_class, const wr_strv *effects, char *why,
                                     size_t len);

/* Checks supplied artifacts (from run's approvals[] / --approval) and those
 * stored for this contract hash: signature by a declared approver allowed
 * for the decision's risk class (the contract's raised by classification)
 * and approval effects, bound to ct->sha256, approved_at <= now <
 * expires_at, lifetime within policy, not revoked, not already consumed
 * (single use), approver neither the requesting agent (actor.agent_id,
 * which the gate has matched to the connection's identity) nor the
 * initiating user, window scope only if policy allows it, and the number
 * of distinct approver identities and keys the decision requires. Valid
 * supplied artifacts are stored. server_key, when given, is refused as an
 * approver key unless the artifact's method is "elicitation" and
 * wr_approval_interactive_allowed holds (the use is then client_attested). */
int wr_approvals_authorize(wr_store *st, const wr_policy *p, const wr_contract *ct, const wr_decision *d,
                           json_object *const *supplied, size_t nsupplied, const wr_keypair *server_key,
                           const wr_ctx *ctx, wr_authz *out, wr_error *err);
void wr_authz_clear(wr_authz *a);

/* Verifies one artifact for submit_approval / approvals CLI without a run:
 * schema, signature, trusted approver, binding to the request's contract.
 * It runs exactly the checks of wr_approvals_authorize against the newest
 * request for the artifact's contract_sha256 (that request must still be
 * pending or approved) and a fresh policy decision, and stores the artifact
 * when it passes (idempotent), so that the next run finds it. */
int wr_approval_check_artifact(wr_store *st, const wr_policy *p, json_object *artifact, const wr_ctx *ctx,
                               wr_error *err);
/* The same, also refusing the server's receipt key (server_pk, may be NULL)
 * as an approver's, and telling which request the artifact was stored for
 * (request_id_out may be NULL). */
int wr_approval_accept(wr_store *st, const wr_policy *p, json_object *artifact, const unsigned char *server_pk,
                       const wr_ctx *ctx, char request_id_out[WR_ID_MAX], wr_error *err);

/* A request with its effective status: the stored one, or for a stored
 * "pending" request what its artifacts and the clock make of it (approved
 * once enough distinct approvers hold a usable artifact, consumed once an
 * artifact approved after the request opened was used, expired past
 * expires_at). */
typedef struct wr_approval_state {
    wr_approval_request request;
    char status[16];
    int approvals_valid;    /* distinct identities with a usable (unused, unrevoked, current) artifact */
    json_object *approvals; /* stored artifacts for the contract hash, oldest first (owned) */
} wr_approval_state;
int wr_approval_state_get(wr_store *st, const char *request_id, const wr_ctx *ctx, wr_approval_state *out,
                          wr_error *err);
void wr_approval_state_clear(wr_approval_state *s);
/* What approvers see of a request (warrant approvals --json, the console):
 * ids, status, approvals in and required, times, and when the stored
 * contract parses (ct non-NULL) its intent, justification, actor, risk,
 * mode and every command's argv, cwd, paths, network, secrets and effect.
 * Agent-written strings are copied as they are: callers escape them. */
json_object *wr_approval_state_json(const wr_approval_state *s, const wr_contract *ct, int64_t now);

/* The policy a request was decided under, from the store (for approvers
 * who do not name one). WR_E_NOTFOUND if it is not stored. */
int wr_approval_request_policy(wr_store *st, const wr_approval_request *r, wr_policy **out, wr_error *err);

/* A human's refusal: the request (pending or approved, not yet used) becomes
 * denied and every artifact stored for its contract is revoked, so that an
 * approval already given (say one of two) stops counting. */
int wr_approval_deny(wr_store *st, const char *request_id, const char *reason, const wr_ctx *ctx, wr_error *err);
/* Revokes a request and every artifact stored for its contract, or, given an
 * approval id ("apv_..."), that one artifact. The id need not be stored
 * here: revoking an artifact that was handed out but never presented makes
 * it refused wherever it turns up later. */
int wr_approval_revoke(wr_store *st, const char *id, const char *reason, const wr_ctx *ctx, wr_error *err);

/* Status of a request for get_approval: pending|approved|denied|expired|consumed|revoked
 * and its stored artifacts (array). */
int wr_approval_status(wr_store *st, const char *request_id, const wr_ctx *ctx, char **status_out,
                       json_object **approvals_out, wr_error *err);

#endif
