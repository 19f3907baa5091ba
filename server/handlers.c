/* The MCP tools and their table. Each tool reaches the store, the policy
 * and the executor only through gate/ functions that return typed
 * outcomes. Policy denials, pending approvals and failed commands are
 * isError results the model can react to; only protocol misuse and server
 * faults are JSON-RPC errors (SEP-1303, A/server/tools.mdx). */
#include "server/core.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------- */

static wr_gate *gate_of(tool_call *tc)
{
    return tc->ss->srv->gate;
}

static const char *identity_of(tool_call *tc)
{
    return wr_session_identity(tc->ss);
}

static bool server_fault(int code)
{
    return code == WR_E_IO || code == WR_E_NOMEM || code == WR_E_INTERNAL;
}

/* Gate errors: bad input or refusals are for the model (isError, pointer
 * under `under`); faults of the server itself are JSON-RPC -32603 (result NULL). */
static json_object *gate_failure(const wr_error *e, const char *what, const char *under, wr_error *rpc_err)
{
    if (server_fault(e->code)) {
        wr_errorf(rpc_err, e->code, "", "%s: %s", what, e->message);
        return NULL;
    }
    char msg[900], ptr[300];
    snprintf(msg, sizeof msg, "%s: %s", what, e->message);
    snprintf(ptr, sizeof ptr, "%s%s", e->path[0] ? under : "", e->path);
    return wr_tool_error(msg, ptr);
}

/* Parses args.contract. A contract bound for a worker thread owns a
 * private copy of the JSON: json-c reference counts are not atomic. */
static json_object *parse_contract(tool_call *tc, json_object *args, bool for_worker, wr_contract **ct)
{
    json_object *doc = NULL;
    json_object_object_get_ex(args, "contract", &doc);
    json_object *copy = NULL;
    if (!for_worker)
        copy = json_object_get(doc);
    else if (json_object_deep_copy(doc, &copy, NULL) != 0)
        return wr_tool_error("out of memory", "");
    wr_error err;
    wr_error_clear(&err);
    int rc = wr_contract_from_json(wr_gate_contracts(gate_of(tc)), copy, ct, &err);
    json_object_put(copy);
    if (rc != WR_OK) {
        char msg[900], ptr[300];
        snprintf(msg, sizeof msg, "invalid contract: %s", err.message);
        snprintf(ptr, sizeof ptr, "/contract%s", err.path);
        return wr_tool_error(msg, ptr);
    }
    return NULL;
}

static const char *str_arg(json_object *args, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(args, key, &v) ? json_object_get_string(v) : NULL;
}

/* ---- handlers ------------------------------------------------------------- */

static json_object *t_check(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    wr_contract *ct = NULL;
    json_object *res = parse_contract(tc, args, false, &ct);
    if (res)
        return res;
    wr_decision *d = NULL;
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_check(gate_of(tc), ct, identity_of(tc), &d, &err) != WR_OK) {
        res = gate_failure(&err, "check failed", "/contract", rpc_err);
    } else {
        wr_jtext dj = {0};
        wr_decision_write(d, &dj);
        char *decision = wr_jtext_take(&dj);
        char text[1200];
        snprintf(text, sizeof text, "decision: %s (%s)%s%s", wr_decision_kind_name(d->kind),
                 d->reason_code ? d->reason_code : "", d->reason ? ": " : "", d->reason ? d->reason : "");
        res = decision ? wr_tool_result_text(decision, text, d->kind == WR_DENY) : NULL;
        free(decision);
        wr_decision_free(d);
    }
    wr_contract_free(ct);
    return res;
}

