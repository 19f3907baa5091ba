/* capsules — the archive: packing a tree into canonical bytes, and reading
 * one back in a single checked pass (optionally unpacking as it goes). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsules/capsules_internal.h"
#include "policies/policies.h"
#include "schemas/schemas.h"

#define MANIFEST     "MANIFEST.json"
#define MANIFEST_SIG "MANIFEST.sig"
#define DATA_PREFIX  "data/"
#define SIG_MAX      4096
#define SPEC_MAX     (256u << 10)
#define IO_CHUNK     (1u << 16)
/* Fixed metadata: what makes two packs of one tree byte-identical. */
#define ENTRY_MTIME 0
#define MODE_FILE   0644
#define MODE_EXEC   0755

void wr_capsule_free(wr_capsule *c)
{
    if (!c)
        return;
    json_object_put(c->manifest);
    wr__capsule_files_free(c->files, c->nfiles);
    free(c);
}

/* ---- manifest ------------------------------------------------------------- */

static json_object *files_json(const wr_capsule_file *files, size_t n)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "path", json_object_new_string(files[i].path));
        json_object_object_add(f, "size", json_object_new_int64((int64_t)files[i].size));
        json_object_object_add(f, "sha256", json_object_new_string(files[i].sha256));
        json_object_object_add(f, "executable", json_object_new_boolean(files[i].executable));
        json_object_array_add(arr, f);
    }
    return arr;
}

static const char *str_member(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                             : NULL;
}

/* Schema, then what a schema cannot say: the format, path rules, order. */
static int check_manifest(json_object *m, wr_error *err)
{
    wr_schema *s = wr_schema_embedded("warrant.capsule.schema.json", err);
    if (!s)
        return err->code ? err->code : WR_E_INTERNAL;
    int rc = wr_schema_validate(s, m, err);
    wr_schema_free(s);
    if (rc != WR_OK)
        return rc;
    const char *format = str_member(m, "format");
    if (!format)
        return wr_errorf(err, WR_E_INVALID, "", "the manifest names no format");
    json_object *outputs = NULL, *files = NULL, *steps = NULL;
    /* Step ids become command ids beside the entrypoint's: all distinct. */
    if (json_object_object_get_ex(m, "steps", &steps))
        for (size_t i = 0; i < json_object_array_length(steps); i++) {
            const char *id = str_member(json_object_array_get_idx(steps, i), "id");
            bool dup = !strcmp(id, WR_CAPSULE_ENTRYPOINT_ID);
            for (size_t j = 0; j < i && !dup; j++)
                dup = !strcmp(id, str_member(json_object_array_get_idx(steps, j), "id"));
            if (dup)
                return wr_errorf(err, WR_E_INVALID, "", "step %zu: id '%s' is used twice (or is the entrypoint's)", i,
                                 id);
        }
    if (json_object_object_get_ex(m, "outputs", &outputs))
        for (size_t i = 0; i < json_object_array_length(outputs); i++)
            if (!wr_capsule_path_ok(json_object_get_string(json_object_array_get_idx(outputs, i))))
                return wr_errorf(err, WR_E_INVALID, "", "output %zu is not a normalised relative path", i);
    if (!json_object_object_get_ex(m, "files", &files))
        return wr_errorf(err, WR_E_INVALID, "", "the manifest lists no files");
    const char *prev = NULL;
    uint64_t total = 0;
    for (size_t i = 0; i < json_object_array_length(files); i++) {
        json_object *f = json_object_array_get_idx(files, i);
        const char *p = str_member(f, "path");
        /* Before a byte is unpacked: what the manifest promises must fit. */
        uint64_t size = (uint64_t)json_object_get_int64(json_object_object_get(f, "size"));
        if (size > WR_CAPSULE_MAX_FILE_BYTES || (total += size) > WR_CAPSULE_MAX_TOTAL_BYTES)
            return wr_errorf(err, WR_E_LIMIT, "", "file %zu: over the limit of %llu bytes per file or %llu in all", i,
                             WR_CAPSULE_MAX_FILE_BYTES, WR_CAPSULE_MAX_TOTAL_BYTES);
        if (!wr_capsule_path_ok(p))
            return wr_errorf(err, WR_E_INVALID, "", "file %zu: '%.200s' is not a normalised relative path", i, p);
        if (prev && strcmp(prev, p) >= 0)
            return wr_errorf(err, WR_E_INVALID, "", "files are not sorted and unique at '%.200s'", p);
        prev = p;
    }
    return WR_OK;
}

