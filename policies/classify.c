/* Trusted effect classification.
 *
 * The agent proposes an effect type for each command; the policy decides on
 * the effect the *trusted* rules give it (the policy's `classify` rules
 * first, then the bundled pack below), and classification may only raise the
 * severity: an agent that calls `git push` "observe" is treated as
 * mutate_repo, one that calls `git status` "deploy" keeps its own "deploy".
 *
 * Rule matching: the first rule element is compared with the basename of
 * argv[0]; each further element must occur, in order, somewhere in the rest
 * of argv (so `git -C dir push` is still `git push`). An element "-x" also
 * matches inside a cluster of short options ("-ix"), and "--opt" matches
 * "--opt=value". Matching more than an exact prefix can only over-classify,
 * which at worst asks for approval or denies: the safe direction. */
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policies/policies_internal.h"

#define R(effect, ...)                                                                                                 \
    {                                                                                                                  \
        {__VA_ARGS__, NULL}, NULL, effect                                                                              \
    }
#define H(effect, host)                                                                                                \
    {                                                                                                                  \
        {NULL}, host, effect                                                                                           \
    }

/* Tools with an argument grammar (policies/grammars/) get their effects
 * from it; these rules cover the tools that have none. */
static const struct pack_rule {
    const char *argv[6];
    const char *host;
    const char *effect;
} bundled_pack[] = {
    /* Payment APIs first: a curl POST to Stripe is a financial action, not
     * a mere fetch (CSC fixture decision-approval-classified-effect-012). */
    H("financial_action", "*.stripe.com"),
    H("financial_action", "stripe.com"),
    H("financial_action", "*.paypal.com"),
    H("financial_action", "*.braintreegateway.com"),
    H("financial_action", "*.adyen.com"),
    H("financial_action", "*.squareup.com"),
    /* secrets */
    R("touch_secrets", "gpg", "-d"),
    R("touch_secrets", "gpg", "--decrypt"),
    R("touch_secrets", "pass"),
    R("touch_secrets", "vault", "read"),
    R("touch_secrets", "vault", "kv"),
    R("touch_secrets", "op", "read"),
    R("touch_secrets", "kubectl", "get", "secret"),
    R("touch_secrets", "kubectl", "get", "secrets"),
    R("touch_secrets", "aws", "secretsmanager"),
    R("touch_secrets", "gcloud", "secrets"),
    R("touch_secrets", "ssh-add"),
    /* deployment */
    R("deploy", "kubectl", "apply"),
    R("deploy", "kubectl", "create"),
    R("deploy", "kubectl", "delete"),
    R("deploy", "kubectl", "patch"),
    R("deploy", "kubectl", "replace"),
    R("deploy", "kubectl", "rollout"),
    R("deploy", "kubectl", "scale"),
    R("deploy", "kubectl", "set"),
    R("deploy", "kubectl", "edit"),
    R("deploy", "kubectl", "exec"),
    R("deploy", "kubectl", "run"),
    R("deploy", "kubectl", "drain"),
    R("deploy", "helm", "install"),
    R("deploy", "helm", "upgrade"),
    R("deploy", "helm", "uninstall"),
    R("deploy", "helm", "rollback"),
    R("deploy", "helm", "delete"),
    R("deploy", "terraform", "apply"),
    R("deploy", "terraform", "destroy"),
    R("deploy", "terraform", "import"),
    R("deploy", "tofu", "apply"),
    R("deploy", "pulumi", "up"),
    R("deploy", "pulumi", "destroy"),
    R("deploy", "docker", "push"),
    R("deploy", "podman", "push"),
    R("deploy", "yarn", "publish"),
    R("deploy", "pnpm", "publish"),
    R("deploy", "cargo", "publish"),
    R("deploy", "twine", "upload"),
    R("deploy", "gh", "release"),
    R("deploy", "ansible-playbook"),
    R("deploy", "gcloud", "deploy"),
    R("deploy", "flyctl", "deploy"),
    R("deploy", "fly", "deploy"),
    /* repository mutation */
    R("mutate_repo", "hg", "commit"),
    R("mutate_repo", "hg", "push"),
    R("mutate_repo", "svn", "commit"),
    /* network fetches */
    R("fetch_external", "curl"),
    R("fetch_external", "wget"),
    R("fetch_external", "http"),
    R("fetch_external", "https"),
    R("fetch_external", "nc"),
    R("fetch_external", "ncat"),
    R("fetch_external", "socat"),
    R("fetch_external", "telnet"),
    R("fetch_external", "ftp"),
    R("fetch_external", "scp"),
    R("fetch_external", "sftp"),
    R("fetch_external", "ssh"),
    R("fetch_external", "rsync"),
    R("fetch_external", "pip", "install"),
    R("fetch_external", "pip3", "install"),
    R("fetch_external", "pip", "download"),
    R("fetch_external", "python3", "pip", "install"),
    R("fetch_external", "python", "pip", "install"),
    R("fetch_external", "yarn", "install"),
    R("fetch_external", "yarn", "add"),
    R("fetch_external", "pnpm", "install"),
    R("fetch_external", "pnpm", "add"),
    R("fetch_external", "go", "get"),
    R("fetch_external", "go", "install"),
    R("fetch_external", "go", "mod", "download"),
    R("fetch_external", "cargo", "fetch"),
    R("fetch_external", "cargo", "install"),
    R("fetch_external", "apt-get"),
    R("fetch_external", "apt"),
    R("fetch_external", "docker", "pull"),
    R("fetch_external", "podman", "pull"),
    R("fetch_external", "gh"),
    /* local file changes */
    R("transform_local", "rmdir"),
    R("transform_local", "unlink"),
    R("transform_local", "shred"),
    R("transform_local", "ln"),
    R("transform_local", "chmod"),
    R("transform_local", "chown"),
    R("transform_local", "chgrp"),
    R("transform_local", "truncate"),
    R("transform_local", "dd"),
    R("transform_local", "install"),
    R("transform_local", "sed", "-i"),
    R("transform_local", "sed", "--in-place"),
    R("transform_local", "perl", "-i"),
    R("transform_local", "unzip"),
    R("transform_local", "zip"),
    R("transform_local", "gzip"),
    R("transform_local", "gunzip"),
    R("transform_local", "bzip2"),
    R("transform_local", "xz"),
    R("transform_local", "zstd"),
    R("transform_local", "split"),
    R("transform_local", "csplit"),
};