static json_object *proposal_result(const wr_contract *ct, const wr_proposal *p)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "contract_id", json_object_new_string(ct->contract_id));
    json_object_object_add(o, "contract_sha256", json_object_new_string(ct->sha256));
    json_object_object_add(o, "decision", wr_decision_to_json(p->decision));
    char text[1200];
    int n =
        snprintf(text, sizeof text, "contract %s stored; decision: %s (%s)", ct->contract_id,
                 wr_decision_kind_name(p->decision->kind), p->decision->reason_code ? p->decision->reason_code : "");
    if (p->has_request) {
        json_object *ar = json_object_new_object();
        json_object_object_add(ar, "request_id", json_object_new_string(p->request_id));
        json_object_object_add(ar, "status", json_object_new_string("pending"));
        json_object_object_add(ar, "required_approvals", json_object_new_int(p->decision->required_approvals));
        json_object_object_add(o, "approval_request", ar);
        snprintf(text + n, sizeof text - (size_t)n,
                 "; approval request %s is pending (%d approval(s) needed): poll get_approval, then run", p->request_id,
                 p->decision->required_approvals);
    }
    return wr_tool_result(o, text, p->decision->kind == WR_DENY);
}

static json_object *t_propose(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    wr_contract *ct = NULL;
    json_object *res = parse_contract(tc, args, false, &ct);
    if (res)
        return res;
    wr_proposal p;
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_propose(gate_of(tc), ct, identity_of(tc), &p, &err) == WR_OK) {
        res = proposal_result(ct, &p);
    } else if (p.refusal_receipt) {
        /* every refusal of a storing call leaves a trace: the receipt */
        json_object *details = json_object_new_object();
        json_object_object_add(details, "error", json_object_new_string(err.message));
        json_object_object_add(details, "pointer", json_object_new_string("/contract/actor/agent_id"));
        json_object_object_add(details, "receipt", json_object_get(p.refusal_receipt));
        res = wr_tool_error_details(details, err.message);
        json_object_put(details);
    } else {
        res = gate_failure(&err, "propose_contract failed", "/contract", rpc_err);
    }
    wr_proposal_clear(&p);
    wr_contract_free(ct);
    return res;
}

