/* contracts/: path normalisation and containment, limits, hostile
 * strings, contract_sha256. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "contracts/contracts.h"

static const char *const base_contract =
    "{\"version\":\"csc.v0.1\",\"contract_id\":\"contract-unit-1\",\"intent\":\"t\","
    "\"actor\":{\"agent_id\":\"a\",\"session_id\":\"s\",\"initiating_user\":\"u\",\"delegation_scope\":\"d\"},"
    "\"commands\":[{\"id\":\"cmd_1\",\"exec\":{\"argv\":[\"git\",\"status\"]},\"cwd\":\"/workspace//repo/./\","
    "\"read_paths\":[\"/workspace/repo/**\"],\"write_paths\":[],\"network\":\"deny\",\"env_allow\":[\"HOME\"],"
    "\"secret_refs\":[],\"timeout_sec\":10,\"proposed_effect_type\":\"observe\"}],"
    "\"risk_class\":\"low\",\"approval_mode\":\"policy_only\",\"justification\":\"j\"}";

static char *norm(const char *in, wr_error *err)
{
    char *out = NULL;
    if (wr_path_normalize(in, &out, err) != WR_OK)
        return NULL;
    return out;
}

static void assert_norm(const char *in, const char *want)
{
    wr_error err = {0};
    char *got = norm(in, &err);
    if (!got)
        fail_msg("%s: %s", in, err.message);
    assert_string_equal(got, want);
    free(got);
}

static void assert_norm_fails(const char *in, const char *msg)
{
    wr_error err = {0};
    char *got = norm(in, &err);
    if (got)
        fail_msg("%s normalised to %s", in, got);
    assert_int_equal(err.code, WR_E_INVALID);
    if (!strstr(err.message, msg))
        fail_msg("'%s' lacks '%s'", err.message, msg);
}

static void test_normalize(void **state)
{
    (void)state;
    assert_norm("/", "/");
    assert_norm("//", "/");
    assert_norm("/a/./b//c/", "/a/b/c");
    assert_norm("/a/b/../c", "/a/c");
    assert_norm("/a/..", "/");
    assert_norm("/workspace/../etc", "/etc");
    assert_norm("/workspace/**", "/workspace/**");
    assert_norm("/workspace/x/../**", "/workspace/**");
    assert_norm("/**", "/**");
    assert_norm("/caf\xc3\xa9", "/caf\xc3\xa9");
    assert_norm_fails("/..", "climbs above /");
    assert_norm_fails("/a/../../b", "climbs above /");
    assert_norm_fails("workspace", "not an absolute POSIX path");
    assert_norm_fails("C:\\work", "not an absolute POSIX path");
    assert_norm_fails("", "empty path");
    assert_norm_fails("/a\nb", "control character");
    assert_norm_fails("/a\x7f", "control character");
    assert_norm_fails("/a\xff", "UTF-8");
    assert_norm_fails("/a/*/b", "'*' is only allowed");
    assert_norm_fails("/a/**/b", "'*' is only allowed");
    char *longp = malloc(WR_CONTRACT_MAX_PATH_BYTES + 2);
    memset(longp, 'a', WR_CONTRACT_MAX_PATH_BYTES + 1);
    longp[0] = '/';
    longp[WR_CONTRACT_MAX_PATH_BYTES + 1] = '\0';
    assert_norm_fails(longp, "longer than");
    free(longp);
}

/* CSC read paths are globs; cwd and write paths stay literal. */
static void test_globs(void **state)
{
    (void)state;
    char *out = NULL;
    wr_error err = {0};
    assert_int_equal(wr_path_normalize_glob("/workspace//**/./*.py", &out, &err), WR_OK);
    assert_string_equal(out, "/workspace/**/*.py");
    free(out);
    assert_int_equal(wr_path_normalize_glob("/workspace/repo/*", &out, &err), WR_OK);
    assert_string_equal(out, "/workspace/repo/*");
    free(out);
    assert_int_not_equal(wr_path_normalize_glob("/a/**/**/**/**/**/x", &out, &err), WR_OK);
    assert_non_null(strstr(err.message, "'**' components"));
    assert_int_not_equal(wr_path_normalize_glob("/*/../..", &out, &err), WR_OK);
    /* policy scope: the literal root */
    assert_true(wr_path_within("/workspace/**/*.py", "/workspace"));
    assert_true(wr_path_within("/workspace/repo/*", "/workspace/repo"));
    assert_false(wr_path_within("/*", "/workspace"));
    assert_false(wr_path_within("/etc/*.conf", "/workspace"));
    assert_false(wr_path_within("/work*/x", "/workspace"));
    /* matching */
    assert_true(wr_path_glob_match("/workspace/**/*.py", "/workspace/a.py"));
    assert_true(wr_path_glob_match("/workspace/**/*.py", "/workspace/x/y/a.py"));
    assert_false(wr_path_glob_match("/workspace/**/*.py", "/workspace/a.txt"));
    assert_false(wr_path_glob_match("/workspace/**/*.py", "/workspace/.a.py"));
    assert_false(wr_path_glob_match("/workspace/**/*.py", "/etc/a.py"));
    assert_true(wr_path_glob_match("/workspace/repo/*", "/workspace/repo/f"));
    assert_false(wr_path_glob_match("/workspace/repo/*", "/workspace/repo/d/f"));
    assert_true(wr_path_glob_match("/workspace/**", "/workspace"));
    assert_true(wr_path_glob_match("/workspace/**", "/workspace/d/f"));
    assert_true(wr_path_glob_match("/w/f[0-9].c", "/w/f7.c"));
    assert_false(wr_path_glob_match("/w/f?.c", "/w/f10.c"));
}

