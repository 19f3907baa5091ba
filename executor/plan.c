/* The sandbox plan (bubblewrap style): an ordered list of typed mount and
 * environment operations plus user, limits and seccomp profile, built from
 * the contract's declared scope only. It is data: printed as JSON, hashed
 * into the receipt's sandbox profile, and rendered to a bwrap argv. */
#include "executor/executor_internal.h"
#include "executor/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int add_op(wr_plan *p, wr_op_kind kind, const char *src, const char *dest, const char *data, const char *origin,
                  wr_error *err)
{
    if (p->nops == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 32;
        wr_plan_op *n = realloc(p->ops, ncap * sizeof *n);
        if (!n)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        p->ops = n;
        p->cap = ncap;
    }
    wr_plan_op *op = &p->ops[p->nops];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->fd = -1;
    op->origin = origin;
    op->src = src ? strdup(src) : NULL;
    op->dest = dest ? strdup(dest) : NULL;
    op->data = data ? strdup(data) : NULL;
    if ((src && !op->src) || (dest && !op->dest) || (data && !op->data)) {
        free(op->src);
        free(op->dest);
        free(op->data);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    p->nops++;
    return WR_OK;
}

void wr_plan_free(wr_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nops; i++) {
        free(p->ops[i].src);
        free(p->ops[i].dest);
        if (p->ops[i].data && p->ops[i].kind == WR_OP_SETENV) /* may be a secret value */
            explicit_bzero(p->ops[i].data, strlen(p->ops[i].data));
        free(p->ops[i].data);
        if (p->ops[i].fd >= 0)
            close(p->ops[i].fd);
    }
    free(p->ops);
    free(p->run_as);
    free(p->bpf);
    wr_cg_plan_free(&p->cg);
    if (p->dynamic && p->uid_lock >= 0)
        close(p->uid_lock); /* the uid is free again */
    memset(p, 0, sizeof *p);
}

/* A trailing subtree glob ("/a/b/" followed by "**") binds its root "/a/b". */
static char *declared_root(const char *path)
{
    size_t n = strlen(path);
    if (n >= 3 && strcmp(path + n - 3, "/**") == 0)
        n = n > 3 ? n - 3 : 1;
    return strndup(path, n);
}

static bool within_any(const char *path, const wr_strv *roots)
{
    for (size_t i = 0; i < roots->n; i++) {
        char *r = declared_root(roots->v[i]);
        bool in = r && wr_path_within(path, r);
        free(r);
        if (in)
            return true;
    }
    return false;
}

/* Paths the sandbox itself provides: declaring them would shadow the fresh
 * /proc and /dev (a host /proc bind would show host processes) or the whole
 * root. */
static bool reserved_path(const char *root)
{
    return strcmp(root, "/") == 0 || wr_path_within(root, "/proc") || wr_path_within(root, "/dev") ||
           wr_path_within(root, WR_INIT_SANDBOX_PATH);
}

/* The fd must still name the path we checked: if a component was swapped
 * for a symlink between realpath() and open(), /proc/self/fd shows where the
 * fd really points. */
static int open_checked(const char *resolved, const char *what, const char *decl, int *fd, wr_error *err)
{
    int f = open(resolved, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0)
        return wr_errorf(err, WR_E_DENIED, decl, "%s %s: cannot open %s: %s", what, decl, resolved, strerror(errno));
    char link[64], now[PATH_MAX + 1];
    snprintf(link, sizeof link, "/proc/self/fd/%d", f);
    ssize_t n = readlink(link, now, sizeof now - 1);
    if (n < 0 || (size_t)n >= sizeof now - 1 || (now[n] = 0, strcmp(now, resolved) != 0)) {
        close(f);
        return wr_errorf(err, WR_E_DENIED, decl, "%s %s changed while the sandbox was built", what, decl);
    }
    *fd = f;
    return WR_OK;
}

/* Creates the missing tail of `path` under the existing directory `root`
 * (both resolved), one component at a time without following symlinks, and
 * hands the new directories to the sandbox user. */