static json_object *t_run(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    wr_contract *ct = NULL;
    json_object *res;
    const char *cid = str_arg(args, "contract_id");
    if (cid) {
        wr_error err;
        wr_error_clear(&err);
        if (wr_gate_load_contract(gate_of(tc), cid, &ct, &err) != WR_OK) {
            if (err.code == WR_E_NOTFOUND) {
                char msg[300];
                snprintf(msg, sizeof msg, "no stored contract with contract_id %.128s (use propose_contract first)",
                         cid);
                return wr_tool_error(msg, "/contract_id");
            }
            return gate_failure(&err, "run: cannot load the contract", "", rpc_err);
        }
    } else if ((res = parse_contract(tc, args, true, &ct))) {
        return res;
    }
    /* The identity is the gate's to check: a mismatch is a blocked run. */
    json_object *approvals = NULL, *a = NULL, *w = NULL;
    if (json_object_object_get_ex(args, "approvals", &a) && json_object_deep_copy(a, &approvals, NULL) != 0) {
        wr_contract_free(ct);
        wr_errorf(rpc_err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    int64_t wait_ms =
        json_object_object_get_ex(args, "wait_for_approval_sec", &w) ? json_object_get_int64(w) * 1000 : 0;
    *st = wr_run_start(tc, ct, approvals, wait_ms, &res);
    return res;
}

/* A path an agent names must lie under the policy's prefixes of that kind,
 * lexically and, where it exists, once symlinks are resolved. On success
 * *out is the normalised path (owned by the caller). */
static json_object *allowed_path(tool_call *tc, const char *path, bool write, const char *pointer, char **out)
{
    wr_error err;
    wr_error_clear(&err);
    char *norm = NULL, msg[600];
    if (wr_path_normalize(path, &norm, &err) != WR_OK) {
        snprintf(msg, sizeof msg, "%s: %.500s", pointer + 1, err.message);
        return wr_tool_error(msg, pointer);
    }
    char *real = realpath(norm, NULL);
    const wr_policy *p = wr_gate_policy_acquire(gate_of(tc));
    const wr_strv *prefixes = write ? &p->allowed_write_prefixes : &p->allowed_read_prefixes;
    bool ok = false, real_ok = !real;
    for (size_t i = 0; i < prefixes->n; i++) {
        ok |= wr_path_within(norm, prefixes->v[i]);
        real_ok |= real && wr_path_within(real, prefixes->v[i]);
    }
    snprintf(msg, sizeof msg, "%s %.300s is not under the policy's %s", pointer + 1, norm,
             write ? "allowed_write_prefixes" : "allowed_read_prefixes");
    wr_gate_policy_release(gate_of(tc), p);
    free(real);
    if (ok && real_ok) {
        *out = norm;
        return NULL;
    }
    free(norm);
    return wr_tool_error(msg, pointer);
}

static json_object *t_run_capsule(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    char *path = NULL, *out = NULL;
    json_object *res = allowed_path(tc, str_arg(args, "capsule_path"), false, "/capsule_path", &path);
    if (!res && str_arg(args, "out_dir"))
        res = allowed_path(tc, str_arg(args, "out_dir"), true, "/out_dir", &out);
    json_object *approvals = NULL, *a = NULL, *w = NULL;
    if (!res && json_object_object_get_ex(args, "approvals", &a) && json_object_deep_copy(a, &approvals, NULL) != 0) {
        wr_errorf(rpc_err, WR_E_NOMEM, "", "out of memory");
        free(path);
        free(out);
        return NULL;
    }
    if (res) {
        free(path);
        free(out);
        return res;
    }
    int64_t wait_ms =
        json_object_object_get_ex(args, "wait_for_approval_sec", &w) ? json_object_get_int64(w) * 1000 : 0;
    *st = wr_capsule_start(tc, path, out, approvals, wait_ms, &res);
    return res;
}

/* A handle that is missing or not the caller's: the same answer. */
static json_object *lookup_failure(const wr_error *e, const char *what, const char *pointer, wr_error *rpc_err)
{
    if (e->code == WR_E_NOTFOUND)
        return wr_tool_error(e->message, pointer);
    return gate_failure(e, what, "", rpc_err);
}

static json_object *t_get_receipt(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    const char *id = str_arg(args, "execution_id");
    json_object *r = NULL;
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_get_receipt(gate_of(tc), identity_of(tc), id, &r, &err) != WR_OK)
        return lookup_failure(&err, "get_receipt failed", "/execution_id", rpc_err);
    json_object *status = NULL;
    json_object_object_get_ex(r, "status", &status);
    char summary[300];
    snprintf(summary, sizeof summary, "receipt %.128s: %s", id, status ? json_object_get_string(status) : "?");
    /* With its inclusion proof against the newest checkpoint, so the
     * caller can later show it was in the log the server signed. */
    wr_gate_checkpoint cp;
    if (wr_gate_receipt_inclusion(gate_of(tc), r, &cp, &err) != WR_OK) {
        json_object_put(r);
        return gate_failure(&err, "get_receipt: no inclusion proof", "", rpc_err);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "receipt", r);
    json_object_object_add(o, "checkpoint", json_object_new_string(cp.note));
    json_object_object_add(o, "inclusion_proof", json_object_get(cp.proof));
    wr_gate_checkpoint_clear(&cp);
    return wr_tool_result(o, summary, false);
}

static json_object *t_get_checkpoint(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    json_object *old = NULL;
    int64_t old_size = json_object_object_get_ex(args, "old_size", &old) ? json_object_get_int64(old) : -1;
    wr_gate_checkpoint cp;
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_get_checkpoint(gate_of(tc), old_size, &cp, &err) != WR_OK) {
        if (err.code == WR_E_NOTFOUND || err.code == WR_E_INVALID)
            return wr_tool_error(err.message, "/old_size");
        return gate_failure(&err, "get_checkpoint failed", "", rpc_err);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "checkpoint", json_object_new_string(cp.note));
    json_object_object_add(o, "tree_size", json_object_new_int64(cp.size));
    if (cp.proof)
        json_object_object_add(o, "consistency_proof", json_object_get(cp.proof));
    char summary[200];
    snprintf(summary, sizeof summary, "checkpoint of the receipt log at size %lld%s", (long long)cp.size,
             cp.proof ? ", with the consistency proof from old_size" : "");
    wr_gate_checkpoint_clear(&cp);
    return wr_tool_result(o, summary, false);
}

