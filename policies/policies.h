/* policies — load a CSC v0.1 policy (YAML, with warrant's superset keys),
 * classify effects from trusted rules, and decide allow | deny |
 * needs_approval with CSC reason codes. */
#ifndef WR_POLICIES_H
#define WR_POLICIES_H

#include "contracts/contracts.h"

#define WR_POLICY_MAX_BYTES (256u * 1024u)

/* The dedicated system user of the sandbox (scripts/run-user.sh); where it
 * does not exist the executor falls back to nobody, and the plan says so. */
#define WR_DEFAULT_RUN_AS  "warrant-run"
#define WR_FALLBACK_RUN_AS "nobody"
#define WR_DYNAMIC_UID_MIN 61184 /* systemd's DynamicUser range */
#define WR_DYNAMIC_UID_MAX 65519

typedef struct wr_sandbox_limits {
    char *run_as;              /* user commands run as when we are root (default WR_DEFAULT_RUN_AS) */
    int64_t cpu_sec;           /* RLIMIT_CPU */
    int64_t cpu_percent;       /* cgroup CPU bandwidth, percent of one CPU; 0 = none */
    int64_t min_strength;      /* block runs whose isolation score is lower (0 = any) */
    int64_t memory_mb;         /* RLIMIT_AS */
    int64_t max_processes;     /* RLIMIT_NPROC */
    int64_t max_file_mb;       /* RLIMIT_FSIZE */
    int64_t max_open_files;    /* RLIMIT_NOFILE */
    int64_t tmp_mb;            /* size of the private /tmp tmpfs */
    int64_t output_cap_bytes;  /* captured bytes per stream */
    int64_t output_kill_bytes; /* 0 = never; else kill the command past this many bytes per stream */
    bool seccomp_strict;       /* "strict" profile: also only AF_UNIX sockets when network is denied */
    bool dynamic_uid;          /* sandbox.uid: dynamic */
    int64_t uid_min, uid_max;  /* sandbox.dynamic_uid_range */
} wr_sandbox_limits;

typedef struct wr_approver {
    char *identity;
    unsigned char public_key[WR_PK_LEN];
    char key_id[WR_KEY_ID_LEN];
    wr_strv risk_classes; /* may approve these risk classes */
    wr_strv effect_types; /* and these (classified) effect types */
} wr_approver;

typedef struct wr_approval_config {
    int64_t max_lifetime_sec; /* upper bound on expires_at - approved_at */
    bool allow_time_window;
    wr_strv interactive_risk_classes;
    /* In-band (elicitation) approval from a token marked elicitation:human
     * also needs every effect type that needs approval listed here. */
    wr_strv interactive_effect_types;
    /* effect_risk_classes overrides: risk_effects[i] has at least
     * risk_minimums[i] (parallel lists; the rest keep the built-in map). */
    wr_strv risk_effects, risk_minimums;
    int64_t request_ttl_sec; /* how long an approval request stays pending */
    int64_t max_wait_sec;    /* bound on run's wait_for_approval_sec */
} wr_approval_config;

typedef struct wr_classify_rule {
    wr_strv argv_prefix; /* matched against the start of argv (argv[0] by basename) */
    char *host_pattern;  /* or NULL; matched against URL hosts in argv */
    char *effect;
} wr_classify_rule;

struct wr_grammars;

typedef struct wr_policy {
    char *name;
    char *schema_version;           /* policy_schema_version */
    char sha256[WR_SHA256_HEX_LEN]; /* canonical JSON of the loaded document */
    json_object *json;              /* the loaded document (owned) */
    /* CSC v0.1 keys */
    wr_strv allow_commands;
    wr_strv *deny_argv_prefixes;
    size_t ndeny_argv_prefixes;
    wr_strv allowed_effect_types;
    wr_strv manual_approval_effect_types;
    wr_strv allowed_risk_classes;
    int64_t max_timeout_sec;
    wr_network_mode network;
    bool allow_secret_refs;
    bool require_write_paths_empty;
    wr_strv allowed_cwd_prefixes;
    wr_strv allowed_read_prefixes;
    wr_strv allowed_write_prefixes;
    wr_strv allowed_egress_hosts;
    /* warrant extensions */
    wr_strv allow_indirect_exec;  /* tools allowed to run other programs (find -exec, xargs…) */
    wr_strv allowed_env;          /* env_allow names a command may import; "NAME*" is a prefix */
    wr_strv allowed_modules;      /* python3 -m NAME */
    struct wr_grammars *grammars; /* of the allowed commands: the policy's `tools`, else bundled (grammar.c) */
    wr_strv without_grammar;      /* allowed commands no grammar describes (CSC rules only) */
    wr_sandbox_limits sandbox;
    wr_classify_rule *classify; /* policy rules first, then the bundled pack */
    size_t nclassify;
    wr_approver *approvers;
    size_t napprovers;
    wr_approval_config approval;
    int64_t decision_ttl_sec;
    char *classify_writes_as; /* or NULL: effect of any command declaring write_paths */
} wr_policy;