static int create_under(const char *root, const char *path, const wr_plan *p, wr_error *err)
{
    int dfd = open(root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return wr_errorf(err, WR_E_DENIED, path, "write root %s: %s", root, strerror(errno));
    char *rest = strdup(path + strlen(root));
    if (!rest) {
        close(dfd);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    int rc = WR_OK;
    char *save = NULL;
    for (char *c = strtok_r(rest, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (mkdirat(dfd, c, 0755) == 0) {
            if (p->drop_root && fchownat(dfd, c, p->uid, p->gid, AT_SYMLINK_NOFOLLOW) != 0) {
                rc = wr_errorf(err, WR_E_IO, path, "write path %s: chown: %s", path, strerror(errno));
                break;
            }
        } else if (errno != EEXIST) {
            rc = wr_errorf(err, WR_E_DENIED, path, "write path %s: mkdir %s: %s", path, c, strerror(errno));
            break;
        }
        int nfd = wr_open_beneath(dfd, c, O_PATH | O_DIRECTORY);
        if (nfd < 0) {
            rc = wr_errorf(err, WR_E_DENIED, path, "write path %s: component %s is not a directory (or is a symlink)",
                           path, c);
            break;
        }
        close(dfd);
        dfd = nfd;
    }
    free(rest);
    close(dfd);
    return rc;
}

/* Re-resolves one declared path at run time. A path that resolves
 * elsewhere (itself or a parent is a symlink) is accepted only when its
 * target lies inside the declared roots of the same kind: a symlink out of
 * the declared scope is refused. */
static int add_declared(wr_plan *p, const wr_command *cmd, const char *decl, const char *kind, bool apply,
                        wr_error *err)
{
    bool is_write = strcmp(kind, "write") == 0;
    char *root = declared_root(decl);
    if (!root)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    int rc = WR_OK;
    char *res = NULL;
    if (root[0] != '/' || strstr(root, "/../") || strstr(root, "/./")) {
        rc = wr_errorf(err, WR_E_DENIED, decl, "%s path %s is not a normalised absolute path", kind, decl);
        goto out;
    }
    if (reserved_path(root)) {
        rc = wr_errorf(err, WR_E_DENIED, decl, "%s path %s would cover the sandbox's own / /proc or /dev", kind, decl);
        goto out;
    }
    res = realpath(root, NULL);
    if (!res && errno == ENOENT) {
        if (!is_write) {
            /* Absent read path: nothing to show. Recorded, not mounted. */
            if (strcmp(kind, "cwd") == 0) {
                rc = wr_errorf(err, WR_E_DENIED, decl, "cwd %s does not exist", decl);
                goto out;
            }
            rc = add_op(p, WR_OP_RO_BIND, NULL, root, NULL, kind, err);
            if (rc == WR_OK)
                p->ops[p->nops - 1].missing = true;
            goto out;
        }
        /* A missing write path is created only inside an existing declared
         * write root, never anywhere the contract merely names. */
        const char *parent = NULL;
        char *parent_res = NULL;
        for (size_t i = 0; i < cmd->write_paths.n && !parent; i++) {
            char *w = declared_root(cmd->write_paths.v[i]);
            if (w && strcmp(w, root) != 0 && wr_path_within(root, w)) {
                parent_res = realpath(w, NULL);
                if (parent_res && strcmp(parent_res, w) == 0)
                    parent = cmd->write_paths.v[i];
                else {
                    free(parent_res);
                    parent_res = NULL;
                }
            }
            free(w);
        }
        if (!parent) {
            rc = wr_errorf(err, WR_E_DENIED, decl,
                           "write path %s does not exist and is not under an existing declared write root", decl);
            goto out;
        }
        if (apply)
            rc = create_under(parent_res, root, p, err);
        free(parent_res);
        if (rc != WR_OK)
            goto out;
        if (!apply) {
            rc = add_op(p, WR_OP_BIND, root, root, NULL, kind, err);
            if (rc == WR_OK)
                p->ops[p->nops - 1].created = true;
            goto out;
        }
        res = realpath(root, NULL);
        if (!res) {
            rc = wr_errorf(err, WR_E_DENIED, decl, "write path %s: %s", decl, strerror(errno));
            goto out;
        }
        if (strcmp(res, root) != 0) {
            rc = wr_errorf(err, WR_E_DENIED, decl, "write path %s: resolves to %s (symlink)", decl, res);
            goto out;
        }
        rc = add_op(p, WR_OP_BIND, res, root, NULL, kind, err);
        if (rc == WR_OK)
            p->ops[p->nops - 1].created = true;
        goto fd;
    }
    if (!res) {
        rc = wr_errorf(err, WR_E_DENIED, decl, "%s path %s: %s", kind, decl, strerror(errno));
        goto out;
    }
    if (strcmp(res, root) != 0) {
        bool ok = is_write ? within_any(res, &cmd->write_paths)
                           : (within_any(res, &cmd->read_paths) || within_any(res, &cmd->write_paths));
        if (!ok) {
            rc = wr_errorf(err, WR_E_DENIED, decl,
                           "%s path %s is or passes through a symlink resolving to %s, outside the declared paths",
                           kind, decl, res);
            goto out;
        }
    }
    rc = add_op(p, is_write ? WR_OP_BIND : WR_OP_RO_BIND, res, root, NULL, kind, err);
fd:
    if (rc == WR_OK && apply)
        rc = open_checked(res, kind, decl, &p->ops[p->nops - 1].fd, err);
out:
    free(res);
    free(root);
    return rc;
}

/* Declared binds are mounted parents first, so a write path under a read
 * path ends up writable and a read path under a write path read-only. */
static size_t depth(const char *path)
{
    size_t d = 0;
    for (; *path; path++)
        d += *path == '/';
    return d;
}

typedef struct decl_ref {
    const char *path;
    const char *kind;
    size_t order;
} decl_ref;

static int cmp_decl(const void *a, const void *b)
{
    const decl_ref *x = a, *y = b;
    char *rx = declared_root(x->path), *ry = declared_root(y->path);
    size_t dx = rx ? depth(rx) : 0, dy = ry ? depth(ry) : 0;
    free(rx);
    free(ry);
    if (dx != dy)
        return dx < dy ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Debian merged-usr: /bin, /lib... are symlinks into /usr; the sandbox
 * keeps the same layout, or binds the directory on a non-merged host. */
static const char *const top_dirs[WR_HOST_TOP_DIRS] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

static int add_system(wr_plan *p, const wr_host_facts *hf, bool network, wr_error *err)
{
    int rc = add_op(p, WR_OP_RO_BIND, "/usr", "/usr", NULL, "system", err);
    for (size_t i = 0; rc == WR_OK && i < WR_HOST_TOP_DIRS; i++) {
        if (hf->top_link[i])
            rc = add_op(p, WR_OP_SYMLINK, hf->top_link[i], top_dirs[i], NULL, "system", err);
        else if (hf->top_dir[i])
            rc = add_op(p, WR_OP_RO_BIND, top_dirs[i], top_dirs[i], NULL, "system", err);
    }
    /* The few /etc files a dynamically linked program needs; passwd and
     * group are synthetic so host accounts are not disclosed. alternatives
     * holds Debian's command symlinks (awk, editor...). */
    static const char *const etc[] = {"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/nsswitch.conf", "/etc/localtime",
                                      "/etc/alternatives"};
    static const char *const etc_net[] = {"/etc/resolv.conf", "/etc/hosts", "/etc/ssl", "/etc/ca-certificates",
                                          "/etc/gai.conf"};
    for (size_t i = 0; rc == WR_OK && i < sizeof etc / sizeof *etc; i++)
        rc = add_op(p, WR_OP_RO_BIND_TRY, etc[i], etc[i], NULL, "system", err);
    for (size_t i = 0; rc == WR_OK && network && i < sizeof etc_net / sizeof *etc_net; i++)
        rc = add_op(p, WR_OP_RO_BIND_TRY, etc_net[i], etc_net[i], NULL, "system", err);
    if (rc != WR_OK)
        return rc;

    char passwd[512], group[256];
    const char *name = p->run_as && !p->dynamic ? p->run_as : "sandbox";
    if (p->uid == 0) {
        snprintf(passwd, sizeof passwd, "root:x:0:0:root:/tmp:/usr/sbin/nologin\n");
        snprintf(group, sizeof group, "root:x:0:\n");
    } else {
        snprintf(passwd, sizeof passwd,
                 "root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%u:%u:%s:/tmp:/usr/sbin/nologin\n", name,
                 (unsigned)p->uid, (unsigned)p->gid, name);
        snprintf(group, sizeof group, "root:x:0:\n%s:x:%u:\n", p->gid == 65534 ? "nogroup" : name, (unsigned)p->gid);
    }
    rc = add_op(p, WR_OP_FILE, NULL, "/etc/passwd", passwd, "system", err);
    if (rc == WR_OK)
        rc = add_op(p, WR_OP_FILE, NULL, "/etc/group", group, "system", err);
    if (rc == WR_OK)
        rc = add_op(p, WR_OP_PROC, NULL, "/proc", NULL, "system", err);
    if (rc == WR_OK)
        rc = add_op(p, WR_OP_DEV, NULL, "/dev", NULL, "system", err);
    return rc;
}

static const char *env_lookup(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (; env && *env; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

/* Valid env names only: a name with '=' would smuggle a different variable. */
static bool env_name_ok(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* network: allowlisted — every common client finds the proxy from these;
 * "localhost" stays the sandbox's own loopback. socks5h: names are
 * resolved by the proxy (the sandbox has no DNS). */
#define PROXY_URL(scheme) scheme "://" WR_EGRESS_PROXY_ADDR
static const struct {
    const char *name, *value;
} proxy_env[] = {
    {"HTTP_PROXY", PROXY_URL("http")},    {"http_proxy", PROXY_URL("http")},    {"HTTPS_PROXY", PROXY_URL("http")},
    {"https_proxy", PROXY_URL("http")},   {"ALL_PROXY", PROXY_URL("socks5h")},  {"all_proxy", PROXY_URL("socks5h")},
    {"NO_PROXY", "localhost,.localhost"}, {"no_proxy", "localhost,.localhost"},
};

static bool is_proxy_env(const char *name)
{
    for (size_t i = 0; i < sizeof proxy_env / sizeof *proxy_env; i++)
        if (!strcmp(name, proxy_env[i].name))
            return true;
    return false;
}

static int add_env(wr_plan *p, const wr_exec_request *req, const wr_command *cmd, wr_error *err)
{
    int rc = add_op(p, WR_OP_SETENV, NULL, "PATH", WR_EXEC_PATH, "fixed", err);
    if (rc == WR_OK)
        rc = add_op(p, WR_OP_SETENV, NULL, "HOME", WR_EXEC_HOME, "fixed", err);
    if (rc == WR_OK)
        rc = add_op(p, WR_OP_SETENV, NULL, "LANG", WR_EXEC_LANG, "fixed", err);
    for (size_t i = 0; rc == WR_OK && p->network == WR_NET_ALLOWLISTED && i < sizeof proxy_env / sizeof *proxy_env; i++)
        rc = add_op(p, WR_OP_SETENV, NULL, proxy_env[i].name, proxy_env[i].value, "fixed", err);
    for (size_t i = 0; rc == WR_OK && i < cmd->env_allow.n; i++) {
        const char *name = cmd->env_allow.v[i];
        if (!env_name_ok(name))
            return wr_errorf(err, WR_E_DENIED, "env_allow", "env_allow name \"%s\" is not a valid variable name", name);
        if (!strcmp(name, "PATH") || !strcmp(name, "HOME") || !strcmp(name, "LANG") ||
            (p->network == WR_NET_ALLOWLISTED && is_proxy_env(name)))
            continue; /* fixed values win */
        const char *v = env_lookup(req->host_env, name);
        if (v)
            rc = add_op(p, WR_OP_SETENV, NULL, name, v, "host", err);
    }
    for (size_t i = 0; rc == WR_OK && i < cmd->secret_refs.n; i++) {
        const char *name = cmd->secret_refs.v[i];
        const wr_secret *s = NULL;
        for (size_t j = 0; j < req->nsecrets && !s; j++)
            if (req->secrets[j].name && !strcmp(req->secrets[j].name, name))
                s = &req->secrets[j];
        if (!s || !s->value)
            return wr_errorf(err, WR_E_DENIED, "secret_refs", "secret %s was not provided", name);
        if (!env_name_ok(name))
            return wr_errorf(err, WR_E_DENIED, "secret_refs", "secret name \"%s\" is not a valid variable name", name);
        rc = add_op(p, WR_OP_SETENV, NULL, name, s->value, "secret", err);
    }
    return rc;
}

static int set_user(wr_plan *p, const wr_sandbox_limits *lim, bool apply, const wr_ctx *ctx, wr_error *err)
{
    if (geteuid() != 0) {
        /* Already unprivileged: bwrap maps our own uid into the sandbox. */
        p->uid = geteuid();
        p->gid = getegid();
        struct passwd pw, *res = NULL;
        char buf[4096];
        if (getpwuid_r(p->uid, &pw, buf, sizeof buf, &res) == 0 && res)
            p->run_as = strdup(pw.pw_name);
        return WR_OK;
    }
    const char *name = lim && lim->run_as && *lim->run_as ? lim->run_as : WR_DEFAULT_RUN_AS;
    struct passwd pw, *res = NULL;
    char buf[4096];
    if ((getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || !res) && !strcmp(name, WR_DEFAULT_RUN_AS)) {
        /* The documented fallback: a uid shared with other services, which
         * the plan shows (and the isolation score counts). */
        p->run_as_note =
            "run_as " WR_DEFAULT_RUN_AS " does not exist (scripts/run-user.sh creates it): " WR_FALLBACK_RUN_AS;
        name = WR_FALLBACK_RUN_AS;
        res = NULL;
        getpwnam_r(name, &pw, buf, sizeof buf, &res);
    }
    if (!res)
        return wr_errorf(err, WR_E_DENIED, "sandbox.run_as", "run_as user %s does not exist", name);
    if (pw.pw_uid == 0)
        return wr_errorf(err, WR_E_DENIED, "sandbox.run_as", "run_as user %s is root: commands never run as root",
                         name);
    p->drop_root = true;
    p->uid = pw.pw_uid;
    p->gid = pw.pw_gid;
    p->run_as = strdup(name);
    if (!p->run_as)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (lim && lim->dynamic_uid) {
        /* A uid of the run's own; run_as keeps what it leaves, and lends
         * its group so group-writable write paths stay writable. An
         * inspected plan shows the range's first uid. */
        p->dynamic = true;
        p->owner_uid = pw.pw_uid;
        p->owner_gid = pw.pw_gid;
        uid_t u = (uid_t)lim->uid_min;
        if (apply) {
            int rc = wr_uid_lease(lim->uid_min, lim->uid_max, ctx, &u, &p->uid_lock, err);
            if (rc != WR_OK)
                return rc;
        }
        p->uid = u;
        p->gid = (gid_t)u;
    }
    return WR_OK;
}

/* Whether only root can change what `path` names: every directory from
 * "/" down to its parent is root's and writable by no one else (and the
 * path is canonical, so no symlink is followed). Then nobody who could
 * race the run can swap a component between the check and the exec. */
static bool root_only_path(const char *path)
{
    char dir[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof dir || path[0] != '/')
        return false;
    memcpy(dir, path, len + 1);
    for (char *slash = strrchr(dir, '/'); slash; slash = strrchr(dir, '/')) {
        slash[slash == dir] = 0; /* "/usr/bin/x" -> "/usr/bin" -> "/usr" -> "/" */
        struct stat st;
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
            return false;
        if (slash == dir)
            return true;
    }
    return false;
}

/* Whether the sandbox shows the host's file at `path`: the last mount over
 * it is a bind of the same host path (not a tmpfs, /dev, /proc or a
 * synthetic file the sandbox could fill itself), among the first nops. */
static bool host_view(const wr_plan *p, size_t nops, const char *path)
{
    bool host = false;
    for (size_t i = 0; i < nops; i++) {
        const wr_plan_op *op = &p->ops[i];
        if (op->kind == WR_OP_SETENV || op->kind == WR_OP_REMOUNT_RO || op->kind == WR_OP_CHDIR || !op->dest ||
            !wr_path_within(path, op->dest))
            continue;
        host = (op->kind == WR_OP_RO_BIND || op->kind == WR_OP_BIND || op->kind == WR_OP_RO_BIND_TRY ||
                op->kind == WR_OP_EXE) &&
               !op->missing && op->src && !strcmp(op->src, op->dest);
    }
    return host;
}

/* The file a segment's argv[0] names, found as the sandbox's exec would
 * find it (a path as is, relative to cwd; a bare name on WR_EXEC_PATH) and
 * resolved on the host, where the sandbox's binds show the same files. The
 * checked file itself (its fd) is then bound over its canonical path and
 * init execs that path: swapping a symlinked directory after this check
 * cannot change what runs. It must lie in a bind the sandbox shows whole
 * (system, read or write path): nothing else of the host becomes visible. */
static int add_exe(wr_plan *p, const wr_command *cmd, size_t seg, bool apply, wr_error *err)
{
    const char *a0 = cmd->segments[seg].v[0];
    char *res = NULL, cand[PATH_MAX];
    if (strchr(a0, '/')) {
        if (snprintf(cand, sizeof cand, "%s%s%s", a0[0] == '/' ? "" : cmd->cwd, a0[0] == '/' ? "" : "/", a0) <
            (int)sizeof cand)
            res = realpath(cand, NULL);
    } else {
        const char *dir = WR_EXEC_PATH;
        for (size_t n; !res && *dir; dir += n + (dir[n] == ':')) {
            n = strcspn(dir, ":");
            struct stat st;
            if (snprintf(cand, sizeof cand, "%.*s/%s", (int)n, dir, a0) < (int)sizeof cand && stat(cand, &st) == 0 &&
                S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
                res = realpath(cand, NULL);
        }
    }
    if (!res)
        return wr_errorf(err, WR_E_DENIED, a0, "argv[0] %s: %s", a0,
                         strchr(a0, '/') ? strerror(errno) : "not found on the sandbox PATH " WR_EXEC_PATH);
    bool shown = false;
    for (size_t i = 0; i < p->nops && !shown; i++) {
        const wr_plan_op *op = &p->ops[i];
        shown = (op->kind == WR_OP_RO_BIND || op->kind == WR_OP_BIND) && !op->missing && op->src && op->dest &&
                strcmp(op->origin, "cwd") != 0 && !strcmp(op->src, op->dest) && wr_path_within(res, op->dest);
    }
    int rc = shown ? add_op(p, WR_OP_EXE, res, res, NULL, "argv0", err)
                   : wr_errorf(err, WR_E_DENIED, a0,
                               "argv[0] %s is %s, outside the system and declared read or write paths", a0, res);
    if (rc == WR_OK) {
        wr_plan_op *op = &p->ops[p->nops - 1];
        op->segment = seg;
        struct stat st;
        if (apply && (rc = open_checked(res, "argv[0]", a0, &op->fd, err)) == WR_OK &&
            (fstat(op->fd, &st) != 0 || !S_ISREG(st.st_mode)))
            rc = wr_errorf(err, WR_E_DENIED, a0, "argv[0] %s is %s, not a regular file", a0, res);
        /* A system binary (/usr/bin/...) is already the checked file at its
         * path: its bind would cost a mount per run and pin nothing more. */
        op->root_path = rc == WR_OK && host_view(p, p->nops - 1, res) && root_only_path(res);
    }
    free(res);
    return rc;
}

/* warrant-init, bound read-only into the sandbox root from the fd the
 * host facts checked. */
static int add_init(wr_plan *p, const wr_host_facts *hf, bool apply, wr_error *err)
{
    int rc = add_op(p, WR_OP_INIT, hf->init_path, WR_INIT_SANDBOX_PATH, NULL, "system", err);
    if (rc == WR_OK && apply && (p->ops[p->nops - 1].fd = fcntl(hf->init_fd, F_DUPFD_CLOEXEC, 0)) < 0)
        rc = wr_errorf(err, WR_E_IO, "", "warrant-init: dup: %s", strerror(errno));
    return rc;
}

int wr_host_facts_probe(const char *cgroup_root, wr_host_facts *f, wr_error *err)
{
    memset(f, 0, sizeof *f);
    f->init_fd = -1;
    char path[PATH_MAX];
    int rc = wr_cg_layout(cgroup_root, &f->cg, err);
    if (rc == WR_OK && cgroup_root && !(f->cgroup_root = strdup(cgroup_root)))
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    f->landlock_abi = wr_landlock_abi(&f->landlock_note);
    for (size_t i = 0; rc == WR_OK && i < WR_HOST_TOP_DIRS; i++) {
        struct stat st;
        ssize_t n;
        if (lstat(top_dirs[i], &st) != 0)
            continue;
        f->top_dir[i] = S_ISDIR(st.st_mode);
        if (S_ISLNK(st.st_mode) && (n = readlink(top_dirs[i], path, sizeof path - 1)) > 0) {
            path[n] = 0;
            if (!(f->top_link[i] = strdup(path)))
                rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        }
    }
    if (rc == WR_OK)
        rc = wr_exec_helper_path(WR_INIT_NAME, path, sizeof path, err);
    if (rc == WR_OK && !(f->init_path = strdup(path)))
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc == WR_OK)
        rc = open_checked(path, "warrant-init", path, &f->init_fd, err);
    if (rc != WR_OK)
        wr_host_facts_free(f);
    return rc;
}

void wr_host_facts_free(wr_host_facts *f)
{
    wr_cg_plan_free(&f->cg);
    free(f->cgroup_root);
    for (size_t i = 0; i < WR_HOST_TOP_DIRS; i++)
        free(f->top_link[i]);
    free(f->init_path);
    if (f->init_fd >= 0)
        close(f->init_fd);
    memset(f, 0, sizeof *f);
    f->init_fd = -1;
}

int wr_exec_helper_path(const char *name, char *out, size_t len, wr_error *err)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return wr_errorf(err, WR_E_IO, "", "readlink /proc/self/exe: %s", strerror(errno));
    self[n] = 0;
    char *slash = strrchr(self, '/');
    *slash = 0;
    if ((size_t)snprintf(out, len, "%s/%s", self, name) < len && access(out, X_OK) == 0)
        return WR_OK;
    /* The build tree's copy serves only binaries of that same build tree. */
    if (wr_path_within(self, WR_BUILD_ROOT) && (size_t)snprintf(out, len, "%s/%s", WR_HELPER_BUILD_DIR, name) < len &&
        access(out, X_OK) == 0)
        return WR_OK;
    if ((size_t)snprintf(out, len, "%s/%s", WR_HELPER_INSTALL_DIR, name) < len && access(out, X_OK) == 0)
        return WR_OK;
    return wr_errorf(err, WR_E_INTERNAL, "", "%s not found next to %s, nor in %s", name, self, WR_HELPER_INSTALL_DIR);
}

static int64_t mb(int64_t v)
{
    return v > 0 && v < INT64_MAX / (1024 * 1024) ? v * 1024 * 1024 : v;
}

/* Exported at build time (seccomp_gen.c); wr_seccomp_export makes the same. */
int wr_seccomp_bpf(wr_sock_families fam, unsigned char **bpf, size_t *len, wr_error *err)
{
    *bpf = NULL;
    *len = 0;
    if ((size_t)fam >= wr_seccomp_nprograms)
        return wr_errorf(err, WR_E_INTERNAL, "", "no seccomp program for socket families %d", (int)fam);
    const wr_bpf_program *prog = &wr_seccomp_programs[fam];
    if (!(*bpf = malloc(prog->len)))
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    memcpy(*bpf, prog->code, prog->len);
    *len = prog->len;
    return WR_OK;
}

static int build(const wr_exec_request *req, size_t ci, bool apply, const wr_host_facts *hf, wr_plan *p, wr_error *err)
{
    const wr_command *cmd = &req->contract->commands[ci];
    const wr_sandbox_limits *lim = req->limits;
    p->uid_lock = -1;
    int rc = set_user(p, lim, apply, req->ctx, err);
    if (rc != WR_OK)
        goto fail;
    p->network = cmd->network;
    p->share_net = cmd->network != WR_NET_DENY;
    if (lim) {
        p->rl.cpu_sec = lim->cpu_sec;
        p->rl.as_bytes = mb(lim->memory_mb);
        p->rl.nproc = lim->max_processes;
        p->rl.fsize_bytes = mb(lim->max_file_mb);
        p->rl.nofile = lim->max_open_files;
    }
    rc = wr_cg_plan_for(&hf->cg, lim, &p->cg, err);
    if (rc != WR_OK)
        goto fail;
    /* pids.max counts exactly this sandbox's tasks; RLIMIT_NPROC (per host
     * uid) is only the fallback. */
    if (p->cg.mode != WR_CG_NONE && p->cg.pids_max > 0)
        p->rl.nproc = 0;
    p->seccomp_id = lim && lim->seccomp_strict ? WR_SECCOMP_STRICT_ID : WR_SECCOMP_DEFAULT_ID;
    p->sock = !p->share_net ? WR_SOCK_UNIX : lim && lim->seccomp_strict ? WR_SOCK_INET : WR_SOCK_INET_ROUTE;
    rc = wr_seccomp_bpf(p->sock, &p->bpf, &p->bpf_len, err);
    if (rc != WR_OK)
        goto fail;
    wr_sha256_hex(p->bpf, p->bpf_len, p->bpf_sha256);
    p->landlock_abi = hf->landlock_abi;
    p->landlock_note = hf->landlock_note;
    if (req->landlock < 0) {
        p->landlock_abi = 0;
        p->landlock_note = "Landlock switched off by the caller";
    } else if (req->landlock > 0 && p->landlock_abi > req->landlock) {
        p->landlock_abi = req->landlock;
        p->landlock_note = "Landlock ABI capped by the caller";
    }

    rc = add_system(p, hf, p->share_net, err);
    if (rc != WR_OK)
        goto fail;
    /* The private /tmp comes before the declared paths, so a declared path
     * under /tmp is mounted on top of it rather than hidden by it. */
    /* /dev/shm too: bwrap's /dev is an uncapped tmpfs, and tmpfs pages are
     * not charged to RLIMIT_AS, so it would be an unbounded RAM disk. */
    static const char *const scratch[] = {"/dev/shm", "/tmp"};
    for (size_t i = 0; i < 2; i++) {
        rc = add_op(p, WR_OP_TMPFS, NULL, scratch[i], NULL, "system", err);
        if (rc != WR_OK)
            goto fail;
        p->ops[p->nops - 1].size = mb(lim && lim->tmp_mb > 0 ? lim->tmp_mb : 64);
    }
    /* bwrap's /dev is a tmpfs without a size, and tmpfs pages escape
     * RLIMIT_AS: once its nodes and /dev/shm are in place, freeze it. */
    rc = add_op(p, WR_OP_REMOUNT_RO, NULL, "/dev", NULL, "system", err);
    if (rc != WR_OK)
        goto fail;

    if (!cmd->cwd || !*cmd->cwd) {
        rc = wr_errorf(err, WR_E_DENIED, "cwd", "command %s has no cwd", cmd->id);
        goto fail;
    }
    /* a glob read path shows exactly what it matches now (globs.c) */
    wr_strv reads = {0};
    if ((rc = wr_read_globs_expand(&cmd->read_paths, &reads, err)) != WR_OK) {
        wr_strv_free(&reads);
        goto fail;
    }
    size_t nd = reads.n + cmd->write_paths.n;
    decl_ref *d = calloc(nd + 1, sizeof *d); /* + cwd */
    if (!d) {
        wr_strv_free(&reads);
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < reads.n; i++)
        d[i] = (decl_ref){reads.v[i], "read", i};
    for (size_t i = 0; i < cmd->write_paths.n; i++)
        d[reads.n + i] = (decl_ref){cmd->write_paths.v[i], "write", reads.n + i};
    /* cwd stays visible (chdir works; Landlock grants it nothing unless a
     * declared path covers it); mounted read-only unless a declared path
     * already covers it (/, /proc and /dev are the sandbox's own). It takes
     * its place in the depth order like any other bind, so a write path
     * under it is mounted after it and stays writable. */
    if (!within_any(cmd->cwd, &cmd->read_paths) && !within_any(cmd->cwd, &cmd->write_paths) &&
        !wr_path_within(cmd->cwd, "/usr") && !reserved_path(cmd->cwd)) {
        d[nd] = (decl_ref){cmd->cwd, "cwd", nd};
        nd++;
    }
    qsort(d, nd, sizeof *d, cmp_decl);
    for (size_t i = 0; i < nd && rc == WR_OK; i++)
        rc = add_declared(p, cmd, d[i].path, d[i].kind, apply, err);
    free(d);
    wr_strv_free(&reads);
    for (size_t s = 0; s < cmd->nsegments && rc == WR_OK; s++)
        rc = add_exe(p, cmd, s, apply, err);
    if (rc == WR_OK)
        rc = add_init(p, hf, apply, err);
    if (rc != WR_OK)
        goto fail;
    rc = add_env(p, req, cmd, err);
    /* bwrap's root is a writable tmpfs holding the mount points (/etc for
     * the synthetic files, parents of declared paths): freeze it. */
    if (rc == WR_OK)
        rc = add_op(p, WR_OP_REMOUNT_RO, NULL, "/", NULL, "system", err);
    if (rc == WR_OK)
        rc = add_op(p, WR_OP_CHDIR, NULL, cmd->cwd, NULL, NULL, err);
    if (rc == WR_OK)
        return WR_OK;
fail:
    wr_plan_free(p);
    return rc;
}

int wr_plan_build(const wr_exec_request *req, size_t ci, bool apply, wr_plan *p, wr_error *err)
{
    memset(p, 0, sizeof *p);
    if (!req || !req->contract || ci >= req->contract->ncommands)
        return wr_errorf(err, WR_E_INVALID, "", "no such command %zu", ci);
    const wr_host_facts *hf = wr_launch_pool_facts(req->launchers, req->cgroup_root);
    if (hf)
        return build(req, ci, apply, hf, p, err);
    wr_host_facts own;
    int rc = wr_host_facts_probe(req->cgroup_root, &own, err);
    if (rc == WR_OK)
        rc = build(req, ci, apply, &own, p, err);
    wr_host_facts_free(&own);
    return rc;
}

/* Name in the recorded plan and bwrap option of each operation, by kind. */
static const struct {
    const char *name, *opt;
} op_table[] = {
    [WR_OP_RO_BIND] = {"ro-bind", "--ro-bind"},
    [WR_OP_BIND] = {"bind", "--bind"},
    [WR_OP_RO_BIND_TRY] = {"ro-bind-try", "--ro-bind-try"},
    [WR_OP_TMPFS] = {"tmpfs", "--tmpfs"},
    [WR_OP_PROC] = {"proc", "--proc"},
    [WR_OP_DEV] = {"dev", "--dev"},
    [WR_OP_DIR] = {"dir", "--dir"},
    [WR_OP_SYMLINK] = {"symlink", "--symlink"},
    [WR_OP_FILE] = {"file", "--ro-bind-data"},
    [WR_OP_SETENV] = {"setenv", NULL},
    [WR_OP_REMOUNT_RO] = {"remount-ro", "--remount-ro"},
    [WR_OP_CHDIR] = {"chdir", "--chdir"},
    [WR_OP_EXE] = {"exe", "--ro-bind"},
    [WR_OP_INIT] = {"init", "--ro-bind"},
};

static void set_str(json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

json_object *wr_plan_to_json(const wr_plan *p)
{
    json_object *o = json_object_new_object();
    json_object *ns = json_object_new_array();
    static const char *const spaces[] = {"user", "mount", "pid", "ipc", "uts", "cgroup", "net"};
    for (size_t i = 0; i < 7; i++) /* net: bwrap's, or (share_net) the one network.c made */
        json_object_array_add(ns, json_object_new_string(spaces[i]));
    json_object_object_add(o, "launcher", json_object_new_string("bwrap"));
    json_object_object_add(o, "unshare", ns);
    json_object_object_add(o, "share_net", json_object_new_boolean(p->share_net));
    json_object_object_add(o, "network", json_object_new_string(wr_network_mode_name(p->network)));
    static const char *const egress[] = {
        [WR_NET_DENY] = "none", [WR_NET_ALLOWLISTED] = "proxy " WR_EGRESS_PROXY_ADDR, [WR_NET_FULL] = "slirp4netns"};
    json_object_object_add(o, "egress", json_object_new_string(egress[p->network]));
    json_object_object_add(o, "die_with_parent", json_object_new_boolean(true));
    json_object_object_add(o, "new_session", json_object_new_boolean(true));
    json_object_object_add(o, "clearenv", json_object_new_boolean(true));
    json_object *ops = json_object_new_array();
    for (size_t i = 0; i < p->nops; i++) {
        const wr_plan_op *op = &p->ops[i];
        json_object *j = json_object_new_object();
        set_str(j, "op", op_table[op->kind].name);
        if (op->kind != WR_OP_INIT) /* where warrant is installed is not part of the sandbox */
            set_str(j, "src", op->src);
        set_str(j, "dest", op->dest);
        set_str(j, "origin", op->origin);
        if (op->kind == WR_OP_FILE)
            set_str(j, "content", op->data);
        if (op->kind == WR_OP_SETENV && op->origin && !strcmp(op->origin, "fixed"))
            set_str(j, "value", op->data); /* host and secret values stay out of the record */
        if (op->kind == WR_OP_TMPFS)
            json_object_object_add(j, "size", json_object_new_int64(op->size));
        if (op->missing)
            json_object_object_add(j, "missing", json_object_new_boolean(true));
        if (op->created)
            json_object_object_add(j, "created", json_object_new_boolean(true));
        if (op->kind == WR_OP_EXE)
            json_object_object_add(j, "segment", json_object_new_int64((int64_t)op->segment));
        if (op->root_path)
            json_object_object_add(j, "root_only_path", json_object_new_boolean(true));
        json_object_array_add(ops, j);
    }
    json_object_object_add(o, "ops", ops);
    json_object *u = json_object_new_object();
    set_str(u, "name", p->run_as);
    json_object_object_add(u, "uid", json_object_new_int64(p->uid));
    json_object_object_add(u, "gid", json_object_new_int64(p->gid));
    json_object_object_add(u, "supplementary_groups", json_object_new_array());
    json_object_object_add(u, "dropped_from_root", json_object_new_boolean(p->drop_root));
    set_str(u, "note", p->run_as_note);
    if (p->dynamic) {
        json_object_object_add(u, "dynamic", json_object_new_boolean(true));
        json_object_object_add(u, "owner_uid", json_object_new_int64(p->owner_uid));
        json_object *sg = NULL;
        if (json_object_object_get_ex(u, "supplementary_groups", &sg))
            json_object_array_add(sg, json_object_new_int64(p->owner_gid));
    }
    json_object_object_add(o, "user", u);
    json_object_object_add(o, "no_new_privs", json_object_new_boolean(true));
    json_object_object_add(o, "capability_bounding_set", json_object_new_array());
    json_object *rl = json_object_new_object();
    json_object_object_add(rl, "method", json_object_new_string("setrlimit"));
    json_object_object_add(rl, "cpu_sec", json_object_new_int64(p->rl.cpu_sec));
    json_object_object_add(rl, "as_bytes", json_object_new_int64(p->rl.as_bytes));
    json_object_object_add(rl, "nproc", json_object_new_int64(p->rl.nproc));
    json_object_object_add(rl, "fsize_bytes", json_object_new_int64(p->rl.fsize_bytes));
    json_object_object_add(rl, "nofile", json_object_new_int64(p->rl.nofile));
    json_object_object_add(rl, "core_bytes", json_object_new_int64(0));
    json_object_object_add(o, "rlimits", rl);
    json_object_object_add(o, "cgroup", wr_cg_plan_json(&p->cg));
    json_object *sc = json_object_new_object();
    set_str(sc, "profile", p->seccomp_id);
    static const char *const families[] = {[WR_SOCK_UNIX] = "unix",
                                           [WR_SOCK_INET] = "unix inet inet6",
                                           [WR_SOCK_INET_ROUTE] = "unix inet inet6 netlink-route"};
    json_object_object_add(sc, "socket_families", json_object_new_string(families[p->sock]));
    json_object_object_add(sc, "io_uring", json_object_new_string("ENOSYS"));
    set_str(sc, "bpf_sha256", p->bpf_sha256);
    json_object_object_add(o, "seccomp", sc);
    json_object_object_add(o, "pid1", json_object_new_string(WR_INIT_NAME));
    json_object_object_add(o, "landlock_abi", json_object_new_int(p->landlock_abi));
    if (p->landlock_note)
        json_object_object_add(o, "landlock_note", json_object_new_string(p->landlock_note));
    return o;
}

static int push(wr_strv *sv, const char *s, wr_error *err)
{
    return wr_strv_push(sv, s) == WR_OK ? WR_OK : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
}

/* Appends the NULL-terminated list of words. */
static int pushv(wr_strv *sv, wr_error *err, ...)
{
    va_list ap;
    va_start(ap, err);
    int rc = WR_OK;
    for (const char *w = va_arg(ap, const char *); w && rc == WR_OK; w = va_arg(ap, const char *))
        rc = push(sv, w, err);
    va_end(ap);
    return rc;
}

int wr_plan_op_fd(const wr_plan_op *op, int flags, size_t segment)
{
    bool fds = flags & WR_RENDER_FDS;
    switch (op->kind) {
    case WR_OP_RO_BIND:
    case WR_OP_BIND:
        return fds && !op->missing && op->fd >= 0 ? op->fd : WR_OP_NO_FD;
    case WR_OP_FILE:
        return WR_OP_DATA_FD;
    case WR_OP_EXE:
        return op->segment == segment && !op->root_path && (flags & WR_RENDER_INIT) && fds && op->fd >= 0 ? op->fd
                                                                                                          : WR_OP_NO_FD;
    case WR_OP_INIT:
        return (flags & WR_RENDER_INIT) && fds && op->fd >= 0 ? op->fd : WR_OP_NO_FD;
    default:
        return WR_OP_NO_FD;
    }
}

int wr_plan_render(const wr_plan *p, int flags, size_t segment, char *const *argv, wr_strv *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    char num[32], slotbuf[32];
    const char *exe = argv ? argv[0] : NULL;
    int rc = pushv(out, err, WR_EXEC_BWRAP, "--unshare-all", "--die-with-parent", "--new-session", NULL);
    if (rc == WR_OK && p->share_net)
        rc = push(out, "--share-net", err);
    snprintf(num, sizeof num, "%d", WR_SLOT_SECCOMP);
    if (rc == WR_OK && (flags & WR_RENDER_SECCOMP))
        rc = pushv(out, err, "--seccomp", num, NULL);
    snprintf(num, sizeof num, "%d", WR_SLOT_BWRAP_STATUS);
    if (rc == WR_OK && (flags & WR_RENDER_INIT))
        rc = pushv(out, err, "--as-pid-1", "--json-status-fd", num, NULL);
    int slot = WR_SLOT_FIRST;
    for (size_t i = 0; rc == WR_OK && i < p->nops; i++) {
        const wr_plan_op *op = &p->ops[i];
        const char *opt = op_table[op->kind].opt;
        bool has_slot = wr_plan_op_fd(op, flags, segment) != WR_OP_NO_FD;
        if (has_slot)
            snprintf(slotbuf, sizeof slotbuf, "%d", slot++);
        switch (op->kind) {
        case WR_OP_EXE:
            if (op->segment != segment || !(flags & WR_RENDER_INIT))
                break; /* without init, argv runs directly */
            exe = op->dest;
            if (op->root_path)
                break; /* shown as is by the system bind: root_only_path */
            /* fall through */
        case WR_OP_RO_BIND:
        case WR_OP_BIND:
        case WR_OP_INIT:
            if (op->missing || (op->kind == WR_OP_INIT && !(flags & WR_RENDER_INIT)))
                break;
            if (has_slot) /* the fd checked when the plan was built, not the path again */
                rc = pushv(out, err, op->kind == WR_OP_BIND ? "--bind-fd" : "--ro-bind-fd", slotbuf, op->dest, NULL);
            else
                rc = pushv(out, err, opt, op->src, op->dest, NULL);
            break;
        case WR_OP_RO_BIND_TRY:
        case WR_OP_SYMLINK:
            rc = pushv(out, err, opt, op->src, op->dest, NULL);
            break;
        case WR_OP_TMPFS:
            snprintf(num, sizeof num, "%lld", (long long)op->size);
            rc = pushv(out, err, "--size", num, opt, op->dest, NULL);
            break;
        case WR_OP_FILE:
            rc = pushv(out, err, "--perms", "0644", opt, slotbuf, op->dest, NULL);
            break;
        case WR_OP_SETENV:
            break; /* through init's config, see wr_plan_config */
        default:
            rc = pushv(out, err, opt, op->dest, NULL);
            break;
        }
    }
    if (rc == WR_OK)
        rc = push(out, "--", err);
    if (rc == WR_OK && (flags & WR_RENDER_INIT)) {
        char sfd[16], cfd[16];
        snprintf(sfd, sizeof sfd, "%d", WR_SLOT_INIT_STATUS);
        snprintf(cfd, sizeof cfd, "%d", WR_SLOT_INIT_CONFIG);
        rc = pushv(out, err, WR_INIT_SANDBOX_PATH, sfd, cfd, exe ? exe : "", NULL);
    }
    for (size_t i = 0; rc == WR_OK && argv && argv[i]; i++)
        rc = push(out, argv[i], err);
    if (rc != WR_OK)
        wr_strv_free(out);
    return rc;
}

int wr_plan_envp(const wr_plan *p, wr_strv *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < p->nops; i++) {
        const wr_plan_op *op = &p->ops[i];
        if (op->kind != WR_OP_SETENV)
            continue;
        size_t n = strlen(op->dest) + strlen(op->data) + 2;
        char *kv = malloc(n);
        if (!kv) {
            wr_strv_free(out);
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        }
        snprintf(kv, n, "%s=%s", op->dest, op->data);
        int rc = push(out, kv, err);
        explicit_bzero(kv, n);
        free(kv);
        if (rc != WR_OK) {
            wr_strv_free(out);
            return rc;
        }
    }
    return WR_OK;
}

/* One config record: tag byte, text, NUL. */
static int record(wr_strv *sv, char tag, const char *a, const char *b, wr_error *err)
{
    size_t n = 1 + strlen(a) + (b ? 1 + strlen(b) : 0) + 1;
    char *r = malloc(n);
    if (!r)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    snprintf(r, n, "%c%s%s%s", tag, a, b ? "=" : "", b ? b : "");
    int rc = push(sv, r, err);
    explicit_bzero(r, n);
    free(r);
    return rc;
}

/* Landlock's tag for an operation: what the command may do beneath its
 * destination. cwd, symlinks, init and the remounts grant nothing. */
static char landlock_tag(const wr_plan_op *op)
{
    switch (op->kind) {
    case WR_OP_RO_BIND:
        return op->missing || !strcmp(op->origin, "cwd") ? 0 : WR_CFG_READ;
    case WR_OP_BIND:
        return WR_CFG_WRITE;
    case WR_OP_RO_BIND_TRY:
    case WR_OP_FILE:
    case WR_OP_EXE:
        return WR_CFG_READ;
    case WR_OP_TMPFS:
        return WR_CFG_WRITE;
    case WR_OP_DEV:
        return WR_CFG_DEVICES;
    case WR_OP_PROC:
        return WR_CFG_PROC;
    default:
        return 0;
    }
}

int wr_plan_config(const wr_plan *p, char **buf, size_t *len, wr_error *err)
{
    *buf = NULL;
    *len = 0;
    wr_strv recs = {0};
    char abi[16];
    snprintf(abi, sizeof abi, "%d", p->landlock_abi);
    int rc = record(&recs, WR_CFG_LANDLOCK_ABI, abi, NULL, err);
    /* allowlisted: the proxy's port only; full: any; deny: none */
    char tcp[16];
    snprintf(tcp, sizeof tcp, "%d",
             p->network == WR_NET_ALLOWLISTED ? WR_EGRESS_PROXY_PORT
             : p->share_net                   ? WR_LL_TCP_ANY
                                              : WR_LL_TCP_NONE);
    if (rc == WR_OK)
        rc = record(&recs, WR_CFG_TCP, tcp, NULL, err);
    for (size_t i = 0; rc == WR_OK && i < p->nops; i++) {
        const wr_plan_op *op = &p->ops[i];
        char tag = landlock_tag(op);
        if (op->kind == WR_OP_SETENV)
            rc = record(&recs, WR_CFG_ENV, op->dest, op->data, err);
        else if (tag && p->landlock_abi > 0)
            rc = record(&recs, tag, op->dest, NULL, err);
    }
    if (rc == WR_OK)
        rc = record(&recs, WR_CFG_END, "", NULL, err);
    size_t total = 0;
    for (size_t i = 0; rc == WR_OK && i < recs.n; i++)
        total += strlen(recs.v[i]) + 1;
    if (rc == WR_OK && total > WR_INIT_CONFIG_MAX)
        rc = wr_errorf(err, WR_E_LIMIT, "env_allow", "the command's environment and paths take %zu bytes (limit %d)",
                       total, WR_INIT_CONFIG_MAX);
    if (rc == WR_OK && !(*buf = malloc(total ? total : 1)))
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (size_t i = 0; rc == WR_OK && i < recs.n; i++) {
        size_t n = strlen(recs.v[i]) + 1;
        memcpy(*buf + *len, recs.v[i], n);
        *len += n;
    }
    for (size_t i = 0; i < recs.n; i++) /* env records may hold secret values */
        explicit_bzero(recs.v[i], strlen(recs.v[i]));
    wr_strv_free(&recs);
    return rc;
}