/* The typed file list of a checked manifest. */
static int manifest_files(json_object *m, wr_capsule *c, wr_error *err)
{
    json_object *files = json_object_object_get(m, "files");
    size_t n = json_object_array_length(files);
    c->files = calloc(n ? n : 1, sizeof *c->files);
    if (!c->files)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (size_t i = 0; i < n; i++, c->nfiles++) {
        json_object *f = json_object_array_get_idx(files, i);
        wr_capsule_file *cf = &c->files[i];
        if (!(cf->path = strdup(str_member(f, "path"))))
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        cf->size = (uint64_t)json_object_get_int64(json_object_object_get(f, "size"));
        cf->executable = json_object_get_boolean(json_object_object_get(f, "executable"));
        snprintf(cf->sha256, sizeof cf->sha256, "%s", str_member(f, "sha256"));
    }
    c->manifest = json_object_get(m);
    c->name = str_member(m, "name");
    c->version = str_member(m, "version");
    return WR_OK;
}

/* ---- pack ----------------------------------------------------------------- */

static int read_spec(const char *dir, json_object **out, wr_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, WR_CAPSULE_SPEC) >= (int)sizeof path)
        return wr_errorf(err, WR_E_INVALID, "", "path too long");
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return wr_errorf(err, WR_E_INVALID, "", "%s has no " WR_CAPSULE_SPEC " (a regular file)", dir);
    char *buf = NULL;
    size_t len = 0;
    int rc = wr_read_file(path, SPEC_MAX, &buf, &len, err);
    if (rc == WR_OK)
        rc = wr_policy_yaml_to_json(buf, len, out, err);
    free(buf);
    if (rc != WR_OK)
        wr_error_prefix(err, WR_CAPSULE_SPEC);
    return rc;
}

