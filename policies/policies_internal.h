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
/* The effect the trusted rules give one argv, or NULL (first match wins).
 * rule_out (may be NULL) receives the matching rule. */
const char *wr__classify_argv(const wr_policy *p, const wr_strv *argv, const wr_classify_rule **rule_out);

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

/* The basename of argv[0]: what allow_commands names are compared with. */
const char *wr__exe_name(const char *argv0);
/* Whether argv[0] (which contains '/') is the very file that its basename
 * resolves to on the sandbox PATH. */
bool wr__argv0_is_path_resolution(const char *argv0);

#define WR_SANDBOX_PATH "/usr/local/bin:/usr/bin:/bin"

#endif
