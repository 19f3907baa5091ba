/* capsules — walking a directory tree into the canonical file list (pack,
 * and the check of a cached unpacked copy), names, hashes, removal. */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsules/capsules_internal.h"

#define HASH_CHUNK (1u << 16)

bool wr_capsule_path_ok(const char *rel)
{
    size_t len = rel ? strlen(rel) : 0;
    if (len == 0 || len > WR_CAPSULE_MAX_PATH_BYTES || rel[0] == '/' || !wr_utf8_valid(rel, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)rel[i] < 0x20 || rel[i] == 0x7f)
            return false;
    /* Component by component: "", "." and ".." are refused. */
    for (const char *c = rel;;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        if (!slash)
            return true;
        c = slash + 1;
    }
}

const char *wr__capsule_shown(const char *s, char buf[WR__SHOWN_MAX])
{
    bool utf8 = wr_utf8_valid(s, strlen(s));
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 5 < WR__SHOWN_MAX; p++) {
        if (*p < 0x20 || *p == 0x7f || (!utf8 && *p >= 0x80))
            n += (size_t)snprintf(buf + n, WR__SHOWN_MAX - n, "\\x%02x", *p);
        else
            buf[n++] = (char)*p;
    }
    buf[n] = 0;
    return buf;
}

void wr__sha256_final(EVP_MD_CTX *md, char out[WR_SHA256_HEX_LEN])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    for (unsigned i = 0; i < dl; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int wr__sha256_fd(int fd, char out[WR_SHA256_HEX_LEN], wr_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(HASH_CHUNK);
    int rc = WR_OK;
    if (!md || !buf || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    ssize_t n = 0;
    while (rc == WR_OK && (n = read(fd, buf, HASH_CHUNK)) > 0)
        EVP_DigestUpdate(md, buf, (size_t)n);
    if (rc == WR_OK && n < 0)
        rc = wr_errorf(err, WR_E_IO, "", "read: %s", strerror(errno));
    if (rc == WR_OK)
        wr__sha256_final(md, out);
    EVP_MD_CTX_free(md);
    free(buf);
    return rc;
}

void wr__capsule_files_free(wr_capsule_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const wr_capsule_file *)a)->path, ((const wr_capsule_file *)b)->path);
}

/* A symlink is never packed; the message says whether it would even have
 * stayed inside the tree, since one pointing out is the usual attack. */
static int refuse_symlink(const FTSENT *ent, const char *rel, const char *dir, wr_error *err)
{
    char target[PATH_MAX];
    ssize_t n = readlink(ent->fts_path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    char *resolved = realpath(ent->fts_path, NULL), *root = realpath(dir, NULL);
    bool inside = resolved && root && wr_path_within(resolved, root);
    free(resolved);
    free(root);
    char a[WR__SHOWN_MAX], b[WR__SHOWN_MAX];
    if (target[0] == '/' || !inside)
        return wr_errorf(err, WR_E_DENIED, "", "%s: symlink to %s points outside the capsule",
                         wr__capsule_shown(rel, a), wr__capsule_shown(target, b));
    return wr_errorf(err, WR_E_DENIED, "", "%s: symlink to %s; capsules hold regular files only",
                     wr__capsule_shown(rel, a), wr__capsule_shown(target, b));
}

static int add_file(const FTSENT *ent, const char *rel, wr_capsule_file **files, size_t *n, uint64_t *total,
                    wr_error *err)
{
    const struct stat *st = ent->fts_statp;
    if (*n >= WR_CAPSULE_MAX_FILES)
        return wr_errorf(err, WR_E_LIMIT, "", "more than %d files", WR_CAPSULE_MAX_FILES);
    if ((uint64_t)st->st_size > WR_CAPSULE_MAX_FILE_BYTES)
        return wr_errorf(err, WR_E_LIMIT, "", "%s: %lld bytes, over the limit of %llu per file", rel,
                         (long long)st->st_size, WR_CAPSULE_MAX_FILE_BYTES);
    if ((*total += (uint64_t)st->st_size) > WR_CAPSULE_MAX_TOTAL_BYTES)
        return wr_errorf(err, WR_E_LIMIT, "", "files add up to more than %llu bytes", WR_CAPSULE_MAX_TOTAL_BYTES);
    if (*n % 64 == 0) {
        wr_capsule_file *nf = realloc(*files, (*n + 64) * sizeof *nf);
        if (!nf)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        *files = nf;
    }
    wr_capsule_file *f = &(*files)[*n];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(rel)))
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    (*n)++;
    f->size = (uint64_t)st->st_size;
    f->executable = (st->st_mode & 0111) != 0;
    /* O_NOFOLLOW | O_NONBLOCK: the entry may have been swapped for a
     * symlink or a FIFO since the walk saw a regular file. */
    int fd = open(ent->fts_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat now;
    if (fd < 0 || fstat(fd, &now) != 0 || !S_ISREG(now.st_mode) || now.st_size != st->st_size) {
        if (fd >= 0)
            close(fd);
        return wr_errorf(err, WR_E_IO, "", "%s: changed or unreadable while packing", rel);
    }
    int rc = wr__sha256_fd(fd, f->sha256, err);
    close(fd);
    return rc;
}

