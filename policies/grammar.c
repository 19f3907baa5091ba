/* Argument grammars: how a tool parses its argv, as data.
 *
 * A grammar (one YAML file per tool in policies/grammars/, or a policy's
 * `tools:` entry) lists a tool's subcommands, options and operands and maps
 * each to an effect. wr__grammar_parse() reads argv exactly the way the tool
 * does — getopt_long (clusters, attached and detached values, "--opt=val",
 * unique-prefix abbreviations and their ambiguity, "--" ends options, GNU
 * permutation or stop at the first operand) or git's parse-options — and
 * the command's effect is the highest one met. What the grammar does not
 * know (an option, a subcommand, an abbreviation that is ambiguous) has the
 * grammar's `unknown` effect, indirect_exec unless the grammar says
 * otherwise: a new or obscure option fails closed instead of passing as
 * observe, which is what a list of dangerous spellings could never do. */
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policies_internal.h"
#include "schemas/schemas.h"

#define GRAMMAR_SCHEMA "warrant.grammar.schema.json"
/* An option met on the way to indirect_exec: the reason names its element. */
#define OPTION_WHY "option is indirect_exec in its grammar"

typedef enum gr_arg {
    ARG_NONE,
    ARG_REQUIRED,
    ARG_OPTIONAL /* only attached: -xVAL, --opt=VAL */
} gr_arg;

/* What an option's value or an operand is, beyond a string. */
typedef enum gr_kind {
    KIND_PLAIN,
    KIND_SCRIPT,  /* a file of program text the tool runs */
    KIND_MODULE,  /* a module name the interpreter runs (python3 -m) */
    KIND_COMMAND, /* the argv of another program, up to a terminator */
} gr_kind;

/* Strings point into the grammar's JSON document, which the grammar keeps. */
typedef struct gr_value_rule {
    const char *match; /* fnmatch pattern, case-insensitive (URL schemes, git config keys) */
    const char *effect;
} gr_value_rule;

typedef struct gr_values {
    gr_kind kind;
    gr_value_rule *rules; /* first match overrides the effect */
    size_t nrules;
    wr_strv terminators; /* KIND_COMMAND: ";" or "{} +" (two words) */
} gr_values;

typedef struct gr_option {
    char short_name;       /* or 0 */
    const char *long_name; /* or NULL */
    gr_arg arg;
    const char *effect;
    bool stop;  /* the rest of argv belongs to the program (python3 -c, -m) */
    bool exits; /* prints and exits (--version): no program operand needed */
    gr_values values;
} gr_option;

typedef struct gr_level gr_level;
struct gr_level {
    const char *name;
    const char *effect;    /* of reaching this level at all */
    const char *unknown;   /* effect of an option or subcommand not listed */
    bool permute;          /* GNU: options after operands still count */
    bool abbrev;           /* unique prefixes of long options */
    bool clusters;         /* -abc is -a -b -c, -ovalue is -o value */
    bool negation;         /* git: --no-OPT is OPT */
    bool numbers;          /* git log -5 */
    bool old_style;        /* tar xzf: a first word without "-" is a cluster */
    bool single_dash_long; /* find -name */
    gr_option *opts;
    size_t nopts;
    gr_level *subs;
    size_t nsubs;
    const char *operand_effect;
    bool operand_required; /* none given: the tool reads its program from stdin */
    bool operand_stop;     /* the first operand ends the tool's own options (script) */
    int64_t at_most;       /* operands past this many have the effect `beyond` (-1: no limit) */
    const char *beyond;
    gr_values operands;
};

struct wr_grammar {
    char *tool;
    json_object *doc; /* owns every string of the levels */
    gr_level root;
};

/* ---- loading -------------------------------------------------------------- */
static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static const char *str_or(json_object *o, const char *key, const char *dflt)
{
    json_object *v = get(o, key);
    return v ? json_object_get_string(v) : dflt;
}

