/* warrant validate | hash | check — offline checks of protocol objects.
 * Exit: 0 valid/allowed, 1 invalid/denied/needs approval, 2 usage or input
 * that is not a readable JSON (or YAML policy) document at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cli.h"
#include "contracts/contracts.h"
#include "policies/policies.h"
#include "schemas/schemas.h"

/* Protocol objects other than contracts may be larger (receipts carry
 * output hashes, not output), but never unboundedly. */
#define DOC_MAX_BYTES (4u * 1024u * 1024u)
#define DOC_MAX_DEPTH 64

/* One line naming the file, then the failing JSON pointer, then the error,
 * without repeating what the message already says (lib's file errors name
 * the file themselves). */
static int fail_file(int code, const char *file, const wr_error *err)
{
    const char *m = err->message;
    bool say_file = strncmp(m, file, strlen(file)) != 0;
    bool say_ptr = err->path[0] && strcmp(err->path, file) != 0 && !strstr(m, err->path);
    fprintf(stderr, "warrant: %s%s%s%s%s\n", say_file ? file : "", say_file ? ": " : "", say_ptr ? err->path : "",
            say_ptr ? ": " : "", m);
    return code;
}

/* Reads and parses a JSON file; a file that is not one JSON document is
 * bad input (exit 2), distinct from a document that fails its schema. */
static json_object *read_doc(const char *path, size_t max_bytes, int max_depth, int *exit_code)
{
    wr_error err = {0};
    wr_json_limits lim = {max_bytes, max_depth};
    json_object *obj = wr_json_read_file(path, &lim, &err);
    if (!obj)
        *exit_code = fail_file(CLI_USAGE, path, &err);
    return obj;
}

static const char *schema_for(const char *kind)
{
    static const struct {
        const char *kind, *preferred, *fallback;
    } map[] = {
        {"decision", "csc.policy-decision.v0.1.schema.json", NULL},
        {"receipt", "warrant.receipt.schema.json", "csc.execution-receipt.v0.1.schema.json"},
        {"approval", "warrant.approval.schema.json", "csc.approval.v0.1.schema.json"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(kind, map[i].kind))
            continue;
        return wr_schema_text(map[i].preferred) ? map[i].preferred : map[i].fallback;
    }
    return NULL;
}

static int load_contract(const char *path, wr_contract **ct)
{
    wr_error err = {0};
    int code = CLI_OK;
    json_object *obj = read_doc(path, WR_CONTRACT_MAX_BYTES, WR_CONTRACT_MAX_DEPTH, &code);
    if (!obj)
        return code;
    wr_contracts *cs = wr_contracts_new(&err);
    if (!cs) {
        json_object_put(obj);
        return cli_fail_err(CLI_USAGE, "contract schema", &err);
    }
    int rc = wr_contract_from_json(cs, obj, ct, &err);
    wr_contracts_free(cs);
    json_object_put(obj);
    return rc ? fail_file(CLI_REJECTED, path, &err) : CLI_OK;
}

/* A policy file that cannot be read or is not one YAML mapping is bad
 * input (2); one that parses but breaks the schema is invalid (1). */
static int load_policy(const char *path, wr_policy **p)
{
    wr_error err = {0};
    char *buf = NULL;
    size_t len;
    json_object *doc = NULL;
    if (wr_read_file(path, WR_POLICY_MAX_BYTES, &buf, &len, &err)) {
        wr_error_prefix(&err, "failed to read policy file");
        return fail_file(CLI_USAGE, path, &err);
    }
    int rc = wr_policy_yaml_to_json(buf, len, &doc, &err);
    free(buf);
    if (rc)
        return fail_file(CLI_USAGE, path, &err);
    rc = wr_policy_from_json(doc, p, &err);
    json_object_put(doc);
    return rc ? fail_file(CLI_REJECTED, path, &err) : CLI_OK;
}

