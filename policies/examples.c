/* Policy self-tests: `examples: {allow, deny, needs_approval}` lists argv
 * (or {argv, write_paths, network, proposed_effect_type}) and the decision
 * the policy must give each, as execpolicy's examples do for Codex. Each
 * runs as a one-command contract in the policy's first cwd prefix that
 * reads that directory's subtree, low risk (or the first allowed class),
 * approval_mode policy_only. A policy that contradicts its own examples is
 * refused at load: whoever edits it learns at once that a rule or a
 * grammar no longer says what its author meant. */
#include <stdio.h>
#include <string.h>

#include "policies/policies_internal.h"

static const char *const expectations[] = {"allow", "deny", "needs_approval"};

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

/* The contract an example stands for. */
static json_object *example_contract(const wr_policy *p, json_object *ex)
{
    json_object *argv = json_object_is_type(ex, json_type_array) ? ex : get(ex, "argv");
    const char *cwd = p->allowed_cwd_prefixes.n ? p->allowed_cwd_prefixes.v[0] : "/";
    const char *risk = wr_strv_contains(&p->allowed_risk_classes, "low") || !p->allowed_risk_classes.n
                           ? "low"
                           : p->allowed_risk_classes.v[0];
    char glob[WR_CONTRACT_MAX_PATH_BYTES + 8];
    snprintf(glob, sizeof glob, "%s%s**", cwd, strcmp(cwd, "/") ? "/" : "");
    json_object *c = json_object_new_object(), *actor = json_object_new_object(), *cmds = json_object_new_array(),
                *cmd = json_object_new_object(), *exec = json_object_new_object(), *reads = json_object_new_array(),
                *w = get(ex, "write_paths"), *net = get(ex, "network"), *eff = get(ex, "proposed_effect_type");
    json_object_object_add(c, "version", json_object_new_string("csc.v0.1"));
    json_object_object_add(c, "contract_id", json_object_new_string("policy-example"));
    json_object_object_add(c, "intent", json_object_new_string("policy example"));
    static const char *const actor_keys[] = {"agent_id", "session_id", "initiating_user", "delegation_scope"};
    for (size_t i = 0; i < sizeof actor_keys / sizeof actor_keys[0]; i++)
        json_object_object_add(actor, actor_keys[i], json_object_new_string("policy-test"));
    json_object_object_add(c, "actor", actor);
    json_object_object_add(exec, "argv", json_object_get(argv));
    json_object_object_add(cmd, "id", json_object_new_string("cmd_1"));
    json_object_object_add(cmd, "exec", exec);
    json_object_object_add(cmd, "cwd", json_object_new_string(cwd));
    json_object_array_add(reads, json_object_new_string(glob));
    json_object_object_add(cmd, "read_paths", reads);
    json_object_object_add(cmd, "write_paths", w ? json_object_get(w) : json_object_new_array());
    json_object_object_add(cmd, "network", net ? json_object_get(net) : json_object_new_string("deny"));
    json_object_object_add(cmd, "env_allow", json_object_new_array());
    json_object_object_add(cmd, "secret_refs", json_object_new_array());
    json_object_object_add(cmd, "timeout_sec",
                           json_object_new_int64(p->max_timeout_sec < 10 ? p->max_timeout_sec : 10));
    json_object_object_add(cmd, "proposed_effect_type", eff ? json_object_get(eff) : json_object_new_string("observe"));
    json_object_array_add(cmds, cmd);
    json_object_object_add(c, "commands", cmds);
    json_object_object_add(c, "risk_class", json_object_new_string(risk));
    json_object_object_add(c, "approval_mode", json_object_new_string("policy_only"));
    json_object_object_add(c, "justification", json_object_new_string("policy example"));
    return c;
}

static int run_one(const wr_policy *p, const wr_contracts *cs, const char *expected, json_object *ex,
                   json_object *report, size_t *failures, wr_error *err)
{
    json_object *doc = example_contract(p, ex), *r = json_object_new_object();
    json_object *argv = json_object_is_type(ex, json_type_array) ? ex : get(ex, "argv");
    json_object_object_add(r, "expected", json_object_new_string(expected));
    json_object_object_add(r, "argv", json_object_get(argv));
    json_object_array_add(report, r);
    wr_contract *ct = NULL;
    wr_decision *d = NULL;
    wr_ctx ctx = wr_ctx_system();
    wr_error cerr = {0};
    int rc = wr_contract_from_json(cs, doc, &ct, &cerr);
    json_object_put(doc);
    if (rc) {
        /* an example no contract can express is the policy author's error */
        json_object_object_add(r, "got", json_object_new_string("invalid"));
        json_object_object_add(r, "reason_code", json_object_new_string("INVALID_CONTRACT"));
        json_object_object_add(r, "reason", json_object_new_string(cerr.message));
        json_object_object_add(r, "ok", json_object_new_boolean(false));
        (*failures)++;
        return WR_OK;
    }
    if ((rc = wr_policy_evaluate(p, ct, &ctx, &d, err))) {
        wr_contract_free(ct);
        return rc;
    }
    bool ok = !strcmp(wr_decision_kind_name(d->kind), expected);
    json_object_object_add(r, "got", json_object_new_string(wr_decision_kind_name(d->kind)));
    json_object_object_add(r, "reason_code", json_object_new_string(d->reason_code));
    json_object_object_add(r, "reason", json_object_new_string(d->reason));
    json_object_object_add(r, "ok", json_object_new_boolean(ok));
    *failures += !ok;
    wr_decision_free(d);
    wr_contract_free(ct);
    return WR_OK;
}

int wr_policy_test_examples(const wr_policy *p, json_object **report, size_t *failures, wr_error *err)
{
    *report = json_object_new_array();
    *failures = 0;
    json_object *examples = get(p->json, "examples");
    if (!examples)
        return WR_OK;
    wr_contracts *cs = wr_contracts_new(err);
    if (!cs)
        return err ? err->code : WR_E_INTERNAL;
    int rc = WR_OK;
    for (size_t k = 0; !rc && k < sizeof expectations / sizeof expectations[0]; k++) {
        json_object *list = get(examples, expectations[k]);
        for (size_t i = 0; !rc && list && i < json_object_array_length(list); i++)
            rc = run_one(p, cs, expectations[k], json_object_array_get_idx(list, i), *report, failures, err);
    }
    wr_contracts_free(cs);
    return rc;
}