static bool bool_or(json_object *o, const char *key, bool dflt)
{
    json_object *v = get(o, key);
    return v ? json_object_get_boolean(v) : dflt;
}

static int oom(wr_error *err)
{
    return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
}

static void values_free(gr_values *v)
{
    free(v->rules);
    wr_strv_free(&v->terminators);
}

static int load_values(json_object *o, gr_values *v, wr_error *err)
{
    static const char *const kinds[] = {"plain", "script", "module", "command"};
    const char *k = json_object_get_string(get(o, "kind"));
    for (size_t i = 0; k && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(k, kinds[i]))
            v->kind = (gr_kind)i;
    json_object *rules = get(o, "values");
    size_t n = rules ? json_object_array_length(rules) : 0;
    if (n && !(v->rules = calloc(n, sizeof *v->rules)))
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(rules, i);
        gr_value_rule *vr = &v->rules[v->nrules++];
        vr->match = str_or(r, "match", "");
        vr->effect = str_or(r, "effect", WR_EFFECT_INDIRECT);
    }
    json_object *t = get(o, "terminators");
    if (t)
        return wr_strv_from_json(t, &v->terminators, err);
    return v->kind == KIND_COMMAND && wr_strv_push(&v->terminators, ";") ? oom(err) : WR_OK;
}

static int load_option(json_object *o, gr_option *opt, wr_error *err)
{
    static const char *const args[] = {"none", "required", "optional"};
    const char *s = json_object_get_string(get(o, "short"));
    opt->short_name = s ? s[0] : 0;
    const char *a = json_object_get_string(get(o, "arg"));
    for (size_t i = 0; a && i < sizeof args / sizeof args[0]; i++)
        if (!strcmp(a, args[i]))
            opt->arg = (gr_arg)i;
    opt->stop = bool_or(o, "stop", false);
    opt->exits = bool_or(o, "exits", false);
    opt->effect = str_or(o, "effect", "observe");
    opt->long_name = str_or(o, "long", NULL);
    return load_values(o, &opt->values, err);
}

static void level_free(gr_level *l)
{
    for (size_t i = 0; i < l->nopts; i++) {
        values_free(&l->opts[i].values);
    }
    free(l->opts);
    for (size_t i = 0; i < l->nsubs; i++)
        level_free(&l->subs[i]);
    free(l->subs);
    values_free(&l->operands);
}

/* A level's options: its own `options`, then every named set of
 * `options_from` (shared lists such as git's diff options). */
static int load_options(json_object *lv, json_object *sets, gr_level *l, wr_error *err)
{
    json_object *own = get(lv, "options"), *from = get(lv, "options_from");
    size_t n = own ? json_object_array_length(own) : 0;
    for (size_t i = 0; from && i < json_object_array_length(from); i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(from, i));
        json_object *set = get(sets, name);
        if (!set)
            return wr_errorf(err, WR_E_INVALID, "", "options_from names no option set '%.100s'", name);
        n += json_object_array_length(set);
    }
    if (n && !(l->opts = calloc(n, sizeof *l->opts)))
        return oom(err);
    for (size_t i = 0; own && i < json_object_array_length(own); i++)
        if (load_option(json_object_array_get_idx(own, i), &l->opts[l->nopts++], err))
            return err->code;
    for (size_t i = 0; from && i < json_object_array_length(from); i++) {
        json_object *set = get(sets, json_object_get_string(json_object_array_get_idx(from, i)));
        for (size_t j = 0; j < json_object_array_length(set); j++)
            if (load_option(json_object_array_get_idx(set, j), &l->opts[l->nopts++], err))
                return err->code;
    }
    return WR_OK;
}

