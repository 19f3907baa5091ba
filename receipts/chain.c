/* receipts — walking a receipt chain, from the store or from a directory of
 * exported receipt files. The first problem found is reported by seq and
 * reason: a gap, a reordering, a duplicate seq, an altered receipt or a
 * broken link. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "receipts/receipts_internal.h"

#define RECEIPT_FILE_MAX (1u << 20)

typedef struct chain_walk {
    wr_receipt_verifier v;
    int64_t last;                 /* seq of the last receipt accepted, 0 before the first */
    char prev[WR_SHA256_HEX_LEN]; /* and its hash */
    wr_error *err;
} chain_walk;

static int walk_init(chain_walk *w, const unsigned char pk[WR_PK_LEN], wr_error *err) {
    memset(w, 0, sizeof *w);
    memset(w->prev, '0', WR_SHA256_HEX_LEN - 1);
    w->err = err;
    return wr_receipt_verifier_init(&w->v, pk, err);
}

/* Checks the next receipt. position is the seq its container claims for it
 * (store row, file name), 0 when unknown; where names it in messages. */
static int walk_one(chain_walk *w, int64_t position, const char *where, const char *json, size_t len) {
    wr_error *err = w->err;
    wr_error inner = {0};
    json_object *r = wr_json_parse(json, len, NULL, &inner);
    if (!r) return wr_errorf(err, WR_E_INVALID, where, "%s: not a valid JSON receipt: %s", where, inner.message);
    json_object *sv = NULL;
    int64_t seq = 0;
    if (json_object_object_get_ex(r, "seq", &sv) && json_object_is_type(sv, json_type_int))
        seq = json_object_get_int64(sv);
    int rc = WR_OK;
    char hash[WR_SHA256_HEX_LEN];
    const char *prev = wr_receipt_str(r, "prev_receipt_sha256");
    if (seq < 1)
        rc = wr_errorf(err, WR_E_INVALID, where, "%s: receipt after seq %lld has no valid seq", where,
                       (long long)w->last);
    else if (seq == w->last)
        rc = wr_errorf(err, WR_E_INVALID, where, "seq %lld: duplicate seq (%s repeats seq %lld)", (long long)seq,
                       where, (long long)seq);
    else if (seq < w->last)
        rc = wr_errorf(err, WR_E_INVALID, where, "seq %lld: reordered: it comes after seq %lld (%s)", (long long)seq,
                       (long long)w->last, where);
    else if (position && position != seq)
        rc = wr_errorf(err, WR_E_INVALID, where, "seq %lld: reordered: found in place of seq %lld (%s)",
                       (long long)seq, (long long)position, where);
    else if (seq > w->last + 1)
        rc = wr_errorf(err, WR_E_INVALID, where, "seq %lld: gap: seq %lld is missing (seq %lld follows seq %lld)",
                       (long long)(w->last + 1), (long long)(w->last + 1), (long long)seq, (long long)w->last);
    else if ((rc = wr_receipt_verifier_check(&w->v, r, &inner)) != WR_OK)
        rc = wr_errorf(err, rc, where, "seq %lld: altered: %s%s%s", (long long)seq, inner.path,
                       inner.path[0] ? ": " : "", inner.message);
    else if (!prev || strcmp(prev, w->prev) != 0)
        rc = wr_errorf(err, WR_E_INVALID, where,
                       "seq %lld: broken link: prev_receipt_sha256 is not the hash of %s%lld", (long long)seq,
                       w->last ? "seq " : "the chain start, seq ", (long long)w->last);
    else if ((rc = wr_receipt_hash(r, hash, err)) == WR_OK) {
        memcpy(w->prev, hash, sizeof hash);
        w->last = seq;
    }
    json_object_put(r);
    return rc;
}

/* ---- from the store --------------------------------------------------- */

typedef struct store_walk {
    chain_walk w;
    int rc;
} store_walk;

static int store_step(void *ud, int64_t seq, const char *json) {
    store_walk *s = ud;
    char where[48];
    snprintf(where, sizeof where, "store row %lld", (long long)seq);
    s->rc = walk_one(&s->w, seq, where, json, strlen(json));
    return s->rc != WR_OK;
}

