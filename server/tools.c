/* The MCP tools: one table row per tool drives tools/list, argument
 * validation and dispatch (redis's command table). Policy denials, pending
 * approvals and failed commands are isError results the model can react to;
 * only protocol misuse is a JSON-RPC error (SEP-1303, A/server/tools.mdx). */
#include "server/server_internal.h"

#include "schemas/schemas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef json_object *(*tool_fn)(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err);

typedef struct tool_row {
    const char *name, *title, *description;
    bool read_only, destructive, idempotent, open_world;
    tool_fn fn;
} tool_row;

static json_object *t_check(tool_call *, json_object *, tool_status *, wr_error *);
static json_object *t_propose(tool_call *, json_object *, tool_status *, wr_error *);
static json_object *t_run(tool_call *, json_object *, tool_status *, wr_error *);
static json_object *t_get_receipt(tool_call *, json_object *, tool_status *, wr_error *);
static json_object *t_get_approval(tool_call *, json_object *, tool_status *, wr_error *);
static json_object *t_submit_approval(tool_call *, json_object *, tool_status *, wr_error *);
static json_object *t_describe_policy(tool_call *, json_object *, tool_status *, wr_error *);

/* Schemas: schemas/tools/NAME.input.json and NAME.output.json. */
static const tool_row tools[] = {
    {"check", "Check a command contract",
     "Dry-run the policy on a command contract and return the decision (allow, deny or needs_approval) "
     "with reason codes; nothing is stored or executed. Use it while drafting a contract. The contract "
     "(csc.v0.1) declares argv per command (no shell), cwd, every read and write path, network need, "
     "timeout, risk_class and approval_mode; actor.agent_id must be your client identity "
     "(describe_policy tells you).",
     true, false, true, false, t_check},
    {"propose_contract", "Propose a command contract",
     "Store a command contract and its policy decision. If the decision is needs_approval, an approval "
     "request is queued for a human and its request_id returned (poll it with get_approval). Returns "
     "contract_id and contract_sha256 for run. A deny is an error result naming the reason codes.",
     false, false, true, false, t_propose},
    {"run", "Run a command contract",
     "Execute a stored contract ({contract_id}) or a new one ({contract}) in the sandbox, after a fresh "
     "policy decision and approval check. Output streams as progress notifications when you send a "
     "progressToken; the result holds capped stdout/stderr and the signed receipt. Pending approval, "
     "denial, failure or cancellation is an error result with the receipt. Optional approvals[] are signed "
     "artifacts; wait_for_approval_sec waits (bounded by policy) for a human decision.",
     false, true, false, true, t_run},
    {"get_receipt", "Get an execution receipt",
     "Fetch the signed, hash-chained receipt of an execution by execution_id (from a run result).", true, false, true,
     false, t_get_receipt},
    {"get_approval", "Get an approval request's status",
     "Report the status of an approval request (pending, approved, denied, expired, consumed, revoked) "
     "and the approvals recorded for it. Use after propose_contract returned a request_id.",
     true, false, true, false, t_get_approval},
    {"submit_approval", "Submit a signed approval",
     "Hand in a signed csc.approval.v0.1 artifact a human approver gave you. It is verified (trusted "
     "approver key, bound to the contract hash, not expired or revoked) and stored for the next run; "
     "a refusal names the precise reason.",
     false, false, true, false, t_submit_approval},
    {"describe_policy", "Describe the active policy",
     "Return the active policy and its limits (allowed commands, path prefixes, network, effect types, "
     "risk classes, timeouts, sandbox limits) and your agent_id, so you can propose contracts that pass.",
     true, false, true, false, t_describe_policy},
};
#define NTOOLS (sizeof tools / sizeof tools[0])

int wr_tools_find(const char *name)
{
    for (size_t i = 0; i < NTOOLS; i++)
        if (!strcmp(tools[i].name, name))
            return (int)i;
    return -1;
}

/* Replaces $defs members of the form {"$ref": "FILE.schema.json"} by that
 * embedded schema (its own $defs hoisted to the root, where its local
 * "#/$defs/…" references still resolve). Clients never see a file $ref. */
