/* CSC v0.1 CommandContract: schema validation, warrant's limits, path
 * normalisation and the typed struct every later stage works on. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contracts/contracts.h"
#include "schemas/schemas.h"

#define CONTRACT_SCHEMA "csc.contract.v0.1.schema.json"

struct wr_contracts {
    wr_schema *schema;
};

wr_contracts *wr_contracts_new(wr_error *err)
{
    wr_contracts *c = calloc(1, sizeof *c);
    if (!c) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    c->schema = wr_schema_embedded(CONTRACT_SCHEMA, err);
    if (!c->schema) {
        free(c);
        return NULL;
    }
    return c;
}

void wr_contracts_free(wr_contracts *c)
{
    if (!c)
        return;
    wr_schema_free(c->schema);
    free(c);
}

int wr_contract_validate_json(const wr_contracts *c, json_object *obj, wr_error *err)
{
    return wr_schema_validate(c->schema, obj, err);
}

/* The contract as CSC's model holds it: an absent expected_outputs is the
 * default []. Hashed, stored and bundled in this form, so that a contract
 * without it (the README's own example) has CSC's contract_sha256 and the
 * stored document hashes to it. A new reference; obj is not changed. */
static json_object *csc_model(json_object *obj)
{
    json_object *have = NULL;
    if (!json_object_is_type(obj, json_type_object) || json_object_object_get_ex(obj, "expected_outputs", &have))
        return json_object_get(obj);
    json_object *filled = json_object_new_object();
    json_object_object_foreach(obj, k, v) json_object_object_add(filled, k, json_object_get(v));
    json_object_object_add(filled, "expected_outputs", json_object_new_array());
    return filled;
}

int wr_contract_hash(json_object *obj, char out[WR_SHA256_HEX_LEN], wr_error *err)
{
    json_object *model = csc_model(obj);
    int rc = wr_canonical_sha256(model, true, out, err);
    json_object_put(model);
    return rc;
}

/* ---- building the typed contract --------------------------------------- */

/* The JSON Pointer of the field being built, kept in one buffer: each
 * level appends its part and cuts it off again. Formatting a pointer per
 * field cost more than checking the field; errors only read it. Parts are
 * our own member names and indices, which need no RFC 6901 escaping. */
typedef struct ptr {
    char s[sizeof((wr_error *)0)->path];
    size_t len;
} ptr;

static size_t ptr_push(ptr *p, const char *part)
{
    size_t at = p->len, n = strlen(part);
    if (at + 1 + n < sizeof p->s) {
        p->s[at] = '/';
        memcpy(p->s + at + 1, part, n + 1);
        p->len = at + 1 + n;
    }
    return at;
}

static size_t ptr_push_index(ptr *p, size_t i)
{
    char digits[24], *d = digits + sizeof digits;
    *--d = '\0';
    do
        *--d = (char)('0' + i % 10);
    while ((i /= 10) > 0);
    return ptr_push(p, d);
}

static void ptr_pop(ptr *p, size_t at)
{
    p->len = at;
    p->s[at] = '\0';
}

/* A JSON string as a C string, refusing what C and execve cannot carry
 * faithfully: embedded NUL (json-c keeps "\u0000") and invalid UTF-8. */
static int get_str(json_object *o, const ptr *p, const char **out, wr_error *err)
{
    const char *s = json_object_get_string(o);
    size_t len = (size_t)json_object_get_string_len(o);
    if (strlen(s) != len)
        return wr_errorf(err, WR_E_INVALID, p->s, "string contains a NUL byte");
    if (!wr_utf8_valid(s, len))
        return wr_errorf(err, WR_E_INVALID, p->s, "string is not valid UTF-8");
    *out = s;
    return WR_OK;
}

static int dup_field(json_object *parent, const char *key, ptr *p, char **out, wr_error *err)
{
    json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex(parent, key, &v) || !json_object_is_type(v, json_type_string))
        return WR_OK;
    size_t at = ptr_push(p, key);
    const char *s = NULL;
    int rc = get_str(v, p, &s, err);
    if (rc == WR_OK && !(*out = strdup(s)))
        rc = wr_errorf(err, WR_E_NOMEM, p->s, "out of memory");
    if (rc == WR_OK)
        ptr_pop(p, at);
    return rc;
}

