/* Indirect execution of tools that have no argument grammar (the tools
 * with one, policies/grammars/, are parsed by grammar.c instead): argv
 * that makes an allowed program run another program or program text. argv-only contracts are pointless if `find
 * -exec sh -c …`, `python3 -Ic …` or `git -c core.sshCommand=…` slip through
 * an allowlist of "find", "python3" and "git", so every argv is parsed the
 * way the tool itself parses it (option clusters, attached and detached
 * option arguments, "--opt=value"), not matched as a literal prefix.
 * Anything found here is denied unless the policy names the tool in
 * allow_indirect_exec; where the wrapped program's argv is known (xargs,
 * timeout, find -exec, …) the evaluator checks that program in turn. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "policies/policies_internal.h"

typedef struct scan {
    const wr_strv *argv;
    wr_indirect r;
} scan;

static bool hit(scan *s, size_t elem, const char *why, long wrapped)
{
    s->r = (wr_indirect){why, elem, wrapped, s->argv->n, -1};
    return true;
}

static bool in_set(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}

static bool starts(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

bool wr__long_opt(const char *arg, const char *opt)
{
    size_t n = strlen(opt);
    return !strncmp(arg, opt, n) && (arg[n] == '\0' || arg[n] == '=');
}

/* ---- interpreters ----------------------------------------------------------
 * Each one is described by the option letters that carry program text, that
 * take an argument, that take only an attached optional argument, that
 * name a module/file to run instead of a script (-m timeit and friends
 * still run program text), and that print and exit.
 * With none of these and no script operand, the program text comes from
 * standard input (`echo … | python3`): inline code as well. */
typedef struct interp {
    const char *prefix;         /* basename prefix: python matches python3.11 */
    const char *inline_short;   /* -c, -e, … */
    const char *arg_short;      /* take the rest of the cluster or the next argv */
    const char *attached_short; /* take only the rest of the cluster */
    const char *runner_short;   /* -m module, -f file: runs a named file */
    const char *info_short;     /* -V, -h: print and exit */
    const char *flag_short;     /* known to take no argument */
    const char *const *inline_long;
    const char *const *arg_long;
    bool stdin_program; /* with no script operand, reads the program from stdin */
} interp;

static const char *const no_long[] = {NULL};
static const char *const node_inline[] = {"--eval", "--print", "--interactive", NULL};
static const char *const node_arg[] = {
    "--require", "--import",   "--loader", "--experimental-loader", "--input-type", "--conditions",
    "--title",   "--env-file", NULL};
static const char *const julia_inline[] = {"--eval", "--print", NULL};
static const char *const python_arg[] = {"--check-hash-based-pycs", NULL};
static const char *const info_long[] = {"--version", "--help", "--help-all", "--v8-options", NULL};

static const interp interps[] = {
    {"python", "ci", "WXQ", "", "m", "Vh?", "bBdEIOPqsSuvx", no_long, python_arg, true},
    {"pypy", "ci", "WXQ", "", "m", "Vh?", "bBdEIOPqsSuvx", no_long, python_arg, true},
    {"node", "epi", "rC", "", "", "vh", "c", node_inline, node_arg, true},
    {"nodejs", "epi", "rC", "", "", "vh", "c", node_inline, node_arg, true},
    {"bun", "ep", "r", "", "", "vh", "", node_inline, node_arg, false},
    {"perl", "eEMm", "I", "ilxCdD0F", "", "vVh", "acnpsStTuUwWX", no_long, no_long, true},
    {"ruby", "e", "IrCEFK", "ixT0W", "", "vh", "acdlnpsSwy", no_long, no_long, true},
    {"php", "rRBEaS", "cdzt", "", "fF", "vhim", "CHnqslw", no_long, no_long, true},
    {"lua", "ei", "l", "", "", "v", "EW", no_long, no_long, true},
    {"luajit", "ei", "lbjO", "", "", "v", "E", no_long, no_long, true},
    {"Rscript", "e", "", "", "", "", "", no_long, no_long, false},
    {"R", "e", "f", "", "", "h", "q", no_long, no_long, true},
    {"julia", "eEi", "JCLtpOgHX", "", "", "vh", "q", julia_inline, no_long, true},
    {"tclsh", "", "", "", "", "", "", no_long, no_long, true},
    {"wish", "", "", "", "", "", "", no_long, no_long, true},
    {"osascript", "e", "l", "", "", "", "", no_long, no_long, true},
};