int cmd_validate(int argc, char **argv)
{
    if (argc != 3)
        return cli_fail("usage: warrant validate contract|policy|decision|receipt|approval FILE");
    const char *kind = argv[1], *path = argv[2];
    int code = CLI_OK;
    if (!strcmp(kind, "contract")) {
        wr_contract *ct = NULL;
        if ((code = load_contract(path, &ct)) == CLI_OK)
            printf("%s: valid contract (contract_sha256 %s)\n", path, ct->sha256);
        wr_contract_free(ct);
        return code;
    }
    if (!strcmp(kind, "policy")) {
        wr_policy *p = NULL;
        if ((code = load_policy(path, &p)) == CLI_OK)
            printf("%s: valid policy %s (policy_sha256 %s)\n", path, p->name, p->sha256);
        wr_policy_free(p);
        return code;
    }
    const char *schema_name = schema_for(kind);
    if (!schema_name)
        return cli_fail("validate: unknown kind '%s' (contract|policy|decision|receipt|approval)", kind);
    json_object *obj = read_doc(path, DOC_MAX_BYTES, DOC_MAX_DEPTH, &code);
    if (!obj)
        return code;
    wr_error err = {0};
    wr_schema *s = wr_schema_embedded(schema_name, &err);
    if (!s)
        code = cli_fail_err(CLI_USAGE, schema_name, &err);
    else if (wr_schema_validate(s, obj, &err))
        code = fail_file(CLI_REJECTED, path, &err);
    else
        printf("%s: valid %s (%s)\n", path, kind, schema_name);
    wr_schema_free(s);
    json_object_put(obj);
    return code;
}

int cmd_hash(int argc, char **argv)
{
    if (argc != 3)
        return cli_fail("usage: warrant hash contract|policy FILE");
    const char *kind = argv[1], *path = argv[2];
    int code;
    if (!strcmp(kind, "contract")) {
        wr_contract *ct = NULL;
        if ((code = load_contract(path, &ct)) == CLI_OK)
            puts(ct->sha256);
        wr_contract_free(ct);
        return code;
    }
    if (!strcmp(kind, "policy")) {
        wr_policy *p = NULL;
        if ((code = load_policy(path, &p)) == CLI_OK)
            puts(p->sha256);
        wr_policy_free(p);
        return code;
    }
    return cli_fail("hash: unknown kind '%s' (contract|policy)", kind);
}

int cmd_check(int argc, char **argv)
{
    const char *policy_path = NULL, *contract_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--policy") && i + 1 < argc)
            policy_path = argv[++i];
        else if (!strncmp(argv[i], "--policy=", 9))
            policy_path = argv[i] + 9;
        else if (argv[i][0] == '-' || contract_path)
            return cli_fail("usage: warrant check [--policy POLICY] CONTRACT");
        else
            contract_path = argv[i];
    }
    if (!contract_path)
        return cli_fail("usage: warrant check [--policy POLICY] CONTRACT");

    wr_error err = {0};
    wr_policy *p = NULL;
    int code;
    if (policy_path)
        code = load_policy(policy_path, &p);
    else
        code = wr_policy_load_bundled("default", &p, &err) ? cli_fail_err(CLI_USAGE, "default policy", &err) : CLI_OK;
    if (code)
        return code;
    wr_contract *ct = NULL;
    if ((code = load_contract(contract_path, &ct)) == CLI_OK) {
        wr_ctx ctx = wr_ctx_system();
        wr_decision *d = NULL;
        if (wr_policy_evaluate(p, ct, &ctx, &d, &err)) {
            code = cli_fail_err(CLI_USAGE, "evaluate", &err);
        } else {
            json_object *j = wr_decision_to_json(d);
            cli_print_json(j);
            json_object_put(j);
            code = d->kind == WR_ALLOW ? CLI_OK : CLI_REJECTED;
            wr_decision_free(d);
        }
    }
    wr_contract_free(ct);
    wr_policy_free(p);
    return code;
}