/* Loaders. Errors contain the CSC loader phrases: "failed to read",
 * "invalid YAML", "duplicate key", "must contain a YAML mapping", and schema
 * errors with the JSON pointer. Anchors/aliases are refused. */
int wr_policy_load_file(const char *path, wr_policy **out, wr_error *err);
/* Where the policies whose examples passed are recorded (examples_cache.c):
 * one owner-only file per policy sha256 in dir (created 0700), holding a
 * MAC with key over that sha256 and this binary's build id. */
#define WR_EXAMPLES_CACHE_KEY_LEN 32
typedef struct wr_examples_cache {
    const char *dir;
    unsigned char key[WR_EXAMPLES_CACHE_KEY_LEN];
} wr_examples_cache;
/* wr_policy_load_file, but the examples are not run again when cache holds
 * a record that verifies for this policy and this build; a pass is
 * recorded. A record that does not verify (tampered, foreign, stale) is
 * ignored: the examples run, and failing ones refuse the policy. */
int wr_policy_load_file_cached(const char *path, const wr_examples_cache *cache, wr_policy **out, wr_error *err);
int wr_policy_load_yaml(const char *buf, size_t len, wr_policy **out, wr_error *err);
/* Only the YAML stage: one document whose root is a mapping -> a new JSON
 * object (no schema check). For callers that must tell unparsable input
 * from a policy that breaks the schema. */
int wr_policy_yaml_to_json(const char *buf, size_t len, json_object **out, wr_error *err);
/* From an already-parsed JSON document (conformance fixtures). Every
 * loader runs the policy's `examples` and fails on the first that the
 * policy does not decide as stated. */
int wr_policy_from_json(json_object *doc, wr_policy **out, wr_error *err);
/* The same without running the examples (warrant policy test reports them). */
int wr_policy_from_json_untested(json_object *doc, wr_policy **out, wr_error *err);
/* Runs the policy's examples: a JSON array with one object per example
 * ({expected, argv, got, reason_code, reason, ok}); *failures counts those
 * decided otherwise. */
int wr_policy_test_examples(const wr_policy *p, json_object **report, size_t *failures, wr_error *err);
void wr_policy_free(wr_policy *p);

/* Bundled policy packs (the YAML files in policies/, embedded at build time): "default",
 * "dev-write", "ci". wr_policy_bundled_text is NULL for an unknown name.
 * wr_policy_load_bundled does not run a pack's examples: the build did
 * (policies/pack_check.c). */
const char *wr_policy_bundled_text(const char *name);
const char *const *wr_policy_bundled_names(void); /* NULL-terminated */
int wr_policy_load_bundled(const char *name, wr_policy **out, wr_error *err);
/* The policy for agents (describe_policy): limits, allowed commands, prefixes. */
json_object *wr_policy_describe(const wr_policy *p);
/* How the policy reads one argv, run in its first cwd prefix with that
 * subtree as read path: {tool, grammar, effect, indirect_exec, why, elem,
 * subcommands, options, operands}. For `warrant policy explain` and the
 * tests that compare grammars with the real tools. */
json_object *wr_policy_explain_argv(const wr_policy *p, const wr_strv *argv);
/* The grammar the policy uses for a tool (its `tools` entry, else the
 * bundled file) as JSON, or NULL when there is none. */
json_object *wr_policy_grammar_json(const wr_policy *p, const char *tool);

typedef enum wr_decision_kind {
    WR_ALLOW = 0,
    WR_DENY = 1,
    WR_NEEDS_APPROVAL = 2
} wr_decision_kind;

typedef struct wr_classified_effect {
    char *command_id;
    char *effect_type;
} wr_classified_effect;

typedef struct wr_decision {
    wr_decision_kind kind;
    char *reason_code; /* one CSC registry code, e.g. COMMAND_NOT_ALLOWED */
    char *reason;      /* human text naming the command/argv/path */
    wr_classified_effect *effects;
    size_t neffects;
    char *contract_id;
    char contract_sha256[WR_SHA256_HEX_LEN];
    char *policy_profile; /* policy name */
    int64_t expires_at_ms;
    int required_approvals; /* 0, 1, or 2 (dual control) */
    /* effect types needing approval (for approver permission checks) */
    wr_strv approval_effects;
    /* The risk class that gates approval: the contract's, raised to each
     * classified effect's minimum (never lowered). A static string. */
    const char *risk_class;
} wr_decision;

/* The minimum risk class of a classified effect type under p (NULL: none). */
const char *wr_policy_effect_risk(const wr_policy *p, const char *effect_type);

/* Always a fresh evaluation: no stored decision is trusted. */
int wr_policy_evaluate(const wr_policy *p, const wr_contract *ct, const wr_ctx *ctx, wr_decision **out, wr_error *err);
/* CSC PolicyDecision JSON (validates against csc.policy-decision.v0.1):
 * written as compact text (its one definition), and as a json-c tree read
 * back from that text (NULL without memory). */
void wr_decision_write(const wr_decision *d, wr_jtext *t);
json_object *wr_decision_to_json(const wr_decision *d);
void wr_decision_free(wr_decision *d);
const char *wr_decision_kind_name(wr_decision_kind k);

#endif