static int load_tool_schema(const char *file, json_object **out, wr_error *err)
{
    const char *text = wr_schema_text(file);
    if (!text)
        return wr_errorf(err, WR_E_INTERNAL, file, "embedded schema %s is missing", file);
    json_object *doc = wr_json_parse(text, strlen(text), NULL, err);
    if (!doc)
        return err->code;
    json_object *defs = NULL;
    if (json_object_object_get_ex(doc, "$defs", &defs)) {
        json_object *extra = json_object_new_object();
        json_object_object_foreach(defs, k, v)
        {
            json_object *ref = NULL;
            if (json_object_object_length(v) != 1 || !json_object_object_get_ex(v, "$ref", &ref))
                continue;
            const char *target = json_object_get_string(ref);
            if (target[0] == '#')
                continue;
            const char *sub_text = wr_schema_text(target);
            json_object *sub = sub_text ? wr_json_parse(sub_text, strlen(sub_text), NULL, err) : NULL;
            if (!sub) {
                json_object_put(extra);
                json_object_put(doc);
                return wr_errorf(err, WR_E_INTERNAL, file, "%s: cannot embed %s", file, target);
            }
            json_object *sub_defs = NULL;
            if (json_object_object_get_ex(sub, "$defs", &sub_defs)) {
                json_object_object_foreach(sub_defs, sk, sv) json_object_object_add(extra, sk, json_object_get(sv));
                json_object_object_del(sub, "$defs");
            }
            /* A nested $id would change the base URI of its references. */
            json_object_object_del(sub, "$id");
            json_object_object_del(sub, "$schema");
            json_object_object_add(extra, k, sub);
        }
        json_object_object_foreach(extra, ek, ev) json_object_object_add(defs, ek, json_object_get(ev));
        json_object_put(extra);
    }
    json_object_object_del(doc, "$comment");
    *out = doc;
    return WR_OK;
}

/* The arguments check leaves the contract to contracts/, which validates
 * it anyway (with the same JSON pointers): checking it twice would halve
 * the throughput of check. */
static wr_schema *compile_arguments_schema(json_object *in, wr_error *err)
{
    json_object *copy = NULL, *defs = NULL;
    if (json_object_deep_copy(in, &copy, NULL) != 0) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    if (json_object_object_get_ex(copy, "$defs", &defs) && json_object_object_get_ex(defs, "contract", NULL)) {
        json_object *shallow = json_object_new_object();
        json_object_object_add(shallow, "type", json_object_new_string("object"));
        json_object_object_add(defs, "contract", shallow);
    }
    wr_schema *sc = wr_schema_new(copy, err);
    json_object_put(copy);
    return sc;
}

int wr_tools_build(wr_server *s, wr_error *err)
{
    s->tool_schemas = calloc(NTOOLS, sizeof *s->tool_schemas);
    if (!s->tool_schemas)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < NTOOLS; i++) {
        const tool_row *t = &tools[i];
        char file[128];
        json_object *in = NULL, *outs = NULL;
        snprintf(file, sizeof file, "tools/%s.input.json", t->name);
        if (load_tool_schema(file, &in, err) != WR_OK)
            goto fail;
        snprintf(file, sizeof file, "tools/%s.output.json", t->name);
        if (load_tool_schema(file, &outs, err) != WR_OK) {
            json_object_put(in);
            goto fail;
        }
        s->tool_schemas[i] = compile_arguments_schema(in, err);
        if (!s->tool_schemas[i]) {
            json_object_put(in);
            json_object_put(outs);
            goto fail;
        }
        json_object *row = json_object_new_object();
        json_object_object_add(row, "name", json_object_new_string(t->name));
        json_object_object_add(row, "title", json_object_new_string(t->title));
        json_object_object_add(row, "description", json_object_new_string(t->description));
        json_object_object_add(row, "inputSchema", in);
        json_object_object_add(row, "outputSchema", outs);
        json_object *ann = json_object_new_object();
        json_object_object_add(ann, "title", json_object_new_string(t->title));
        json_object_object_add(ann, "readOnlyHint", json_object_new_boolean(t->read_only));
        if (!t->read_only)
            json_object_object_add(ann, "destructiveHint", json_object_new_boolean(t->destructive));
        json_object_object_add(ann, "idempotentHint", json_object_new_boolean(t->idempotent));
        json_object_object_add(ann, "openWorldHint", json_object_new_boolean(t->open_world));
        json_object_object_add(row, "annotations", ann);
        json_object_array_add(list, row);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "tools", list);
    s->tools_list_json = strdup(wr_json_compact(res));
    json_object_put(res);
    return s->tools_list_json ? WR_OK : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
fail:
    json_object_put(list);
    return err->code;
}

void wr_tools_free(wr_server *s)
{
    if (s->tool_schemas)
        for (size_t i = 0; i < NTOOLS; i++)
            wr_schema_free(s->tool_schemas[i]);
    free(s->tool_schemas);
    free(s->tools_list_json);
}