static void test_within(void **state)
{
    (void)state;
    assert_true(wr_path_within("/workspace", "/workspace"));
    assert_true(wr_path_within("/workspace/a/b", "/workspace"));
    assert_true(wr_path_within("/workspace/a/**", "/workspace"));
    assert_true(wr_path_within("/workspace/**", "/workspace"));
    assert_true(wr_path_within("/workspace/a", "/workspace/**"));
    assert_true(wr_path_within("/anything", "/"));
    assert_true(wr_path_within("/anything", "/**"));
    assert_false(wr_path_within("/workspacex", "/workspace"));
    assert_false(wr_path_within("/workspace2/a", "/workspace"));
    assert_false(wr_path_within("/work", "/workspace"));
    assert_false(wr_path_within("/**", "/workspace"));
    assert_false(wr_path_within("/", "/workspace"));
}

static json_object *parse(const char *text)
{
    wr_error err = {0};
    json_object *o = wr_json_parse(text, strlen(text), NULL, &err);
    if (!o)
        fail_msg("%s", err.message);
    return o;
}

static json_object *first_command(json_object *c)
{
    json_object *cmds;
    json_object_object_get_ex(c, "commands", &cmds);
    return json_object_array_get_idx(cmds, 0);
}

/* Parses base_contract with one change applied by edit; returns the status. */
static int parse_edited(void (*edit)(json_object *), wr_contract **out, wr_error *err)
{
    wr_contracts *cs = wr_contracts_new(err);
    assert_non_null(cs);
    json_object *c = parse(base_contract);
    if (edit)
        edit(c);
    int rc = wr_contract_from_json(cs, c, out, err);
    json_object_put(c);
    wr_contracts_free(cs);
    return rc;
}

static void test_parse_normalises(void **state)
{
    (void)state;
    wr_error err = {0};
    wr_contract *ct = NULL;
    assert_int_equal(parse_edited(NULL, &ct, &err), WR_OK);
    assert_string_equal(ct->commands[0].cwd, "/workspace/repo");
    assert_string_equal(ct->commands[0].read_paths.v[0], "/workspace/repo/**");
    assert_string_equal(ct->commands[0].segments[0].v[1], "status");
    assert_int_equal(ct->commands[0].network, WR_NET_DENY);
    assert_int_equal(strlen(ct->sha256), 64);
    char again[WR_SHA256_HEX_LEN];
    assert_int_equal(wr_contract_hash(ct->json, again, &err), WR_OK);
    assert_string_equal(again, ct->sha256);
    wr_contract_free(ct);
}

static void many_args(json_object *c)
{
    json_object *argv = json_object_new_array();
    for (int i = 0; i <= WR_CONTRACT_MAX_ARGV; i++)
        json_object_array_add(argv, json_object_new_string("x"));
    json_object *exec = json_object_new_object();
    json_object_object_add(exec, "argv", argv);
    json_object_object_add(first_command(c), "exec", exec);
}

static void long_arg(json_object *c)
{
    char *s = malloc(WR_CONTRACT_MAX_ARG_BYTES + 2);
    memset(s, 'a', WR_CONTRACT_MAX_ARG_BYTES + 1);
    s[WR_CONTRACT_MAX_ARG_BYTES + 1] = '\0';
    json_object *argv = json_object_new_array(), *exec = json_object_new_object();
    json_object_array_add(argv, json_object_new_string("git"));
    json_object_array_add(argv, json_object_new_string(s));
    json_object_object_add(exec, "argv", argv);
    json_object_object_add(first_command(c), "exec", exec);
    free(s);
}

static void set_argv0(json_object *c, const char *argv0, int len)
{
    json_object *argv = json_object_new_array(), *exec = json_object_new_object();
    json_object_array_add(argv, json_object_new_string_len(argv0, len));
    json_object_object_add(exec, "argv", argv);
    json_object_object_add(first_command(c), "exec", exec);
}
static void nul_argv0(json_object *c)
{
    set_argv0(c, "git\0x", 5);
}
static void ctl_argv0(json_object *c)
{
    set_argv0(c, "git\x1b[2J", 7);
}

static void many_segments(json_object *c)
{
    json_object *segs = json_object_new_array(), *pipe = json_object_new_object();
    for (int i = 0; i <= WR_CONTRACT_MAX_SEGMENTS; i++) {
        json_object *seg = json_object_new_object(), *argv = json_object_new_array();
        json_object_array_add(argv, json_object_new_string("cat"));
        json_object_object_add(seg, "argv", argv);
        json_object_array_add(segs, seg);
    }
    json_object_object_add(pipe, "segments", segs);
    json_object_object_del(first_command(c), "exec");
    json_object_object_add(first_command(c), "pipeline", pipe);
}

