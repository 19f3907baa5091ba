/* Policy loading: YAML or JSON document -> schema check against warrant's
 * superset schema -> typed wr_policy with normalised prefixes, parsed
 * approver keys and the classification rules (policy's own, then the
 * bundled pack). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress/egress.h"
#include "policies/policies_internal.h"
#include "schemas/schemas.h"

#define POLICY_SCHEMA "warrant.policy.schema.json"

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static int64_t get_int(json_object *o, const char *key, int64_t dflt)
{
    json_object *v = get(o, key);
    return v ? json_object_get_int64(v) : dflt;
}

static bool get_bool(json_object *o, const char *key, bool dflt)
{
    json_object *v = get(o, key);
    return v ? json_object_get_boolean(v) : dflt;
}

static int dup_str(json_object *o, const char *key, const char *dflt, char **out, wr_error *err)
{
    json_object *v = get(o, key);
    const char *s = v ? json_object_get_string(v) : dflt;
    *out = NULL;
    if (!s)
        return WR_OK;
    if (v && strlen(s) != (size_t)json_object_get_string_len(v))
        return wr_errorf(err, WR_E_INVALID, key, "/%s: string contains a NUL character", key);
    *out = strdup(s);
    return *out ? WR_OK : wr_errorf(err, WR_E_NOMEM, key, "out of memory");
}

/* A string list member (absent = empty); the error names the pointer. */
static int strv_at(json_object *o, const char *key, const char *ptr, wr_strv *out, wr_error *err)
{
    json_object *v = get(o, key);
    if (!v)
        return WR_OK;
    int rc = wr_strv_from_json(v, out, err);
    if (rc)
        wr_error_prefix(err, "%s/%s", ptr, key);
    return rc;
}

static int prefixes(json_object *doc, const char *key, wr_strv *out, wr_error *err)
{
    wr_strv raw = {0};
    int rc = strv_at(doc, key, "", &raw, err);
    for (size_t i = 0; rc == WR_OK && i < raw.n; i++) {
        char *norm;
        if ((rc = wr_path_normalize(raw.v[i], &norm, err))) {
            wr_error_prefix(err, "/%s/%zu", key, i);
            break;
        }
        rc = wr_strv_push(out, norm);
        free(norm);
        if (rc)
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    wr_strv_free(&raw);
    return rc;
}

static int load_approvers(wr_policy *p, json_object *arr, wr_error *err)
{
    size_t n = arr ? json_object_array_length(arr) : 0;
    if (!n)
        return WR_OK;
    p->approvers = calloc(n, sizeof *p->approvers);
    if (!p->approvers)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *ja = json_object_array_get_idx(arr, i), *may = get(ja, "may_approve");
        wr_approver *a = &p->approvers[p->napprovers++];
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/approvers/%zu", i);
        int rc = dup_str(ja, "identity", NULL, &a->identity, err);
        if (rc)
            return rc;
        for (size_t j = 0; j + 1 < p->napprovers; j++)
            if (!strcmp(p->approvers[j].identity, a->identity))
                return wr_errorf(err, WR_E_INVALID, ptr, "%s: duplicate approver identity '%.100s'", ptr, a->identity);
        if ((rc = wr_pubkey_parse(json_object_get_string(get(ja, "public_key")), a->public_key, err))) {
            wr_error_prefix(err, "%s/public_key", ptr);
            return rc;
        }
        wr_key_id(a->public_key, a->key_id);
        /* Without may_approve an approver may approve what the policy could
         * ever allow or send for approval: nothing beyond the policy. */
        json_object *rcs = may ? get(may, "risk_classes") : NULL, *efs = may ? get(may, "effect_types") : NULL;
        rc = rcs ? wr_strv_from_json(rcs, &a->risk_classes, err)
                 : wr_strv_from_json(get(p->json, "allowed_risk_classes"), &a->risk_classes, err);
        if (rc)
            return rc;
        if (efs) {
            if ((rc = wr_strv_from_json(efs, &a->effect_types, err)))
                return rc;
        } else {
            for (size_t j = 0; j < p->allowed_effect_types.n; j++)
                if (wr_strv_push(&a->effect_types, p->allowed_effect_types.v[j]))
                    return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            for (size_t j = 0; j < p->manual_approval_effect_types.n; j++)
                if (!wr_strv_contains(&a->effect_types, p->manual_approval_effect_types.v[j]) &&
                    wr_strv_push(&a->effect_types, p->manual_approval_effect_types.v[j]))
                    return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        }
    }
    return WR_OK;
}

