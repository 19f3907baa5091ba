/* Policy evaluation: contract -> allow | deny | needs_approval with one CSC
 * reason code.
 *
 * Order (CSC v0.1 reference): risk class; then per command: allowlist, argv
 * rules (deny_argv_prefixes, indirect execution), effect type (the proposed
 * one: EFFECT_TYPE_NOT_ALLOWED; then the one trusted classification gives:
 * EFFECT_RECLASSIFIED unless allowed or sent for approval), timeout, network, secrets, cwd, read paths,
 * write-paths-empty, write paths; then approval mode. The first failing
 * rule is reported. A classified effect listed for manual approval does not
 * stop the walk: every later rule still runs, so a contract that any deny
 * rule rejects is denied and never sent to a human (an approval must never
 * cover an out-of-scope contract). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress/egress.h"
#include "policies/policies_internal.h"

/* timeout 5 nice xargs …: a wrapped program is checked like any argv, up
 * to this depth; deeper nesting is refused rather than left unchecked. */
#define WRAP_DEPTH 8

typedef struct view {
    const wr_grammar *g;
    wr_parsed pa;
    bool indirect;
    wr_indirect ind;
} view;

typedef struct eval {
    const wr_policy *p;
    const wr_command *cmd;
    const char *code; /* first deny, or NULL */
    char reason[768];
    char note[512]; /* reclassifications, appended to the reason */
    wr_decision *d;
    /* How the argv being checked reads: one for the whole evaluation, as
     * no two are in use at once (each is done with before a wrapped
     * program's turn); a few KiB, not allocated per argv. */
    view *view;
} eval;

static bool deny(eval *e, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool deny(eval *e, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(e->reason, sizeof e->reason, "%s: ", e->cmd ? e->cmd->id : "contract");
    vsnprintf(e->reason + n, sizeof e->reason - (size_t)n, fmt, ap);
    va_end(ap);
    e->code = code;
    return false;
}

static bool exe_allowed(const wr_policy *p, const char *argv0)
{
    if (wr_strv_contains(&p->allow_commands, argv0))
        return true;
    if (!strchr(argv0, '/'))
        return false;
    return wr_strv_contains(&p->allow_commands, wr__exe_name(argv0)) && wr__argv0_is_path_resolution(argv0);
}

static bool check_allowlist(eval *e, const wr_strv *argv)
{
    const char *a0 = argv->v[0];
    if (exe_allowed(e->p, a0))
        return true;
    if (strchr(a0, '/') && wr_strv_contains(&e->p->allow_commands, wr__exe_name(a0)))
        return deny(e, "COMMAND_NOT_ALLOWED",
                    "argv[0] '%.200s' is not the '%.100s' found on the sandbox PATH (%s); use the bare name", a0,
                    wr__exe_name(a0), WR_SANDBOX_PATH);
    return deny(e, "COMMAND_NOT_ALLOWED", "'%.200s' is not in allow_commands of policy %s", a0, e->p->name);
}

static void join_argv(const wr_strv *v, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < v->n && n + 1 < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? " " : "", v->v[i]);
}

/* The view argv[0] + argv[from..]: the rest of a tool's own argv after a
 * program it runs (find's next action). buf has room for argv->n entries. */
static wr_strv rest_of(const wr_strv *argv, size_t from, char **buf)
{
    size_t n = 0;
    buf[n++] = argv->v[0];
    for (size_t i = from; i < argv->n; i++)
        buf[n++] = argv->v[i];
    return (wr_strv){buf, n};
}

/* One argv as the policy sees it: parsed by its tool's grammar when there
 * is one (then pa is set), else only the CSC rules and the fallback
 * recognition of programs that run programs (indirect.c) apply. */
static bool look(const eval *e, const wr_strv *argv, view *v)
{
    if (wr__grammar_for(e->p, wr__exe_name(argv->v[0]), &v->g, NULL) != WR_OK)
        return false; /* out of memory building it: the callers fail closed */
    if (v->g) {
        wr_grammar_env env = {e->p, e->cmd};
        wr__grammar_parse(v->g, argv, &env, &v->pa);
        v->indirect = v->pa.indirect;
        v->ind = v->pa.ind;
    } else {
        v->indirect = wr__indirect_exec(argv, &v->ind);
    }
    return true;
}

