/* Private to policies/: shared between the loader, the classifier and the
 * evaluator. */
#ifndef WR_POLICIES_INTERNAL_H
#define WR_POLICIES_INTERNAL_H

#include "policies/policies.h"

/* classify.c */
/* Appends the bundled classification pack after the policy's own rules. */
int wr__classify_append_bundled(wr_policy *p, wr_error *err);
void wr__classify_rule_free(wr_classify_rule *r);
/* Severity order used to decide whether classification raises an effect:
 * observe < transform_local < fetch_external < mutate_repo < deploy <
 * touch_secrets < any extension type (financial_action, ...). */
int wr__effect_severity(const char *effect);
/* Whether an argv rule (classify argv_prefix, deny_argv_prefixes) matches:
 * rule[0] is the basename of argv[0], later elements occur in order in the
 * rest of argv; "-x" also matches inside a short-option cluster and
 * "--opt" matches "--opt=value". Looser than a literal prefix on purpose:
 * `git -C dir push` must still be `git push`. */
bool wr__argv_rule_matches(const wr_strv *rule, const wr_strv *argv);
/* The effect the trusted rules give one argv, or NULL (first match wins);
 * with pa (a tool that has a grammar) rules match the parsed argv. rule_out (may be NULL) receives the matching rule.
 */
struct wr_parsed;
const char *wr__classify_argv(const wr_policy *p, const wr_strv *argv, const struct wr_parsed *pa,
                              const wr_classify_rule **rule_out);

/* The host named by a URL-ish argument ("scheme://[user@]host[:port]/...",
 * "user@host:path", "host.tld/path"): its length at *start, 0 if none (a
 * URL with an empty or over-long host also gives 0). */
size_t wr__arg_host(const char *arg, const char **start);

/* "--opt" or "--opt=value" (also single-dash long options: "-exec"). */
bool wr__long_opt(const char *arg, const char *opt);

/* indirect.c: indirect execution (programs that run other programs or
 * inline code). */
typedef struct wr_indirect {
    const char *why;    /* static description */
    size_t elem;        /* the argv element that triggers it */
    long wrapped;       /* where a wrapped program's argv starts (xargs, timeout, find -exec …), or -1 */
    size_t wrapped_end; /* one past its last element (find: its ";" or "+") */
    long resume;        /* where the tool's own argv goes on after it (find's next action), or -1 */
} wr_indirect;
/* True when argv runs another program or program text; *out says how, so
 * the caller can check a wrapped program in turn. */
bool wr__indirect_exec(const wr_strv *argv, wr_indirect *out);

/* examples_cache.c: whether cache records that this build's examples
 * passed on the policy with this sha256; records that they did. */
bool wr__examples_cached(const wr_examples_cache *c, const char *sha256);
void wr__examples_cache_put(const wr_examples_cache *c, const char *sha256);

/* grammar.c: argument grammars (see policies/README.md "Argument grammars"). */
#define WR_EFFECT_INDIRECT   "indirect_exec"
#define WR_GRAMMAR_MAX_DEPTH 8 /* subcommand levels recorded per argv */

typedef struct wr_grammar wr_grammar;
typedef struct wr_grammars wr_grammars;
/* Sets p->grammars for p->allow_commands (tools: the policy's `tools`). */
int wr__grammars_load(wr_policy *p, json_object *tools, wr_error *err);
void wr__grammars_free(wr_grammars *gs);
void wr__grammar_free(wr_grammar *g);
const char *wr__grammar_tool(const wr_grammar *g);
/* The policy's grammar for a tool name (its own `tools:` first, then the
 * bundled one, built on first use) in *out, or NULL: then the CSC rules
 * alone apply. An error (out of memory building it) must fail closed. */
int wr__grammar_for(const wr_policy *p, const char *name, const wr_grammar **out, wr_error *err);
/* The bundled grammars (policies/grammars/TOOL.yaml, checked and turned
 * into JSON at build time by grammar_compile.c): the JSON text, or NULL. */
const char *wr__grammar_bundled_json(const char *tool);
/* The same parsed (new reference), or NULL. */
json_object *wr__grammar_bundled_doc(const char *tool);

/* What a script or module operand is checked against. */
typedef struct wr_grammar_env {
    const wr_policy *p;
    const wr_command *cmd;
} wr_grammar_env;

typedef struct wr_parsed_opt {
    char short_name;
    const char *long_name;
} wr_parsed_opt;

/* argv as the tool reads it. */
typedef struct wr_parsed {
    const char *effect; /* highest effect other than indirect_exec */
    size_t effect_elem; /* the element that raised it (0: the tool itself) */
    const char *effect_why;
    bool indirect; /* ind describes the first indirect execution */
    wr_indirect ind;
    wr_parsed_opt opts[WR_CONTRACT_MAX_ARGV];
    size_t nopts;
    size_t subs[WR_GRAMMAR_MAX_DEPTH]; /* argv indexes of the subcommands */
    size_t nsubs;
    size_t operands[WR_CONTRACT_MAX_ARGV]; /* argv indexes */
    size_t noperands;
} wr_parsed;

void wr__grammar_parse(const wr_grammar *g, const wr_strv *argv, const wr_grammar_env *env, wr_parsed *out);
/* Whether a deny_argv_prefixes or classify rule matches argv as parsed. */
bool wr__parsed_rule_matches(const wr_strv *rule, const wr_strv *argv, const wr_parsed *pa);

/* The basename of argv[0]: what allow_commands names are compared with. */
const char *wr__exe_name(const char *argv0);
/* Whether argv[0] (which contains '/') is the very file that its basename
 * resolves to on the sandbox PATH. */
bool wr__argv0_is_path_resolution(const char *argv0);

#define WR_SANDBOX_PATH "/usr/local/bin:/usr/bin:/bin"

#endif