static const interp *find_interp(const char *name)
{
    for (size_t i = 0; i < sizeof interps / sizeof interps[0]; i++) {
        size_t pl = strlen(interps[i].prefix);
        if (strncmp(name, interps[i].prefix, pl))
            continue;
        /* python3, python3.11, perl5.36, lua5.4: a version may follow */
        const char *rest = name + pl;
        bool versioned = true;
        for (; *rest && versioned; rest++)
            versioned = isdigit((unsigned char)*rest) || *rest == '.';
        if (versioned)
            return &interps[i];
    }
    return NULL;
}

static bool interpreter(scan *s, const interp *in)
{
    const wr_strv *a = s->argv;
    /* An option we do not know might take the next element as its value
     * (node -C cond, --stack-size 1000): that element is then not taken
     * for the script, and scanning goes on, so `node -C x -e code` is
     * still inline code. */
    bool prev_unknown = false, maybe_script = false;
    for (size_t i = 1; i < a->n; i++) {
        const char *arg = a->v[i];
        bool unknown = false;
        if (!strcmp(arg, "--")) {
            if (i + 1 < a->n && strcmp(a->v[i + 1], "-") != 0)
                return false;
            break;
        }
        if (!strcmp(arg, "-"))
            return hit(s, i, "reads program text from standard input", -1);
        if (arg[0] == '-' && arg[1] == '-') {
            for (const char *const *o = in->inline_long; *o; o++)
                if (wr__long_opt(arg, *o))
                    return hit(s, i, "runs inline program text", -1);
            if (in_set(arg, info_long))
                return false;
            unknown = !strchr(arg, '=');
            for (const char *const *o = in->arg_long; *o; o++)
                if (wr__long_opt(arg, *o)) {
                    const char *val = strchr(arg, '=') ? strchr(arg, '=') + 1 : (i + 1 < a->n ? a->v[++i] : "");
                    if (starts(val, "data:"))
                        return hit(s, i, "loads inline code from a data: URL", -1);
                    unknown = false;
                    break;
                }
            prev_unknown = unknown;
            continue;
        }
        if (arg[0] != '-') {
            if (!prev_unknown)
                return false; /* the script operand: a script runner */
            maybe_script = true;
            prev_unknown = false;
            continue;
        }
        for (const char *c = arg + 1; *c; c++) {
            if (strchr(in->inline_short, *c))
                return hit(s, i, "runs inline program text", -1);
            if (strchr(in->runner_short, *c)) {
                /* python -m timeit 'code', -m code (a REPL on stdin), -m pdb … */
                static const char *const code_modules[] = {"timeit",   "code",    "pdb",   "trace",
                                                           "cProfile", "profile", "runpy", "asyncio",
                                                           "idlelib",  "IPython", NULL};
                const char *mod = c[1] ? c + 1 : (i + 1 < a->n ? a->v[i + 1] : "");
                if (*c == 'm' && in_set(mod, code_modules))
                    return hit(s, i, "runs a module that executes program text", -1);
                return false;
            }
            if (strchr(in->info_short, *c))
                return false;
            if (strchr(in->attached_short, *c))
                break;
            if (strchr(in->arg_short, *c)) {
                const char *val = c[1] ? c + 1 : (i + 1 < a->n ? a->v[++i] : "");
                if (starts(val, "data:"))
                    return hit(s, i, "loads inline code from a data: URL", -1);
                break;
            }
            if (!c[1] && !strchr(in->flag_short, *c))
                unknown = true;
        }
        prev_unknown = unknown;
    }
    if (in->stdin_program && !maybe_script)
        return hit(s, 0, "names no script, so it reads program text from standard input", -1);
    return false;
}

/* ---- awk: program text is code; what matters is whether it can start
 * processes (system(), pipes to or from commands) or load extensions. */
static bool awk_text_execs(const char *t)
{
    for (const char *p = t; (p = strstr(p, "system")); p++) {
        const char *q = p + 6;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '(')
            return true;
    }
    if (strstr(t, "@load"))
        return true;
    for (const char *p = t; (p = strchr(p, '|')); p++) {
        if (p[1] == '|') {
            p++;
            continue;
        }
        if (p > t && p[-1] == '|')
            continue;
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '"' || *q == '&' || starts(q, "getline"))
            return true;
        /* `print … | cmd`: an identifier after "|" is a command only in a
         * print statement; elsewhere it is regex alternation (/a|b/). */
        if (isalpha((unsigned char)*q) || *q == '_') {
            const char *stmt = p;
            while (stmt > t && !strchr(";{}\n", stmt[-1]))
                stmt--;
            for (const char *w = stmt; w < p; w++)
                if (starts(w, "print"))
                    return true;
        }
    }
    return false;
}

