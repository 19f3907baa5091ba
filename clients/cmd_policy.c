/* warrant policy test | explain | grammar — a policy's self-tests, how it
 * reads one argv, and the grammar it uses for a tool. `test` loads the policy without running its examples (a
 * failing one would stop the load), then runs them all: a JSON report on
 * stdout, one line per failing example on stderr, exit 1 if any fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/cli.h"
#include "policies/policies.h"

/* A policy file, or the name of a bundled pack when no such file exists. */
static int load_untested(const char *arg, wr_policy **p)
{
    wr_error err = {0};
    char *buf = NULL;
    size_t len = 0;
    const char *text = access(arg, F_OK) != 0 ? wr_policy_bundled_text(arg) : NULL;
    if (!text && wr_read_file(arg, WR_POLICY_MAX_BYTES, &buf, &len, &err))
        return cli_fail_err(CLI_USAGE, arg, &err);
    json_object *doc = NULL;
    int rc = wr_policy_yaml_to_json(text ? text : buf, text ? strlen(text) : len, &doc, &err);
    free(buf);
    if (rc)
        return cli_fail_err(CLI_USAGE, arg, &err);
    rc = wr_policy_from_json_untested(doc, p, &err);
    json_object_put(doc);
    return rc ? cli_fail_err(CLI_REJECTED, arg, &err) : CLI_OK;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int policy_test(const char *arg)
{
    wr_policy *p = NULL;
    int code = load_untested(arg, &p);
    if (code)
        return code;
    json_object *report = NULL;
    size_t failures = 0;
    wr_error err = {0};
    if (wr_policy_test_examples(p, &report, &failures, &err)) {
        wr_policy_free(p);
        return cli_fail_err(CLI_USAGE, arg, &err);
    }
    size_t n = json_object_array_length(report);
    json_object *out = json_object_new_object(), *failed = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(report, i), *ok = NULL;
        json_object_object_get_ex(r, "ok", &ok);
        if (json_object_get_boolean(ok))
            continue;
        json_object *argv = NULL;
        json_object_object_get_ex(r, "argv", &argv);
        fprintf(stderr, "warrant: policy %s: example %s: expected %s, got %s %s: %s\n", p->name, wr_json_compact(argv),
                str(r, "expected"), str(r, "got"), str(r, "reason_code"), str(r, "reason"));
        json_object_array_add(failed, json_object_get(r));
    }
    json_object_object_add(out, "policy", json_object_new_string(p->name));
    json_object_object_add(out, "examples", json_object_new_int64((int64_t)n));
    json_object_object_add(out, "passed", json_object_new_int64((int64_t)(n - failures)));
    json_object_object_add(out, "failed", failed);
    json_object_object_add(out, "commands_without_grammar", wr_strv_to_json(&p->without_grammar));
    cli_print_json(out);
    if (p->without_grammar.n)
        fprintf(stderr, "warrant: policy %s: %zu allowed command(s) have no argument grammar (CSC rules only)\n",
                p->name, p->without_grammar.n);
    json_object_put(out);
    json_object_put(report);
    wr_policy_free(p);
    return failures ? CLI_REJECTED : CLI_OK;
}

static int policy_explain(int argc, char **argv)
{
    const char *policy = "default";
    int i = 2;
    if (i + 1 < argc && !strcmp(argv[i], "--policy")) {
        policy = argv[i + 1];
        i += 2;
    }
    if (i < argc && !strcmp(argv[i], "--"))
        i++;
    if (i >= argc)
        return cli_fail("usage: warrant policy explain [--policy POLICY] [--] ARGV...");
    wr_policy *p = NULL;
    int code = load_untested(policy, &p);
    if (code)
        return code;
    wr_strv v = {argv + i, (size_t)(argc - i)};
    json_object *o = wr_policy_explain_argv(p, &v);
    cli_print_json(o);
    json_object_put(o);
    wr_policy_free(p);
    return CLI_OK;
}

static int policy_grammar(int argc, char **argv)
{
    const char *policy = argc == 5 && !strcmp(argv[3], "--policy") ? argv[4] : "default";
    if (argc != 3 && argc != 5)
        return cli_fail("usage: warrant policy grammar TOOL [--policy POLICY]");
    wr_policy *p = NULL;
    int code = load_untested(policy, &p);
    if (code)
        return code;
    json_object *g = wr_policy_grammar_json(p, argv[2]);
    wr_policy_free(p);
    if (!g)
        return cli_fail("policy grammar: no grammar for '%s'", argv[2]);
    cli_print_json(g);
    json_object_put(g);
    return CLI_OK;
}

int cmd_policy(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "test"))
        return policy_test(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "explain"))
        return policy_explain(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "grammar"))
        return policy_grammar(argc, argv);
    return cli_fail(
        "usage: warrant policy test POLICY | explain [--policy POLICY] [--] ARGV... | grammar TOOL [--policy POLICY]");
}
