/* policies/: YAML loader edge cases, the bundled packs, evaluation
 * details the fixtures do not show (reason texts, approval counts,
 * expiry, describe_policy). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include <cmocka.h>

#include "policies/policies.h"

#define NOW_MS 1795000000000LL

static const char *const base_yaml =
    "policy_schema_version: csc.policy.v0.1\nname: unit\nallow_commands: [git, ls, cat, python3, cp]\n"
    "allowed_effect_types: [observe]\nallowed_risk_classes: [low]\nmax_timeout_sec: 30\nnetwork: deny\n"
    "allow_secret_refs: false\nallowed_cwd_prefixes: [/workspace/]\nallowed_read_prefixes: [/workspace]\n";

static int64_t fixed_now(void *ud)
{
    (void)ud;
    return NOW_MS;
}

static wr_policy *load(const char *text)
{
    wr_error err = {0};
    wr_policy *p = NULL;
    if (wr_policy_load_yaml(text, strlen(text), &p, &err))
        fail_msg("%s", err.message);
    return p;
}

/* out = in with the first "from" replaced by "to" */
static void subst(char *out, size_t n, const char *in, const char *from, const char *to)
{
    const char *at = strstr(in, from);
    assert_non_null(at);
    snprintf(out, n, "%.*s%s%s", (int)(at - in), in, to, at + strlen(from));
}

static void assert_load_fails(const char *text, size_t len, const char *msg)
{
    wr_error err = {0};
    wr_policy *p = NULL;
    assert_int_not_equal(wr_policy_load_yaml(text, len, &p, &err), WR_OK);
    assert_null(p);
    if (!strstr(err.message, msg))
        fail_msg("'%s' lacks '%s'", err.message, msg);
}

static void test_loader_types_and_defaults(void **state)
{
    (void)state;
    wr_policy *p = load(base_yaml);
    assert_string_equal(p->name, "unit");
    assert_int_equal(p->max_timeout_sec, 30);
    assert_false(p->allow_secret_refs);
    assert_int_equal(p->network, WR_NET_DENY);
    /* prefixes are normalised */
    assert_string_equal(p->allowed_cwd_prefixes.v[0], "/workspace");
    /* design.md defaults for the extension keys */
    assert_string_equal(p->sandbox.run_as, WR_DEFAULT_RUN_AS);
    assert_int_equal(p->sandbox.cpu_sec, 60);
    assert_int_equal(p->sandbox.output_cap_bytes, 1048576);
    assert_int_equal(p->approval.max_lifetime_sec, 3600);
    assert_false(p->approval.allow_time_window);
    assert_int_equal(p->decision_ttl_sec, 300);
    /* the bundled classification pack follows the (absent) policy rules */
    assert_true(p->nclassify > 50);
    /* policy_sha256 is of the JSON document (python3 + PyYAML agree: see
     * tests/policy/test_cli.py) and is stable */
    wr_policy *q = load(base_yaml);
    assert_string_equal(p->sha256, q->sha256);
    wr_policy_free(q);
    wr_policy_free(p);
}

/* Scalar typing follows PyYAML's safe_load (values from python3 -c
 * "import yaml; print(yaml.safe_load(...))"), except that octal, hex and
 * binary integers stay strings (PyYAML: i = 83): the schema then refuses
 * them instead of a policy meaning 83 where its author wrote 0123. */
static void test_yaml_scalars(void **state)
{
    (void)state;
    static const char doc[] = "a: 1\nb: -5\nc: 1.5\nd: 1.5e+3\ne: 1.5e3\nf: yes\ng: 'yes'\nh: ~\n"
                              "i: 0123\nj: \"1\"\nk: 1e5\nl: Off\nm: +7\nn: 2.\n";
    json_object *o = NULL;
    wr_error err = {0};
    assert_int_equal(wr_policy_yaml_to_json(doc, sizeof doc - 1, &o, &err), WR_OK);
    assert_string_equal(wr_json_compact(o), "{\"a\":1,\"b\":-5,\"c\":1.5,\"d\":1500.0,\"e\":\"1.5e3\",\"f\":true,"
                                            "\"g\":\"yes\",\"h\":null,\"i\":\"0123\",\"j\":\"1\",\"k\":\"1e5\","
                                            "\"l\":false,\"m\":7,\"n\":2.0}");
    json_object_put(o);
}