static bool awk(scan *s)
{
    const wr_strv *a = s->argv;
    bool have_program_file = false;
    for (size_t i = 1; i < a->n; i++) {
        const char *arg = a->v[i];
        if (wr__long_opt(arg, "--load") || !strcmp(arg, "-l") || wr__long_opt(arg, "--exec") || !strcmp(arg, "-E"))
            return hit(s, i, "loads an extension or program file that runs programs", -1);
        if (!strcmp(arg, "-f") || wr__long_opt(arg, "--file")) {
            have_program_file = true;
            if (!strchr(arg, '='))
                i++;
            continue;
        }
        if (!strcmp(arg, "-e") || wr__long_opt(arg, "--source")) {
            const char *val = strchr(arg, '=') ? strchr(arg, '=') + 1 : (i + 1 < a->n ? a->v[++i] : "");
            if (awk_text_execs(val))
                return hit(s, i, "program calls system() or pipes to a command", -1);
            have_program_file = true;
            continue;
        }
        if ((!strcmp(arg, "-F") || !strcmp(arg, "-v")) && i + 1 < a->n) {
            i++;
            continue;
        }
        if (arg[0] == '-' && arg[1] != '\0')
            continue;
        if (!have_program_file && awk_text_execs(arg))
            return hit(s, i, "program calls system() or pipes to a command", -1);
        have_program_file = true; /* later operands are input files */
    }
    return false;
}

/* ---- sed: the `e` command and the `e` flag of `s` run shell commands. The
 * script is walked command by command; anything we cannot parse is refused
 * rather than guessed. */
static const char *skip_delimited(const char *p, char delim)
{
    for (; *p && *p != delim; p++)
        if (*p == '\\' && p[1])
            p++;
    return *p ? p + 1 : NULL;
}

static bool sed_script_execs(const char *p)
{
    while (p && *p) {
        while (*p && (isspace((unsigned char)*p) || *p == ';' || *p == '{' || *p == '}' || *p == '!'))
            p++;
        /* addresses: numbers, $, /re/, \cREc, ranges, steps, +N, ~N, I/M */
        for (;;) {
            if (isdigit((unsigned char)*p) || *p == '$' || *p == ',' || *p == '~' || *p == '+' || *p == ' ')
                p++;
            else if (*p == '/')
                p = skip_delimited(p + 1, '/');
            else if (*p == '\\' && p[1])
                p = skip_delimited(p + 2, p[1]);
            else
                break;
            if (!p)
                return true;
            while (*p == 'I' || *p == 'M')
                p++;
        }
        while (*p == '!' || *p == ' ')
            p++;
        char cmd = *p;
        if (!cmd)
            return false;
        p++;
        switch (cmd) {
        case 'e':
            return true;
        case 's':
        case 'y': {
            char d = *p;
            if (!d || d == '\n' || d == '\\')
                return true;
            p = skip_delimited(p + 1, d);
            if (p)
                p = skip_delimited(p, d);
            if (!p)
                return true;
            if (cmd == 'y')
                break;
            for (; *p && *p != ';' && *p != '\n' && *p != '}'; p++) {
                if (*p == 'e')
                    return true;
                if (*p == 'w') { /* the rest of the line is a file name */
                    p += strcspn(p, "\n");
                    break;
                }
            }
            break;
        }
        case 'a':
        case 'i':
        case 'c':
        case 'r':
        case 'R':
        case 'w':
        case 'W':
            /* text or a file name up to the end of the line */
            while (*p && *p != '\n') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            break;
        case 'b':
        case 't':
        case 'T':
        case ':':
            p += strcspn(p, ";\n");
            break;
        case 'q':
        case 'Q':
        case 'l':
        case 'L':
            while (isspace((unsigned char)*p) && *p != '\n')
                p++;
            while (isdigit((unsigned char)*p))
                p++;
            break;
        case '{':
        case '}':
        case '=':
        case 'd':
        case 'D':
        case 'g':
        case 'G':
        case 'h':
        case 'H':
        case 'n':
        case 'N':
        case 'p':
        case 'P':
        case 'x':
        case 'z':
        case 'F':
        case '#':
            if (cmd == '#')
                p += strcspn(p, "\n");
            break;
        default:
            return true; /* not a sed command we know: refuse */
        }
    }
    return false;
}