/* Subcommands inherit the effect and `unknown` of their parent. */
static int load_level(json_object *lv, json_object *sets, const gr_level *parent, const char *name, gr_level *l,
                      wr_error *err)
{
    l->name = name;
    l->effect = str_or(lv, "effect", parent ? parent->effect : "observe");
    l->unknown = str_or(lv, "unknown", parent ? parent->unknown : WR_EFFECT_INDIRECT);
    /* The parsing style is each level's own (git's global options are
     * exact and come first; its subcommands permute and abbreviate). */
    l->permute = bool_or(lv, "permute", true);
    l->abbrev = bool_or(lv, "abbrev", true);
    l->clusters = bool_or(lv, "clusters", true);
    l->negation = bool_or(lv, "negation", false);
    l->numbers = bool_or(lv, "numbers", false);
    l->old_style = bool_or(lv, "old_style", false);
    l->single_dash_long = bool_or(lv, "single_dash_long", false);
    int rc = load_options(lv, sets, l, err);
    if (rc)
        return rc;
    json_object *ops = get(lv, "operands");
    l->operand_effect = str_or(ops, "effect", "observe");
    l->operand_required = bool_or(ops, "required", false);
    l->operand_stop = bool_or(ops, "stop", false);
    json_object *am = get(ops, "at_most");
    l->at_most = am ? json_object_get_int64(am) : -1;
    l->beyond = str_or(ops, "beyond", WR_EFFECT_INDIRECT);
    if (ops && (rc = load_values(ops, &l->operands, err)))
        return rc;
    json_object *subs = get(lv, "subcommands");
    size_t n = subs ? (size_t)json_object_object_length(subs) : 0;
    if (n && !(l->subs = calloc(n, sizeof *l->subs)))
        return oom(err);
    if (!subs)
        return WR_OK;
    json_object_object_foreach(subs, k, v)
    {
        if ((rc = load_level(v, sets, l, k, &l->subs[l->nsubs++], err))) {
            wr_error_prefix(err, "subcommand %s", k);
            return rc;
        }
    }
    return WR_OK;
}

static int grammar_from_json(const char *tool, json_object *doc, wr_grammar **out, wr_error *err)
{
    *out = NULL;
    int rc;
    wr_grammar *g = calloc(1, sizeof *g);
    if (!g || !(g->tool = strdup(tool))) {
        free(g);
        return oom(err);
    }
    g->doc = json_object_get(doc);
    if ((rc = load_level(doc, get(doc, "option_sets"), NULL, tool, &g->root, err))) {
        wr__grammar_free(g);
        return rc;
    }
    *out = g;
    return WR_OK;
}

void wr__grammar_free(wr_grammar *g)
{
    if (!g)
        return;
    free(g->tool);
    level_free(&g->root);
    json_object_put(g->doc);
    free(g);
}

const char *wr__grammar_tool(const wr_grammar *g)
{
    return g->tool;
}

/* A policy's grammars, one slot per allowed command. The policy's own
 * (`tools`) are built at load, where their errors belong; a bundled one
 * (checked when it was compiled into the binary) on the first argv that
 * names its tool: a policy allows dozens of tools, a contract names a few,
 * and building them all was most of a policy load (~16 M instructions for
 * the default pack, at every CLI start). */
typedef struct gr_slot {
    const char *tool;        /* the policy's allow_commands entry */
    bool bundled;            /* built from the bundled grammar on first use */
    _Atomic(wr_grammar *) g; /* NULL until built; never changes after */
} gr_slot;

struct wr_grammars {
    pthread_mutex_t mu; /* one builder at a time: a policy serves concurrent checks */
    size_t n;
    gr_slot slots[];
};

int wr__grammar_for(const wr_policy *p, const char *name, const wr_grammar **out, wr_error *err)
{
    *out = NULL;
    wr_grammars *gs = p->grammars;
    gr_slot *s = NULL;
    for (size_t i = 0; gs && i < gs->n && !s; i++)
        if (!strcmp(gs->slots[i].tool, name))
            s = &gs->slots[i];
    if (!s)
        return WR_OK;
    if ((*out = atomic_load_explicit(&s->g, memory_order_acquire)) || !s->bundled)
        return WR_OK;
    pthread_mutex_lock(&gs->mu);
    int rc = WR_OK;
    wr_grammar *g = atomic_load_explicit(&s->g, memory_order_relaxed);
    if (!g) {
        json_object *doc = wr__grammar_bundled_doc(name);
        rc = doc ? grammar_from_json(name, doc, &g, err) : oom(err);
        json_object_put(doc);
        if (rc == WR_OK)
            atomic_store_explicit(&s->g, g, memory_order_release);
    }
    pthread_mutex_unlock(&gs->mu);
    if (rc != WR_OK)
        wr_error_prefix(err, "bundled grammar %s", name);
    *out = g;
    return rc;
}

