/* describe_policy: everything an agent needs to propose a contract this
 * policy can allow, without the approvers' keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress/egress.h"
#include "policies/policies_internal.h"

static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void add_int(json_object *o, const char *k, int64_t v)
{
    json_object_object_add(o, k, json_object_new_int64(v));
}

static void add_strv(json_object *o, const char *k, const wr_strv *v)
{
    json_object_object_add(o, k, wr_strv_to_json(v));
}

static json_object *contract_template(const wr_policy *p)
{
    json_object *t = json_object_new_object(), *actor = json_object_new_object(), *cmds = json_object_new_array(),
                *cmd = json_object_new_object(), *exec = json_object_new_object(), *argv = json_object_new_array(),
                *reads = json_object_new_array();
    const char *cwd = p->allowed_cwd_prefixes.n ? p->allowed_cwd_prefixes.v[0] : "/workspace";
    add_str(t, "version", "csc.v0.1");
    add_str(t, "contract_id", "<8-128 characters, unique>");
    add_str(t, "intent", "<what and why, one line>");
    add_str(actor, "agent_id", "<your agent id>");
    add_str(actor, "session_id", "<session>");
    add_str(actor, "initiating_user", "<user>");
    add_str(actor, "delegation_scope", "<scope>");
    json_object_object_add(t, "actor", actor);
    json_object_array_add(argv, json_object_new_string(p->allow_commands.n ? p->allow_commands.v[0] : "ls"));
    json_object_object_add(exec, "argv", argv);
    add_str(cmd, "id", "cmd_1");
    json_object_object_add(cmd, "exec", exec);
    add_str(cmd, "cwd", cwd);
    char glob[4200];
    snprintf(glob, sizeof glob, "%s%s**", cwd, strcmp(cwd, "/") ? "/" : "");
    json_object_array_add(reads, json_object_new_string(glob));
    json_object_object_add(cmd, "read_paths", reads);
    json_object_object_add(cmd, "write_paths", json_object_new_array());
    add_str(cmd, "network", "deny");
    json_object_object_add(cmd, "env_allow", json_object_new_array());
    json_object_object_add(cmd, "secret_refs", json_object_new_array());
    add_int(cmd, "timeout_sec", p->max_timeout_sec < 30 ? p->max_timeout_sec : 30);
    add_str(cmd, "proposed_effect_type", "observe");
    json_object_array_add(cmds, cmd);
    json_object_object_add(t, "commands", cmds);
    add_str(t, "risk_class", p->allowed_risk_classes.n ? p->allowed_risk_classes.v[0] : "low");
    add_str(t, "approval_mode", "policy_only");
    add_str(t, "justification", "<why this is needed>");
    return t;
}

/* What each network mode lets a command reach (enforced by the executor,
 * docs/egress.md). */
static const char *const network_modes[][2] = {
    {"deny", "a private network namespace with only its own loopback: no host service, no host abstract socket, "
             "nothing outside"},
    {"allowlisted", "a private network namespace whose only way out is warrant's egress proxy at " WR_EGRESS_PROXY_ADDR
                    " (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY are set; HTTP, CONNECT and SOCKS5): "
                    "connections only to allowed_egress_hosts (exact name, '*.domain', IP, optional :port); names "
                    "resolving to loopback, private, link-local or this host's addresses are refused unless that "
                    "literal IP:port is listed; the receipt's network_egress lists hosts, bytes and refusals"},
    {"full", "a private network namespace with user-mode NAT (slirp4netns): the internet, but not the host's "
             "loopback services or abstract sockets; refused where slirp4netns cannot run"},
};