static bool sed(scan *s)
{
    const wr_strv *a = s->argv;
    bool have_script = false;
    for (size_t i = 1; i < a->n; i++) {
        const char *arg = a->v[i];
        if (!strcmp(arg, "--"))
            break;
        if (wr__long_opt(arg, "--expression")) {
            const char *val = strchr(arg, '=') ? strchr(arg, '=') + 1 : (i + 1 < a->n ? a->v[++i] : "");
            if (sed_script_execs(val))
                return hit(s, i, "script runs a shell command (e)", -1);
            have_script = true;
            continue;
        }
        if (wr__long_opt(arg, "--file") || wr__long_opt(arg, "--line-length")) {
            if (wr__long_opt(arg, "--file"))
                have_script = true;
            if (!strchr(arg, '='))
                i++;
            continue;
        }
        if (arg[0] == '-' && arg[1] == '-')
            continue;
        if (arg[0] == '-' && arg[1]) {
            for (const char *c = arg + 1; *c; c++) {
                if (*c == 'i')
                    break; /* -i[SUFFIX] */
                if (*c == 'e' || *c == 'f' || *c == 'l') {
                    const char *val = c[1] ? c + 1 : (i + 1 < a->n ? a->v[++i] : "");
                    if (*c != 'l')
                        have_script = true;
                    if (*c == 'e' && sed_script_execs(val))
                        return hit(s, i, "script runs a shell command (e)", -1);
                    break;
                }
            }
            continue;
        }
        if (!have_script) {
            if (sed_script_execs(arg))
                return hit(s, i, "script runs a shell command (e)", -1);
            have_script = true;
        }
    }
    return false;
}

/* ---- tools whose options name programs to run ---------------------------- */
static bool tar(scan *s)
{
    const wr_strv *a = s->argv;
    static const char *const run_opts[] = {
        "--to-command",        "--use-compress-program", "--info-script", "--new-volume-script",
        "--checkpoint-action", "--rsh-command",          "--rmt-command", NULL};
    for (size_t i = 1; i < a->n; i++) {
        const char *arg = a->v[i];
        for (const char *const *o = run_opts; *o; o++)
            if (wr__long_opt(arg, *o))
                return hit(s, i, "option runs a program", -1);
        if (arg[0] == '-' && arg[1] == '-')
            continue;
        /* "-I prog", "-F script", also in a cluster; old-style first
         * argument "xIf" has no dash */
        if ((arg[0] == '-' || i == 1) && strpbrk(arg, "IF"))
            return hit(s, i, "option runs a program", -1);
    }
    return false;
}

/* Options that name a program to run (or code to load), per tool: a long
 * (or single-dash long) option, also as "--opt=value"; an option whose value
 * may be attached ("-B/dir"); short letters found in any option cluster. */
static const struct program_option {
    const char *tools[7];
    const char *opts[8]; /* NULL-terminated */
    const char *attached;
    const char *cluster;
} program_options[] = {
    {{"rsync"}, {"--rsh", "--rsync-path"}, NULL, "e"},
    {{"zip"}, {"--unzip-command"}, "-TT", ""},
    {{"scp", "sftp"}, {NULL}, NULL, "SoF"}, /* -S program, -o ProxyCommand=…, -F config */
    {{"gmake"}, {"--eval", "-E"}, NULL, ""},
    {{"go"}, {"-exec", "--exec", "-toolexec", "--toolexec"}, NULL, ""},
    {{"cargo"}, {"--config"}, NULL, ""}, /* target.*.runner */
    {{"meson"}, {"--wrapper", "--wrap"}, NULL, ""},
    /* a wrapper program, a plugin, a specs file, or a directory searched for as/ld/cc1 */
    {{"gcc", "cc", "c++", "g++", "clang", "clang++"},
     {"-wrapper", "-fplugin", "-specs", "--specs", "-fpass-plugin", "-load"},
     "-B",
     ""},
};

/* "gcc" also names gcc-12, "clang" clang-16 */
static bool tool_is(const char *name, const char *tool)
{
    size_t n = strlen(tool);
    if (strncmp(name, tool, n))
        return false;
    if (!name[n])
        return true;
    if (name[n] != '-' || !name[n + 1])
        return false;
    for (const char *c = name + n + 1; *c; c++)
        if (!isdigit((unsigned char)*c) && *c != '.')
            return false;
    return true;
}