/* The policy's own grammars (`tools`, checked against the grammar schema)
 * are built now; a bundled one is only noted; the names with neither are
 * kept for describe_policy and `warrant policy test`. */
int wr__grammars_load(wr_policy *p, json_object *tools, wr_error *err)
{
    size_t n = p->allow_commands.n;
    wr_grammars *gs = calloc(1, sizeof *gs + n * sizeof gs->slots[0]);
    if (!gs)
        return oom(err);
    pthread_mutex_init(&gs->mu, NULL);
    p->grammars = gs;
    wr_schema *schema = NULL;
    int rc = WR_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        const char *name = p->allow_commands.v[i];
        json_object *own = get(tools, name);
        gr_slot *s = &gs->slots[gs->n++];
        s->tool = name;
        atomic_init(&s->g, NULL);
        if (own) {
            wr_grammar *g = NULL;
            if (!schema && !(schema = wr_schema_embedded(GRAMMAR_SCHEMA, err)))
                rc = err ? err->code : WR_E_INTERNAL;
            if (!rc && (rc = wr_schema_validate(schema, own, err)))
                wr_error_prefix(err, "/tools/%s: grammar does not match %s", name, GRAMMAR_SCHEMA);
            if (!rc && (rc = grammar_from_json(name, own, &g, err)))
                wr_error_prefix(err, "/tools/%s", name);
            atomic_init(&s->g, g);
        } else if (wr__grammar_bundled_json(name)) {
            s->bundled = true;
        } else if (wr_strv_push(&p->without_grammar, name)) {
            rc = oom(err);
        }
    }
    wr_schema_free(schema);
    return rc;
}

void wr__grammars_free(wr_grammars *gs)
{
    if (!gs)
        return;
    for (size_t i = 0; i < gs->n; i++)
        wr__grammar_free(atomic_load_explicit(&gs->slots[i].g, memory_order_relaxed));
    pthread_mutex_destroy(&gs->mu);
    free(gs);
}

json_object *wr__grammar_bundled_doc(const char *tool)
{
    const char *json = wr__grammar_bundled_json(tool);
    /* compiled from our own files at build time: no limits to enforce */
    return json ? json_tokener_parse(json) : NULL;
}

/* ---- parsing -------------------------------------------------------------- */
typedef struct parser {
    const wr_strv *argv;
    const wr_grammar_env *env;
    wr_parsed *out;
    const gr_level *level;
    bool program_given;    /* a script, module or inline program was named */
    size_t level_operands; /* operands at the current level */
} parser;

/* Records an effect met at argv[elem]; the highest one wins, the first
 * indirect execution is kept with where its wrapped program is. */
static void meet(parser *ps, const char *effect, size_t elem, const char *why)
{
    wr_parsed *o = ps->out;
    if (!strcmp(effect, WR_EFFECT_INDIRECT)) {
        if (!o->indirect) {
            o->indirect = true;
            o->ind = (wr_indirect){why, elem, -1, ps->argv->n, -1};
        }
        return;
    }
    if (wr__effect_severity(effect) > wr__effect_severity(o->effect)) {
        o->effect = effect;
        o->effect_elem = elem;
        o->effect_why = why;
    }
}

static const char *value_effect(const gr_values *v, const char *value, const char *dflt)
{
    for (size_t i = 0; i < v->nrules; i++)
        if (fnmatch(v->rules[i].match, value, FNM_CASEFOLD) == 0)
            return v->rules[i].effect;
    return dflt;
}