/* Each element of arr, at p's index i: a C string (get_str), or with
 * normalize a normalised path (wr_path_normalize[_glob] reports no pointer,
 * so the field's is set here). */
static int str_array(json_object *arr, ptr *p, int (*normalize)(const char *, char **, wr_error *), wr_strv *out,
                     wr_error *err)
{
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        size_t at = ptr_push_index(p, i);
        const char *s = NULL;
        char *norm = NULL;
        int rc = get_str(json_object_array_get_idx(arr, i), p, &s, err);
        if (rc == WR_OK && normalize && (rc = normalize(s, &norm, err)) != WR_OK && err)
            snprintf(err->path, sizeof err->path, "%s", p->s);
        if (rc == WR_OK && wr_strv_push(out, norm ? norm : s))
            rc = wr_errorf(err, WR_E_NOMEM, p->s, "out of memory");
        free(norm);
        if (rc)
            return rc;
        ptr_pop(p, at);
    }
    return WR_OK;
}

/* argv[0] names the program: NUL or control bytes there could make the
 * name we check differ from the file the kernel runs (or from what a human
 * approver sees), so they are refused outright. */
static int check_argv(json_object *argv, ptr *p, wr_strv *out, wr_error *err)
{
    size_t n = json_object_array_length(argv);
    if (n > WR_CONTRACT_MAX_ARGV)
        return wr_errorf(err, WR_E_LIMIT, p->s, "argv has %zu elements, more than %u", n, WR_CONTRACT_MAX_ARGV);
    int rc = str_array(argv, p, NULL, out, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < out->n; i++)
        if (strlen(out->v[i]) > WR_CONTRACT_MAX_ARG_BYTES)
            return wr_errorf(err, WR_E_LIMIT, p->s, "argv[%zu] is longer than %u bytes", i, WR_CONTRACT_MAX_ARG_BYTES);
    for (const unsigned char *c = (const unsigned char *)out->v[0]; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return wr_errorf(err, WR_E_INVALID, p->s, "executable name contains control character 0x%02x", *c);
    return WR_OK;
}

/* Environment names end up as NAME=value in execve's envp: a name with
 * "=" or odd bytes could smuggle a different variable. */
static int check_env_names(const wr_strv *names, const char *ptr, wr_error *err)
{
    for (size_t i = 0; i < names->n; i++) {
        const char *s = names->v[i];
        bool ok = (s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z'));
        for (const char *c = s + 1; ok && *c; c++)
            ok = *c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9');
        if (!ok)
            return wr_errorf(err, WR_E_INVALID, ptr, "env_allow[%zu] '%.100s' is not a valid variable name", i, s);
    }
    return WR_OK;
}

static wr_network_mode network_mode(const char *s)
{
    if (!strcmp(s, "full"))
        return WR_NET_FULL;
    if (!strcmp(s, "allowlisted"))
        return WR_NET_ALLOWLISTED;
    return WR_NET_DENY;
}

/* The command at p ("/commands/N"); p is left as it was on success. */
static int build_command(json_object *jc, ptr *p, wr_command *cmd, wr_error *err)
{
    json_object *v, *exec, *pipe;
    size_t at;
    int rc;
    if ((rc = dup_field(jc, "id", p, &cmd->id, err)))
        return rc;
    if (json_object_object_get_ex(jc, "exec", &exec)) {
        json_object_object_get_ex(exec, "argv", &v);
        cmd->segments = calloc(1, sizeof *cmd->segments);
        if (!cmd->segments)
            return wr_errorf(err, WR_E_NOMEM, p->s, "out of memory");
        cmd->nsegments = 1;
        at = ptr_push(p, "exec");
        ptr_push(p, "argv");
        if ((rc = check_argv(v, p, &cmd->segments[0], err)))
            return rc;
        ptr_pop(p, at);
    } else {
        json_object_object_get_ex(jc, "pipeline", &pipe);
        json_object_object_get_ex(pipe, "segments", &v);
        size_t n = json_object_array_length(v);
        if (n > WR_CONTRACT_MAX_SEGMENTS)
            return wr_errorf(err, WR_E_LIMIT, p->s, "pipeline has %zu segments, more than %u", n,
                             WR_CONTRACT_MAX_SEGMENTS);
        cmd->is_pipeline = true;
        cmd->segments = calloc(n, sizeof *cmd->segments);
        if (!cmd->segments)
            return wr_errorf(err, WR_E_NOMEM, p->s, "out of memory");
        cmd->nsegments = n;
        at = ptr_push(p, "pipeline");
        ptr_push(p, "segments");
        for (size_t i = 0; i < n; i++) {
            json_object *argv;
            json_object_object_get_ex(json_object_array_get_idx(v, i), "argv", &argv);
            size_t seg = ptr_push_index(p, i);
            ptr_push(p, "argv");
            if ((rc = check_argv(argv, p, &cmd->segments[i], err)))
                return rc;
            ptr_pop(p, seg);
        }
        ptr_pop(p, at);
    }

    const char *s = NULL;
    json_object_object_get_ex(jc, "cwd", &v);
    at = ptr_push(p, "cwd");
    if ((rc = get_str(v, p, &s, err)))
        return rc;
    if ((rc = wr_path_normalize(s, &cmd->cwd, err))) {
        if (err)
            snprintf(err->path, sizeof err->path, "%s", p->s);
        return rc;
    }
    if (strstr(cmd->cwd, "*"))
        return wr_errorf(err, WR_E_INVALID, p->s, "cwd cannot be a glob");
    ptr_pop(p, at);

    /* Read paths may be CSC globs ("/workspace/" "**" "/" "*.py"); write
     * paths and cwd are literal (but for a last component "**"). */
    static const struct {
        const char *key;
        int (*normalize)(const char *, char **, wr_error *);
        size_t off;
    } lists[] = {
        {"read_paths", wr_path_normalize_glob, offsetof(wr_command, read_paths)},
        {"write_paths", wr_path_normalize, offsetof(wr_command, write_paths)},
        {"env_allow", NULL, offsetof(wr_command, env_allow)},
        {"secret_refs", NULL, offsetof(wr_command, secret_refs)},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        json_object_object_get_ex(jc, lists[i].key, &v);
        wr_strv *dst = (wr_strv *)((char *)cmd + lists[i].off);
        at = ptr_push(p, lists[i].key);
        if ((rc = str_array(v, p, lists[i].normalize, dst, err)))
            return rc;
        ptr_pop(p, at);
    }
    at = ptr_push(p, "env_allow");
    if ((rc = check_env_names(&cmd->env_allow, p->s, err)))
        return rc;
    ptr_pop(p, at);

    json_object_object_get_ex(jc, "network", &v);
    cmd->network = network_mode(json_object_get_string(v));
    json_object_object_get_ex(jc, "timeout_sec", &v);
    cmd->timeout_sec = json_object_get_int64(v);
    return dup_field(jc, "proposed_effect_type", p, &cmd->proposed_effect_type, err);
}

static int build(json_object *obj, wr_contract *ct, wr_error *err)
{
    static const struct {
        const char *key;
        size_t off;
    } top[] = {
        {"contract_id", offsetof(wr_contract, contract_id)},     {"intent", offsetof(wr_contract, intent)},
        {"justification", offsetof(wr_contract, justification)}, {"risk_class", offsetof(wr_contract, risk_class)},
        {"approval_mode", offsetof(wr_contract, approval_mode)},
    };
    static const struct {
        const char *key;
        size_t off;
    } actor[] = {
        {"agent_id", offsetof(wr_actor, agent_id)},
        {"session_id", offsetof(wr_actor, session_id)},
        {"initiating_user", offsetof(wr_actor, initiating_user)},
        {"delegation_scope", offsetof(wr_actor, delegation_scope)},
    };
    int rc;
    ptr p = {.len = 0};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if ((rc = dup_field(obj, top[i].key, &p, (char **)((char *)ct + top[i].off), err)))
            return rc;
    json_object *ja, *jcmds;
    json_object_object_get_ex(obj, "actor", &ja);
    ptr_push(&p, "actor");
    for (size_t i = 0; i < sizeof actor / sizeof actor[0]; i++)
        if ((rc = dup_field(ja, actor[i].key, &p, (char **)((char *)&ct->actor + actor[i].off), err)))
            return rc;
    ptr_pop(&p, 0);

    json_object_object_get_ex(obj, "commands", &jcmds);
    size_t n = json_object_array_length(jcmds);
    if (n > WR_CONTRACT_MAX_COMMANDS)
        return wr_errorf(err, WR_E_LIMIT, "/commands", "%zu commands, more than %u", n, WR_CONTRACT_MAX_COMMANDS);
    ct->commands = calloc(n, sizeof *ct->commands);
    if (!ct->commands)
        return wr_errorf(err, WR_E_NOMEM, "/commands", "out of memory");
    ct->ncommands = n;
    ptr_push(&p, "commands");
    for (size_t i = 0; i < n; i++) {
        size_t at = ptr_push_index(&p, i);
        if ((rc = build_command(json_object_array_get_idx(jcmds, i), &p, &ct->commands[i], err)))
            return rc;
        ptr_pop(&p, at);
        /* Receipts and decisions name commands by id: two with the same id
         * would make "which one failed" ambiguous. */
        for (size_t j = 0; j < i; j++)
            if (!strcmp(ct->commands[j].id, ct->commands[i].id))
                return wr_errorf(err, WR_E_INVALID, "/commands", "duplicate command id '%.100s'", ct->commands[i].id);
    }
    return wr_contract_hash(obj, ct->sha256, err);
}

int wr_contract_from_json(const wr_contracts *c, json_object *obj, wr_contract **out, wr_error *err)
{
    *out = NULL;
    int rc = wr_contract_validate_json(c, obj, err);
    if (rc)
        return rc;
    wr_contract *ct = calloc(1, sizeof *ct);
    if (!ct)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    ct->json = csc_model(obj);
    if ((rc = build(ct->json, ct, err))) {
        wr_contract_free(ct);
        return rc;
    }
    *out = ct;
    return WR_OK;
}

int wr_contract_parse(const wr_contracts *c, const char *buf, size_t len, wr_contract **out, wr_error *err)
{
    *out = NULL;
    if (len > WR_CONTRACT_MAX_BYTES)
        return wr_errorf(err, WR_E_LIMIT, "", "contract is %zu bytes, more than %u", len, WR_CONTRACT_MAX_BYTES);
    wr_json_limits lim = {WR_CONTRACT_MAX_BYTES, WR_CONTRACT_MAX_DEPTH};
    json_object *obj = wr_json_parse(buf, len, &lim, err);
    if (!obj)
        return err ? err->code : WR_E_INVALID;
    int rc = wr_contract_from_json(c, obj, out, err);
    json_object_put(obj);
    return rc;
}

static void free_command(wr_command *cmd)
{
    free(cmd->id);
    for (size_t i = 0; i < cmd->nsegments; i++)
        wr_strv_free(&cmd->segments[i]);
    free(cmd->segments);
    free(cmd->cwd);
    wr_strv_free(&cmd->read_paths);
    wr_strv_free(&cmd->write_paths);
    wr_strv_free(&cmd->env_allow);
    wr_strv_free(&cmd->secret_refs);
    free(cmd->proposed_effect_type);
}

void wr_contract_free(wr_contract *ct)
{
    if (!ct)
        return;
    free(ct->contract_id);
    free(ct->intent);
    free(ct->justification);
    free(ct->risk_class);
    free(ct->approval_mode);
    free(ct->actor.agent_id);
    free(ct->actor.session_id);
    free(ct->actor.initiating_user);
    free(ct->actor.delegation_scope);
    for (size_t i = 0; i < ct->ncommands; i++)
        free_command(&ct->commands[i]);
    free(ct->commands);
    json_object_put(ct->json);
    free(ct);
}