static const struct program_option *program_option_for(const char *name)
{
    for (size_t i = 0; i < sizeof program_options / sizeof program_options[0]; i++)
        for (const char *const *t = program_options[i].tools; *t; t++)
            if (tool_is(name, *t))
                return &program_options[i];
    return NULL;
}

static bool option_runs(scan *s, const struct program_option *po)
{
    const wr_strv *a = s->argv;
    for (size_t i = 1; i < a->n; i++) {
        const char *arg = a->v[i];
        if (!strcmp(arg, "--"))
            break;
        for (const char *const *o = po->opts; *o; o++)
            if (wr__long_opt(arg, *o))
                return hit(s, i, "option runs a program or loads code", -1);
        if (po->attached && starts(arg, po->attached))
            return hit(s, i, "option runs a program or loads code", -1);
        if (arg[0] == '-' && arg[1] != '-' && *po->cluster && strpbrk(arg + 1, po->cluster))
            return hit(s, i, "option runs a program or loads code", -1);
    }
    return false;
}

/* cmake -E env|chdir|time COMMAND… runs COMMAND; the other -E tools do not. */
static bool cmake(scan *s)
{
    const wr_strv *a = s->argv;
    static const char *const runners[] = {"env", "chdir", "time", NULL};
    for (size_t i = 1; i + 1 < a->n; i++)
        if (!strcmp(a->v[i], "-E") && in_set(a->v[i + 1], runners))
            return hit(s, i + 1, "runs another program", -1);
    return false;
}

/* ---- wrappers: their operand is another program's argv -------------------
 * The index of the wrapped argv (after the wrapper's own options), or -1
 * when there is none. opts_with_arg: short options whose value is the
 * next element when not attached. */
static long wrapped_after_options(const wr_strv *a, size_t from, const char *opts_with_arg, int fixed_operands)
{
    size_t i = from;
    for (; i < a->n; i++) {
        const char *arg = a->v[i];
        if (!strcmp(arg, "--")) {
            i++;
            break;
        }
        if (arg[0] != '-' || !arg[1])
            break;
        if (arg[1] == '-')
            continue; /* --long or --long=value */
        if (!arg[2] && strchr(opts_with_arg, arg[1]))
            i++;
    }
    for (; fixed_operands > 0 && i < a->n; fixed_operands--)
        i++;
    return i < a->n ? (long)i : -1;
}

static bool env(scan *s)
{
    const wr_strv *a = s->argv;
    size_t i = 1;
    for (; i < a->n; i++) {
        const char *arg = a->v[i];
        if ((arg[0] == '-' && arg[1] != '-' && strchr(arg + 1, 'S')) || wr__long_opt(arg, "--split-string"))
            return hit(s, i, "-S splits a string into a command", -1);
        if (!strcmp(arg, "--")) {
            i++;
            break;
        }
        if ((!strcmp(arg, "-u") || !strcmp(arg, "-C") || !strcmp(arg, "--unset") || !strcmp(arg, "--chdir")) &&
            i + 1 < a->n) {
            i++;
            continue;
        }
        if (arg[0] == '-' || strchr(arg, '='))
            continue;
        break;
    }
    for (; i < a->n && strchr(a->v[i], '='); i++) {
    }
    if (i >= a->n)
        return false; /* bare env prints the environment */
    return hit(s, i, "runs another program", (long)i);
}

typedef struct wrapper {
    const char *name;
    const char *opts_with_arg;
    int fixed_operands;    /* operands before the wrapped argv (timeout's DURATION) */
    bool bare_is_harmless; /* with no operand it only prints something */
} wrapper;

static const wrapper wrappers[] = {
    {"xargs", "adEILnPs", 0, true},
    {"timeout", "sk", 1, false},
    {"nice", "n", 0, true},
    {"nohup", "", 0, false},
    {"setsid", "", 0, false},
    {"stdbuf", "ioe", 0, false},
    {"ionice", "cnpPut", 0, true},
    {"taskset", "", 1, false},
    {"time", "fo", 0, false},
    {"chrt", "", 1, false},
    {"flock", "wEc", 1, false},
    {"strace", "eoOpPsSuabIX", 0, false},
    {"ltrace", "eoOpPsSuabnA", 0, false},
    {"unbuffer", "", 0, false},
    {"caffeinate", "tw", 0, false},
};

/* No knowable wrapped argv, or a command *string*: the tool itself must be
 * trusted through allow_indirect_exec. */