static bool terminates(const wr_strv *terms, const wr_strv *argv, size_t i)
{
    for (size_t t = 0; t < terms->n; t++) {
        const char *term = terms->v[t], *sp = strchr(term, ' ');
        if (!sp ? !strcmp(argv->v[i], term)
                : i > 0 && !strcmp(argv->v[i], sp + 1) && !strncmp(argv->v[i - 1], term, (size_t)(sp - term)) &&
                      argv->v[i - 1][sp - term] == '\0')
            return true;
    }
    return false;
}

/* Never program text an agent may run as a "script": system locations
 * (the standard library's timeit.py, a package manager's CLI), devices
 * (/dev/stdin) and installed dependencies. */
static const char *const never_scripts[] = {"/usr", "/dev", "/proc", "/sys", "/etc", "/bin", "/sbin", "/lib", "/opt"};

static bool script_path_ok(const wr_policy *p, const wr_command *cmd, const char *path)
{
    for (size_t i = 0; i < sizeof never_scripts / sizeof never_scripts[0]; i++)
        if (wr_path_within(path, never_scripts[i]))
            return false;
    if (strstr(path, "/node_modules/") || (strlen(path) >= 13 && !strcmp(path + strlen(path) - 13, "/node_modules")))
        return false;
    bool declared = false;
    for (size_t i = 0; i < cmd->read_paths.n && !declared; i++) {
        const char *rp = cmd->read_paths.v[i];
        declared = wr_path_is_glob(rp) ? wr_path_glob_match(rp, path) : wr_path_within(path, rp);
    }
    bool allowed = false;
    for (size_t i = 0; i < p->allowed_read_prefixes.n && !allowed; i++)
        allowed = wr_path_within(path, p->allowed_read_prefixes.v[i]);
    return declared && allowed;
}

/* A script operand: inside the command's declared read paths and under the
 * policy's read prefixes, by name and, when it exists here, once symlinks
 * are resolved too (a workspace symlink to /usr/lib/python3/timeit.py). */
static bool script_in_scope(const wr_grammar_env *env, const char *value)
{
    if (!value[0] || !strcmp(value, "-") || strlen(value) >= PATH_MAX)
        return false;
    char joined[2 * PATH_MAX], real[PATH_MAX], *norm = NULL;
    snprintf(joined, sizeof joined, "%s/%s", value[0] == '/' ? "" : env->cmd->cwd, value);
    if (wr_path_normalize(joined, &norm, NULL))
        return false;
    bool ok = script_path_ok(env->p, env->cmd, norm);
    if (ok && realpath(norm, real))
        ok = script_path_ok(env->p, env->cmd, real);
    free(norm);
    return ok;
}

/* A value or operand: its kind decides what it may run. Returns the index
 * of the last argv element consumed. */
static size_t take_value(parser *ps, const gr_values *v, const char *value, size_t elem, size_t opt_elem,
                         const char *effect, const char *why)
{
    switch (v->kind) {
    case KIND_SCRIPT:
        ps->program_given = true;
        if (!ps->env || !script_in_scope(ps->env, value))
            return meet(ps, WR_EFFECT_INDIRECT, elem,
                        "runs program text from outside the command's declared read paths in the workspace"),
                   elem;
        break;
    case KIND_MODULE:
        ps->program_given = true;
        /* the module names the program: `python3 -m pip install` is [python3, pip, install] to rules */
        if (ps->out->noperands < WR_CONTRACT_MAX_ARGV)
            ps->out->operands[ps->out->noperands++] = elem;
        if (!ps->env || !wr_strv_contains(&ps->env->p->allowed_modules, value))
            return meet(ps, WR_EFFECT_INDIRECT, elem, "runs a module the policy does not list (allowed_modules)"), elem;
        break;
    case KIND_COMMAND: {
        size_t end = elem;
        while (end < ps->argv->n && !terminates(&v->terminators, ps->argv, end))
            end++;
        if (!ps->out->indirect) {
            meet(ps, WR_EFFECT_INDIRECT, elem, "runs another program");
            ps->out->ind.wrapped = end > elem ? (long)elem : -1;
            ps->out->ind.wrapped_end = end;
            ps->out->ind.resume = end + 1 < ps->argv->n ? (long)end + 1 : -1;
        }
        return end;
    }
    case KIND_PLAIN:
        break;
    }
    const char *ve = value_effect(v, value, NULL);
    meet(ps, ve ? ve : effect, ve ? elem : opt_elem, ve ? "this value is indirect_exec in its grammar" : why);
    return elem;
}