static bool rule_matches(const wr_strv *rule, const wr_strv *argv, const view *v)
{
    return v->g ? wr__parsed_rule_matches(rule, argv, &v->pa) : wr__argv_rule_matches(rule, argv);
}

/* Deny prefixes and indirect execution of one argv; a program that the
 * policy lets a wrapper run (allow_indirect_exec) is checked in turn,
 * allowlist included, and so is the rest of the wrapper's own argv. */
static bool check_argv_rules(eval *e, const wr_strv *argv, int depth)
{
    const wr_policy *p = e->p;
    view *v = e->view;
    if (!look(e, argv, v))
        return deny(e, "ARGV_PREFIX_DENIED", "out of memory");
    bool ok = true;
    const char *name = wr__exe_name(argv->v[0]);
    for (size_t i = 0; ok && i < p->ndeny_argv_prefixes; i++)
        if (rule_matches(&p->deny_argv_prefixes[i], argv, v)) {
            char pre[256];
            join_argv(&p->deny_argv_prefixes[i], pre, sizeof pre);
            ok = deny(e, "ARGV_PREFIX_DENIED", "argv matches denied prefix [%s]", pre);
        }
    wr_indirect ind = v->ind;
    bool indirect = v->indirect;
    if (!ok || !indirect)
        return ok;
    if (!wr_strv_contains(&p->allow_indirect_exec, name))
        return deny(
            e, "ARGV_PREFIX_DENIED",
            "argv[%zu] '%.120s': %.100s %s; indirect execution is not allowed by policy %s (allow_indirect_exec)",
            ind.elem, argv->v[ind.elem], name, ind.why, p->name);
    if (ind.wrapped < 0 && ind.resume < 0)
        return true;
    if (depth >= WRAP_DEPTH || argv->n > WR_CONTRACT_MAX_ARGV)
        return deny(e, "ARGV_PREFIX_DENIED", "programs wrapped more than %d deep (argv[%zu] '%.120s')", WRAP_DEPTH,
                    ind.elem, argv->v[ind.elem]);
    if (ind.wrapped >= 0) {
        wr_strv inner = {argv->v + ind.wrapped, ind.wrapped_end - (size_t)ind.wrapped};
        if (!check_allowlist(e, &inner) || !check_argv_rules(e, &inner, depth + 1))
            return false;
    }
    if (ind.resume < 0)
        return true;
    char *buf[WR_CONTRACT_MAX_ARGV];
    wr_strv rest = rest_of(argv, (size_t)ind.resume, buf);
    return check_argv_rules(e, &rest, depth + 1);
}