static const char *const opaque_runners[] = {"watch",      "sudo",
                                             "su",         "doas",
                                             "runuser",    "setpriv",
                                             "prlimit",    "unshare",
                                             "nsenter",    "chroot",
                                             "gdb",        "valgrind",
                                             "parallel",   "script",
                                             "expect",     "numactl",
                                             "cgexec",     "firejail",
                                             "bwrap",      "fakeroot",
                                             "proot",      "systemd-run",
                                             "exec",       "command",
                                             "builtin",    "eval",
                                             "sg",         "newgrp",
                                             "ssh",        "rlwrap",
                                             "entr",       "npx",
                                             "pnpx",       "bunx",
                                             "uvx",        "pipx",
                                             "vi",         "vim",
                                             "nvim",       "ex",
                                             "view",       "ed",
                                             "emacs",      "nano",
                                             "run-parts",  "start-stop-daemon",
                                             "catchsegv",  "sem",
                                             "dtach",      "tmux",
                                             "screen",     "pwsh",
                                             "powershell", NULL};

static const char *const shells[] = {"sh",     "bash",   "dash", "zsh",   "ksh",  "mksh",  "pdksh",
                                     "fish",   "csh",    "tcsh", "ash",   "yash", "rbash", "busybox",
                                     "toybox", "elvish", "nu",   "xonsh", NULL};

/* Subcommands that run code: package runners, containers, cluster shells. */
static bool runs_via_subcommand(scan *s, const char *name)
{
    static const char *const container[] = {"run", "exec", "create", "start", "build", "buildx", "compose", NULL};
    static const char *const cluster[] = {"exec", "run", "debug", "attach", "cp", "plugin", NULL};
    const wr_strv *a = s->argv;
    size_t at = 1;
    while (at < a->n && a->v[at][0] == '-')
        at++;
    if (at >= a->n)
        return false;
    const char *sub = a->v[at];
    if ((!strcmp(name, "docker") || !strcmp(name, "podman")) && in_set(sub, container))
        return hit(s, at, "runs a program in a container or cluster", -1);
    /* kubectl's global options take values (-n NS): look at every word */
    for (size_t i = 1; i < a->n; i++)
        if (!strcmp(name, "kubectl") && in_set(a->v[i], cluster))
            return hit(s, i, "runs a program in a container or cluster", -1);
    sub = a->v[1];
    if (((!strcmp(name, "yarn") || !strcmp(name, "pnpm")) && (!strcmp(sub, "dlx") || !strcmp(sub, "exec"))) ||
        (!strcmp(name, "uv") && (!strcmp(sub, "run") || !strcmp(sub, "tool"))) ||
        (!strcmp(name, "deno") && (!strcmp(sub, "eval") || !strcmp(sub, "repl"))) ||
        (!strcmp(name, "meson") && !strcmp(sub, "devenv")))
        return hit(s, 1, "runs a program or inline code", -1);
    return false;
}

bool wr__indirect_exec(const wr_strv *argv, wr_indirect *out)
{
    scan s = {.argv = argv};
    const char *name = wr__exe_name(argv->v[0]);
    const interp *in;
    const struct program_option *po;
    bool found = false;
    if (in_set(name, shells))
        found = hit(&s, 0, "is a shell: it runs command text", -1);
    else if (in_set(name, opaque_runners))
        found = hit(&s, 0, "runs other programs or commands", -1);
    else if ((in = find_interp(name)))
        found = interpreter(&s, in);
    else if (!strcmp(name, "awk") || !strcmp(name, "gawk") || !strcmp(name, "mawk") || !strcmp(name, "nawk"))
        found = awk(&s);
    else if (!strcmp(name, "sed") || !strcmp(name, "gsed"))
        found = sed(&s);
    else if (!strcmp(name, "gtar") || !strcmp(name, "bsdtar"))
        found = tar(&s);
    else if (!strcmp(name, "env"))
        found = env(&s);
    else if (!strcmp(name, "cmake"))
        found = cmake(&s);
    else if (runs_via_subcommand(&s, name))
        found = true;
    else if ((po = program_option_for(name)))
        found = option_runs(&s, po);
    else {
        for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++) {
            const wrapper *w = &wrappers[i];
            if (strcmp(name, w->name))
                continue;
            long at = wrapped_after_options(argv, 1, w->opts_with_arg, w->fixed_operands);
            if (at < 0 && w->bare_is_harmless)
                break;
            found = hit(&s, at < 0 ? 0 : (size_t)at, "runs another program", at);
            break;
        }
    }
    if (found)
        *out = s.r;
    return found;
}