/* Options are recorded for deny and classify rules; past the record's size
 * (a 4 000-letter cluster) a rule could miss one, so the argv fails closed. */
static void note_option(parser *ps, const gr_option *o, size_t elem)
{
    wr_parsed *out = ps->out;
    if (out->nopts < WR_CONTRACT_MAX_ARGV)
        out->opts[out->nopts++] = (wr_parsed_opt){o->short_name, o->long_name};
    else
        meet(ps, WR_EFFECT_INDIRECT, elem, "has more options than the policy can check");
}

/* One option matched; its value is attached (may be NULL) or, when
 * required, the next element. The value decides the effect when the
 * option's rules or kind say so. Returns the last element consumed. */
static size_t apply_option(parser *ps, const gr_option *o, const char *attached, size_t i, bool *stop)
{
    note_option(ps, o, i);
    if (o->exits)
        ps->program_given = true;
    const char *why = OPTION_WHY;
    *stop = *stop || o->stop;
    if (o->arg == ARG_NONE) {
        meet(ps, attached ? ps->level->unknown : o->effect, i, attached ? "option takes no value" : why);
        return i;
    }
    if (attached) {
        if (o->values.kind == KIND_COMMAND)
            return meet(ps, ps->level->unknown, i, "a program must be separate words"), i;
        take_value(ps, &o->values, attached, i, i, o->effect, why);
        return i;
    }
    if (o->arg == ARG_OPTIONAL) {
        meet(ps, o->effect, i, why);
        return i;
    }
    if (i + 1 >= ps->argv->n)
        return meet(ps, ps->level->unknown, i, "option lacks its value"), i;
    return take_value(ps, &o->values, ps->argv->v[i + 1], i + 1, i, o->effect, why);
}

/* Two entries are one option when they share a name (a grammar may list
 * an option twice); distinct options that a prefix matches make it
 * ambiguous, as glibc decides. Aliases that glibc would merge (grep's
 * --color/--colour) are then ambiguous here: refused, the safe side. */
static bool same_option(const gr_option *a, const gr_option *b)
{
    return (a->short_name && a->short_name == b->short_name) ||
           (a->long_name && b->long_name && !strcmp(a->long_name, b->long_name));
}

/* getopt_long: an exact name, else the unique option the prefix starts
 * (matches that are one option are not ambiguous); NULL with *ambiguous
 * set when they are several. */
static const gr_option *find_long(const gr_level *l, const char *name, size_t len, bool *ambiguous)
{
    const gr_option *hit = NULL;
    *ambiguous = false;
    for (size_t i = 0; i < l->nopts; i++) {
        const char *ln = l->opts[i].long_name;
        if (ln && strlen(ln) == len && !strncmp(ln, name, len))
            return &l->opts[i];
    }
    if (!l->abbrev)
        return NULL;
    for (size_t i = 0; i < l->nopts; i++) {
        const char *ln = l->opts[i].long_name;
        if (!ln || strncmp(ln, name, len))
            continue;
        if (hit && !same_option(hit, &l->opts[i]))
            *ambiguous = true;
        if (!hit)
            hit = &l->opts[i];
    }
    return *ambiguous ? NULL : hit;
}