int wr_chain_verify_store(wr_store *st, const unsigned char pk[WR_PK_LEN], int64_t *count_out, wr_error *err) {
    if (count_out) *count_out = 0;
    if (!st || !pk) return wr_errorf(err, WR_E_INVALID, "", "verify chain: missing store or key");
    store_walk s = {.rc = WR_OK};
    int rc = walk_init(&s.w, pk, err);
    if (rc == WR_OK) rc = wr_store_iter_receipts(st, store_step, &s, err);
    if (rc == WR_OK) rc = s.rc;
    int64_t head = 0;
    char head_sha[WR_SHA256_HEX_LEN];
    if (rc == WR_OK) rc = wr_store_chain_head(st, &head, head_sha, err);
    /* A receipt cut off the end leaves every remaining link intact; the
     * head, moved in the same transaction as each append, still tells. */
    if (rc == WR_OK && head != s.w.last)
        rc = wr_errorf(err, WR_E_INVALID, "", "seq %lld: gap: the chain head is seq %lld but the receipts end at seq %lld",
                       (long long)(s.w.last + 1), (long long)head, (long long)s.w.last);
    else if (rc == WR_OK && strcmp(head_sha, s.w.prev) != 0)
        rc = wr_errorf(err, WR_E_INVALID, "", "seq %lld: altered: the chain head's hash does not match it",
                       (long long)head);
    wr_receipt_verifier_clear(&s.w.v);
    if (rc == WR_OK && count_out) *count_out = s.w.last;
    return rc;
}

/* ---- from a directory of exported receipts ------------------------------ */

typedef struct rfile {
    char *name;
    int64_t position; /* seq from a name of digits + ".json", else 0 */
} rfile;

static int64_t name_position(const char *name) {
    size_t digits = strspn(name, "0123456789");
    if (digits == 0 || digits > 18 || strcmp(name + digits, ".json") != 0) return 0;
    return strtoll(name, NULL, 10);
}

/* By the number the name starts with, then by name, so 10.json follows
 * 9.json and a stray copy "000002 copy.json" sits next to 000002.json. */
static int rfile_cmp(const void *a, const void *b) {
    const rfile *x = a, *y = b;
    unsigned long long nx = strtoull(x->name, NULL, 10), ny = strtoull(y->name, NULL, 10);
    if (nx != ny) return nx < ny ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void rfiles_free(rfile *f, size_t n) {
    for (size_t i = 0; i < n; i++) free(f[i].name);
    free(f);
}

static int list_dir(const char *dir, rfile **out, size_t *n_out, wr_error *err) {
    DIR *d = opendir(dir);
    if (!d) return wr_errorf(err, errno == ENOENT ? WR_E_NOTFOUND : WR_E_IO, dir, "cannot open %s: %s", dir,
                             strerror(errno));
    rfile *f = NULL;
    size_t n = 0, cap = 0;
    int rc = WR_OK;
    for (struct dirent *e; rc == WR_OK && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            rfile *nf = realloc(f, cap * sizeof *f);
            if (!nf) {
                rc = wr_errorf(err, WR_E_NOMEM, dir, "out of memory");
                break;
            }
            f = nf;
        }
        f[n].name = strdup(e->d_name);
        f[n].position = name_position(e->d_name);
        if (!f[n].name) rc = wr_errorf(err, WR_E_NOMEM, dir, "out of memory");
        else n++;
    }
    closedir(d);
    if (rc) {
        rfiles_free(f, n);
        return rc;
    }
    if (n) qsort(f, n, sizeof *f, rfile_cmp);
    *out = f;
    *n_out = n;
    return WR_OK;
}

int wr_chain_verify_dir(const char *dir, const unsigned char pk[WR_PK_LEN], int64_t *count_out, wr_error *err) {
    if (count_out) *count_out = 0;
    if (!dir || !*dir || !pk) return wr_errorf(err, WR_E_INVALID, "", "verify chain: missing directory or key");
    rfile *files = NULL;
    size_t n = 0;
    int rc = list_dir(dir, &files, &n, err);
    if (rc) return rc;
    chain_walk w;
    rc = walk_init(&w, pk, err);
    for (size_t i = 0; rc == WR_OK && i < n; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, files[i].name) >= (int)sizeof path) {
            rc = wr_errorf(err, WR_E_INVALID, files[i].name, "path too long in %s", dir);
            break;
        }
        char *buf;
        size_t len;
        rc = wr_read_file(path, RECEIPT_FILE_MAX, &buf, &len, err);
        if (rc) break;
        rc = walk_one(&w, files[i].position, files[i].name, buf, len);
        free(buf);
    }
    wr_receipt_verifier_clear(&w.v);
    rfiles_free(files, n);
    if (rc == WR_OK && count_out) *count_out = w.last;
    return rc;
}