static char *signature_json(const wr_keypair *kp, const char *manifest, size_t len, wr_error *err)
{
    char *sig = wr_sign_b64(kp, manifest, len), *pk = wr_base64_encode(kp->pk, WR_PK_LEN);
    json_object *o = json_object_new_object();
    char *out = NULL;
    if (sig && pk) {
        json_object_object_add(o, "algorithm", json_object_new_string("ed25519"));
        json_object_object_add(o, "key_id", json_object_new_string(kp->key_id));
        json_object_object_add(o, "public_key", json_object_new_string(pk));
        json_object_object_add(o, "signature", json_object_new_string(sig));
        out = wr_canonical_json(o, false, NULL, err);
    } else {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    json_object_put(o);
    free(sig);
    free(pk);
    return out;
}

static int write_header(struct archive *a, const char *name, uint64_t size, bool exec, wr_error *err)
{
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, exec ? MODE_EXEC : MODE_FILE);
    archive_entry_set_mtime(e, ENTRY_MTIME, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int rc = archive_write_header(a, e) == ARCHIVE_OK
                 ? WR_OK
                 : wr_errorf(err, WR_E_IO, "", "cannot write %s: %s", name, archive_error_string(a));
    archive_entry_free(e);
    return rc;
}

static int write_blob(struct archive *a, const char *name, const char *data, size_t len, wr_error *err)
{
    int rc = write_header(a, name, len, false, err);
    if (rc == WR_OK && archive_write_data(a, data, len) != (la_ssize_t)len)
        rc = wr_errorf(err, WR_E_IO, "", "cannot write %s: %s", name, archive_error_string(a));
    return rc;
}

/* Copies a file into the archive, hashing it again: a file that changed
 * since the manifest was made fails the pack instead of shipping a capsule
 * that can never verify. */
static int write_member(struct archive *a, const char *dir, const wr_capsule_file *f, unsigned char *buf, wr_error *err)
{
    char src[PATH_MAX], name[PATH_MAX];
    snprintf(src, sizeof src, "%s/%s", dir, f->path);
    snprintf(name, sizeof name, DATA_PREFIX "%s", f->path);
    int fd = open(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return wr_errorf(err, WR_E_IO, "", "%s: %s", f->path, strerror(errno));
    int rc = write_header(a, name, f->size, f->executable, err);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (rc == WR_OK && (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1))
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    uint64_t done = 0;
    ssize_t n;
    while (rc == WR_OK && (n = read(fd, buf, IO_CHUNK)) > 0) {
        done += (uint64_t)n;
        if (done > f->size)
            break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        if (archive_write_data(a, buf, (size_t)n) != n)
            rc = wr_errorf(err, WR_E_IO, "", "cannot write %s: %s", name, archive_error_string(a));
    }
    char hex[WR_SHA256_HEX_LEN] = "";
    if (rc == WR_OK)
        wr__sha256_final(md, hex);
    if (rc == WR_OK && (done != f->size || strcmp(hex, f->sha256) != 0))
        rc = wr_errorf(err, WR_E_IO, "", "%s: changed while packing", f->path);
    EVP_MD_CTX_free(md);
    close(fd);
    return rc;
}

static int write_capsule(const char *path, const char *dir, const char *manifest, size_t mlen, const char *sig,
                         const wr_capsule_file *files, size_t n, wr_error *err)
{
    struct archive *a = archive_write_new();
    unsigned char *buf = malloc(IO_CHUNK);
    if (!a || !buf) {
        archive_write_free(a);
        free(buf);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    int rc = WR_OK;
    /* gzip:!timestamp leaves the header's mtime 0 (libarchive writes the
     * current time otherwise); no file name is written either. */
    if (archive_write_add_filter_gzip(a) != ARCHIVE_OK || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_options(a, "gzip:!timestamp") != ARCHIVE_OK ||
        archive_write_open_filename(a, path) != ARCHIVE_OK)
        rc = wr_errorf(err, WR_E_IO, "", "cannot write %s: %s", path, archive_error_string(a));
    if (rc == WR_OK)
        rc = write_blob(a, MANIFEST, manifest, mlen, err);
    if (rc == WR_OK && sig)
        rc = write_blob(a, MANIFEST_SIG, sig, strlen(sig), err);
    for (size_t i = 0; rc == WR_OK && i < n; i++)
        rc = write_member(a, dir, &files[i], buf, err);
    if (archive_write_close(a) != ARCHIVE_OK && rc == WR_OK)
        rc = wr_errorf(err, WR_E_IO, "", "cannot finish %s: %s", path, archive_error_string(a));
    archive_write_free(a);
    free(buf);
    return rc;
}

int wr_capsule_pack(const char *dir, const char *out_path, const wr_keypair *signer, wr_capsule **info, wr_error *err)
{
    if (info)
        *info = NULL;
    json_object *m = NULL;
    wr_capsule_file *files = NULL;
    size_t n = 0;
    char *manifest = NULL, *sig = NULL;
    size_t mlen = 0;
    int rc = read_spec(dir, &m, err);
    if (rc == WR_OK && (json_object_object_get(m, "format") || json_object_object_get(m, "files")))
        rc = wr_errorf(err, WR_E_INVALID, "", WR_CAPSULE_SPEC ": format and files are written by pack");
    if (rc == WR_OK)
        rc = wr__capsule_scan(dir, &files, &n, err);
    if (rc == WR_OK) {
        json_object_object_add(m, "format", json_object_new_string(WR_CAPSULE_FORMAT));
        json_object_object_add(m, "files", files_json(files, n));
        if ((rc = check_manifest(m, err)) != WR_OK)
            wr_error_prefix(err, WR_CAPSULE_SPEC);
    }
    if (rc == WR_OK && !(manifest = wr_canonical_json(m, false, &mlen, err)))
        rc = err->code ? err->code : WR_E_INTERNAL;
    if (rc == WR_OK && mlen > WR_CAPSULE_MANIFEST_MAX)
        rc = wr_errorf(err, WR_E_LIMIT, "", "the manifest would exceed %u bytes", WR_CAPSULE_MANIFEST_MAX);
    if (rc == WR_OK && signer && !(sig = signature_json(signer, manifest, mlen, err)))
        rc = err->code ? err->code : WR_E_INTERNAL;
    char tmp[PATH_MAX];
    if (rc == WR_OK && snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid()) >= (int)sizeof tmp)
        rc = wr_errorf(err, WR_E_INVALID, "", "output path is too long");
    if (rc == WR_OK) {
        rc = write_capsule(tmp, dir, manifest, mlen, sig, files, n, err);
        /* Complete or absent: never a half-written capsule under the real name. */
        if (rc == WR_OK && rename(tmp, out_path) != 0)
            rc = wr_errorf(err, WR_E_IO, "", "cannot create %s: %s", out_path, strerror(errno));
        if (rc != WR_OK)
            unlink(tmp);
    }
    if (rc == WR_OK && info)
        rc = wr_capsule_open(out_path, signer ? signer->pk : NULL, NULL, info, err);
    wr__capsule_files_free(files, n);
    json_object_put(m);
    free(manifest);
    free(sig);
    return rc;
}

/* ---- read ----------------------------------------------------------------- */

/* The whole file is hashed as libarchive reads it: the capsule's sha256
 * (its identity in receipts) costs no second pass over a large capsule. */
typedef struct reader {
    int fd;
    EVP_MD_CTX *md;
    unsigned char *buf;
    int read_errno;
} reader;

static la_ssize_t reader_read(struct archive *a, void *ud, const void **out)
{
    (void)a;
    reader *r = ud;
    ssize_t n;
    do
        n = read(r->fd, r->buf, IO_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        r->read_errno = errno;
        return -1;
    }
    EVP_DigestUpdate(r->md, r->buf, (size_t)n);
    *out = r->buf;
    return n;
}

/* Bytes after the end of the tar stream still belong to the file's hash. */
static int reader_drain(reader *r, wr_error *err)
{
    ssize_t n;
    while ((n = read(r->fd, r->buf, IO_CHUNK)) > 0)
        EVP_DigestUpdate(r->md, r->buf, (size_t)n);
    return n < 0 ? wr_errorf(err, WR_E_IO, "", "read: %s", strerror(errno)) : WR_OK;
}

typedef struct open_state {
    struct archive *a;
    wr_capsule *c;
    const unsigned char *trusted_pk;
    int unpack_fd; /* -1: verify only */
    char *prev;    /* last member name: order and duplicates */
    char *manifest_text;
    size_t manifest_len;
    size_t next; /* next manifest file expected */
    bool have_manifest, sig_checked;
} open_state;

static int read_small(open_state *s, const char *name, la_int64_t size, size_t max, char **out, wr_error *err)
{
    if (size < 0 || (uint64_t)size > max)
        return wr_errorf(err, WR_E_LIMIT, "", "%s: over the limit of %zu bytes", name, max);
    char *buf = malloc((size_t)size + 1);
    if (!buf)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    la_ssize_t got = size ? archive_read_data(s->a, buf, (size_t)size) : 0;
    if (got != size) {
        free(buf);
        return wr_errorf(err, WR_E_INVALID, "", "%s: truncated: %s", name, archive_error_string(s->a));
    }
    buf[size] = 0;
    *out = buf;
    return WR_OK;
}

static int take_manifest(open_state *s, la_int64_t size, wr_error *err)
{
    char *text = NULL;
    int rc = read_small(s, MANIFEST, size, WR_CAPSULE_MANIFEST_MAX, &text, err);
    if (rc != WR_OK)
        return rc;
    wr_sha256_hex(text, (size_t)size, s->c->manifest_sha256);
    json_object *m = wr_json_parse(text, (size_t)size, NULL, err);
    char *canon = m ? wr_canonical_json(m, false, NULL, err) : NULL;
    /* Only the canonical bytes are accepted: what is signed and hashed is
     * exactly what every reader parses. */
    if (!m || !canon)
        rc = wr_errorf(err, WR_E_INVALID, "", MANIFEST ": not valid JSON: %s", err->message);
    else if (strcmp(canon, text) != 0)
        rc = wr_errorf(err, WR_E_INVALID, "", MANIFEST ": not in canonical JSON form");
    else if ((rc = check_manifest(m, err)) != WR_OK)
        wr_error_prefix(err, MANIFEST);
    else
        rc = manifest_files(m, s->c, err);
    if (rc == WR_OK)
        s->have_manifest = true;
    json_object_put(m);
    free(canon);
    if (rc == WR_OK) {
        s->manifest_text = text; /* the signed bytes */
        s->manifest_len = (size_t)size;
    } else {
        free(text);
    }
    return rc;
}

static int take_signature(open_state *s, la_int64_t size, wr_error *err)
{
    char *text = NULL;
    int rc = read_small(s, MANIFEST_SIG, size, SIG_MAX, &text, err);
    if (rc != WR_OK)
        return rc;
    json_object *o = wr_json_parse(text, (size_t)size, NULL, err);
    free(text);
    const char *alg = o ? str_member(o, "algorithm") : NULL, *kid = o ? str_member(o, "key_id") : NULL;
    const char *pkb64 = o ? str_member(o, "public_key") : NULL, *sig = o ? str_member(o, "signature") : NULL;
    unsigned char pk[WR_PK_LEN];
    char want[WR_KEY_ID_LEN];
    size_t pklen = 0;
    if (!alg || !kid || !pkb64 || !sig || strcmp(alg, "ed25519") != 0 ||
        wr_base64_decode(pkb64, pk, sizeof pk, &pklen, NULL) != WR_OK || pklen != WR_PK_LEN)
        rc = wr_errorf(err, WR_E_INVALID, "",
                       MANIFEST_SIG ": not an ed25519 signature object {algorithm, key_id, public_key, signature}");
    if (rc == WR_OK && (wr_key_id(pk, want), strcmp(want, kid) != 0))
        rc = wr_errorf(err, WR_E_CRYPTO, "", MANIFEST_SIG ": key_id %.20s is not its public key's (%s)", kid, want);
    if (rc == WR_OK && s->trusted_pk && memcmp(pk, s->trusted_pk, WR_PK_LEN) != 0) {
        wr_key_id(s->trusted_pk, want);
        rc = wr_errorf(err, WR_E_CRYPTO, "", "signed by key %s, not by the trusted key %s", kid, want);
    }
    if (rc == WR_OK) {
        if (!wr_verify_b64(pk, s->manifest_text, s->manifest_len, sig))
            rc = wr_errorf(err, WR_E_CRYPTO, "",
                           MANIFEST_SIG ": the signature does not verify: the manifest was altered after signing");
    }
    if (rc == WR_OK) {
        s->c->is_signed = true;
        snprintf(s->c->signer_key_id, sizeof s->c->signer_key_id, "%s", kid);
    }
    json_object_put(o);
    return rc;
}

/* Opens the file for rel under the unpack root, creating the directories
 * on the way (all ours: the root was created empty by this process). */
static int create_target(int root, const char *rel, bool exec, int *out, wr_error *err)
{
    char *dup = strdup(rel);
    if (!dup)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    int dfd = fcntl(root, F_DUPFD_CLOEXEC, 0);
    char *c = dup, *slash;
    int rc = WR_OK;
    while (dfd >= 0 && (slash = strchr(c, '/'))) {
        *slash = 0;
        if (mkdirat(dfd, c, 0700) != 0 && errno != EEXIST)
            rc = wr_errorf(err, WR_E_IO, "", "unpack %s: %s", rel, strerror(errno));
        int nfd = rc == WR_OK ? openat(dfd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        close(dfd);
        dfd = nfd;
        c = slash + 1;
    }
    if (dfd < 0 && rc == WR_OK)
        rc = wr_errorf(err, WR_E_IO, "", "unpack %s: %s", rel, strerror(errno));
    if (rc == WR_OK &&
        (*out = openat(dfd, c, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, exec ? MODE_EXEC : MODE_FILE)) < 0)
        rc = wr_errorf(err, WR_E_IO, "", "unpack %s: %s", rel, strerror(errno));
    if (dfd >= 0)
        close(dfd);
    free(dup);
    return rc;
}

/* One data member: the next file the manifest lists, same size, same
 * executable bit, same hash; written out as it streams when unpacking. */
static int take_file(open_state *s, const char *name, struct archive_entry *e, wr_error *err)
{
    const char *rel = name + strlen(DATA_PREFIX);
    wr_capsule *c = s->c;
    if (!wr_capsule_path_ok(rel))
        return wr_errorf(err, WR_E_INVALID, "", "member name '%.200s' is not a normalised relative path", name);
    if (s->next < c->nfiles && strcmp(rel, c->files[s->next].path) > 0)
        return wr_errorf(err, WR_E_INVALID, "", "%s: listed in the manifest but missing from the capsule",
                         c->files[s->next].path);
    if (s->next >= c->nfiles || strcmp(rel, c->files[s->next].path) != 0)
        return wr_errorf(err, WR_E_INVALID, "", "%s: in the capsule but not listed in the manifest", rel);
    const wr_capsule_file *f = &c->files[s->next++];
    la_int64_t size = archive_entry_size(e);
    mode_t perm = archive_entry_perm(e);
    if (size < 0 || (uint64_t)size > WR_CAPSULE_MAX_FILE_BYTES)
        return wr_errorf(err, WR_E_LIMIT, "", "%s: over the limit of %llu bytes per file", rel,
                         WR_CAPSULE_MAX_FILE_BYTES);
    if ((uint64_t)size != f->size)
        return wr_errorf(err, WR_E_INVALID, "", "%s: %lld bytes, the manifest says %llu", rel, (long long)size,
                         (unsigned long long)f->size);
    if (perm != MODE_FILE && perm != MODE_EXEC)
        return wr_errorf(err, WR_E_INVALID, "", "%s: mode %04o is not 0644 or 0755", rel, (unsigned)perm);
    if ((perm == MODE_EXEC) != f->executable)
        return wr_errorf(err, WR_E_INVALID, "", "%s: executable bit differs from the manifest", rel);
    int out = -1, rc = WR_OK;
    if (s->unpack_fd >= 0 && (rc = create_target(s->unpack_fd, rel, f->executable, &out, err)) != WR_OK)
        return rc;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    const void *block;
    size_t len;
    la_int64_t off;
    int ar;
    while (rc == WR_OK && (ar = archive_read_data_block(s->a, &block, &len, &off)) == ARCHIVE_OK) {
        EVP_DigestUpdate(md, block, len);
        if (out >= 0 && write(out, block, len) != (ssize_t)len)
            rc = wr_errorf(err, WR_E_IO, "", "unpack %s: %s", rel, strerror(errno));
    }
    if (rc == WR_OK && ar != ARCHIVE_EOF)
        rc = wr_errorf(err, WR_E_INVALID, "", "%s: truncated or unreadable: %s", rel, archive_error_string(s->a));
    char hex[WR_SHA256_HEX_LEN] = "";
    if (rc == WR_OK)
        wr__sha256_final(md, hex);
    if (rc == WR_OK && strcmp(hex, f->sha256) != 0)
        rc = wr_errorf(err, WR_E_INVALID, "", "%s: sha256 %s does not match the manifest's %s", rel, hex, f->sha256);
    /* Read-only once complete: the sandbox gets a read-only bind anyway. */
    if (rc == WR_OK && out >= 0 && fchmod(out, f->executable ? 0555 : 0444) != 0)
        rc = wr_errorf(err, WR_E_IO, "", "unpack %s: %s", rel, strerror(errno));
    EVP_MD_CTX_free(md);
    if (out >= 0)
        close(out);
    return rc;
}

/* Why an entry that is not a plain regular file is refused. */
static int refuse_entry(struct archive_entry *e, const char *name, wr_error *err)
{
    const char *link = archive_entry_symlink(e);
    char shown[WR__SHOWN_MAX];
    if (archive_entry_filetype(e) == AE_IFLNK && link)
        return wr_errorf(err, WR_E_DENIED, "", "%s: symlink to %s%s", name, wr__capsule_shown(link, shown),
                         link[0] == '/' || strstr(link, "..") ? " points outside the capsule"
                                                              : "; capsules hold regular files only");
    if (archive_entry_hardlink(e))
        return wr_errorf(err, WR_E_DENIED, "", "%s: hard link; capsules hold regular files only", name);
    switch (archive_entry_filetype(e)) {
    case AE_IFCHR:
    case AE_IFBLK:
        return wr_errorf(err, WR_E_DENIED, "", "%s: device file; capsules hold regular files only", name);
    case AE_IFDIR:
        return wr_errorf(err, WR_E_DENIED, "", "%s: directory entry; capsules hold regular files only", name);
    default:
        return wr_errorf(err, WR_E_DENIED, "", "%s: not a regular file", name);
    }
}

static int take_entry(open_state *s, struct archive_entry *e, wr_error *err)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw || !*raw)
        return wr_errorf(err, WR_E_INVALID, "", "a member has no name");
    /* Messages name the member as shown; checks use the raw name. */
    char name[WR__SHOWN_MAX];
    wr__capsule_shown(raw, name);
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
        return refuse_entry(e, name, err);
    if (raw[0] == '/' || !wr_capsule_path_ok(raw))
        return wr_errorf(err, WR_E_INVALID, "", "member name '%s' is absolute or not normalised", name);
    if (s->prev && strcmp(s->prev, raw) == 0)
        return wr_errorf(err, WR_E_INVALID, "", "%s: duplicate member", name);
    if (s->prev && strcmp(s->prev, raw) > 0)
        return wr_errorf(err, WR_E_INVALID, "", "%s: members are not in canonical (sorted) order", name);
    free(s->prev);
    if (!(s->prev = strdup(raw)))
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (!s->have_manifest && strcmp(raw, MANIFEST) != 0)
        return wr_errorf(err, WR_E_INVALID, "", "the first member is %s, not " MANIFEST, name);
    if (!strcmp(raw, MANIFEST))
        return take_manifest(s, archive_entry_size(e), err);
    if (!strcmp(raw, MANIFEST_SIG))
        return take_signature(s, archive_entry_size(e), err);
    if (strncmp(raw, DATA_PREFIX, strlen(DATA_PREFIX)) != 0)
        return wr_errorf(err, WR_E_INVALID, "", "unexpected member %s", name);
    if (s->trusted_pk && !s->c->is_signed)
        return wr_errorf(err, WR_E_CRYPTO, "", "the capsule is not signed, and a trusted key was given");
    return take_file(s, raw, e, err);
}

static int read_members(open_state *s, wr_error *err)
{
    int rc = WR_OK;
    struct archive_entry *e;
    while (rc == WR_OK) {
        int ar = archive_read_next_header(s->a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar != ARCHIVE_OK)
            return wr_errorf(err, WR_E_INVALID, "", "not a valid capsule: %s", archive_error_string(s->a));
        rc = take_entry(s, e, err);
    }
    if (rc != WR_OK)
        return rc;
    if (!s->have_manifest)
        return wr_errorf(err, WR_E_INVALID, "", "the capsule has no " MANIFEST);
    if (s->trusted_pk && !s->c->is_signed)
        return wr_errorf(err, WR_E_CRYPTO, "", "the capsule is not signed, and a trusted key was given");
    if (s->next < s->c->nfiles)
        return wr_errorf(err, WR_E_INVALID, "", "%s: listed in the manifest but missing from the capsule",
                         s->c->files[s->next].path);
    return WR_OK;
}

int wr_capsule_open(const char *path, const unsigned char *trusted_pk, const char *unpack_dir, wr_capsule **out,
                    wr_error *err)
{
    *out = NULL;
    reader r = {.fd = open(path, O_RDONLY | O_CLOEXEC), .md = EVP_MD_CTX_new(), .buf = malloc(IO_CHUNK)};
    open_state s = {
        .a = archive_read_new(), .c = calloc(1, sizeof(wr_capsule)), .trusted_pk = trusted_pk, .unpack_fd = -1};
    int rc = WR_OK;
    struct stat st;
    if (!r.md || !r.buf || !s.a || !s.c || EVP_DigestInit_ex(r.md, EVP_sha256(), NULL) != 1)
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    else if (r.fd < 0 || fstat(r.fd, &st) != 0)
        rc = wr_errorf(err, WR_E_IO, "", "cannot read %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = wr_errorf(err, WR_E_IO, "", "%s is not a regular file", path);
    if (rc == WR_OK && unpack_dir) {
        if (mkdir(unpack_dir, 0700) != 0 ||
            (s.unpack_fd = open(unpack_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
            rc = wr_errorf(err, WR_E_IO, "", "cannot create %s: %s", unpack_dir, strerror(errno));
    }
    /* Only gzip'd tar: no other filter or format is even considered. */
    if (rc == WR_OK &&
        (archive_read_support_filter_gzip(s.a) != ARCHIVE_OK || archive_read_support_format_tar(s.a) != ARCHIVE_OK ||
         archive_read_open(s.a, &r, NULL, reader_read, NULL) != ARCHIVE_OK))
        rc = r.read_errno ? wr_errorf(err, WR_E_IO, "", "cannot read %s: %s", path, strerror(r.read_errno))
                          : wr_errorf(err, WR_E_INVALID, "", "not a capsule: %s", archive_error_string(s.a));
    if (rc == WR_OK)
        rc = read_members(&s, err);
    if (rc == WR_OK)
        rc = reader_drain(&r, err);
    if (rc == WR_OK) {
        wr__sha256_final(r.md, s.c->sha256);
        *out = s.c;
        s.c = NULL;
    }
    if (s.unpack_fd >= 0)
        close(s.unpack_fd);
    archive_read_free(s.a);
    wr_capsule_free(s.c);
    free(s.prev);
    free(s.manifest_text);
    EVP_MD_CTX_free(r.md);
    free(r.buf);
    if (r.fd >= 0)
        close(r.fd);
    return rc;
}