static const gr_option *find_short(const gr_level *l, char c)
{
    for (size_t i = 0; i < l->nopts; i++)
        if (l->opts[i].short_name == c)
            return &l->opts[i];
    return NULL;
}

/* "--name[=value]" (or "-name" for single-dash long options). */
static size_t long_option(parser *ps, const char *body, size_t i, bool *stop)
{
    const gr_level *l = ps->level;
    const char *eq = strchr(body, '=');
    size_t len = eq ? (size_t)(eq - body) : strlen(body);
    bool ambiguous;
    const gr_option *o = find_long(l, body, len, &ambiguous);
    if (!o && !ambiguous && l->negation && len > 3 && !strncmp(body, "no-", 3))
        o = find_long(l, body + 3, len - 3, &ambiguous);
    if (!o)
        return meet(ps, l->unknown, i, ambiguous ? "ambiguous abbreviation" : "option not in the tool's grammar"), i;
    return apply_option(ps, o, eq ? eq + 1 : NULL, i, stop);
}

/* "-abc": each letter an option until one takes a value, which is the rest
 * of the word (or, required, the next element). */
static size_t short_cluster(parser *ps, const char *body, size_t i, bool *stop)
{
    const gr_level *l = ps->level;
    if (!l->clusters && body[1])
        return meet(ps, l->unknown, i, "option not in the tool's grammar"), i;
    for (const char *c = body; *c; c++) {
        const gr_option *o = find_short(l, *c);
        if (!o)
            return meet(ps, l->unknown, i, "option not in the tool's grammar"), i;
        if (o->arg != ARG_NONE)
            return apply_option(ps, o, c[1] ? c + 1 : NULL, i, stop);
        apply_option(ps, o, NULL, i, stop);
    }
    return i;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static size_t option(parser *ps, const char *arg, size_t i, bool *stop)
{
    const gr_level *l = ps->level;
    if (arg[1] == '-')
        return long_option(ps, arg + 2, i, stop);
    if (l->numbers && all_digits(arg + 1))
        return i;
    if (l->single_dash_long && arg[2]) {
        bool ambiguous;
        const gr_option *o = find_long(l, arg + 1, strlen(arg + 1), &ambiguous);
        if (o || !l->clusters)
            return o ? apply_option(ps, o, NULL, i, stop) : long_option(ps, arg + 1, i, stop);
    }
    return short_cluster(ps, arg + 1, i, stop);
}

static const gr_level *find_sub(const gr_level *l, const char *name)
{
    for (size_t i = 0; i < l->nsubs; i++)
        if (!strcmp(l->subs[i].name, name))
            return &l->subs[i];
    return NULL;
}

static void operand(parser *ps, size_t i)
{
    wr_parsed *out = ps->out;
    const gr_level *l = ps->level;
    if (out->noperands < WR_CONTRACT_MAX_ARGV)
        out->operands[out->noperands++] = i;
    if (l->at_most >= 0 && ++ps->level_operands > (size_t)l->at_most)
        meet(ps, l->beyond, i, "operand past the input operands");
    take_value(ps, &l->operands, ps->argv->v[i], i, i, l->operand_effect, "operand");
}

/* tar's first word without a dash ("xzf a.tar") is a cluster whose
 * value-taking letters take the following words in order. */
static size_t old_style(parser *ps, size_t i)
{
    const gr_level *l = ps->level;
    size_t next = i + 1;
    for (const char *c = ps->argv->v[i]; *c; c++) {
        const gr_option *o = find_short(l, *c);
        bool stop = false;
        if (!o) {
            meet(ps, l->unknown, i, "option not in the tool's grammar");
            continue;
        }
        if (o->arg != ARG_REQUIRED) {
            apply_option(ps, o, NULL, i, &stop);
            continue;
        }
        if (next >= ps->argv->n) {
            meet(ps, l->unknown, i, "option lacks its value");
            continue;
        }
        note_option(ps, o, i);
        take_value(ps, &o->values, ps->argv->v[next], next, i, o->effect, OPTION_WHY);
        next++;
    }
    return next - 1;
}

void wr__grammar_parse(const wr_grammar *g, const wr_strv *argv, const wr_grammar_env *env, wr_parsed *out)
{
    *out = (wr_parsed){.effect = g->root.effect};
    parser ps = {argv, env, out, &g->root, false, 0};
    bool options_done = false, stop = false;
    size_t i = 1;
    if (g->root.old_style && argv->n > 1 && argv->v[1][0] != '-')
        i = old_style(&ps, 1) + 1;
    for (; i < argv->n && !stop; i++) {
        const char *arg = argv->v[i];
        if (!options_done && !strcmp(arg, "--")) {
            options_done = true;
            continue;
        }
        if (!options_done && arg[0] == '-' && arg[1]) {
            i = option(&ps, arg, i, &stop);
            continue;
        }
        if (ps.level->nsubs && !options_done) {
            const gr_level *sub = find_sub(ps.level, arg);
            if (!sub) {
                meet(&ps, ps.level->unknown, i, "subcommand not in the tool's grammar");
                break;
            }
            if (out->nsubs == WR_GRAMMAR_MAX_DEPTH) {
                meet(&ps, WR_EFFECT_INDIRECT, i, "nests subcommands deeper than the policy can check");
                break;
            }
            out->subs[out->nsubs++] = i;
            ps.level = sub;
            ps.level_operands = 0;
            meet(&ps, sub->effect, i, sub->name);
            continue;
        }
        operand(&ps, i);
        if (ps.level->operand_stop)
            stop = true;
        else if (!ps.level->permute)
            options_done = true;
    }
    /* Words after a stop belong to the program: operands for rule matching. */
    for (; i < argv->n && out->noperands < WR_CONTRACT_MAX_ARGV; i++)
        out->operands[out->noperands++] = i;
    if (ps.level->operand_required && !ps.program_given && !out->noperands)
        meet(&ps, WR_EFFECT_INDIRECT, 0, "names no program, so it reads program text from standard input");
}

/* A deny or classify rule against a parsed argv: rule[0] names the tool;
 * a later word starting with "-" must be an option the tool parsed
 * (by either spelling: "-r" also inside "-rf", "--recursive"); the other
 * words must be the subcommands, in order, and then operands in order
 * (a word "-name" is also a single-dash long option, "-rf" two letters).
 * `git grep push` is therefore not `git push`, and `python3 tool.py -c x`
 * is not `python3 -c`. */
static bool parsed_option(const wr_parsed *pa, const char *w)
{
    for (size_t k = 0; k < pa->nopts; k++) {
        const wr_parsed_opt *o = &pa->opts[k];
        if (o->long_name && !strcmp(w + 1 + (w[1] == '-'), o->long_name))
            return true;
    }
    if (w[1] == '-')
        return false;
    for (const char *c = w + 1; *c; c++) {
        bool found = false;
        for (size_t k = 0; k < pa->nopts && !found; k++)
            found = pa->opts[k].short_name == *c;
        if (!found)
            return false;
    }
    return true;
}

bool wr__parsed_rule_matches(const wr_strv *rule, const wr_strv *argv, const wr_parsed *pa)
{
    if (!rule->n || strcmp(rule->v[0], strchr(rule->v[0], '/') ? argv->v[0] : wr__exe_name(argv->v[0])))
        return false;
    size_t sub = 0, opnd = 0;
    for (size_t j = 1; j < rule->n; j++) {
        const char *w = rule->v[j];
        bool found = false;
        if (w[0] == '-' && w[1]) {
            if (!parsed_option(pa, w))
                return false;
            continue;
        }
        if (sub < pa->nsubs) {
            if (strcmp(w, argv->v[pa->subs[sub]]))
                return false;
            sub++;
            continue;
        }
        while (opnd < pa->noperands && !found)
            found = !strcmp(w, argv->v[pa->operands[opnd++]]);
        if (!found)
            return false;
    }
    return true;
}