static int load_classify(wr_policy *p, json_object *arr, wr_error *err)
{
    size_t n = arr ? json_object_array_length(arr) : 0;
    if (n) {
        p->classify = calloc(n, sizeof *p->classify);
        if (!p->classify)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_object *jr = json_object_array_get_idx(arr, i);
        wr_classify_rule *r = &p->classify[p->nclassify++];
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/classify/%zu", i);
        int rc = strv_at(jr, "argv_prefix", ptr, &r->argv_prefix, err);
        if (!rc)
            rc = dup_str(jr, "host_pattern", NULL, &r->host_pattern, err);
        if (!rc)
            rc = dup_str(jr, "effect", NULL, &r->effect, err);
        if (rc)
            return rc;
    }
    return wr__classify_append_bundled(p, err);
}

static int load_deny_prefixes(wr_policy *p, json_object *arr, wr_error *err)
{
    size_t n = arr ? json_object_array_length(arr) : 0;
    if (!n)
        return WR_OK;
    p->deny_argv_prefixes = calloc(n, sizeof *p->deny_argv_prefixes);
    if (!p->deny_argv_prefixes)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = wr_strv_from_json(json_object_array_get_idx(arr, i), &p->deny_argv_prefixes[i], err);
        if (rc) {
            wr_error_prefix(err, "/deny_argv_prefixes/%zu", i);
            return rc;
        }
        p->ndeny_argv_prefixes++;
    }
    return WR_OK;
}

/* allowed_egress_hosts: each entry must be a host, "*.domain" or an IP,
 * with an optional port (egress/ holds the rule the proxy enforces). */
static int check_egress_hosts(const wr_policy *p, wr_error *err)
{
    for (size_t i = 0; i < p->allowed_egress_hosts.n; i++) {
        wr_egress_rule r;
        int rc = wr_egress_rule_parse(p->allowed_egress_hosts.v[i], &r, err);
        if (rc != WR_OK && err) {
            snprintf(err->path, sizeof err->path, "/allowed_egress_hosts/%zu", i);
            wr_error_prefix(err, "allowed_egress_hosts");
        }
        if (rc != WR_OK)
            return rc;
    }
    return WR_OK;
}