int wr__capsule_scan(const char *dir, wr_capsule_file **files, size_t *n, wr_error *err)
{
    *files = NULL;
    *n = 0;
    char *paths[] = {(char *)dir, NULL};
    FTS *f = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
    if (!f)
        return wr_errorf(err, WR_E_IO, "", "cannot walk %s: %s", dir, strerror(errno));
    size_t root_len = strlen(dir);
    while (root_len > 1 && dir[root_len - 1] == '/')
        root_len--;
    uint64_t total = 0;
    int rc = WR_OK;
    FTSENT *ent;
    while (rc == WR_OK && (ent = fts_read(f)) != NULL) {
        if (ent->fts_level == 0) {
            if (ent->fts_info != FTS_D && ent->fts_info != FTS_DP)
                rc = wr_errorf(err, WR_E_IO, "", "%s is not a directory", dir);
            continue;
        }
        const char *rel = ent->fts_path + root_len + 1;
        char shown[WR__SHOWN_MAX];
        switch (ent->fts_info) {
        case FTS_D:
            if (!wr_capsule_path_ok(rel))
                rc = wr_errorf(err, WR_E_INVALID, "", "directory name '%s' is not allowed in a capsule",
                               wr__capsule_shown(rel, shown));
            break;
        case FTS_DP:
            break;
        case FTS_F:
            if (!wr_capsule_path_ok(rel))
                rc = wr_errorf(err, WR_E_INVALID, "", "file name '%s' is not allowed in a capsule",
                               wr__capsule_shown(rel, shown));
            else
                rc = add_file(ent, rel, files, n, &total, err);
            break;
        case FTS_SL:
        case FTS_SLNONE:
            rc = refuse_symlink(ent, rel, dir, err);
            break;
        case FTS_DNR:
        case FTS_ERR:
        case FTS_NS:
            rc = wr_errorf(err, WR_E_IO, "", "%s: %s", rel, strerror(ent->fts_errno));
            break;
        default:
            rc = wr_errorf(err, WR_E_DENIED, "", "%s: a device, FIFO or socket; capsules hold regular files only", rel);
        }
    }
    fts_close(f);
    if (rc != WR_OK) {
        wr__capsule_files_free(*files, *n);
        *files = NULL;
        *n = 0;
        return rc;
    }
    if (*n)
        qsort(*files, *n, sizeof **files, cmp_file);
    return WR_OK;
}

void wr__capsule_remove_tree(const char *path)
{
    char *paths[] = {(char *)path, NULL};
    FTS *f = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
    if (!f)
        return;
    FTSENT *ent;
    while ((ent = fts_read(f)) != NULL) {
        if (ent->fts_info == FTS_D)
            chmod(ent->fts_accpath, 0700); /* read-only copies: make room to delete */
        else if (ent->fts_info == FTS_DP)
            rmdir(ent->fts_accpath);
        else
            unlink(ent->fts_accpath);
    }
    fts_close(f);
}
