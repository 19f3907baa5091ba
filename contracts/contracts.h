/* contracts — CSC v0.1 CommandContract: parse with limits, validate against
 * the schema, normalise paths, compute contract_sha256. Nothing below this
 * module's callers touches the raw JSON of a contract: they get wr_contract. */
#ifndef WR_CONTRACTS_H
#define WR_CONTRACTS_H

#include "lib/lib.h"

/* Limits (issue #2): body, counts, lengths, nesting. */
#define WR_CONTRACT_MAX_BYTES      (1024u * 1024u)
#define WR_CONTRACT_MAX_COMMANDS   20
#define WR_CONTRACT_MAX_ARGV       256
#define WR_CONTRACT_MAX_ARG_BYTES  4096
#define WR_CONTRACT_MAX_SEGMENTS   10
#define WR_CONTRACT_MAX_PATH_BYTES 4096
#define WR_CONTRACT_MAX_DEPTH      16

typedef enum wr_network_mode {
    WR_NET_DENY = 0,
    WR_NET_ALLOWLISTED = 1,
    WR_NET_FULL = 2
} wr_network_mode;

typedef struct wr_command {
    char *id;
    bool is_pipeline;  /* false: exec (nsegments == 1) */
    wr_strv *segments; /* argv of each pipeline segment */
    size_t nsegments;
    char *cwd;           /* normalised */
    wr_strv read_paths;  /* normalised; a last component "**" is a subtree glob */
    wr_strv write_paths; /* normalised */
    wr_network_mode network;
    wr_strv env_allow;
    wr_strv secret_refs;
    int64_t timeout_sec;
    char *proposed_effect_type;
} wr_command;

typedef struct wr_actor {
    char *agent_id;
    char *session_id;
    char *initiating_user;
    char *delegation_scope;
} wr_actor;

typedef struct wr_contract {
    char *contract_id;
    char *intent;        /* untrusted agent text: never used for decisions */
    char *justification; /* untrusted agent text: never used for decisions */
    char *risk_class;    /* low | medium | high | critical */
    char *approval_mode; /* policy_only | human_required | dual_control_required */
    wr_actor actor;
    wr_command *commands;
    size_t ncommands;
    /* Bare lowercase hex sha256 of the canonical JSON of json, nulls
     * dropped (byte-identical to the CSC reference). */
    char sha256[WR_SHA256_HEX_LEN];
    /* The validated document as CSC's model holds it: as submitted, with the
     * default expected_outputs [] filled in when absent (owned reference). */
    json_object *json;
} wr_contract;

/* Holds the compiled contract schema; create once, share read-only. */
typedef struct wr_contracts wr_contracts;
wr_contracts *wr_contracts_new(wr_error *err);
void wr_contracts_free(wr_contracts *c);

/* Parses bytes (size/depth/UTF-8 limits), then as wr_contract_from_json. */
int wr_contract_parse(const wr_contracts *c, const char *buf, size_t len, wr_contract **out, wr_error *err);
/* Validates (schema + warrant limits + path rules) and builds the typed
 * contract. Takes its own reference to obj. err->path names the field. */
int wr_contract_from_json(const wr_contracts *c, json_object *obj, wr_contract **out, wr_error *err);
void wr_contract_free(wr_contract *ct);

/* Only the schema check (for `warrant validate contract`). */
int wr_contract_validate_json(const wr_contracts *c, json_object *obj, wr_error *err);

/* contract_sha256 of a JSON document (its CSC model: expected_outputs
 * defaults to []; canonical JSON, nulls dropped). */
int wr_contract_hash(json_object *obj, char out[WR_SHA256_HEX_LEN], wr_error *err);

/* Lexical normalisation of an absolute POSIX path: collapses "//" and ".",
 * resolves "..", drops a trailing "/". A path that climbs above "/", is not
 * absolute, is too long, or holds NUL/control bytes or invalid UTF-8 is
 * WR_E_INVALID. A last component "**" (subtree glob) is kept. */
int wr_path_normalize(const char *in, char **out, wr_error *err);
/* The same for a CSC read path, which may be a glob: components may hold
 * "*", "?" and "[...]", and a "**" component (any number of directories)
 * may occur anywhere: "/workspace/" "**" "/" "*.py", "/workspace/repo/" "*". */
int wr_path_normalize_glob(const char *in, char **out, wr_error *err);
/* Component-wise containment of normalised paths: "/a/b" is within "/a" and
 * "/a", "/ab" is not within "/a". A glob stands for its literal root, the
 * components before the first one holding a pattern ("/a/" "**" and
 * "/a/" "*.py" both mean "/a"): what policy scope compares. */
bool wr_path_within(const char *path, const char *prefix);
/* Whether a normalised path is one a glob names ("**" matches any number of
 * components, other components match as fnmatch(3) with FNM_PERIOD: "*"
 * does not match a leading dot). A plain path names itself and, with a
 * last component "**", its subtree. */
bool wr_path_glob_match(const char *glob, const char *path);
/* Whether a component holds a glob pattern. */
bool wr_path_is_glob(const char *path);

const char *wr_network_mode_name(wr_network_mode m);

#endif