#undef R
#undef H

static const char *const core_effects[] = {"observe",     "transform_local", "fetch_external",
                                           "mutate_repo", "deploy",          "touch_secrets"};

int wr__effect_severity(const char *effect)
{
    for (int i = 0; i < (int)(sizeof core_effects / sizeof core_effects[0]); i++)
        if (!strcmp(effect, core_effects[i]))
            return i;
    /* Extension types (financial_action, ...) exist only because someone
     * found them sensitive enough to name: rank them above every core type. */
    return (int)(sizeof core_effects / sizeof core_effects[0]);
}

void wr__classify_rule_free(wr_classify_rule *r)
{
    wr_strv_free(&r->argv_prefix);
    free(r->host_pattern);
    free(r->effect);
}

int wr__classify_append_bundled(wr_policy *p, wr_error *err)
{
    size_t n = sizeof bundled_pack / sizeof bundled_pack[0];
    wr_classify_rule *nr = realloc(p->classify, (p->nclassify + n) * sizeof *nr);
    if (!nr)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    p->classify = nr;
    for (size_t i = 0; i < n; i++) {
        wr_classify_rule *r = &p->classify[p->nclassify++];
        *r = (wr_classify_rule){0};
        for (const char *const *a = bundled_pack[i].argv; *a; a++)
            if (wr_strv_push(&r->argv_prefix, *a))
                return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        r->host_pattern = bundled_pack[i].host ? strdup(bundled_pack[i].host) : NULL;
        r->effect = strdup(bundled_pack[i].effect);
        if (!r->effect || (bundled_pack[i].host && !r->host_pattern))
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    return WR_OK;
}

const char *wr__exe_name(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    return slash ? slash + 1 : argv0;
}

/* An agent may write /workspace/git; only the file that "git" resolves to
 * on the sandbox PATH is git. Compared by (device, inode), and the
 * directory argv0 names must itself be that PATH directory once symlinks
 * are resolved (/bin is /usr/bin on merged-/usr systems): a symlink planted
 * in the workspace that points at /usr/bin/git now could point elsewhere by
 * the time the command runs. */
bool wr__argv0_is_path_resolution(const char *argv0)
{
    const char *name = wr__exe_name(argv0);
    size_t dl = (size_t)(name - argv0);
    char dir[PATH_MAX], real_dir[PATH_MAX], cand[PATH_MAX], real_cand_dir[PATH_MAX];
    struct stat given, resolved;
    if (argv0[0] != '/' || !*name || dl >= sizeof dir)
        return false;
    memcpy(dir, argv0, dl);
    dir[dl] = '\0';
    if (!realpath(dir, real_dir) || stat(argv0, &given) != 0 || !S_ISREG(given.st_mode))
        return false;
    for (const char *p = WR_SANDBOX_PATH; *p;) {
        size_t pl = strcspn(p, ":");
        int n = snprintf(cand, sizeof cand, "%.*s/%s", (int)pl, p, name);
        if (n > 0 && (size_t)n < sizeof cand && access(cand, X_OK) == 0 && stat(cand, &resolved) == 0 &&
            S_ISREG(resolved.st_mode)) {
            cand[pl] = '\0';
            return realpath(cand, real_cand_dir) && !strcmp(real_cand_dir, real_dir) &&
                   given.st_dev == resolved.st_dev && given.st_ino == resolved.st_ino;
        }
        p += pl + (p[pl] == ':');
    }
    return false;
}

/* ---- rule matching -------------------------------------------------------- */
static bool token_matches(const char *rule, const char *arg)
{
    if (!strcmp(rule, arg))
        return true;
    size_t rl = strlen(rule);
    if (rl > 2 && rule[0] == '-' && rule[1] == '-')
        return !strncmp(arg, rule, rl) && arg[rl] == '=';
    if (rl == 2 && rule[0] == '-' && arg[0] == '-' && arg[1] != '-')
        return strchr(arg + 1, rule[1]) != NULL;
    return false;
}

/* name: wr__exe_name(argv->v[0]), computed once by callers that try many rules. */
static bool rule_matches_named(const wr_strv *rule, const wr_strv *argv, const char *name)
{
    if (!rule->n)
        return true;
    const char *a0 = strchr(rule->v[0], '/') ? argv->v[0] : name;
    if (strcmp(rule->v[0], a0))
        return false;
    size_t j = 1;
    for (size_t i = 1; i < argv->n && j < rule->n; i++)
        if (token_matches(rule->v[j], argv->v[i]))
            j++;
    return j == rule->n;
}

bool wr__argv_rule_matches(const wr_strv *rule, const wr_strv *argv)
{
    return rule_matches_named(rule, argv, wr__exe_name(argv->v[0]));
}

/* The host of a URL-ish argument: "scheme://[user@]host[:port]/...",
 * "user@host:path" or a bare "host/path" as curl accepts it. Returns the
 * length of the host at *start, 0 if none. */
size_t wr__arg_host(const char *arg, const char **start)
{
    const char *s = strstr(arg, "://");
    bool url = s != NULL;
    if (url)
        s += 3;
    else if (arg[0] == '-' || arg[0] == '/' || arg[0] == '.')
        return 0;
    else
        s = arg;
    size_t end = strcspn(s, "/?#");
    const char *at = memchr(s, '@', end);
    if (at) {
        end -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    /* "[v6::addr]" keeps its colons */
    size_t hl = s[0] == '[' ? strcspn(s, "]") + 1 : strcspn(s, ":/?#");
    if (hl > end)
        hl = end;
    /* outside a URL, only dotted words look like hosts ("deploy" does not) */
    if (hl == 0 || hl > 253 || (!url && !memchr(s, '.', hl)))
        return 0;
    *start = s;
    return hl;
}

static bool host_matches(const char *pattern, const wr_strv *argv)
{
    for (size_t i = 1; i < argv->n; i++) {
        const char *h;
        size_t hl = wr__arg_host(argv->v[i], &h);
        char host[256];
        if (!hl)
            continue;
        memcpy(host, h, hl);
        host[hl] = '\0';
        if (fnmatch(pattern, host, FNM_CASEFOLD) == 0)
            return true;
    }
    return false;
}

const char *wr__classify_argv(const wr_policy *p, const wr_strv *argv, const struct wr_parsed *pa,
                              const wr_classify_rule **rule_out)
{
    const char *name = wr__exe_name(argv->v[0]);
    for (size_t i = 0; i < p->nclassify; i++) {
        const wr_classify_rule *r = &p->classify[i];
        bool m = !r->argv_prefix.n || (pa ? wr__parsed_rule_matches(&r->argv_prefix, argv, pa)
                                          : rule_matches_named(&r->argv_prefix, argv, name));
        if (!m)
            continue;
        if (r->host_pattern && !host_matches(r->host_pattern, argv))
            continue;
        if (rule_out)
            *rule_out = r;
        return r->effect;
    }
    return NULL;
}