/* ---- results ------------------------------------------------------------ */

json_object *wr_tool_result(json_object *structured, const char *summary, bool is_error)
{
    json_object *r = json_object_new_object();
    json_object *content = json_object_new_array();
    json_object *t = json_object_new_object();
    char *clean = wr_utf8_sanitize((const unsigned char *)summary, strlen(summary));
    json_object_object_add(t, "type", json_object_new_string("text"));
    json_object_object_add(t, "text", json_object_new_string(clean ? clean : ""));
    free(clean);
    json_object_array_add(content, t);
    if (structured) {
        /* Clients that drop structuredContent still get the data (A/server/tools.mdx). */
        json_object *j = json_object_new_object();
        json_object_object_add(j, "type", json_object_new_string("text"));
        json_object_object_add(j, "text", json_object_new_string(wr_json_compact(structured)));
        json_object_array_add(content, j);
        json_object_object_add(r, "structuredContent", structured);
    }
    json_object_object_add(r, "content", content);
    if (is_error)
        json_object_object_add(r, "isError", json_object_new_boolean(true));
    return r;
}

/* An error without the tool's output shape: the details go in the text
 * content only, because clients validate any structuredContent against the
 * outputSchema, error or not (the SDK's callTool does). */
/* details stays owned by the caller. */
static json_object *error_result(json_object *details, const char *summary)
{
    json_object *r = wr_tool_result(json_object_get(details), summary, true);
    json_object_object_del(r, "structuredContent");
    return r;
}

json_object *wr_tool_error(const char *message, const char *pointer)
{
    json_object *st = json_object_new_object();
    json_object_object_add(st, "error", json_object_new_string(message));
    if (pointer && pointer[0])
        json_object_object_add(st, "pointer", json_object_new_string(pointer));
    char text[1200];
    if (pointer && pointer[0])
        snprintf(text, sizeof text, "%s (at %s)", message, pointer);
    else
        snprintf(text, sizeof text, "%s", message);
    json_object *r = error_result(st, text);
    json_object_put(st);
    return r;
}

/* Gate errors: bad input or refusals are for the model (isError); faults
 * of the server itself are JSON-RPC -32603 (result NULL). */
static json_object *gate_failure(const wr_error *e, const char *what, wr_error *rpc_err)
{
    if (e->code == WR_E_IO || e->code == WR_E_NOMEM || e->code == WR_E_INTERNAL) {
        wr_errorf(rpc_err, e->code, "", "%s: %s", what, e->message);
        return NULL;
    }
    char msg[900];
    snprintf(msg, sizeof msg, "%s: %s", what, e->message);
    return wr_tool_error(msg, e->path);
}

bool wr_tools_is_quick(int idx)
{
    return tools[idx].fn == t_check;
}

tool_status wr_tools_call(int idx, tool_call *tc, json_object *args, json_object **result, wr_error *rpc_err)
{
    wr_error err;
    wr_error_clear(&err);
    *result = NULL;
    if (wr_schema_validate(tc->ss->srv->tool_schemas[idx], args, &err) != WR_OK) {
        /* Input validation is a tool error the model can fix (SEP-1303). */
        char msg[900];
        snprintf(msg, sizeof msg, "invalid arguments for %s: %s", tools[idx].name, err.message);
        *result = wr_tool_error(msg, err.path);
        return TOOL_DONE;
    }
    tool_status st = TOOL_DONE;
    *result = tools[idx].fn(tc, args, &st, rpc_err);
    return st;
}

/* ---- helpers -------------------------------------------------------------- */