json_object *wr_policy_describe(const wr_policy *p)
{
    json_object *o = json_object_new_object(), *deny = json_object_new_array(), *sb = json_object_new_object(),
                *ap = json_object_new_object(), *rules = json_object_new_array(), *approvers = json_object_new_array(),
                *notes = json_object_new_array();
    add_str(o, "name", p->name);
    add_str(o, "policy_schema_version", p->schema_version);
    add_str(o, "policy_sha256", p->sha256);
    add_strv(o, "allow_commands", &p->allow_commands);
    for (size_t i = 0; i < p->ndeny_argv_prefixes; i++)
        json_object_array_add(deny, wr_strv_to_json(&p->deny_argv_prefixes[i]));
    json_object_object_add(o, "deny_argv_prefixes", deny);
    add_strv(o, "allow_indirect_exec", &p->allow_indirect_exec);
    add_strv(o, "allowed_modules", &p->allowed_modules);
    /* allowed commands that no grammar describes: only the CSC rules apply */
    add_strv(o, "commands_without_grammar", &p->without_grammar);
    add_strv(o, "allowed_effect_types", &p->allowed_effect_types);
    add_strv(o, "manual_approval_for_classified_effect_types", &p->manual_approval_effect_types);
    add_strv(o, "allowed_risk_classes", &p->allowed_risk_classes);
    add_int(o, "max_timeout_sec", p->max_timeout_sec);
    add_str(o, "network", wr_network_mode_name(p->network));
    json_object *modes = json_object_new_object();
    for (size_t i = 0; i < sizeof network_modes / sizeof *network_modes; i++)
        add_str(modes, network_modes[i][0], network_modes[i][1]);
    json_object_object_add(o, "network_modes", modes);
    json_object_object_add(o, "allow_secret_refs", json_object_new_boolean(p->allow_secret_refs));
    json_object_object_add(o, "require_write_paths_empty", json_object_new_boolean(p->require_write_paths_empty));
    add_strv(o, "allowed_cwd_prefixes", &p->allowed_cwd_prefixes);
    add_strv(o, "allowed_read_prefixes", &p->allowed_read_prefixes);
    add_strv(o, "allowed_write_prefixes", &p->allowed_write_prefixes);
    add_strv(o, "allowed_egress_hosts", &p->allowed_egress_hosts);
    add_strv(o, "allowed_env", &p->allowed_env);
    if (p->classify_writes_as)
        add_str(o, "classify_writes_as", p->classify_writes_as);
    add_int(o, "decision_ttl_sec", p->decision_ttl_sec);

    add_int(sb, "cpu_sec", p->sandbox.cpu_sec);
    add_int(sb, "cpu_percent", p->sandbox.cpu_percent);
    add_int(sb, "min_strength", p->sandbox.min_strength);
    add_int(sb, "memory_mb", p->sandbox.memory_mb);
    add_int(sb, "max_processes", p->sandbox.max_processes);
    add_int(sb, "max_file_mb", p->sandbox.max_file_mb);
    add_int(sb, "max_open_files", p->sandbox.max_open_files);
    add_int(sb, "tmp_mb", p->sandbox.tmp_mb);
    add_int(sb, "output_cap_bytes", p->sandbox.output_cap_bytes);
    add_int(sb, "output_kill_bytes", p->sandbox.output_kill_bytes);
    add_str(sb, "seccomp", p->sandbox.seccomp_strict ? "strict" : "default");
    add_str(sb, "uid", p->sandbox.dynamic_uid ? "dynamic" : "run_as");
    json_object_object_add(o, "sandbox", sb);

    add_int(ap, "max_lifetime_sec", p->approval.max_lifetime_sec);
    json_object_object_add(ap, "allow_time_window", json_object_new_boolean(p->approval.allow_time_window));
    add_strv(ap, "interactive_risk_classes", &p->approval.interactive_risk_classes);
    add_strv(ap, "interactive_effect_types", &p->approval.interactive_effect_types);
    add_int(ap, "request_ttl_sec", p->approval.request_ttl_sec);
    add_int(ap, "max_wait_sec", p->approval.max_wait_sec);
    json_object_object_add(o, "approval", ap);
    for (size_t i = 0; i < p->napprovers; i++) {
        json_object *a = json_object_new_object();
        add_str(a, "identity", p->approvers[i].identity);
        add_str(a, "key_id", p->approvers[i].key_id);
        add_strv(a, "risk_classes", &p->approvers[i].risk_classes);
        add_strv(a, "effect_types", &p->approvers[i].effect_types);
        json_object_array_add(approvers, a);
    }
    json_object_object_add(o, "approvers", approvers);

    for (size_t i = 0; i < p->nclassify; i++) {
        const wr_classify_rule *r = &p->classify[i];
        json_object *jr = json_object_new_object();
        if (r->argv_prefix.n)
            add_strv(jr, "argv_prefix", &r->argv_prefix);
        if (r->host_pattern)
            add_str(jr, "host_pattern", r->host_pattern);
        add_str(jr, "effect", r->effect);
        json_object_array_add(rules, jr);
    }
    json_object_object_add(o, "classification_rules", rules);

    static const char *const rules_text[] = {
        "argv only: no shell strings. Each allowed command is parsed by its argument grammar the way the tool "
        "parses it; an option or subcommand the grammar does not know is indirect execution. Shells, inline code "
        "(python3 -c, node -e, ...), scripts outside the command's read paths, python3 -m modules not in "
        "allowed_modules and tools that run other programs (find -exec, git -c core.*, tar --to-command, ...) are "
        "denied unless the tool is in allow_indirect_exec.",
        "argv[0] is a bare name from allow_commands; a path is accepted only if it is the file that name resolves "
        "to on the sandbox PATH " WR_SANDBOX_PATH ".",
        "Paths are absolute POSIX paths, normalised ('.', '..', '//') and compared component-wise with the allowed "
        "prefixes; a read or write path may end in '/**' for a whole subtree.",
        "Effects are classified by trusted rules (classification_rules, first match wins) and can only be raised "
        "above proposed_effect_type; the classified effect must be in allowed_effect_types or in "
        "manual_approval_for_classified_effect_types (then a human approves).",
        "approval_mode human_required or dual_control_required always needs one or two approvals.",
        "Every command declares its own cwd, read_paths, write_paths, network, env_allow, secret_refs and "
        "timeout_sec; nothing undeclared is visible or writable in the sandbox.",
    };
    for (size_t i = 0; i < sizeof rules_text / sizeof rules_text[0]; i++)
        json_object_array_add(notes, json_object_new_string(rules_text[i]));
    json_object_object_add(o, "rules", notes);
    json_object_object_add(o, "contract_template", contract_template(p));
    return o;
}

