/* Artifacts: the files a command created or modified under its write
 * paths, found by walking the (already checked) write roots before and
 * after the command, and bounded in count and depth so a command cannot
 * make the walk unbounded.
 *
 * The trees are agent-writable and another sandbox may be rewriting them
 * during the walk (a directory swapped for a symlink with renameat2
 * RENAME_EXCHANGE), so nothing is ever looked up by path: the walk starts
 * from the fd the plan checked, opens one component at a time with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV), lists each
 * directory through fdopendir, hashes the file it opened, and runs with
 * the sandbox user's file-system credentials. */
#include "executor/executor_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_DEPTH 64 /* directory levels below a write root; one fd each */

typedef struct entry {
    char *path; /* host path */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} entry;

struct wr_snapshot {
    entry *e;
    size_t n, cap;
    bool truncated;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

void wr_snapshot_free(wr_snapshot *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->e[i].path);
    free(s->e);
    free(s);
}

int wr_open_beneath(int dirfd, const char *name, int flags)
{
    struct open_how how = {
        /* openat2 refuses flags O_PATH ignores */
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC | (flags & O_PATH ? 0 : O_NOCTTY)),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
}

/* One walk: collecting a snapshot (before == NULL) or, after the command,
 * hashing every file that differs from before into r. */
typedef struct walk {
    wr_snapshot *s;
    const wr_snapshot *before;
    wr_exec_result *r;
    const wr_plan *handback; /* or: giving the dynamic uid's files to the owner */
    bool handback_truncated;
    size_t handback_failed;
    size_t files;
    char path[PATH_MAX];
    wr_error *err;
} walk;

static int record(wr_exec_result *r, const char *path, const char *sha, wr_error *err);

static bool unchanged(const walk *w, const struct stat *st)
{
    entry key = {.path = (char *)w->path};
    const entry *b = w->before->n ? bsearch(&key, w->before->e, w->before->n, sizeof key, cmp_entry) : NULL;
    return b && b->dev == st->st_dev && b->ino == st->st_ino && b->size == st->st_size &&
           b->mtime.tv_sec == st->st_mtim.tv_sec && b->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           b->ctime.tv_sec == st->st_ctim.tv_sec && b->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static int add_entry(walk *w, const struct stat *st)
{
    wr_snapshot *s = w->s;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        entry *ne = realloc(s->e, nc * sizeof *ne);
        if (!ne)
            return wr_errorf(w->err, WR_E_NOMEM, "", "out of memory");
        s->e = ne;
        s->cap = nc;
    }
    entry *e = &s->e[s->n];
    if (!(e->path = strdup(w->path)))
        return wr_errorf(w->err, WR_E_NOMEM, "", "out of memory");
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    s->n++;
    return WR_OK;
}

/* A regular file named name in dirfd: recorded, or hashed when changed.
 * What is hashed is the file this open returned, whatever the name means
 * by then. */
static int visit_file(walk *w, int dirfd, const char *name)
{
    int fd = wr_open_beneath(dirfd, name, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return WR_OK; /* removed, or swapped for a symlink, meanwhile */
    struct stat st;
    int rc = WR_OK;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if (!w->before) {
            rc = add_entry(w, &st);
        } else if (!unchanged(w, &st)) {
            char sha[WR_SHA256_HEX_LEN];
            if (wr_exec_file_sha256(fd, sha, NULL) == WR_OK)
                rc = record(w->r, w->path, sha, w->err);
        }
    }
    close(fd);
    return rc;
}

static bool *truncated_flag(walk *w)
{
    return w->handback ? &w->handback_truncated : w->before ? &w->r->artifacts_truncated : &w->s->truncated;
}

/* name in dirfd, whatever it is (symlinks too, never followed), passes
 * from the run's dynamic uid to its owner. */
static void hand_back(walk *w, int dirfd, const char *name)
{
    const wr_plan *p = w->handback;
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == p->uid &&
        fchownat(dirfd, name, p->owner_uid, p->owner_gid, AT_SYMLINK_NOFOLLOW) != 0)
        w->handback_failed++;
}