static void test_loader_rejects(void **state)
{
    (void)state;
    char buf[4096];
    snprintf(buf, sizeof buf, "%sname: again\n", base_yaml);
    assert_load_fails(buf, strlen(buf), "duplicate key 'name'");
    assert_load_fails("x: &a 1\ny: *a\n", 14, "anchors and aliases");
    assert_load_fails("- a\n", 4, "must contain a YAML mapping");
    assert_load_fails("a: 1\n---\nb: 2\n", 14, "single YAML document");
    assert_load_fails("a: [1, 2\n", 9, "invalid YAML");
    assert_load_fails("a: \"\\0\"\n", 8, "NUL byte");
    assert_load_fails("a: \xff\n", 5, "invalid YAML");
    assert_load_fails("? [a, b]\n: 1\n", 13, "mapping keys must be plain strings");
    /* an integer beyond int64 stays a string, and the schema says so */
    subst(buf, sizeof buf, base_yaml, "max_timeout_sec: 30", "max_timeout_sec: 99999999999999999999999");
    assert_load_fails(buf, strlen(buf), "/max_timeout_sec");
    size_t big = WR_POLICY_MAX_BYTES + 1;
    char *huge = malloc(big);
    memset(huge, '#', big);
    assert_load_fails(huge, big, "more than 262144");
    free(huge);
    wr_error err = {0};
    wr_policy *p = NULL;
    assert_int_equal(wr_policy_load_file("/nonexistent/policy.yaml", &p, &err), WR_E_NOTFOUND);
    assert_non_null(strstr(err.message, "failed to read"));
}