json_object *wr_policy_explain_argv(const wr_policy *p, const wr_strv *argv)
{
    json_object *o = json_object_new_object();
    const char *cwd = p->allowed_cwd_prefixes.n ? p->allowed_cwd_prefixes.v[0] : "/";
    char glob[WR_CONTRACT_MAX_PATH_BYTES + 8];
    snprintf(glob, sizeof glob, "%s%s**", cwd, strcmp(cwd, "/") ? "/" : "");
    char *reads_v[] = {glob};
    wr_command cmd = {.id = "cmd_1", .cwd = (char *)cwd, .read_paths = {reads_v, 1}};
    const wr_grammar *g = NULL;
    wr_error err = {0};
    add_str(o, "tool", argv->n ? wr__exe_name(argv->v[0]) : "");
    if (argv->n && wr__grammar_for(p, wr__exe_name(argv->v[0]), &g, &err) != WR_OK)
        add_str(o, "error", err.message);
    json_object_object_add(o, "grammar", json_object_new_boolean(g != NULL));
    if (!g)
        return o;
    wr_parsed *pa = malloc(sizeof *pa);
    if (!pa)
        return o;
    wr_grammar_env env = {p, &cmd};
    wr__grammar_parse(g, argv, &env, pa);
    add_str(o, "effect", pa->indirect ? WR_EFFECT_INDIRECT : pa->effect);
    add_str(o, "why", pa->indirect ? pa->ind.why : pa->effect_why);
    add_int(o, "elem", (int64_t)(pa->indirect ? pa->ind.elem : pa->effect_elem));
    json_object *subs = json_object_new_array(), *opts = json_object_new_array(), *ops = json_object_new_array();
    for (size_t i = 0; i < pa->nsubs; i++)
        json_object_array_add(subs, json_object_new_string(argv->v[pa->subs[i]]));
    for (size_t i = 0; i < pa->nopts; i++) {
        char sh[3] = {'-', pa->opts[i].short_name, 0};
        json_object_array_add(opts, json_object_new_string(pa->opts[i].long_name ? pa->opts[i].long_name : sh));
    }
    for (size_t i = 0; i < pa->noperands; i++)
        json_object_array_add(ops, json_object_new_string(argv->v[pa->operands[i]]));
    json_object_object_add(o, "subcommands", subs);
    json_object_object_add(o, "options", opts);
    json_object_object_add(o, "operands", ops);
    free(pa);
    return o;
}

json_object *wr_policy_grammar_json(const wr_policy *p, const char *tool)
{
    json_object *tools = NULL, *own = NULL;
    if (json_object_object_get_ex(p->json, "tools", &tools) && json_object_object_get_ex(tools, tool, &own))
        return json_object_get(own);
    return wr__grammar_bundled_doc(tool);
}