static void raise_to(eval *e, const char **effect, const char *to, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void raise_to(eval *e, const char **effect, const char *to, const char *fmt, ...)
{
    if (wr__effect_severity(to) <= wr__effect_severity(*effect))
        return;
    size_t n = strlen(e->note);
    n += (size_t)snprintf(e->note + n, sizeof e->note - n, "%s%s reclassified from %s to %s (", n ? "; " : "",
                          e->cmd->id, *effect, to);
    va_list ap;
    va_start(ap, fmt);
    if (n < sizeof e->note)
        n += (size_t)vsnprintf(e->note + n, sizeof e->note - n, fmt, ap);
    va_end(ap);
    if (n + 1 < sizeof e->note)
        strcat(e->note, ")");
    *effect = to;
}

/* Raises *effect to what the grammar and the trusted rules give argv (and
 * the programs it wraps); records each raise for the reasons. */
static void classify(eval *e, const wr_strv *argv, const char **effect, int depth)
{
    view *v = e->view;
    if (!look(e, argv, v)) {
        *effect = WR_EFFECT_INDIRECT; /* never allowed: fail closed */
        return;
    }
    if (v->g) {
        size_t at = v->pa.effect_elem;
        raise_to(e, effect, v->pa.effect, "grammar %s: argv[%zu] '%.60s'", wr__grammar_tool(v->g), at, argv->v[at]);
    }
    const wr_classify_rule *rule = NULL;
    const char *c = wr__classify_argv(e->p, argv, v->g ? &v->pa : NULL, &rule);
    if (c) {
        char pre[160] = "";
        if (rule->argv_prefix.n)
            join_argv(&rule->argv_prefix, pre, sizeof pre);
        raise_to(e, effect, c, "rule: %s%s%s", pre, rule->host_pattern ? (pre[0] ? " host " : "host ") : "",
                 rule->host_pattern ? rule->host_pattern : "");
    }
    wr_indirect ind = v->ind;
    bool indirect = v->indirect;
    if (depth >= WRAP_DEPTH || argv->n > WR_CONTRACT_MAX_ARGV || !indirect)
        return;
    if (ind.wrapped >= 0) {
        wr_strv inner = {argv->v + ind.wrapped, ind.wrapped_end - (size_t)ind.wrapped};
        classify(e, &inner, effect, depth + 1);
    }
    if (ind.resume >= 0) {
        char *buf[WR_CONTRACT_MAX_ARGV];
        wr_strv rest = rest_of(argv, (size_t)ind.resume, buf);
        classify(e, &rest, effect, depth + 1);
    }
}

static int add_effect(wr_decision *d, const char *cmd_id, const char *effect)
{
    wr_classified_effect *ne = realloc(d->effects, (d->neffects + 1) * sizeof *ne);
    if (!ne)
        return WR_E_NOMEM;
    d->effects = ne;
    ne[d->neffects] = (wr_classified_effect){strdup(cmd_id), strdup(effect)};
    d->neffects++;
    return ne[d->neffects - 1].command_id && ne[d->neffects - 1].effect_type ? WR_OK : WR_E_NOMEM;
}

/* The rule the egress proxy enforces (egress/), on the host alone: argv
 * rarely says the port, and the proxy checks it at run time. */
static bool host_allowed(const wr_policy *p, const char *host)
{
    char name[WR_EGRESS_NAME_MAX + 1];
    int family;
    unsigned char addr[16];
    wr_egress_allow allow;
    wr_error e = {0};
    if (wr_egress_host_normalize(host, name, &family, addr, &e) != WR_OK ||
        wr_egress_allow_init(&p->allowed_egress_hosts, &allow, &e) != WR_OK)
        return false;
    bool ok = wr_egress_allowed(&allow, name, WR_EGRESS_ANY_PORT);
    wr_egress_allow_free(&allow);
    return ok;
}

/* "user@host:path" as scp, rsync and git take it (a bare "a:b" is too
 * often something else: git's HEAD:file). */
static bool scp_like(const char *arg)
{
    const char *at = strchr(arg, '@'), *colon = strchr(arg, ':');
    return arg[0] != '-' && at && colon && at < colon && !memchr(arg, '/', (size_t)(at - arg));
}

static bool check_host(eval *e, const char *arg, size_t i)
{
    const char *h = arg;
    size_t hl = wr__arg_host(arg, &h);
    if (!hl && !strstr(arg, "://")) {
        /* a bare "localhost:8080/x" has no dot but is still a host to curl */
        const char *at = strchr(arg, '@');
        h = at && at < arg + strcspn(arg, "/") ? at + 1 : arg;
        hl = strcspn(h, ":/?#");
    }
    if (!hl || hl > 253)
        return deny(e, "NETWORK_EXCEEDS_POLICY", "the host in argv[%zu] cannot be checked against allowed_egress_hosts",
                    i);
    char host[256];
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (!host_allowed(e->p, host))
        return deny(e, "NETWORK_EXCEEDS_POLICY", "host '%s' (argv[%zu]) is not in allowed_egress_hosts", host, i);
    return true;
}

/* HTTP clients take every operand as a URL, scheme or not ("curl host/x"),
 * and have options that name a proxy or hide or redirect the target. */
static const struct http_client {
    const char *tool;
    const char *value_short; /* the value is attached or the next element */
    const char *value_long[40];
    const char *host_opts[5];   /* their value is a host or URL to check */
    const char *opaque_opts[8]; /* targets we cannot see: refused */
    const char *opaque_short;   /* the same as short options, also in a cluster */
} http_clients[] = {
    {"curl",
     "dDeEFHoQrTuUwXyYzbcAmPtx",
     {"--data",
      "--data-raw",
      "--data-binary",
      "--data-urlencode",
      "--data-ascii",
      "--header",
      "--output",
      "--user",
      "--user-agent",
      "--referer",
      "--request",
      "--upload-file",
      "--form",
      "--form-string",
      "--cookie",
      "--cookie-jar",
      "--dump-header",
      "--cert",
      "--key",
      "--cacert",
      "--capath",
      "--connect-timeout",
      "--max-time",
      "--retry",
      "--write-out",
      "--interface",
      "--limit-rate",
      "--range",
      "--output-dir",
      "--proxy-user",
      "--max-filesize",
      "--json",
      "--oauth2-bearer",
      "--variable",
      "--expand-url",
      "--proxy",
      "--url",
      "--preproxy",
      NULL},
     {"-x", "--proxy", "--url", "--preproxy", NULL},
     {"--connect-to", "--resolve", "--config", "--doh-url", "--unix-socket", "--abstract-unix-socket", NULL},
     "K"},
    {"wget",
     "OoaPUtTwBDlQ",
     {"--output-document", "--output-file",  "--append-output",  "--directory-prefix",
      "--user-agent",      "--tries",        "--timeout",        "--wait",
      "--header",          "--user",         "--password",       "--post-data",
      "--post-file",       "--body-data",    "--body-file",      "--method",
      "--load-cookies",    "--save-cookies", "--ca-certificate", "--domains",
      "--level",           "--quota",        "--base",           NULL},
     {NULL},
     {"--input-file", "--execute", "--config", "--input-metalink", NULL},
     "ie"},
};

static bool is_opt(const char *arg, const char *const *opts)
{
    for (const char *const *o = opts; *o; o++)
        if (wr__long_opt(arg, *o))
            return true;
    return false;
}

static bool hides_target(eval *e, const char *arg, size_t i)
{
    return deny(e, "NETWORK_EXCEEDS_POLICY",
                "argv[%zu] '%.100s' hides or redirects the target host; allowed_egress_hosts cannot be checked", i,
                arg);
}

static bool check_http_client(eval *e, const wr_strv *argv, const struct http_client *c)
{
    bool operands_only = false;
    for (size_t i = 1; i < argv->n; i++) {
        const char *arg = argv->v[i];
        if (operands_only || arg[0] != '-' || !arg[1]) {
            if (!check_host(e, arg, i))
                return false;
            continue;
        }
        if (!strcmp(arg, "--")) {
            operands_only = true;
            continue;
        }
        if (is_opt(arg, c->opaque_opts))
            return hides_target(e, arg, i);
        const char *eq = strchr(arg, '=');
        if (arg[1] == '-') {
            if (!eq && is_opt(arg, c->value_long) && i + 1 < argv->n)
                i++;
            if (is_opt(arg, c->host_opts) && !check_host(e, eq ? eq + 1 : argv->v[i], i))
                return false;
            continue;
        }
        /* a cluster of short options; the first that takes a value ends it */
        for (const char *l = arg + 1; *l; l++) {
            if (strchr(c->opaque_short, *l))
                return hides_target(e, arg, i);
            if (!strchr(c->value_short, *l))
                continue;
            const char *val = l[1] ? l + 1 : (i + 1 < argv->n ? argv->v[++i] : NULL);
            if (*l == 'x' && val && !check_host(e, val, i))
                return false;
            break;
        }
    }
    return true;
}

/* With network "allowlisted", every URL (or scp-style remote) the argv
 * names must go to an allowed host (CSC: allowed_egress_hosts is used by
 * classification); HTTP clients are read option by option. */
static bool check_egress(eval *e, const wr_strv *argv)
{
    const char *name = wr__exe_name(argv->v[0]);
    for (size_t c = 0; c < sizeof http_clients / sizeof http_clients[0]; c++)
        if (!strcmp(name, http_clients[c].tool))
            return check_http_client(e, argv, &http_clients[c]);
    for (size_t i = 1; i < argv->n; i++)
        if ((strstr(argv->v[i], "://") || scp_like(argv->v[i])) && !check_host(e, argv->v[i], i))
            return false;
    return true;
}

static bool env_allowed(const wr_strv *allowed, const char *name)
{
    for (size_t i = 0; i < allowed->n; i++) {
        const char *a = allowed->v[i];
        size_t n = strlen(a);
        if (n && a[n - 1] == '*' ? !strncmp(name, a, n - 1) : !strcmp(name, a))
            return true;
    }
    return false;
}

static bool within_any(const char *path, const wr_strv *prefixes)
{
    for (size_t i = 0; i < prefixes->n; i++)
        if (wr_path_within(path, prefixes->v[i]))
            return true;
    return false;
}

/* One command, in reference order. Returns false at the first deny. */
static bool check_command(eval *e, size_t *approvals, int *rc)
{
    const wr_command *cmd = e->cmd;
    const wr_policy *p = e->p;
    for (size_t s = 0; s < cmd->nsegments; s++)
        if (!check_allowlist(e, &cmd->segments[s]))
            return false;
    for (size_t s = 0; s < cmd->nsegments; s++)
        if (!check_argv_rules(e, &cmd->segments[s], 0))
            return false;

    const char *effect = cmd->proposed_effect_type;
    for (size_t s = 0; s < cmd->nsegments; s++)
        classify(e, &cmd->segments[s], &effect, 0);
    if (p->classify_writes_as && cmd->write_paths.n &&
        wr__effect_severity(p->classify_writes_as) > wr__effect_severity(effect)) {
        size_t n = strlen(e->note);
        snprintf(e->note + n, sizeof e->note - n, "%s%s reclassified from %s to %s (it declares write paths)",
                 n ? "; " : "", cmd->id, effect, p->classify_writes_as);
        effect = p->classify_writes_as;
    }
    if ((*rc = add_effect(e->d, cmd->id, effect)))
        return false;
    /* CSC registry: allowed_effect_types bounds the proposed type, even one
     * listed for manual approval (only a *classified* effect routes to a
     * human); a classified type is either allowed, or listed for manual
     * approval, or the command is denied as reclassified. */
    const char *proposed = cmd->proposed_effect_type;
    if (!wr_strv_contains(&p->allowed_effect_types, proposed))
        return deny(e, "EFFECT_TYPE_NOT_ALLOWED", "effect type '%s' is not allowed by policy %s", proposed, p->name);
    if (wr_strv_contains(&p->manual_approval_effect_types, effect)) {
        (*approvals)++;
        if (!wr_strv_contains(&e->d->approval_effects, effect) && wr_strv_push(&e->d->approval_effects, effect))
            return (*rc = WR_E_NOMEM), false;
    } else if (!wr_strv_contains(&p->allowed_effect_types, effect)) {
        return deny(e, "EFFECT_RECLASSIFIED",
                    "'%s' (proposed '%s') is neither allowed nor listed for manual approval by policy %s: %s", effect,
                    proposed, p->name, e->note);
    }

    if (cmd->timeout_sec > p->max_timeout_sec)
        return deny(e, "TIMEOUT_EXCEEDS_POLICY", "timeout_sec %lld exceeds max_timeout_sec %lld",
                    (long long)cmd->timeout_sec, (long long)p->max_timeout_sec);
    if (cmd->network > p->network)
        return deny(e, "NETWORK_EXCEEDS_POLICY", "network '%s' exceeds the policy's '%s'",
                    wr_network_mode_name(cmd->network), wr_network_mode_name(p->network));
    if (cmd->network == WR_NET_ALLOWLISTED)
        for (size_t s = 0; s < cmd->nsegments; s++)
            if (!check_egress(e, &cmd->segments[s]))
                return false;
    if (cmd->secret_refs.n && !p->allow_secret_refs)
        return deny(e, "SECRET_REF_NOT_ALLOWED", "secret_refs are not allowed by policy %s", p->name);
    /* env_allow values come from the server's environment: a name the
     * policy does not list could read its credentials. */
    for (size_t i = 0; i < cmd->env_allow.n; i++)
        if (!env_allowed(&p->allowed_env, cmd->env_allow.v[i]))
            return deny(e, "SECRET_REF_NOT_ALLOWED", "env_allow name '%s' is not in allowed_env of policy %s",
                        cmd->env_allow.v[i], p->name);
    if (!within_any(cmd->cwd, &p->allowed_cwd_prefixes))
        return deny(e, "CWD_NOT_ALLOWED", "cwd '%.300s' is not under allowed_cwd_prefixes", cmd->cwd);
    for (size_t i = 0; i < cmd->read_paths.n; i++)
        if (!within_any(cmd->read_paths.v[i], &p->allowed_read_prefixes))
            return deny(e, "READ_SCOPE_DENIED", "read path '%.300s' is not under allowed_read_prefixes",
                        cmd->read_paths.v[i]);
    if (p->require_write_paths_empty && cmd->write_paths.n)
        return deny(e, "WRITE_PATHS_NOT_EMPTY", "policy %s requires empty write_paths", p->name);
    for (size_t i = 0; i < cmd->write_paths.n; i++)
        if (!within_any(cmd->write_paths.v[i], &p->allowed_write_prefixes))
            return deny(e, "WRITE_SCOPE_DENIED", "write path '%.300s' is not under allowed_write_prefixes",
                        cmd->write_paths.v[i]);
    return true;
}

static int finish(eval *e, wr_decision_kind kind, const char *code, const char *reason)
{
    wr_decision *d = e->d;
    d->kind = kind;
    char buf[1400];
    snprintf(buf, sizeof buf, "%s%s%s", reason, e->note[0] && kind != WR_DENY ? "; " : "",
             kind != WR_DENY ? e->note : "");
    d->reason_code = strdup(code);
    d->reason = strdup(buf);
    return d->reason_code && d->reason ? WR_OK : WR_E_NOMEM;
}

/* ---- the risk class that gates approval ----------------------------------- */

static const char *const risk_ranks[] = {"low", "medium", "high", "critical"};
#define NRISK (sizeof risk_ranks / sizeof risk_ranks[0])

static size_t risk_rank(const char *risk_class)
{
    for (size_t i = 0; i < NRISK; i++)
        if (risk_class && !strcmp(risk_ranks[i], risk_class))
            return i;
    return 0;
}

/* What an effect can do bounds how lightly it may be approved, whatever
 * risk_class the agent wrote (issue 11). */
static const struct {
    const char *effect, *min;
} default_effect_risk[] = {
    {"observe", "low"},      {"transform_local", "medium"}, {"fetch_external", "medium"},
    {"mutate_repo", "high"}, {"deploy", "critical"},        {"touch_secrets", "critical"},
};

const char *wr_policy_effect_risk(const wr_policy *p, const char *effect_type)
{
    for (size_t i = 0; i < p->approval.risk_effects.n; i++)
        if (!strcmp(p->approval.risk_effects.v[i], effect_type))
            return risk_ranks[risk_rank(p->approval.risk_minimums.v[i])];
    for (size_t i = 0; i < sizeof default_effect_risk / sizeof default_effect_risk[0]; i++)
        if (!strcmp(default_effect_risk[i].effect, effect_type))
            return default_effect_risk[i].min;
    return NULL;
}

static const char *effective_risk(const wr_policy *p, const wr_contract *ct, const wr_decision *d)
{
    size_t r = risk_rank(ct->risk_class);
    for (size_t i = 0; i < d->neffects; i++) {
        const char *min = wr_policy_effect_risk(p, d->effects[i].effect_type);
        if (min && risk_rank(min) > r)
            r = risk_rank(min);
    }
    return risk_ranks[r];
}

int wr_policy_evaluate(const wr_policy *p, const wr_contract *ct, const wr_ctx *ctx, wr_decision **out, wr_error *err)
{
    *out = NULL;
    wr_decision *d = calloc(1, sizeof *d);
    if (!d)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    view v;
    eval e = {.p = p, .d = d, .view = &v};
    d->contract_id = strdup(ct->contract_id);
    d->policy_profile = strdup(p->name);
    memcpy(d->contract_sha256, ct->sha256, sizeof d->contract_sha256);
    d->expires_at_ms = wr_now_ms(ctx) + p->decision_ttl_sec * 1000;
    int rc = d->contract_id && d->policy_profile ? WR_OK : WR_E_NOMEM;

    size_t approvals = 0;
    if (!rc && !wr_strv_contains(&p->allowed_risk_classes, ct->risk_class))
        deny(&e, "RISK_CLASS_NOT_ALLOWED", "risk class '%s' is not allowed by policy %s", ct->risk_class, p->name);
    for (size_t i = 0; !rc && !e.code && i < ct->ncommands; i++) {
        e.cmd = &ct->commands[i];
        check_command(&e, &approvals, &rc);
    }
    e.cmd = NULL;
    d->risk_class = effective_risk(p, ct, d);
    if (!rc) {
        bool dual = !strcmp(ct->approval_mode, "dual_control_required");
        bool human = dual || !strcmp(ct->approval_mode, "human_required");
        if (e.code) {
            rc = finish(&e, WR_DENY, e.code, e.reason);
        } else if (human || approvals) {
            d->required_approvals = dual ? 2 : 1;
            /* A human approving the contract vouches for all its effects. */
            for (size_t i = 0; human && !rc && i < d->neffects; i++)
                if (!wr_strv_contains(&d->approval_effects, d->effects[i].effect_type) &&
                    wr_strv_push(&d->approval_effects, d->effects[i].effect_type))
                    rc = WR_E_NOMEM;
            char why[512], effects[256];
            join_argv(&d->approval_effects, effects, sizeof effects);
            if (approvals)
                snprintf(why, sizeof why, "approval required: policy %s requires manual approval for %s%s%s", p->name,
                         effects, human ? " and the contract's approval_mode is " : "", human ? ct->approval_mode : "");
            else
                snprintf(why, sizeof why, "approval required: contract approval_mode is %s", ct->approval_mode);
            if (!rc)
                rc = finish(&e, WR_NEEDS_APPROVAL, "APPROVAL_REQUIRED", why);
        } else {
            char why[256];
            snprintf(why, sizeof why, "allowed by policy %s", p->name);
            rc = finish(&e, WR_ALLOW, "ALLOW", why);
        }
    }
    if (rc) {
        wr_decision_free(d);
        return wr_errorf(err, rc, "", "out of memory");
    }
    *out = d;
    return WR_OK;
}

const char *wr_decision_kind_name(wr_decision_kind k)
{
    switch (k) {
    case WR_ALLOW:
        return "allow";
    case WR_DENY:
        return "deny";
    case WR_NEEDS_APPROVAL:
        return "needs_approval";
    }
    return "deny";
}

void wr_decision_write(const wr_decision *d, wr_jtext *t)
{
    char ts[WR_TIME_LEN];
    wr_time_format(d->expires_at_ms, ts);
    wr_jtext_lit(t, "{\"contract_id\":");
    wr_jtext_str(t, d->contract_id);
    wr_jtext_lit(t, ",\"contract_sha256\":");
    wr_jtext_str(t, d->contract_sha256);
    wr_jtext_lit(t, ",\"decision\":");
    wr_jtext_str(t, wr_decision_kind_name(d->kind));
    wr_jtext_lit(t, ",\"policy_profile\":");
    wr_jtext_str(t, d->policy_profile);
    wr_jtext_lit(t, ",\"classified_effects\":[");
    for (size_t i = 0; i < d->neffects; i++) {
        wr_jtext_lit(t, i ? ",{\"command_id\":" : "{\"command_id\":");
        wr_jtext_str(t, d->effects[i].command_id);
        wr_jtext_lit(t, ",\"effect_type\":");
        wr_jtext_str(t, d->effects[i].effect_type);
        wr_jtext_put(t, "}", 1);
    }
    wr_jtext_lit(t, "],\"reasons\":[");
    wr_jtext_str(t, d->reason);
    wr_jtext_lit(t, "],\"reason_codes\":[");
    wr_jtext_str(t, d->reason_code);
    wr_jtext_lit(t, "],\"expires_at\":");
    wr_jtext_str(t, ts);
    wr_jtext_put(t, "}", 1);
}

json_object *wr_decision_to_json(const wr_decision *d)
{
    /* Read back with json-c's own tokener, not wr_json_parse: the text is
     * ours, and a reason cut inside a UTF-8 sequence must come back as the
     * same bytes (json-c passes them through), not as a parse error. */
    wr_jtext t = {0};
    wr_decision_write(d, &t);
    char *text = wr_jtext_take(&t);
    json_object *o = text ? json_tokener_parse(text) : NULL;
    free(text);
    return o;
}

void wr_decision_free(wr_decision *d)
{
    if (!d)
        return;
    free(d->reason_code);
    free(d->reason);
    for (size_t i = 0; i < d->neffects; i++) {
        free(d->effects[i].command_id);
        free(d->effects[i].effect_type);
    }
    free(d->effects);
    free(d->contract_id);
    free(d->policy_profile);
    wr_strv_free(&d->approval_effects);
    free(d);
}