/* Lists the directory dirfd (whose host path is w->path) and descends. */
static int walk_dir(walk *w, int dirfd, int depth)
{
    int lfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
    if (!d) {
        if (lfd >= 0)
            close(lfd);
        return WR_OK; /* not readable by the sandbox user: nothing it wrote */
    }
    size_t base = strlen(w->path);
    int rc = WR_OK;
    struct dirent *de;
    while (rc == WR_OK && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (w->handback)
            hand_back(w, dirfd, de->d_name);
        if (de->d_type != DT_DIR && de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
            continue; /* symlinks, FIFOs, sockets: not artifacts, never followed */
        if (snprintf(w->path + base, sizeof w->path - base, "/%s", de->d_name) >= (int)(sizeof w->path - base)) {
            *truncated_flag(w) = true;
            continue;
        }
        int fd = wr_open_beneath(dirfd, de->d_name, O_PATH);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0) {
            if (S_ISREG(st.st_mode) && w->handback) {
                /* handed back above */
            } else if (S_ISREG(st.st_mode)) {
                if (w->files++ >= WR_ARTIFACT_MAX_FILES) {
                    *truncated_flag(w) = true;
                    close(fd);
                    break;
                }
                rc = visit_file(w, dirfd, de->d_name);
            } else if (S_ISDIR(st.st_mode)) {
                int sub = depth < MAX_DEPTH ? wr_open_beneath(dirfd, de->d_name, O_RDONLY | O_DIRECTORY) : -1;
                if (depth >= MAX_DEPTH)
                    *truncated_flag(w) = true;
                if (sub >= 0) {
                    rc = walk_dir(w, sub, depth + 1);
                    close(sub);
                }
            }
        }
        if (fd >= 0)
            close(fd);
        w->path[base] = 0;
    }
    closedir(d);
    return rc;
}

/* Walks every write root of the plan from the fd the plan checked, as the
 * sandbox user when we are root (fsuid is per thread; switched only when
 * there is a root to walk). */
static int walk_roots(const wr_plan *p, walk *w)
{
    bool as_user = p->drop_root && !w->handback; /* giving files away needs CAP_CHOWN */
    bool switched = false;
    int rc = WR_OK;
    for (size_t i = 0; rc == WR_OK && i < p->nops; i++) {
        const wr_plan_op *op = &p->ops[i];
        if (op->kind != WR_OP_BIND || !op->src || op->fd < 0)
            continue;
        if (as_user && !switched) {
            setfsgid(p->gid);
            setfsuid(p->uid);
            switched = true;
        }
        int root = openat(op->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
            continue; /* a write path that is a file: not walked, as before */
        snprintf(w->path, sizeof w->path, "%s", strcmp(op->src, "/") ? op->src : "");
        struct stat st;
        if (w->handback && fstat(root, &st) == 0 && st.st_uid == p->uid &&
            fchown(root, p->owner_uid, p->owner_gid) != 0) /* a write path created for this run */
            w->handback_failed++;
        rc = walk_dir(w, root, 0);
        close(root);
    }
    if (switched) {
        setfsuid(0);
        setfsgid(0);
    }
    return rc;
}

int wr_snapshot_take(const wr_plan *p, wr_snapshot **out, wr_error *err)
{
    wr_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    walk w = {.s = s, .err = err};
    int rc = walk_roots(p, &w);
    if (rc != WR_OK) {
        wr_snapshot_free(s);
        return rc;
    }
    if (s->n)
        qsort(s->e, s->n, sizeof *s->e, cmp_entry);
    *out = s;
    return WR_OK;
}

int wr_exec_file_sha256(int fd, char out[WR_SHA256_HEX_LEN], wr_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return wr_errorf(err, WR_E_INTERNAL, "", "OpenSSL SHA-256 unavailable");
    }
    unsigned char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        EVP_DigestUpdate(md, buf, (size_t)n);
    int rc = WR_OK;
    if (n < 0)
        rc = wr_errorf(err, WR_E_IO, "", "read: %s", strerror(errno));
    else
        wr_exec_md_hex(md, out);
    EVP_MD_CTX_free(md);
    return rc;
}

static int record(wr_exec_result *r, const char *path, const char *sha, wr_error *err)
{
    for (size_t i = 0; i < r->nartifacts; i++)
        if (!strcmp(r->artifacts[i].path, path)) { /* modified again by a later command */
            memcpy(r->artifacts[i].sha256, sha, WR_SHA256_HEX_LEN);
            return WR_OK;
        }
    wr_artifact *na = realloc(r->artifacts, (r->nartifacts + 1) * sizeof *na);
    if (!na)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    r->artifacts = na;
    na[r->nartifacts].path = strdup(path);
    if (!na[r->nartifacts].path)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    memcpy(na[r->nartifacts].sha256, sha, WR_SHA256_HEX_LEN);
    r->nartifacts++;
    return WR_OK;
}

int wr_snapshot_diff(const wr_snapshot *before, const wr_plan *p, wr_exec_result *r, wr_error *err)
{
    if (before->truncated)
        r->artifacts_truncated = true;
    walk w = {.before = before, .r = r, .err = err};
    return walk_roots(p, &w);
}

int wr_uid_handback(const wr_plan *p, wr_error *err)
{
    walk w = {.handback = p, .err = err};
    int rc = walk_roots(p, &w);
    if (rc == WR_OK && (w.handback_failed || w.handback_truncated))
        rc = wr_errorf(err, WR_E_IO, "", "dynamic uid %u: %zu entries could not be handed back to %s%s",
                       (unsigned)p->uid, w.handback_failed, p->run_as, w.handback_truncated ? " (walk truncated)" : "");
    return rc;
}