static json_object *t_get_approval(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    const char *id = str_arg(args, "request_id");
    wr_gate_approval a;
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_get_approval(gate_of(tc), identity_of(tc), id, &a, &err) != WR_OK)
        return lookup_failure(&err, "get_approval failed", "/request_id", rpc_err);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "request_id", json_object_new_string(id));
    json_object_object_add(o, "status", json_object_new_string(a.status));
    json_object_object_add(o, "approvals", json_object_get(a.approvals));
    if (a.contract_id[0])
        json_object_object_add(o, "contract_id", json_object_new_string(a.contract_id));
    if (a.contract_sha256[0])
        json_object_object_add(o, "contract_sha256", json_object_new_string(a.contract_sha256));
    json_object_object_add(o, "required_approvals", json_object_new_int(a.required_approvals));
    char ts[WR_TIME_LEN];
    wr_time_format(a.expires_at_ms, ts);
    json_object_object_add(o, "expires_at", json_object_new_string(ts));
    char text[400];
    snprintf(text, sizeof text, "approval request %.128s: %s (%d of %d approval(s) usable)", id, a.status,
             a.approvals_valid, a.required_approvals);
    wr_gate_approval_clear(&a);
    return wr_tool_result(o, text, false);
}

static json_object *t_submit_approval(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    json_object *art = NULL;
    json_object_object_get_ex(args, "artifact", &art);
    wr_error err;
    wr_error_clear(&err);
    char request_id[WR_ID_MAX];
    int rc = wr_gate_submit_approval(gate_of(tc), art, request_id, &err);
    if (rc != WR_OK) {
        if (server_fault(rc))
            return gate_failure(&err, "submit_approval failed", "", rpc_err);
        char msg[900], ptr[300];
        snprintf(msg, sizeof msg, "approval refused: %s", err.message);
        snprintf(ptr, sizeof ptr, "/artifact%s", err.path[0] == '/' ? err.path : "");
        return wr_tool_error(msg, ptr);
    }
    const char *aid = str_arg(art, "approval_id"), *sha = str_arg(art, "contract_sha256");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "accepted", json_object_new_boolean(true));
    if (aid)
        json_object_object_add(o, "approval_id", json_object_new_string(aid));
    json_object_object_add(o, "request_id", json_object_new_string(request_id));
    if (sha)
        json_object_object_add(o, "contract_sha256", json_object_new_string(sha));
    char text[400];
    snprintf(text, sizeof text, "approval %.100s accepted for request %.100s; run the contract now", aid ? aid : "",
             request_id);
    return wr_tool_result(o, text, false);
}

static json_object *t_describe_policy(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)args;
    (void)st;
    (void)rpc_err;
    wr_gate *g = gate_of(tc);
    const wr_policy *p = wr_gate_policy_acquire(g);
    json_object *d = wr_policy_describe(p);
    char text[400];
    snprintf(text, sizeof text, "policy %.100s (sha256 %.16s…); your agent_id is \"%.100s\"", p->name ? p->name : "",
             p->sha256, identity_of(tc));
    wr_gate_policy_release(g, p);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "agent_id", json_object_new_string(identity_of(tc)));
    json_object_object_add(o, "policy", d ? d : json_object_new_object());
    json_object *iso = wr_gate_isolation(g);
    if (iso)
        json_object_object_add(o, "isolation", iso);
    return wr_tool_result(o, text, false);
}

