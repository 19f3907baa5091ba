/* CSC read paths may be globs ("/workspace/" "**" "/" "*.py"). The policy
 * scopes a glob by its literal root; the sandbox shows exactly the entries
 * it matches now, not the whole root. The walk starts at the literal root
 * and goes down by directory fds (openat with O_NOFOLLOW|O_DIRECTORY), so a
 * symlink is never followed: a symlinked directory is not entered and a
 * symlink that matches is not shown, whatever it points at. A last
 * component "**" keeps its meaning (the whole subtree, bound at its root). */
#include "executor/executor_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounds on one expansion: binds the sandbox would carry, directory entries
 * looked at, directory levels open at once. */
#define GLOB_MAX_MATCHES 4096
#define GLOB_MAX_VISITS  200000
#define GLOB_MAX_DEPTH   64

typedef struct walk {
    char **comp; /* pattern components after the literal root */
    size_t ncomp;
    wr_strv *out;
    size_t visits;
    const char *decl;
    wr_error *err;
} walk;

static int add_match(walk *w, const char *path)
{
    if (w->out->n >= GLOB_MAX_MATCHES)
        return wr_errorf(w->err, WR_E_LIMIT, w->decl, "read path %s matches more than %d entries", w->decl,
                         GLOB_MAX_MATCHES);
    return wr_strv_push(w->out, path) ? wr_errorf(w->err, WR_E_NOMEM, "", "out of memory") : WR_OK;
}

static int walk_dir(walk *w, int dirfd, const char *path, size_t ci, int depth);

/* One entry of dirfd that component ci matched: the last component shows
 * it, an earlier one goes down into it if it is a real directory. */
static int take(walk *w, int dirfd, const char *path, const char *name, size_t ci, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISLNK(st.st_mode))
        return WR_OK;
    char sub[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s/%s", strcmp(path, "/") ? path : "", name) >= (int)sizeof sub)
        return WR_OK;
    if (ci + 1 == w->ncomp)
        return add_match(w, sub);
    if (!S_ISDIR(st.st_mode))
        return WR_OK;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return WR_OK;
    int rc = walk_dir(w, fd, sub, ci + 1, depth + 1);
    close(fd);
    return rc;
}

/* Matches components ci.. below dirfd (which names path); closes nothing. */
static int walk_dir(walk *w, int dirfd, const char *path, size_t ci, int depth)
{
    if (ci == w->ncomp)
        return add_match(w, path);
    if (depth > GLOB_MAX_DEPTH)
        return wr_errorf(w->err, WR_E_LIMIT, w->decl, "read path %s goes deeper than %d directories", w->decl,
                         GLOB_MAX_DEPTH);
    const char *pat = w->comp[ci];
    bool star = !strcmp(pat, "**");
    if (star && ci + 1 == w->ncomp)
        return add_match(w, path); /* a last "**": the whole subtree */
    if (!star && !wr_path_is_glob(pat))
        return take(w, dirfd, path, pat, ci, depth);
    int rc = star ? walk_dir(w, dirfd, path, ci + 1, depth) : WR_OK; /* "**" as zero directories */
    /* its own open file description: a dup() would share the read offset
     * with the listings of the levels above and below */
    int fd = rc ? -1 : openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    for (struct dirent *e; rc == WR_OK && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (++w->visits > GLOB_MAX_VISITS) {
            rc = wr_errorf(w->err, WR_E_LIMIT, w->decl, "read path %s: more than %d entries to look at", w->decl,
                           GLOB_MAX_VISITS);
            break;
        }
        if (fnmatch(star ? "*" : pat, e->d_name, FNM_PERIOD) != 0)
            continue;
        if (!star) {
            rc = take(w, dirfd, path, e->d_name, ci, depth);
            continue;
        }
        /* "**" as one more directory: stay on the same component */
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        char subpath[PATH_MAX];
        if (sub < 0)
            continue;
        if (snprintf(subpath, sizeof subpath, "%s/%s", strcmp(path, "/") ? path : "", e->d_name) < (int)sizeof subpath)
            rc = walk_dir(w, sub, subpath, ci, depth + 1);
        close(sub);
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One glob read path: its matches appended to out. */
static int expand_one(const char *decl, wr_strv *out, wr_error *err)
{
    char *copy = strdup(decl), *comp[WR_CONTRACT_MAX_PATH_BYTES / 2];
    if (!copy)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    size_t n = 0, lit = 0;
    for (char *save = NULL, *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (lit == n && !wr_path_is_glob(t))
            lit++;
        comp[n++] = t;
    }
    char root[PATH_MAX] = "/";
    for (size_t i = 0, o = 0; i < lit; i++)
        o += (size_t)snprintf(root + o, sizeof root - o, "/%s", comp[i]);
    /* The literal root must be a real directory, reached without symlinks. */
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    char real[PATH_MAX];
    int rc = WR_OK;
    if (fd >= 0 && realpath(root, real) && !strcmp(real, root)) {
        walk w = {comp + lit, n - lit, out, 0, decl, err};
        rc = walk_dir(&w, fd, root, 0, 0);
    }
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int wr_read_globs_expand(const wr_strv *read_paths, wr_strv *out, wr_error *err)
{
    int rc = WR_OK;
    for (size_t i = 0; rc == WR_OK && i < read_paths->n; i++) {
        const char *rp = read_paths->v[i];
        /* a plain path, or one whose only pattern is a last "**" (its
         * subtree, bound at its root as before) */
        size_t len = strlen(rp);
        bool subtree = len >= 3 && !strcmp(rp + len - 3, "/**");
        char body[WR_CONTRACT_MAX_PATH_BYTES + 1];
        snprintf(body, sizeof body, "%.*s", (int)(subtree ? len - 3 : len), rp);
        if (!wr_path_is_glob(body))
            rc = wr_strv_push(out, rp) ? wr_errorf(err, WR_E_NOMEM, "", "out of memory") : WR_OK;
        else
            rc = expand_one(rp, out, err);
    }
    if (rc == WR_OK && out->n > 1) {
        qsort(out->v, out->n, sizeof *out->v, cmp_str);
        size_t k = 1;
        for (size_t i = 1; i < out->n; i++) {
            if (strcmp(out->v[i], out->v[k - 1]))
                out->v[k++] = out->v[i];
            else
                free(out->v[i]);
        }
        out->n = k;
    }
    return rc;
}