static void test_approver_keys(void **state)
{
    (void)state;
    /* one key as raw base64, the same key as SPKI PEM: both parse to the same key id */
    static const char raw[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    char *pem = NULL;
    unsigned char pk[WR_PK_LEN];
    wr_error err = {0};
    assert_int_equal(wr_pubkey_parse(raw, pk, &err), WR_OK);
    pem = wr_pubkey_pem(pk);
    assert_non_null(pem);
    char yaml[8192];
    int n =
        snprintf(yaml, sizeof yaml,
                 "%sapprovers:\n  - identity: alice\n    public_key: \"%s\"\n    may_approve: {risk_classes: [low]}\n"
                 "  - identity: bob\n    public_key: |\n",
                 base_yaml, raw);
    for (char *line = strtok(pem, "\n"); line; line = strtok(NULL, "\n"))
        n += snprintf(yaml + n, sizeof yaml - (size_t)n, "      %s\n", line);
    free(pem);
    wr_policy *p = load(yaml);
    assert_int_equal(p->napprovers, 2);
    assert_string_equal(p->approvers[0].key_id, p->approvers[1].key_id);
    assert_memory_equal(p->approvers[1].public_key, pk, WR_PK_LEN);
    /* without may_approve: what the policy allows or sends for approval */
    assert_true(wr_strv_contains(&p->approvers[1].effect_types, "observe"));
    assert_true(wr_strv_contains(&p->approvers[1].risk_classes, "low"));
    wr_policy_free(p);
    snprintf(yaml, sizeof yaml,
             "%sapprovers:\n  - {identity: a, public_key: \"%s\"}\n  - {identity: a, public_key: \"%s\"}\n", base_yaml,
             raw, raw);
    assert_load_fails(yaml, strlen(yaml), "duplicate approver identity");
}

static void test_bundled_packs(void **state)
{
    (void)state;
    const char *const *names = wr_policy_bundled_names();
    int count = 0;
    for (; names[count]; count++) {
        wr_error err = {0};
        wr_policy *p = NULL;
        if (wr_policy_load_bundled(names[count], &p, &err))
            fail_msg("%s: %s", names[count], err.message);
        assert_string_equal(p->name, names[count]);
        /* loaded without its examples (the build ran them): they pass here too */
        json_object *report = NULL;
        size_t failures = 0;
        assert_int_equal(wr_policy_test_examples(p, &report, &failures, &err), WR_OK);
        assert_int_equal(failures, 0);
        json_object_put(report);
        wr_policy_free(p);
    }
    assert_int_equal(count, 4);
    assert_non_null(wr_policy_bundled_text("capsule"));
    assert_non_null(wr_policy_bundled_text("default"));
    assert_non_null(wr_policy_bundled_text("dev-write"));
    assert_non_null(wr_policy_bundled_text("ci"));
    assert_null(wr_policy_bundled_text("nope"));
    wr_error err = {0};
    wr_policy *p = NULL;
    assert_int_equal(wr_policy_load_bundled("nope", &p, &err), WR_E_NOTFOUND);
}

/* ---- evaluation ---------------------------------------------------------- */
/* A one-command contract; extra (e.g. ",\"network\":\"full\"") replaces
 * members of the command. */
static wr_contract *contract(const char *argv_json, const char *extra_cmd, const char *approval_mode)
{
    char text[8192];
    snprintf(text, sizeof text,
             "{\"version\":\"csc.v0.1\",\"contract_id\":\"unit-contract-1\",\"intent\":\"t\","
             "\"actor\":{\"agent_id\":\"a\",\"session_id\":\"s\",\"initiating_user\":\"u\",\"delegation_scope\":\"d\"},"
             "\"commands\":[{\"id\":\"cmd_1\",\"exec\":{\"argv\":%s},\"cwd\":\"/workspace\","
             "\"read_paths\":[\"/workspace/**\"],\"write_paths\":[],\"network\":\"deny\",\"env_allow\":[],"
             "\"secret_refs\":[],\"timeout_sec\":10,\"proposed_effect_type\":\"observe\"}],"
             "\"risk_class\":\"low\",\"approval_mode\":\"%s\",\"justification\":\"j\"}",
             argv_json, approval_mode ? approval_mode : "policy_only");
    wr_error err = {0};
    json_object *doc = wr_json_parse(text, strlen(text), NULL, &err), *cmds;
    if (!doc)
        fail_msg("%s", err.message);
    if (extra_cmd) {
        char obj[1024];
        snprintf(obj, sizeof obj, "{%s}", extra_cmd + 1);
        json_object *x = wr_json_parse(obj, strlen(obj), NULL, &err);
        if (!x)
            fail_msg("%s: %s", obj, err.message);
        json_object_object_get_ex(doc, "commands", &cmds);
        json_object_object_foreach(x, k, v)
            json_object_object_add(json_object_array_get_idx(cmds, 0), k, json_object_get(v));
        json_object_put(x);
    }
    wr_contracts *cs = wr_contracts_new(&err);
    wr_contract *ct = NULL;
    if (wr_contract_from_json(cs, doc, &ct, &err))
        fail_msg("%s %s", err.path, err.message);
    json_object_put(doc);
    wr_contracts_free(cs);
    return ct;
}

static wr_decision *decide(const wr_policy *p, const wr_contract *ct)
{
    wr_ctx ctx = wr_ctx_system();
    ctx.now_ms = fixed_now;
    wr_error err = {0};
    wr_decision *d = NULL;
    if (wr_policy_evaluate(p, ct, &ctx, &d, &err))
        fail_msg("%s", err.message);
    return d;
}

/* Evaluates argv under a policy and checks kind, code and a reason fragment. */
static void expect(const wr_policy *p, const char *argv_json, const char *extra, const char *mode,
                   wr_decision_kind kind, const char *code, const char *reason_part)
{
    wr_contract *ct = contract(argv_json, extra, mode);
    wr_decision *d = decide(p, ct);
    if (d->kind != kind || strcmp(d->reason_code, code) || (reason_part && !strstr(d->reason, reason_part)))
        fail_msg("%s: got %s %s '%s', expected %s %s '%s'", argv_json, wr_decision_kind_name(d->kind), d->reason_code,
                 d->reason, wr_decision_kind_name(kind), code, reason_part ? reason_part : "");
    wr_decision_free(d);
    wr_contract_free(ct);
}

static void test_decision_json(void **state)
{
    (void)state;
    wr_policy *p = load(base_yaml);
    wr_contract *ct = contract("[\"git\",\"status\"]", NULL, NULL);
    wr_decision *d = decide(p, ct);
    json_object *j = wr_decision_to_json(d), *v;
    assert_true(json_object_object_get_ex(j, "expires_at", &v));
    assert_string_equal(json_object_get_string(v), "2026-11-18T11:11:40.000Z"); /* NOW_MS + 300 s */
    assert_true(json_object_object_get_ex(j, "contract_sha256", &v));
    assert_string_equal(json_object_get_string(v), ct->sha256);
    assert_true(json_object_object_get_ex(j, "policy_profile", &v));
    assert_string_equal(json_object_get_string(v), "unit");
    assert_int_equal(d->required_approvals, 0);
    json_object_put(j);
    wr_decision_free(d);
    wr_contract_free(ct);
    wr_policy_free(p);
}

static void test_reasons_name_the_element(void **state)
{
    (void)state;
    wr_policy *p = load(base_yaml);
    expect(p, "[\"python3\",\"-I\",\"-c\",\"1\"]", NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", "argv[2] '-c'");
    expect(p, "[\"cat\",\"x\"]", ",\"secret_refs\":[\"K\"]", NULL, WR_DENY, "SECRET_REF_NOT_ALLOWED", "cmd_1");
    expect(p, "[\"/workspace/git\",\"status\"]", NULL, NULL, WR_DENY, "COMMAND_NOT_ALLOWED",
           "is not the 'git' found on the sandbox PATH");
    expect(p, "[\"git\",\"push\"]", NULL, NULL, WR_DENY, "EFFECT_RECLASSIFIED",
           "cmd_1 reclassified from observe to mutate_repo (grammar git: argv[1] 'push')");
    expect(p, "[\"cp\",\"a\",\"b\"]", NULL, NULL, WR_DENY, "EFFECT_RECLASSIFIED", "to transform_local");
    expect(p, "[\"ls\"]", ",\"proposed_effect_type\":\"deploy\"", NULL, WR_DENY, "EFFECT_TYPE_NOT_ALLOWED",
           "effect type 'deploy' is not allowed");
    wr_policy_free(p);
}

/* A symlink to the real ls, planted outside the PATH directories, is not
 * ls: it could be re-pointed between the decision and the run. */
static void test_argv0_symlink(void **state)
{
    (void)state;
    char dir[] = "/tmp/wr-argv0-XXXXXX", link[64], argv_json[128];
    assert_non_null(mkdtemp(dir));
    snprintf(link, sizeof link, "%s/ls", dir);
    assert_int_equal(symlink("/usr/bin/ls", link), 0);
    wr_policy *p = load(base_yaml);
    snprintf(argv_json, sizeof argv_json, "[\"%s\"]", link);
    expect(p, argv_json, NULL, NULL, WR_DENY, "COMMAND_NOT_ALLOWED", "not the 'ls' found on the sandbox PATH");
    expect(p, "[\"/usr/bin/ls\"]", NULL, NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"/usr/bin/../bin/ls\"]", NULL, NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"/usr/bin/nonexistent-tool\"]", NULL, NULL, WR_DENY, "COMMAND_NOT_ALLOWED", NULL);
    unlink(link);
    rmdir(dir);
    wr_policy_free(p);
}

static void test_approval_counts(void **state)
{
    (void)state;
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%smanual_approval_for_classified_effect_types: [mutate_repo]\n", base_yaml);
    wr_policy *p = load(yaml);
    wr_contract *ct = contract("[\"git\",\"push\"]", NULL, "dual_control_required");
    wr_decision *d = decide(p, ct);
    assert_int_equal(d->kind, WR_NEEDS_APPROVAL);
    assert_int_equal(d->required_approvals, 2);
    assert_true(wr_strv_contains(&d->approval_effects, "mutate_repo"));
    /* the reclassification shows in the reason of an approval as well */
    assert_non_null(strstr(d->reason, "reclassified from observe to mutate_repo"));
    wr_decision_free(d);
    wr_contract_free(ct);
    ct = contract("[\"git\",\"push\"]", NULL, NULL);
    d = decide(p, ct);
    assert_int_equal(d->kind, WR_NEEDS_APPROVAL);
    assert_int_equal(d->required_approvals, 1);
    wr_decision_free(d);
    wr_contract_free(ct);
    wr_policy_free(p);
}

static wr_policy *bundled(const char *name)
{
    wr_error err = {0};
    wr_policy *p = NULL;
    if (wr_policy_load_bundled(name, &p, &err))
        fail_msg("%s", err.message);
    return p;
}

static void test_default_pack(void **state)
{
    (void)state;
    wr_policy *p = bundled("default");
    expect(p, "[\"git\",\"log\",\"--oneline\"]", NULL, NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"rg\",\"-n\",\"TODO\",\"src\"]", NULL, NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"python3\",\"tools/report.py\"]", NULL, NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"python3\",\"-Ic\",\"1\"]", NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", NULL);
    expect(p, "[\"node\",\"--eval=1\"]", NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", NULL);
    expect(p, "[\"find\",\".\",\"-name\",\"*.c\"]", NULL, NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"find\",\".\",\"-execdir\",\"cat\",\"{}\",\";\"]", NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", NULL);
    expect(p, "[\"env\",\"ls\"]", NULL, NULL, WR_DENY, "COMMAND_NOT_ALLOWED", NULL);
    expect(p, "[\"bash\",\"-c\",\"id\"]", NULL, NULL, WR_DENY, "COMMAND_NOT_ALLOWED", NULL);
    expect(p, "[\"git\",\"commit\",\"-m\",\"x\"]", NULL, NULL, WR_DENY, "EFFECT_RECLASSIFIED", NULL);
    expect(p, "[\"sort\",\"-o\",\"out\",\"in\"]", NULL, NULL, WR_DENY, "EFFECT_RECLASSIFIED", NULL);
    expect(p, "[\"ls\"]", ",\"write_paths\":[\"/workspace/x\"]", NULL, WR_DENY, "WRITE_PATHS_NOT_EMPTY", NULL);
    expect(p, "[\"ls\"]", ",\"network\":\"full\"", NULL, WR_DENY, "NETWORK_EXCEEDS_POLICY", NULL);
    expect(p, "[\"ls\"]", ",\"cwd\":\"/\"", NULL, WR_DENY, "CWD_NOT_ALLOWED", NULL);
    expect(p, "[\"ls\"]", NULL, "human_required", WR_NEEDS_APPROVAL, "APPROVAL_REQUIRED", NULL);
    /* env_allow reads the server's environment: only allowed_env names */
    expect(p, "[\"ls\"]", ",\"env_allow\":[\"AWS_SECRET_ACCESS_KEY\"]", NULL, WR_DENY, "SECRET_REF_NOT_ALLOWED",
           "env_allow name 'AWS_SECRET_ACCESS_KEY'");
    expect(p, "[\"ls\"]", ",\"env_allow\":[\"TZ\",\"LC_ALL\"]", NULL, WR_ALLOW, "ALLOW", NULL);
    /* CSC read-path globs: scoped by their literal root */
    expect(p, "[\"cat\",\"a.py\"]", ",\"read_paths\":[\"/workspace/**/*.py\"]", NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"cat\",\"x\"]", ",\"read_paths\":[\"/*\"]", NULL, WR_DENY, "READ_SCOPE_DENIED", NULL);
    expect(p, "[\"cat\",\"x\"]", ",\"read_paths\":[\"/etc/*.conf\"]", NULL, WR_DENY, "READ_SCOPE_DENIED", NULL);
    /* a script must be one the glob names */
    expect(p, "[\"python3\",\"tools/r.py\"]", ",\"read_paths\":[\"/workspace/**/*.py\"]", NULL, WR_ALLOW, "ALLOW",
           NULL);
    expect(p, "[\"python3\",\"tools/r.sh\"]", ",\"read_paths\":[\"/workspace/**/*.py\"]", NULL, WR_DENY,
           "ARGV_PREFIX_DENIED", "outside the command's declared read paths");
    wr_policy_free(p);
}

/* ---- the examples cache (examples_cache.c) ------------------------------- */
#define NOBODY_ID         65534 /* nobody and nogroup: owner of a foreign record */
#define CACHE_RACE_PROCS  4
#define CACHE_RACE_ROUNDS 10

static ino_t record_ino(const char *dir, const char *sha256)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, sha256);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    return st.st_ino;
}

static int load_cached(const char *yaml, const wr_examples_cache *c, wr_error *err)
{
    char path[] = "/tmp/wr-policy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    wr_policy *p = NULL;
    int rc = wr_policy_load_file_cached(path, c, &p, err);
    unlink(path);
    wr_policy_free(p);
    return rc;
}

static void sha_of(const char *yaml, char out[WR_SHA256_HEX_LEN])
{
    json_object *doc = NULL;
    wr_policy *p = NULL;
    wr_error err = {0};
    assert_int_equal(wr_policy_yaml_to_json(yaml, strlen(yaml), &doc, &err), WR_OK);
    assert_int_equal(wr_policy_from_json_untested(doc, &p, &err), WR_OK);
    memcpy(out, p->sha256, WR_SHA256_HEX_LEN);
    wr_policy_free(p);
    json_object_put(doc);
}

/* A record is trusted only as written by this key for this policy: a
 * record moved to another policy's name, altered, readable by others or a
 * symlink is ignored, the examples run again, and failing ones still
 * refuse the policy. */
static void test_examples_cache(void **state)
{
    (void)state;
    char root[] = "/tmp/wr-excache-XXXXXX", dir[256], path[512], good_sha[WR_SHA256_HEX_LEN],
         bad_sha[WR_SHA256_HEX_LEN], good[2048], bad[2048], valid[128] = "";
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof dir, "%s/cache", root);
    snprintf(good, sizeof good, "%sexamples:\n  allow: [[ls, -l]]\n", base_yaml);
    snprintf(bad, sizeof bad, "%sexamples:\n  deny: [[ls, -l]]\n", base_yaml); /* ls is allowed */
    sha_of(good, good_sha);
    sha_of(bad, bad_sha);
    wr_examples_cache c = {.dir = dir};
    randombytes_buf(c.key, sizeof c.key);
    wr_error err = {0};

    /* a pass is recorded, owner-only; the next load uses the record as is */
    assert_int_equal(load_cached(good, &c, &err), WR_OK);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    ino_t ino = record_ino(dir, good_sha);
    assert_int_equal(load_cached(good, &c, &err), WR_OK);
    assert_int_equal(record_ino(dir, good_sha), ino);
    snprintf(path, sizeof path, "%s/%s", dir, good_sha);
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(valid, sizeof valid, f));
    fclose(f);

    /* the good policy's record under the failing policy's name */
    char moved[512];
    snprintf(moved, sizeof moved, "%s/%s", dir, bad_sha);
    assert_int_equal(link(path, moved), 0);
    assert_int_equal(load_cached(bad, &c, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "example(s) fail"));

    /* altered, loose, a symlink, another key, a byte too many, a FIFO (opening
     * it must not block), another user's: ignored, and replaced after the
     * examples pass */
    static const char *const attacks[] = {"altered", "loose", "symlink", "key", "long", "fifo", "foreign"};
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        unlink(path);
        if (!strcmp(attacks[i], "foreign") && geteuid() != 0) {
            print_message("examples cache: the foreign-owner record needs root, not tried\n");
            continue;
        }
        if (!strcmp(attacks[i], "fifo")) {
            assert_int_equal(mkfifo(path, 0600), 0);
        } else if (!strcmp(attacks[i], "symlink")) {
            char target[512];
            snprintf(target, sizeof target, "%s/elsewhere", root);
            f = fopen(target, "w");
            fputs(valid, f);
            fclose(f);
            chmod(target, 0600);
            assert_int_equal(symlink(target, path), 0);
        } else {
            f = fopen(path, "w");
            fputs(valid, f);
            if (!strcmp(attacks[i], "long"))
                fputs("0", f);
            fclose(f);
            chmod(path, !strcmp(attacks[i], "loose") ? 0644 : 0600);
            if (!strcmp(attacks[i], "altered"))
                assert_int_equal(truncate(path, 10), 0);
            if (!strcmp(attacks[i], "foreign"))
                assert_int_equal(chown(path, NOBODY_ID, NOBODY_ID), 0);
        }
        wr_examples_cache other = c;
        if (!strcmp(attacks[i], "key"))
            other.key[0] ^= 1;
        assert_int_equal(lstat(path, &st), 0);
        ino = st.st_ino;
        assert_int_equal(load_cached(good, &other, &err), WR_OK);
        if (ino == record_ino(dir, good_sha))
            fail_msg("%s record was trusted", attacks[i]);
        other.key[0] = c.key[0];
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* Processes loading one policy at once on an empty cache all write its
 * record: each load passes, what stays is one record that verifies (the
 * next load keeps it) and no temporary file. */
static void test_examples_cache_race(void **state)
{
    (void)state;
    char root[] = "/tmp/wr-excache-XXXXXX", dir[256], yaml[2048], sha[WR_SHA256_HEX_LEN];
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof dir, "%s/cache", root);
    snprintf(yaml, sizeof yaml, "%sexamples:\n  allow: [[ls, -l]]\n", base_yaml);
    sha_of(yaml, sha);
    wr_examples_cache c = {.dir = dir};
    randombytes_buf(c.key, sizeof c.key);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    for (int round = 0; round < CACHE_RACE_ROUNDS; round++) {
        assert_int_equal(system(cmd), 0);
        pid_t pids[CACHE_RACE_PROCS];
        for (int i = 0; i < CACHE_RACE_PROCS; i++) {
            assert_true((pids[i] = fork()) >= 0);
            if (pids[i] == 0) {
                wr_error err = {0};
                _exit(load_cached(yaml, &c, &err) == WR_OK ? 0 : 1);
            }
        }
        for (int i = 0; i < CACHE_RACE_PROCS; i++) {
            int status = 0;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        ino_t ino = record_ino(dir, sha);
        wr_error err = {0};
        assert_int_equal(load_cached(yaml, &c, &err), WR_OK);
        assert_int_equal(record_ino(dir, sha), ino);
        DIR *d = opendir(dir);
        assert_non_null(d);
        int entries = 0;
        for (struct dirent *e; (e = readdir(d));)
            entries += e->d_name[0] != '.';
        closedir(d);
        assert_int_equal(entries, 1);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* Bundled grammars are built on the first argv that names their tool
 * (grammar.c): threads deciding at once on a fresh policy race to build
 * them and must all get the decisions a sequential run gets. */
#define RACE_THREADS 8
#define RACE_ROUNDS  20

static const struct {
    const char *argv;
    wr_decision_kind kind;
} race_cases[] = {
    {"[\"git\",\"log\",\"--oneline\"]", WR_ALLOW},
    {"[\"git\",\"commit\",\"-m\",\"x\"]", WR_DENY},
    {"[\"rg\",\"-n\",\"TODO\",\"src\"]", WR_ALLOW},
    {"[\"find\",\".\",\"-name\",\"*.c\"]", WR_ALLOW},
    {"[\"find\",\".\",\"-execdir\",\"cat\",\"{}\",\";\"]", WR_DENY},
    {"[\"sort\",\"-o\",\"out\",\"in\"]", WR_DENY},
    {"[\"python3\",\"-Ic\",\"1\"]", WR_DENY},
    {"[\"python3\",\"tools/report.py\"]", WR_ALLOW},
};
#define RACE_CASES (sizeof race_cases / sizeof race_cases[0])

typedef struct race {
    const wr_policy *p;
    wr_contract *const *cts;
    size_t first; /* each thread starts at a different case */
    int wrong;
} race;

static void *race_thread(void *arg)
{
    race *r = arg;
    wr_ctx ctx = wr_ctx_system();
    ctx.now_ms = fixed_now;
    for (size_t i = 0; i < RACE_ROUNDS * RACE_CASES; i++) {
        size_t c = (r->first + i) % RACE_CASES;
        wr_decision *d = NULL;
        wr_error err = {0};
        if (wr_policy_evaluate(r->p, r->cts[c], &ctx, &d, &err) != WR_OK || d->kind != race_cases[c].kind)
            r->wrong++;
        wr_decision_free(d);
    }
    return NULL;
}

static void test_lazy_grammars_race(void **state)
{
    (void)state;
    wr_contract *cts[RACE_CASES];
    for (size_t c = 0; c < RACE_CASES; c++)
        cts[c] = contract(race_cases[c].argv, NULL, NULL);
    for (int round = 0; round < 5; round++) {
        wr_policy *p = bundled("default"); /* no grammar built yet */
        pthread_t t[RACE_THREADS];
        race r[RACE_THREADS];
        for (size_t i = 0; i < RACE_THREADS; i++) {
            r[i] = (race){.p = p, .cts = cts, .first = i % RACE_CASES};
            assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
        }
        for (size_t i = 0; i < RACE_THREADS; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(r[i].wrong, 0);
        }
        wr_policy_free(p);
    }
    for (size_t c = 0; c < RACE_CASES; c++)
        wr_contract_free(cts[c]);
}

static void test_dev_write_pack(void **state)
{
    (void)state;
    wr_policy *p = bundled("dev-write");
    expect(p, "[\"cat\",\"README\"]", NULL, NULL, WR_ALLOW, "ALLOW", NULL);
    expect(p, "[\"cp\",\"a\",\"b\"]", ",\"write_paths\":[\"/workspace/b\"]", NULL, WR_NEEDS_APPROVAL,
           "APPROVAL_REQUIRED", "transform_local");
    /* writes need approval even when the tool looks harmless */
    expect(p, "[\"cat\",\"x\"]", ",\"write_paths\":[\"/workspace/build\"]", NULL, WR_NEEDS_APPROVAL,
           "APPROVAL_REQUIRED", "it declares write paths");
    expect(p, "[\"git\",\"commit\",\"-m\",\"x\"]", NULL, NULL, WR_NEEDS_APPROVAL, "APPROVAL_REQUIRED", NULL);
    /* ... but never outside the workspace */
    expect(p, "[\"cp\",\"a\",\"/etc/b\"]", ",\"write_paths\":[\"/etc/b\"]", NULL, WR_DENY, "WRITE_SCOPE_DENIED", NULL);
    expect(p, "[\"rm\",\"-rf\",\"/\"]", NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", NULL);
    /* deny prefixes match the parsed options: a flag buried in a cluster too
     * long to record cannot hide -r and -f from [rm, -rf, /] */
    char argv_json[1200] = "[\"rm\",\"-";
    memset(argv_json + strlen(argv_json), 'v', 600);
    strcpy(argv_json + strlen("[\"rm\",\"-") + 600, "rf\",\"/\"]");
    expect(p, argv_json, NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", NULL);
    expect(p, "[\"rm\",\"-r\",\"-v\",\"-f\",\"/\"]", NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", NULL);
    wr_policy_free(p);
}

static void test_ci_pack(void **state)
{
    (void)state;
    wr_policy *p = bundled("ci");
    expect(p, "[\"npm\",\"ci\"]", ",\"network\":\"allowlisted\",\"write_paths\":[\"/workspace/node_modules\"]", NULL,
           WR_ALLOW, "ALLOW", "fetch_external");
    expect(p, "[\"make\",\"-j2\",\"test\"]", ",\"write_paths\":[\"/workspace/build/**\"]", NULL, WR_ALLOW, "ALLOW",
           NULL);
    expect(p, "[\"git\",\"clone\",\"https://evil.example.net/x\"]", ",\"network\":\"allowlisted\"", NULL, WR_DENY,
           "NETWORK_EXCEEDS_POLICY", "evil.example.net");
    expect(p, "[\"git\",\"tag\",\"v1\"]", NULL, NULL, WR_NEEDS_APPROVAL, "APPROVAL_REQUIRED", "mutate_repo");
    expect(p, "[\"git\",\"push\"]", NULL, NULL, WR_DENY, "ARGV_PREFIX_DENIED", NULL);
    expect(p, "[\"ls\"]", ",\"secret_refs\":[\"NPM_TOKEN\"]", NULL, WR_DENY, "SECRET_REF_NOT_ALLOWED", NULL);
    wr_policy_free(p);
}

static void test_describe(void **state)
{
    (void)state;
    wr_policy *p = bundled("default");
    json_object *j = wr_policy_describe(p), *v, *tmpl;
    assert_true(json_object_object_get_ex(j, "allow_commands", &v));
    assert_true(json_object_array_length(v) > 10);
    assert_true(json_object_object_get_ex(j, "max_timeout_sec", &v));
    assert_int_equal(json_object_get_int64(v), 300);
    assert_true(json_object_object_get_ex(j, "policy_sha256", &v));
    assert_string_equal(json_object_get_string(v), p->sha256);
    assert_false(strstr(wr_json_compact(j), "public_key"));
    /* every command the pack allows has a grammar */
    assert_true(json_object_object_get_ex(j, "commands_without_grammar", &v));
    assert_int_equal(json_object_array_length(v), 0);
    /* the template, with its placeholders filled in, is allowed */
    assert_true(json_object_object_get_ex(j, "contract_template", &tmpl));
    wr_error err = {0};
    wr_contracts *cs = wr_contracts_new(&err);
    wr_contract *ct = NULL;
    if (wr_contract_from_json(cs, tmpl, &ct, &err))
        fail_msg("template: %s %s", err.path, err.message);
    wr_decision *d = decide(p, ct);
    assert_int_equal(d->kind, WR_ALLOW);
    wr_decision_free(d);
    wr_contract_free(ct);
    wr_contracts_free(cs);
    json_object_put(j);
    wr_policy_free(p);
    /* a CSC policy allowing tools no grammar describes: they are named */
    p = load(base_yaml);
    j = wr_policy_describe(p);
    assert_true(json_object_object_get_ex(j, "commands_without_grammar", &v));
    assert_string_equal(wr_json_compact(v), "[]");
    json_object_put(j);
    wr_policy_free(p);
    char yaml[1024];
    subst(yaml, sizeof yaml, base_yaml, "[git, ls, cat, python3, cp]", "[git, ls, kubectl, perl]");
    p = load(yaml);
    j = wr_policy_describe(p);
    assert_true(json_object_object_get_ex(j, "commands_without_grammar", &v));
    assert_string_equal(wr_json_compact(v), "[\"kubectl\",\"perl\"]");
    json_object_put(j);
    wr_policy_free(p);
}

/* Random damage to a real policy and a real contract: every result is a
 * loaded object or an error with a message; never a crash (ASan) or leak. */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static size_t mutate(char *buf, size_t len, size_t cap, uint64_t *rng)
{
    for (int k = 1 + (int)(next_rand(rng) % 4); k > 0 && len > 0; k--) {
        size_t at = next_rand(rng) % len;
        switch (next_rand(rng) % 4) {
        case 0:
            buf[at] = (char)(next_rand(rng) & 0xff);
            break;
        case 1:
            memmove(buf + at, buf + at + 1, len - at - 1), len--;
            break;
        case 2:
            buf[at] = "{}[]:,-\"'&*!|>#\n"[next_rand(rng) % 16];
            break;
        default: {
            size_t n = 1 + next_rand(rng) % 16;
            if (len + n >= cap || at + n > len)
                break;
            memmove(buf + at + n, buf + at, len - at);
            len += n;
        }
        }
    }
    buf[len] = '\0';
    return len;
}

static void test_mutated_inputs(void **state)
{
    (void)state;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    const char *yaml = wr_policy_bundled_text("default");
    size_t ylen = strlen(yaml), cap = ylen * 2 + 64;
    char *buf = malloc(cap);
    int loaded = 0;
    wr_policy *dflt = bundled("default");
    for (int i = 0; i < 1500; i++) {
        memcpy(buf, yaml, ylen + 1);
        size_t len = mutate(buf, ylen, cap, &rng);
        wr_error err = {0};
        wr_policy *p = NULL;
        if (wr_policy_load_yaml(buf, len, &p, &err) == WR_OK)
            loaded++;
        else
            assert_true(err.message[0] != '\0');
        wr_policy_free(p);
    }
    wr_contracts *cs = wr_contracts_new(&(wr_error){0});
    wr_contract *base = contract("[\"git\",\"log\",\"-c\"]", ",\"write_paths\":[\"/workspace/a/../b/**\"]", NULL);
    const char *text = wr_json_compact(base->json);
    size_t tlen = strlen(text);
    char *cbuf = malloc(tlen * 2 + 64);
    int parsed = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(cbuf, text, tlen + 1);
        size_t len = mutate(cbuf, tlen, tlen * 2 + 64, &rng);
        wr_error err = {0};
        wr_contract *ct = NULL;
        if (wr_contract_parse(cs, cbuf, len, &ct, &err) == WR_OK) {
            parsed++;
            wr_decision_free(decide(dflt, ct));
        } else {
            assert_true(err.message[0] != '\0');
        }
        wr_contract_free(ct);
    }
    printf("mutated inputs: %d/1500 policies loaded, %d/3000 contracts parsed and evaluated\n", loaded, parsed);
    wr_contract_free(base);
    wr_contracts_free(cs);
    wr_policy_free(dflt);
    free(cbuf);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loader_types_and_defaults),
        cmocka_unit_test(test_yaml_scalars),
        cmocka_unit_test(test_loader_rejects),
        cmocka_unit_test(test_approver_keys),
        cmocka_unit_test(test_bundled_packs),
        cmocka_unit_test(test_decision_json),
        cmocka_unit_test(test_reasons_name_the_element),
        cmocka_unit_test(test_argv0_symlink),
        cmocka_unit_test(test_approval_counts),
        cmocka_unit_test(test_default_pack),
        cmocka_unit_test(test_lazy_grammars_race),
        cmocka_unit_test(test_examples_cache),
        cmocka_unit_test(test_examples_cache_race),
        cmocka_unit_test(test_dev_write_pack),
        cmocka_unit_test(test_ci_pack),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_mutated_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