static void climbing_cwd(json_object *c)
{
    json_object_object_add(first_command(c), "cwd", json_object_new_string("/workspace/../../x"));
}

static void bad_env_name(json_object *c)
{
    json_object *env = json_object_new_array();
    json_object_array_add(env, json_object_new_string("LD_PRELOAD=/x"));
    json_object_object_add(first_command(c), "env_allow", env);
}

static void nul_read_path(json_object *c)
{
    json_object *rp = json_object_new_array();
    json_object_array_add(rp, json_object_new_string_len("/workspace\0/etc", 15));
    json_object_object_add(first_command(c), "read_paths", rp);
}

static void duplicate_ids(json_object *c)
{
    json_object *cmds;
    json_object_object_get_ex(c, "commands", &cmds);
    json_object *copy = NULL;
    json_object_deep_copy(first_command(c), &copy, NULL);
    json_object_array_add(cmds, copy);
}

static void assert_rejected(void (*edit)(json_object *), int code, const char *ptr, const char *msg)
{
    wr_error err = {0};
    wr_contract *ct = NULL;
    assert_int_equal(parse_edited(edit, &ct, &err), code);
    assert_null(ct);
    if (ptr && strcmp(err.path, ptr))
        fail_msg("pointer '%s', expected '%s' (%s)", err.path, ptr, err.message);
    if (!strstr(err.message, msg))
        fail_msg("'%s' lacks '%s'", err.message, msg);
}

static void test_limits_and_hostile_strings(void **state)
{
    (void)state;
    assert_rejected(many_args, WR_E_LIMIT, "/commands/0/exec/argv", "more than 256");
    assert_rejected(long_arg, WR_E_LIMIT, "/commands/0/exec/argv", "longer than 4096");
    assert_rejected(nul_argv0, WR_E_INVALID, "/commands/0/exec/argv/0", "NUL");
    assert_rejected(ctl_argv0, WR_E_INVALID, "/commands/0/exec/argv", "control character 0x1b");
    assert_rejected(many_segments, WR_E_LIMIT, "/commands/0", "more than 10");
    assert_rejected(climbing_cwd, WR_E_INVALID, "/commands/0/cwd", "climbs above /");
    assert_rejected(bad_env_name, WR_E_INVALID, "/commands/0/env_allow", "not a valid variable name");
    assert_rejected(nul_read_path, WR_E_INVALID, "/commands/0/read_paths/0", "NUL");
    assert_rejected(duplicate_ids, WR_E_INVALID, "/commands", "duplicate command id");
}

static void test_parse_bytes(void **state)
{
    (void)state;
    wr_error err = {0};
    wr_contracts *cs = wr_contracts_new(&err);
    wr_contract *ct = NULL;
    assert_int_equal(wr_contract_parse(cs, base_contract, strlen(base_contract), &ct, &err), WR_OK);
    wr_contract_free(ct);
    const char *trailing = "{} {}";
    assert_int_not_equal(wr_contract_parse(cs, trailing, strlen(trailing), &ct, &err), WR_OK);
    assert_null(ct);
    size_t big = WR_CONTRACT_MAX_BYTES + 1;
    char *buf = malloc(big);
    memset(buf, ' ', big);
    assert_int_equal(wr_contract_parse(cs, buf, big, &ct, &err), WR_E_LIMIT);
    free(buf);
    /* depth beyond the contract limit */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_int_not_equal(wr_contract_parse(cs, deep, sizeof deep, &ct, &err), WR_OK);
    assert_null(ct);
    wr_contracts_free(cs);
}

/* The hash is of the document as submitted (nulls dropped, key order and
 * whitespace irrelevant); the expected value is python3's
 * sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"))). */
static void test_hash_ignores_form(void **state)
{
    (void)state;
    wr_error err = {0};
    json_object *a = parse("{\"b\":1,\"a\":[1,2],\"n\":null}"), *b = parse("{ \"a\" : [1, 2], \"b\" : 1 }");
    char ha[WR_SHA256_HEX_LEN], hb[WR_SHA256_HEX_LEN];
    assert_int_equal(wr_contract_hash(a, ha, &err), WR_OK);
    assert_int_equal(wr_contract_hash(b, hb, &err), WR_OK);
    assert_string_equal(ha, hb);
    /* CSC's model fills the default expected_outputs: []:
     * sha256('{"a":[1,2],"b":1,"expected_outputs":[]}') */
    assert_string_equal(ha, "00a7053c2a3a5ec70688171b8e5ab00cf3af5c603fee4a09bad4b5907ab79718");
    json_object_put(a);
    json_object_put(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_within),
        cmocka_unit_test(test_parse_normalises),
        cmocka_unit_test(test_limits_and_hostile_strings),
        cmocka_unit_test(test_parse_bytes),
        cmocka_unit_test(test_hash_ignores_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