static wr_gate *gate_of(tool_call *tc)
{
    return tc->ss->srv->gate;
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

/* The actor must be the authenticated client; a mismatch leaves a blocked
 * receipt (every refusal leaves a trace) and is an error result, shaped as
 * a run result for run. */
static bool identity_mismatch(tool_call *tc, const wr_contract *ct, char *reason, size_t len)
{
    const char *who = tc->ss->identity;
    if (ct->actor.agent_id && !strcmp(ct->actor.agent_id, who))
        return false;
    snprintf(reason, len, "identity mismatch: actor.agent_id \"%.200s\" is not the authenticated client \"%.200s\"",
             ct->actor.agent_id ? ct->actor.agent_id : "", who);
    return true;
}

static json_object *identity_refusal(tool_call *tc, wr_contract *ct, bool run_shape, wr_error *rpc_err)
{
    char reason[700];
    if (!identity_mismatch(tc, ct, reason, sizeof reason))
        return NULL;
    json_object *receipt = NULL;
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_refuse(gate_of(tc), ct, reason, &receipt, &err) != WR_OK) {
        wr_errorf(rpc_err, WR_E_INTERNAL, "", "could not seal the refusal receipt: %s", err.message);
        return NULL;
    }
    json_object *st = json_object_new_object();
    json_object_object_add(st, "error", json_object_new_string(reason));
    json_object_object_add(st, "pointer", json_object_new_string("/contract/actor/agent_id"));
    if (!run_shape) {
        json_object_object_add(st, "receipt", receipt);
        json_object *r = error_result(st, reason);
        json_object_put(st);
        return r;
    }
    json_object *eid = NULL;
    if (json_object_object_get_ex(receipt, "execution_id", &eid))
        json_object_object_add(st, "execution_id", json_object_get(eid));
    json_object_object_add(st, "status", json_object_new_string("blocked"));
    json_object_object_add(st, "receipt", receipt);
    json_object_object_add(st, "stdout", json_object_new_string(""));
    json_object_object_add(st, "stderr", json_object_new_string(""));
    json_object_object_add(st, "stdout_truncated", json_object_new_boolean(false));
    json_object_object_add(st, "stderr_truncated", json_object_new_boolean(false));
    return wr_tool_result(st, reason, true);
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
    json_object *bad = parse_contract(tc, args, false, &ct);
    if (bad)
        return bad;
    char reason[700];
    if (identity_mismatch(tc, ct, reason, sizeof reason)) {
        /* check stores nothing, so no receipt: just the answer run would give */
        wr_contract_free(ct);
        return wr_tool_error(reason, "/contract/actor/agent_id");
    }
    wr_decision *d = NULL;
    wr_error err;
    wr_error_clear(&err);
    json_object *res;
    if (wr_gate_check(gate_of(tc), ct, &d, &err) != WR_OK) {
        res = gate_failure(&err, "check failed", rpc_err);
    } else {
        json_object *dj = wr_decision_to_json(d);
        char text[1200];
        snprintf(text, sizeof text, "decision: %s (%s)%s%s", wr_decision_kind_name(d->kind),
                 d->reason_code ? d->reason_code : "", d->reason ? ": " : "", d->reason ? d->reason : "");
        res = wr_tool_result(dj, text, d->kind == WR_DENY);
        wr_decision_free(d);
    }
    wr_contract_free(ct);
    return res;
}

static json_object *t_propose(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    wr_contract *ct = NULL;
    json_object *res = parse_contract(tc, args, false, &ct);
    if (res)
        return res;
    json_object *refused = identity_refusal(tc, ct, false, rpc_err);
    if (refused || rpc_err->message[0]) {
        wr_contract_free(ct);
        return refused;
    }
    wr_proposal p;
    memset(&p, 0, sizeof p);
    wr_error err;
    wr_error_clear(&err);
    if (wr_gate_propose(gate_of(tc), ct, tc->ss->identity, &p, &err) != WR_OK) {
        res = gate_failure(&err, "propose_contract failed", rpc_err);
    } else {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "contract_id", json_object_new_string(ct->contract_id));
        json_object_object_add(o, "contract_sha256", json_object_new_string(ct->sha256));
        json_object_object_add(o, "decision", wr_decision_to_json(p.decision));
        char text[1200];
        int n =
            snprintf(text, sizeof text, "contract %s stored; decision: %s (%s)", ct->contract_id,
                     wr_decision_kind_name(p.decision->kind), p.decision->reason_code ? p.decision->reason_code : "");
        if (p.has_request) {
            json_object *ar = json_object_new_object();
            json_object_object_add(ar, "request_id", json_object_new_string(p.request_id));
            json_object_object_add(ar, "status", json_object_new_string("pending"));
            json_object_object_add(ar, "required_approvals", json_object_new_int(p.decision->required_approvals));
            json_object_object_add(o, "approval_request", ar);
            snprintf(text + n, sizeof text - (size_t)n,
                     "; approval request %s is pending (%d approval(s) needed): poll get_approval, then run",
                     p.request_id, p.decision->required_approvals);
        }
        res = wr_tool_result(o, text, p.decision->kind == WR_DENY);
        wr_proposal_clear(&p);
    }
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
            return gate_failure(&err, "run: cannot load the contract", rpc_err);
        }
    } else if ((res = parse_contract(tc, args, true, &ct))) {
        return res;
    }
    json_object *refused = identity_refusal(tc, ct, true, rpc_err);
    if (refused || rpc_err->message[0]) {
        wr_contract_free(ct);
        return refused;
    }
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