static int build(wr_policy *p, wr_error *err)
{
    json_object *doc = p->json, *sb = get(doc, "sandbox"), *ap = get(doc, "approval");
    int rc;
    if ((rc = wr_canonical_sha256(doc, false, p->sha256, err)))
        return rc;
    if ((rc = dup_str(doc, "name", NULL, &p->name, err)))
        return rc;
    if ((rc = dup_str(doc, "policy_schema_version", NULL, &p->schema_version, err)))
        return rc;
    if ((rc = dup_str(doc, "classify_writes_as", NULL, &p->classify_writes_as, err)))
        return rc;

    static const struct {
        const char *key;
        size_t off;
    } lists[] = {
        {"allow_commands", offsetof(wr_policy, allow_commands)},
        {"allowed_effect_types", offsetof(wr_policy, allowed_effect_types)},
        {"manual_approval_for_classified_effect_types", offsetof(wr_policy, manual_approval_effect_types)},
        {"allowed_risk_classes", offsetof(wr_policy, allowed_risk_classes)},
        {"allowed_egress_hosts", offsetof(wr_policy, allowed_egress_hosts)},
        {"allow_indirect_exec", offsetof(wr_policy, allow_indirect_exec)},
        {"allowed_env", offsetof(wr_policy, allowed_env)},
        {"allowed_modules", offsetof(wr_policy, allowed_modules)},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if ((rc = strv_at(doc, lists[i].key, "", (wr_strv *)((char *)p + lists[i].off), err)))
            return rc;
    if ((rc = check_egress_hosts(p, err)))
        return rc;
    if ((rc = prefixes(doc, "allowed_cwd_prefixes", &p->allowed_cwd_prefixes, err)))
        return rc;
    if ((rc = prefixes(doc, "allowed_read_prefixes", &p->allowed_read_prefixes, err)))
        return rc;
    if ((rc = prefixes(doc, "allowed_write_prefixes", &p->allowed_write_prefixes, err)))
        return rc;
    if ((rc = load_deny_prefixes(p, get(doc, "deny_argv_prefixes"), err)))
        return rc;
    if ((rc = wr__grammars_load(p, get(doc, "tools"), err)))
        return rc;

    p->max_timeout_sec = get_int(doc, "max_timeout_sec", 1);
    const char *net = json_object_get_string(get(doc, "network"));
    p->network = !strcmp(net, "full") ? WR_NET_FULL : !strcmp(net, "allowlisted") ? WR_NET_ALLOWLISTED : WR_NET_DENY;
    p->allow_secret_refs = get_bool(doc, "allow_secret_refs", false);
    p->require_write_paths_empty = get_bool(doc, "require_write_paths_empty", false);
    p->decision_ttl_sec = get_int(doc, "decision_ttl_sec", 300);

    /* Sandbox defaults: design.md "Policy extensions". */
    if ((rc = dup_str(sb, "run_as", WR_DEFAULT_RUN_AS, &p->sandbox.run_as, err)))
        return rc;
    p->sandbox.cpu_sec = get_int(sb, "cpu_sec", 60);
    p->sandbox.cpu_percent = get_int(sb, "cpu_percent", 0);
    p->sandbox.min_strength = get_int(sb, "min_strength", 0);
    p->sandbox.memory_mb = get_int(sb, "memory_mb", 1024);
    p->sandbox.max_processes = get_int(sb, "max_processes", 128);
    p->sandbox.max_file_mb = get_int(sb, "max_file_mb", 512);
    p->sandbox.max_open_files = get_int(sb, "max_open_files", 256);
    p->sandbox.tmp_mb = get_int(sb, "tmp_mb", 64);
    p->sandbox.output_cap_bytes = get_int(sb, "output_cap_bytes", 1048576);
    p->sandbox.output_kill_bytes = get_int(sb, "output_kill_bytes", 0);
    json_object *sc = get(sb, "seccomp");
    p->sandbox.seccomp_strict = sc && !strcmp(json_object_get_string(sc), "strict");
    json_object *uid = get(sb, "uid"), *range = get(sb, "dynamic_uid_range");
    p->sandbox.dynamic_uid = uid && !strcmp(json_object_get_string(uid), "dynamic");
    p->sandbox.uid_min = range ? json_object_get_int64(json_object_array_get_idx(range, 0)) : WR_DYNAMIC_UID_MIN;
    p->sandbox.uid_max = range ? json_object_get_int64(json_object_array_get_idx(range, 1)) : WR_DYNAMIC_UID_MAX;
    if (p->sandbox.uid_min > p->sandbox.uid_max)
        return wr_errorf(err, WR_E_INVALID, "sandbox.dynamic_uid_range",
                         "/sandbox/dynamic_uid_range: first uid above the last");

    p->approval.max_lifetime_sec = get_int(ap, "max_lifetime_sec", 3600);
    p->approval.allow_time_window = get_bool(ap, "allow_time_window", false);
    p->approval.request_ttl_sec = get_int(ap, "request_ttl_sec", 3600);
    p->approval.max_wait_sec = get_int(ap, "max_wait_sec", 300);
    if ((rc = strv_at(ap, "interactive_risk_classes", "/approval", &p->approval.interactive_risk_classes, err)))
        return rc;
    if ((rc = strv_at(ap, "interactive_effect_types", "/approval", &p->approval.interactive_effect_types, err)))
        return rc;
    json_object *risks = get(ap, "effect_risk_classes");
    if (risks) {
        json_object_object_foreach(risks, effect, risk)
        {
            if (wr_strv_push(&p->approval.risk_effects, effect) ||
                wr_strv_push(&p->approval.risk_minimums, json_object_get_string(risk)))
                return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        }
    }

    if ((rc = load_classify(p, get(doc, "classify"), err)))
        return rc;
    return load_approvers(p, get(doc, "approvers"), err);
}

int wr_policy_from_json_untested(json_object *doc, wr_policy **out, wr_error *err)
{
    *out = NULL;
    wr_schema *schema = wr_schema_embedded(POLICY_SCHEMA, err);
    if (!schema)
        return err ? err->code : WR_E_INTERNAL;
    int rc = wr_schema_validate(schema, doc, err);
    wr_schema_free(schema);
    if (rc) {
        wr_error_prefix(err, "policy does not match %s", POLICY_SCHEMA);
        return rc;
    }
    wr_policy *p = calloc(1, sizeof *p);
    if (!p)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    p->json = json_object_get(doc);
    if ((rc = build(p, err))) {
        wr_policy_free(p);
        return rc;
    }
    *out = p;
    return WR_OK;
}

/* The policy's examples: the first one it decides otherwise is the error. */
static int check_examples(const wr_policy *p, wr_error *err)
{
    json_object *report = NULL;
    size_t failures = 0;
    int rc = wr_policy_test_examples(p, &report, &failures, err);
    for (size_t i = 0; !rc && failures && i < json_object_array_length(report); i++) {
        json_object *r = json_object_array_get_idx(report, i);
        if (json_object_get_boolean(get(r, "ok")))
            continue;
        rc = wr_errorf(err, WR_E_INVALID, "/examples",
                       "policy %s: %zu example(s) fail (warrant policy test shows all); first: %s %s gives %s %s",
                       p->name, failures, json_object_get_string(get(r, "expected")), wr_json_compact(get(r, "argv")),
                       json_object_get_string(get(r, "got")), json_object_get_string(get(r, "reason_code")));
    }
    json_object_put(report);
    return rc;
}

/* From the document to a policy whose examples passed: run here, or found
 * in cache (NULL: always run). */
static int from_json_checked(json_object *doc, const wr_examples_cache *cache, wr_policy **out, wr_error *err)
{
    int rc = wr_policy_from_json_untested(doc, out, err);
    if (rc || !get(doc, "examples") || wr__examples_cached(cache, (*out)->sha256))
        return rc;
    if ((rc = check_examples(*out, err)) == WR_OK) {
        wr__examples_cache_put(cache, (*out)->sha256);
        return WR_OK;
    }
    wr_policy_free(*out);
    *out = NULL;
    return rc;
}

int wr_policy_from_json(json_object *doc, wr_policy **out, wr_error *err)
{
    return from_json_checked(doc, NULL, out, err);
}

static int load_yaml(const char *buf, size_t len, const wr_examples_cache *cache, wr_policy **out, wr_error *err)
{
    json_object *doc;
    *out = NULL;
    int rc = wr_policy_yaml_to_json(buf, len, &doc, err);
    if (rc)
        return rc;
    rc = from_json_checked(doc, cache, out, err);
    json_object_put(doc);
    return rc;
}

int wr_policy_load_yaml(const char *buf, size_t len, wr_policy **out, wr_error *err)
{
    return load_yaml(buf, len, NULL, out, err);
}

int wr_policy_load_file_cached(const char *path, const wr_examples_cache *cache, wr_policy **out, wr_error *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = wr_read_file(path, WR_POLICY_MAX_BYTES, &buf, &len, err);
    if (rc) {
        wr_error_prefix(err, "failed to read policy file %s", path);
        return rc;
    }
    rc = load_yaml(buf, len, cache, out, err);
    free(buf);
    if (rc)
        wr_error_prefix(err, "%s", path);
    return rc;
}

int wr_policy_load_file(const char *path, wr_policy **out, wr_error *err)
{
    return wr_policy_load_file_cached(path, NULL, out, err);
}

void wr_policy_free(wr_policy *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->schema_version);
    free(p->classify_writes_as);
    json_object_put(p->json);
    wr_strv *lists[] = {&p->allow_commands,
                        &p->allowed_effect_types,
                        &p->manual_approval_effect_types,
                        &p->allowed_risk_classes,
                        &p->allowed_cwd_prefixes,
                        &p->allowed_read_prefixes,
                        &p->allowed_write_prefixes,
                        &p->allowed_egress_hosts,
                        &p->allow_indirect_exec,
                        &p->allowed_env,
                        &p->allowed_modules,
                        &p->without_grammar,
                        &p->approval.interactive_risk_classes,
                        &p->approval.interactive_effect_types,
                        &p->approval.risk_effects,
                        &p->approval.risk_minimums};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        wr_strv_free(lists[i]);
    for (size_t i = 0; i < p->ndeny_argv_prefixes; i++)
        wr_strv_free(&p->deny_argv_prefixes[i]);
    free(p->deny_argv_prefixes);
    wr__grammars_free(p->grammars);
    free(p->sandbox.run_as);
    for (size_t i = 0; i < p->nclassify; i++)
        wr__classify_rule_free(&p->classify[i]);
    free(p->classify);
    for (size_t i = 0; i < p->napprovers; i++) {
        free(p->approvers[i].identity);
        wr_strv_free(&p->approvers[i].risk_classes);
        wr_strv_free(&p->approvers[i].effect_types);
    }
    free(p->approvers);
    free(p);
}

/* ---- bundled packs (the YAML files embedded by embed_packs.py) ---------- */
int wr_policy_load_bundled(const char *name, wr_policy **out, wr_error *err)
{
    const char *text = wr_policy_bundled_text(name);
    *out = NULL;
    if (!text)
        return wr_errorf(err, WR_E_NOTFOUND, "", "no bundled policy named '%.100s'", name);
    /* Without its examples: they ran when this binary was built
     * (pack_check.c), on this very text. */
    json_object *doc;
    int rc = wr_policy_yaml_to_json(text, strlen(text), &doc, err);
    if (!rc) {
        rc = wr_policy_from_json_untested(doc, out, err);
        json_object_put(doc);
    }
    if (rc)
        wr_error_prefix(err, "bundled policy %s", name);
    return rc;
}