/* Every tool. Adding one: a handler above, a row here, and its schemas
 * schemas/tools/NAME.input.json and NAME.output.json. Columns: name, title,
 * description, annotations (read_only, destructive, idempotent,
 * open_world), quick (pure: may run on the pool), task_support (MCP
 * tasks: "optional" or NULL), handler. */
const tool_row wr_tool_table[] = {
    {"check", "Check a command contract",
     "Dry-run the policy on a command contract and return the decision (allow, deny or needs_approval) "
     "with reason codes; nothing is stored or executed. Use it while drafting a contract. The contract "
     "(csc.v0.1) declares argv per command (no shell), cwd, every read and write path, network need, "
     "timeout, risk_class and approval_mode; actor.agent_id must be your client identity "
     "(describe_policy tells you).",
     true, false, true, false, true, NULL, t_check},
    {"propose_contract", "Propose a command contract",
     "Store a command contract and its policy decision. If the decision is needs_approval, an approval "
     "request is queued for a human and its request_id returned (poll it with get_approval). Returns "
     "contract_id and contract_sha256 for run. A deny is an error result naming the reason codes.",
     false, false, true, false, false, NULL, t_propose},
    {"run", "Run a command contract",
     "Execute a stored contract ({contract_id}) or a new one ({contract}) in the sandbox, after a fresh "
     "policy decision and approval check. Output streams as progress notifications when you send a "
     "progressToken; the result holds capped stdout/stderr and the signed receipt. Pending approval, "
     "denial, failure or cancellation is an error result with the receipt. Optional approvals[] are signed "
     "artifacts; wait_for_approval_sec waits (bounded by policy) for a human decision.",
     false, true, false, true, false, "optional", t_run},
    {"run_capsule", "Run a capsule",
     "Verify a capsule (a signed code + data bundle, docs/capsules.md) at capsule_path, which must lie under "
     "the policy's read prefixes, and run it in the sandbox like a contract built from its manifest: the "
     "unpacked capsule read-only, out_dir (under the write prefixes; default a fresh private directory) the "
     "only writable path. The signed receipt records the capsule, its files (materials) and the files the "
     "run wrote (products). Same result shape and approval handling as run.",
     false, true, false, true, false, NULL, t_run_capsule},
    {"get_receipt", "Get an execution receipt",
     "Fetch the signed, hash-chained receipt of an execution by execution_id (from a run result), with the "
     "receipt log's newest signed checkpoint and the receipt's Merkle inclusion proof against it.",
     true, false, true, false, false, NULL, t_get_receipt},
    {"get_checkpoint", "Get the receipt log's checkpoint",
     "Return the newest signed checkpoint of the receipt log (a C2SP tlog-checkpoint: origin, tree size, "
     "root hash, Ed25519 signature). Given old_size (the size of a checkpoint you hold), also the consistency "
     "proof that the log only grew since.",
     true, false, false, false, false, NULL, t_get_checkpoint},
    {"get_approval", "Get an approval request's status",
     "Report the status of an approval request (pending, approved, denied, expired, consumed, revoked) "
     "and the approvals recorded for it. Use after propose_contract returned a request_id.",
     true, false, true, false, false, NULL, t_get_approval},
    {"submit_approval", "Submit a signed approval",
     "Hand in a signed csc.approval.v0.1 artifact a human approver gave you. It is verified (trusted "
     "approver key, bound to the contract hash, not expired or revoked) and stored for the next run; "
     "a refusal names the precise reason.",
     false, false, true, false, false, NULL, t_submit_approval},
    {"describe_policy", "Describe the active policy",
     "Return the active policy and its limits (allowed commands, path prefixes, network, effect types, "
     "risk classes, timeouts, sandbox limits) and your agent_id, so you can propose contracts that pass.",
     true, false, true, false, false, NULL, t_describe_policy},
};
const size_t wr_tool_count = sizeof wr_tool_table / sizeof wr_tool_table[0];