static json_object *t_get_receipt(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    const char *id = str_arg(args, "execution_id");
    char *text = NULL;
    wr_error err;
    wr_error_clear(&err);
    char msg[300];
    snprintf(msg, sizeof msg, "no receipt with execution_id %.128s", id);
    if (wr_store_get_receipt(wr_gate_store(gate_of(tc)), id, &text, &err) != WR_OK)
        return err.code == WR_E_NOTFOUND ? wr_tool_error(msg, "/execution_id")
                                         : gate_failure(&err, "get_receipt failed", rpc_err);
    json_object *r = wr_json_parse(text, strlen(text), NULL, &err);
    free(text);
    if (!r)
        return gate_failure(&err, "get_receipt: stored receipt unreadable", rpc_err);
    /* Handles are authorized on every use: another agent's receipt is "not found". */
    json_object *agent = NULL;
    if (json_object_object_get_ex(r, "agent_id", &agent) && json_object_is_type(agent, json_type_string) &&
        strcmp(json_object_get_string(agent), tc->ss->identity)) {
        json_object_put(r);
        return wr_tool_error(msg, "/execution_id");
    }
    json_object *o = json_object_new_object();
    json_object *status = NULL;
    json_object_object_get_ex(r, "status", &status);
    char summary[300];
    snprintf(summary, sizeof summary, "receipt %.128s: %s", id, status ? json_object_get_string(status) : "?");
    json_object_object_add(o, "receipt", r);
    return wr_tool_result(o, summary, false);
}

static json_object *t_get_approval(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    const char *id = str_arg(args, "request_id");
    wr_approval_state as;
    memset(&as, 0, sizeof as);
    wr_error err;
    wr_error_clear(&err);
    char msg[300];
    snprintf(msg, sizeof msg, "no approval request %.128s", id);
    if (wr_approval_state_get(wr_gate_store(gate_of(tc)), id, wr_gate_ctx(gate_of(tc)), &as, &err) != WR_OK)
        return err.code == WR_E_NOTFOUND ? wr_tool_error(msg, "/request_id")
                                         : gate_failure(&err, "get_approval failed", rpc_err);
    /* Handles are authorized on every use: another agent's request is "not found". */
    if (!as.request.agent_id || strcmp(as.request.agent_id, tc->ss->identity)) {
        wr_approval_state_clear(&as);
        return wr_tool_error(msg, "/request_id");
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "request_id", json_object_new_string(id));
    json_object_object_add(o, "status", json_object_new_string(as.status));
    json_object_object_add(o, "approvals", as.approvals ? json_object_get(as.approvals) : json_object_new_array());
    if (as.request.contract_id)
        json_object_object_add(o, "contract_id", json_object_new_string(as.request.contract_id));
    if (as.request.contract_sha256)
        json_object_object_add(o, "contract_sha256", json_object_new_string(as.request.contract_sha256));
    json_object_object_add(o, "required_approvals", json_object_new_int(as.request.required_approvals));
    char ts[WR_TIME_LEN];
    wr_time_format(as.request.expires_at_ms, ts);
    json_object_object_add(o, "expires_at", json_object_new_string(ts));
    char text[400];
    snprintf(text, sizeof text, "approval request %.128s: %s (%d of %d approval(s) usable)", id, as.status,
             as.approvals_valid, as.request.required_approvals);
    wr_approval_state_clear(&as);
    return wr_tool_result(o, text, false);
}

static json_object *t_submit_approval(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err)
{
    (void)st;
    wr_gate *g = gate_of(tc);
    json_object *art = NULL;
    json_object_object_get_ex(args, "artifact", &art);
    wr_error err;
    wr_error_clear(&err);
    char request_id[WR_ID_MAX] = "";
    const wr_policy *p = wr_gate_policy_acquire(g);
    /* Verified exactly like a run would, the server's own key refused as an
     * approver's, and stored for the next run. */
    int rc = wr_approval_accept(wr_gate_store(g), p, art, wr_gate_server_key(g)->pk, wr_gate_ctx(g), request_id, &err);
    wr_gate_policy_release(g, p);
    if (rc != WR_OK) {
        if (rc == WR_E_IO || rc == WR_E_INTERNAL || rc == WR_E_NOMEM)
            return gate_failure(&err, "submit_approval failed", rpc_err);
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
             p->sha256, tc->ss->identity);
    wr_gate_policy_release(g, p);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "agent_id", json_object_new_string(tc->ss->identity));
    json_object_object_add(o, "policy", d ? d : json_object_new_object());
    return wr_tool_result(o, text, false);
}
