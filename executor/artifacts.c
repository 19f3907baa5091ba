/* Artifacts: the files a command created or modified under its write
 * paths, found by walking the (already checked) write roots before and
 * after the command, without following symlinks or leaving the filesystem,
 * and bounded in count so a command cannot make the walk unbounded. */
#include "executor/executor_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct entry {
    char *path;
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

static int walk_root(wr_snapshot *s, const char *root, wr_error *err)
{
    char *paths[] = {(char *)root, NULL};
    FTS *f = fts_open(paths, FTS_PHYSICAL | FTS_XDEV | FTS_NOCHDIR, NULL);
    if (!f)
        return wr_errorf(err, WR_E_IO, root, "cannot walk %s: %s", root, strerror(errno));
    int rc = WR_OK;
    FTSENT *ent;
    while ((ent = fts_read(f)) != NULL) {
        if (ent->fts_info != FTS_F)
            continue;
        if (s->n >= WR_ARTIFACT_MAX_FILES) {
            s->truncated = true;
            break;
        }
        if (s->n == s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 64;
            entry *ne = realloc(s->e, nc * sizeof *ne);
            if (!ne) {
                rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
                break;
            }
            s->e = ne;
            s->cap = nc;
        }
        const struct stat *st = ent->fts_statp;
        entry *e = &s->e[s->n];
        e->path = strdup(ent->fts_path);
        if (!e->path) {
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            break;
        }
        e->dev = st->st_dev;
        e->ino = st->st_ino;
        e->size = st->st_size;
        e->mtime = st->st_mtim;
        e->ctime = st->st_ctim;
        s->n++;
    }
    fts_close(f);
    return rc;
}

int wr_snapshot_take(const wr_plan *p, wr_snapshot **out, wr_error *err)
{
    wr_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    int rc = WR_OK;
    for (size_t i = 0; rc == WR_OK && i < p->nops; i++)
        if (p->ops[i].kind == WR_OP_BIND && p->ops[i].src)
            rc = walk_root(s, p->ops[i].src, err);
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
    wr_snapshot *after = NULL;
    int rc = wr_snapshot_take(p, &after, err);
    if (rc != WR_OK)
        return rc;
    if (after->truncated || before->truncated)
        r->artifacts_truncated = true;
    for (size_t i = 0; rc == WR_OK && i < after->n; i++) {
        const entry *a = &after->e[i];
        const entry *b = before->n ? bsearch(a, before->e, before->n, sizeof *before->e, cmp_entry) : NULL;
        if (b && b->dev == a->dev && b->ino == a->ino && b->size == a->size && b->mtime.tv_sec == a->mtime.tv_sec &&
            b->mtime.tv_nsec == a->mtime.tv_nsec && b->ctime.tv_sec == a->ctime.tv_sec &&
            b->ctime.tv_nsec == a->ctime.tv_nsec)
            continue;
        /* O_NOFOLLOW | O_NONBLOCK: the command may have swapped the file for
         * a symlink or a FIFO since the walk. */
        int fd = open(a->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        if (fd < 0)
            continue; /* removed again meanwhile */
        char sha[WR_SHA256_HEX_LEN];
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && wr_exec_file_sha256(fd, sha, NULL) == WR_OK)
            rc = record(r, a->path, sha, err);
        close(fd);
    }
    wr_snapshot_free(after);
    return rc;
}
