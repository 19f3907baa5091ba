/* receipts — walking a receipt chain, from the store or from a directory of
 * exported receipt files. The first problem found is reported by seq and
 * reason: a gap, a reordering, a duplicate seq, an altered receipt or a
 * broken link. The walk also rebuilds the Merkle tree of the receipts and
 * holds it against anchors (signed checkpoints, the store's own tree): a
 * chain cut short of an anchor, or one whose first `size` receipts do not
 * hash to the anchor's root (another history signed with the same key),
 * fails. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "receipts/receipts_internal.h"

#define RECEIPT_FILE_MAX (1u << 20)
#define BATCH            512
#define MAX_WORKERS      8

/* One receipt of a batch. Parsing, the schema and the signature (nearly
 * all the work) need nothing from the other receipts, so workers do them
 * in parallel, each first preparing its share of the batch, then verifying
 * their signatures back to back (wr_receipt_verifier_prepare says why); the
 * order-dependent checks then run in seq order on the results, so the
 * first problem reported is the same as in a serial walk. */
typedef struct item {
    char *json; /* owned, kept with its capacity for the batches after (one allocation per item, not per receipt) */
    size_t cap, len;
    const char *file; /* without json: its file's name in the walk's directory (workers read in parallel) */
    int read_rc;      /* of reading the file */
    int64_t position; /* seq its container claims for it (store row, file name), 0 when unknown */
    char where[64];   /* names it in messages */
    bool parsed;
    int rc;                     /* of the schema/signature check */
    wr_receipt_pending pending; /* its signature, once prepared */
    wr_error err;
    int64_t seq;
    char prev[WR_SHA256_HEX_LEN]; /* "" when absent */
    char hash[WR_SHA256_HEX_LEN];
    wr_merkle_hash leaf;
} item;

typedef struct chain_walk {
    wr_receipt_verifier v[MAX_WORKERS];  /* one each: compiled schemas are not shared across threads */
    wr_json_parser *parser[MAX_WORKERS]; /* one each, its tokener and buffers kept from receipt to receipt */
    int nworkers;
    item items[BATCH];
    size_t n;
    int64_t last;                 /* seq of the last receipt accepted, 0 before the first */
    char prev[WR_SHA256_HEX_LEN]; /* and its hash */
    wr_merkle_range tree;         /* of the receipts accepted */
    wr_merkle_hash *leaves;       /* their leaf hashes, when keep_leaves (store walks) */
    int64_t cap;
    bool keep_leaves;
    wr_tree_head *anchors;        /* owned, sorted by size */
    size_t nanchors, next_anchor; /* the first anchor not yet reached */
    const char *dir;              /* of a directory walk, open as dirfd (else -1) */
    int dirfd;
    wr_error *err;
} chain_walk;

static void walk_free(chain_walk *w)
{
    for (int i = 0; i < w->nworkers; i++) {
        wr_receipt_verifier_clear(&w->v[i]);
        wr_json_parser_free(w->parser[i]);
    }
    for (size_t i = 0; i < BATCH; i++)
        free(w->items[i].json);
    wr_hasher_free(w->tree.hasher);
    free(w->anchors);
    free(w->leaves);
    if (w->dirfd >= 0)
        close(w->dirfd);
    free(w);
}

/* workers 0 = one per online CPU (at most MAX_WORKERS). */
static int walk_new(chain_walk **out, const unsigned char pk[WR_PK_LEN], int workers, wr_error *err)
{
    chain_walk *w = *out = calloc(1, sizeof *w);
    if (!w)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    memset(w->prev, '0', WR_SHA256_HEX_LEN - 1);
    w->dirfd = -1;
    w->tree.hasher = wr_hasher_new(); /* NULL only costs speed */
    w->err = err;
    long cpus = workers > 0 ? workers : sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;
    for (; w->nworkers < want; w->nworkers++) {
        int rc = wr_receipt_verifier_init(&w->v[w->nworkers], pk, err);
        if (rc == WR_OK && !(w->parser[w->nworkers] = wr_json_parser_new(NULL, err)))
            rc = err && err->code ? err->code : WR_E_NOMEM;
        if (rc) {
            w->nworkers++; /* its verifier is cleared too */
            walk_free(w);
            *out = NULL;
            return rc;
        }
    }
    return WR_OK;
}

static void prepare_item(const chain_walk *w, int k, item *it)
{
    const wr_receipt_verifier *v = &w->v[k];
    if (it->file) {
        char path[PATH_MAX]; /* for messages; its length was checked when listed */
        snprintf(path, sizeof path, "%s/%s", w->dir, it->file);
        it->read_rc =
            wr_read_file_into(w->dirfd, it->file, path, RECEIPT_FILE_MAX, &it->json, &it->cap, &it->len, &it->err);
        if (it->read_rc)
            return;
    }
    bool canonical;
    json_object *r = wr_json_parser_parse_canonical(w->parser[k], it->json, it->len, &canonical, &it->err);
    it->parsed = r != NULL;
    if (!r)
        return;
    json_object *sv = NULL;
    it->seq = json_object_object_get_ex(r, "seq", &sv) && json_object_is_type(sv, json_type_int)
                  ? json_object_get_int64(sv)
                  : 0;
    const char *prev = wr_receipt_str(r, "prev_receipt_sha256");
    snprintf(it->prev, sizeof it->prev, "%s", prev && strlen(prev) == WR_SHA256_HEX_LEN - 1 ? prev : "");
    it->rc = wr_receipt_verifier_prepare(v, r, canonical ? it->json : NULL, it->len, it->hash, it->leaf, &it->pending,
                                         &it->err);
    if (it->rc)
        wr_receipt_pending_clear(&it->pending);
    wr_json_parser_recycle(w->parser[k], r); /* nothing above keeps a pointer into r */
}

typedef struct worker {
    chain_walk *w;
    int index;
} worker;

static void *work(void *arg)
{
    worker *k = arg;
    const wr_receipt_verifier *v = &k->w->v[k->index];
    size_t step = (size_t)k->w->nworkers;
    for (size_t i = (size_t)k->index; i < k->w->n; i += step)
        prepare_item(k->w, k->index, &k->w->items[i]);
    for (size_t i = (size_t)k->index; i < k->w->n; i += step) {
        item *it = &k->w->items[i];
        if (it->parsed && it->rc == WR_OK)
            it->rc = wr_receipt_pending_finish(v, &it->pending, &it->err);
    }
    return NULL;
}

static int anchor_cmp(const void *a, const void *b)
{
    const wr_tree_head *x = a, *y = b;
    return x->size < y->size ? -1 : x->size > y->size;
}

/* Anchors the chain has just reached (its size is w->last). */
static int check_anchors(chain_walk *w)
{
    for (; w->next_anchor < w->nanchors && w->anchors[w->next_anchor].size <= w->last; w->next_anchor++) {
        wr_merkle_hash root;
        wr_merkle_range_root(&w->tree, root);
        if (memcmp(root, w->anchors[w->next_anchor].root, sizeof root) != 0)
            return wr_errorf(w->err, WR_E_INVALID, "",
                             "seq 1..%lld: forked: these receipts do not hash to the checkpoint's root at size %lld "
                             "(a history other than the one the log signed)",
                             (long long)w->last, (long long)w->last);
    }
    return WR_OK;
}

/* After the last receipt: an anchor beyond it means receipts were cut off. */
static int check_truncation(chain_walk *w)
{
    int rc = check_anchors(w);
    if (rc == WR_OK && w->next_anchor < w->nanchors)
        rc = wr_errorf(w->err, WR_E_INVALID, "",
                       "seq %lld: missing: the checkpoint covers %lld receipts but the chain ends at seq %lld "
                       "(truncated)",
                       (long long)w->last + 1, (long long)w->anchors[w->nanchors - 1].size, (long long)w->last);
    return rc;
}

static int set_anchors(chain_walk *w, const wr_tree_head *anchors, size_t n)
{
    if (!n)
        return WR_OK;
    if (!(w->anchors = malloc(n * sizeof *anchors)))
        return wr_errorf(w->err, WR_E_NOMEM, "", "out of memory");
    memcpy(w->anchors, anchors, n * sizeof *anchors);
    qsort(w->anchors, n, sizeof *anchors, anchor_cmp);
    w->nanchors = n;
    return check_anchors(w); /* those of size 0 */
}

/* The checks that depend on the receipts before it, in order. */
static int decide(chain_walk *w, const item *it)
{
    wr_error *err = w->err;
    const char *where = it->where;
    long long seq = (long long)it->seq, last = (long long)w->last;
    if (it->read_rc)
        return wr_errorf(err, it->read_rc, where, "%s", it->err.message);
    if (!it->parsed)
        return wr_errorf(err, WR_E_INVALID, where, "%s: not a valid JSON receipt: %s", where, it->err.message);
    if (seq < 1)
        return wr_errorf(err, WR_E_INVALID, where, "%s: receipt after seq %lld has no valid seq", where, last);
    if (seq == last)
        return wr_errorf(err, WR_E_INVALID, where, "seq %lld: duplicate seq (%s repeats seq %lld)", seq, where, seq);
    if (seq < last)
        return wr_errorf(err, WR_E_INVALID, where, "seq %lld: reordered: it comes after seq %lld (%s)", seq, last,
                         where);
    if (it->position && it->position != seq)
        return wr_errorf(err, WR_E_INVALID, where, "seq %lld: reordered: found in place of seq %lld (%s)", seq,
                         (long long)it->position, where);
    if (seq > last + 1)
        return wr_errorf(err, WR_E_INVALID, where, "seq %lld: gap: seq %lld is missing (seq %lld follows seq %lld)",
                         last + 1, last + 1, seq, last);
    if (it->rc)
        return wr_errorf(err, it->rc, where, "seq %lld: altered: %s%s%s", seq, it->err.path,
                         it->err.path[0] ? ": " : "", it->err.message);
    if (strcmp(it->prev, w->prev) != 0)
        return wr_errorf(err, WR_E_INVALID, where,
                         "seq %lld: broken link: prev_receipt_sha256 is not the hash of %s%lld", seq,
                         last ? "seq " : "the chain start, seq ", last);
    memcpy(w->prev, it->hash, sizeof w->prev);
    w->last = it->seq;
    wr_merkle_range_append(&w->tree, it->leaf);
    if (w->keep_leaves) {
        if (w->last > w->cap) {
            w->cap = w->cap ? 2 * w->cap : BATCH;
            wr_merkle_hash *more = realloc(w->leaves, (size_t)w->cap * sizeof *more);
            if (!more)
                return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            w->leaves = more;
        }
        memcpy(w->leaves[w->last - 1], it->leaf, WR_MERKLE_HASH_LEN);
    }
    return check_anchors(w);
}

static int run_batch(chain_walk *w)
{
    pthread_t threads[MAX_WORKERS];
    worker ks[MAX_WORKERS];
    bool started[MAX_WORKERS] = {false};
    for (int k = 0; k < w->nworkers; k++)
        ks[k] = (worker){w, k};
    for (int k = 1; k < w->nworkers && (size_t)k < w->n; k++)
        started[k] = pthread_create(&threads[k], NULL, work, &ks[k]) == 0;
    for (int k = 0; k < w->nworkers; k++)
        if (!started[k])
            work(&ks[k]); /* ours, or a thread that could not start */
    for (int k = 1; k < w->nworkers; k++)
        if (started[k])
            pthread_join(threads[k], NULL);
    int rc = WR_OK;
    for (size_t i = 0; i < w->n && rc == WR_OK; i++)
        rc = decide(w, &w->items[i]);
    w->n = 0;
    return rc;
}

/* Queues one receipt (a copy of json, or file to read), checking a batch
 * when it is full. */
static int walk_add(chain_walk *w, const char *json, const char *file, int64_t position, const char *where)
{
    item *it = &w->items[w->n];
    char *buf = it->json;
    size_t cap = it->cap, len = json ? strlen(json) : 0;
    memset(it, 0, sizeof *it);
    it->json = buf;
    it->cap = cap;
    if (json && cap < len + 1) {
        if (!(buf = realloc(buf, len + 1)))
            return wr_errorf(w->err, WR_E_NOMEM, "", "out of memory");
        it->json = buf;
        it->cap = len + 1;
    }
    if (json)
        memcpy(it->json, json, len + 1);
    w->n++;
    it->len = len;
    it->file = file;
    it->position = position;
    snprintf(it->where, sizeof it->where, "%s", where);
    return w->n == BATCH ? run_batch(w) : WR_OK;
}

/* ---- from the store --------------------------------------------------- */

typedef struct store_walk {
    chain_walk *w;
    int rc;
    const unsigned char *pk;
    wr_tree_head *anchors; /* the stored checkpoints, signatures checked */
    size_t nanchors;
} store_walk;

static int store_step(void *ud, int64_t seq, const char *json)
{
    store_walk *s = ud;
    char where[48];
    snprintf(where, sizeof where, "store row %lld", (long long)seq);
    s->rc = walk_add(s->w, json, NULL, seq, where);
    return s->rc != WR_OK;
}

static int collect_checkpoint(void *ud, int64_t size, const char *note)
{
    store_walk *s = ud;
    wr_checkpoint cp;
    wr_tree_head *more = realloc(s->anchors, (s->nanchors + 1) * sizeof *more);
    if (!more) {
        s->rc = wr_errorf(s->w->err, WR_E_NOMEM, "", "out of memory");
        return 1;
    }
    s->anchors = more;
    s->rc = wr_checkpoint_verify(note, s->pk, NULL, &cp, s->w->err);
    if (s->rc == WR_OK && cp.size != size)
        s->rc = wr_errorf(s->w->err, WR_E_INVALID, "", "the note says size %lld", (long long)cp.size);
    if (s->rc) {
        wr_error_prefix(s->w->err, "stored checkpoint of size %lld", (long long)size);
        return 1;
    }
    s->anchors[s->nanchors].size = size;
    memcpy(s->anchors[s->nanchors++].root, cp.root, WR_MERKLE_HASH_LEN);
    return 0;
}

/* The store's own tree, node by node, against the tree of the receipts
 * just walked (a wrong inner node would only show in some proofs). Rows
 * come in append order: leaf m, then the subtrees it completes; each is
 * recomputed from the leaf or from the node before it and its left
 * sibling, the newest even-indexed node of the level below. */
typedef struct tree_check {
    const wr_merkle_hash *leaves;
    int64_t n;
    int64_t leaf; /* the append being checked */
    int level;    /* the node of it expected next */
    wr_merkle_hash prev;
    wr_merkle_hash left[WR_MERKLE_MAX_PROOF]; /* per level */
    int rc;
    wr_error *err;
} tree_check;

static int compare_node(void *ud, int level, int64_t index, const wr_merkle_hash h)
{
    tree_check *t = ud;
    /* After leaf m's hash come one node per trailing 1 bit of m. */
    if (t->level > 0 && !((t->leaf >> (t->level - 1)) & 1)) {
        t->leaf++;
        t->level = 0;
    }
    wr_merkle_hash want;
    bool expected = t->leaf < t->n && level == t->level && index == t->leaf >> level && level < WR_MERKLE_MAX_PROOF;
    if (expected && level == 0)
        memcpy(want, t->leaves[index], sizeof want);
    else if (expected)
        wr_merkle_node_hash(t->left[level - 1], t->prev, want);
    if (!expected || memcmp(h, want, sizeof want) != 0) {
        t->rc = wr_errorf(t->err, WR_E_INVALID, "",
                          "tree: the stored Merkle tree differs from the tree of the receipts at level %d, index %lld",
                          level, (long long)index);
        return 1;
    }
    if (!(index & 1))
        memcpy(t->left[level], want, sizeof want);
    memcpy(t->prev, want, sizeof want);
    t->level++;
    return 0;
}

static int check_store_tree(wr_store *st, wr_merkle_hash *leaves, int64_t n, wr_error *err)
{
    tree_check t = {.leaves = leaves, .n = n, .err = err};
    int rc = wr_store_iter_tree(st, compare_node, &t, err);
    if (rc == WR_OK)
        rc = t.rc;
    /* Complete: the last leaf was reached and its append ended. */
    bool ended = n == 0 ? t.level == 0 : t.leaf == n - 1 && t.level > 0 && !((t.leaf >> (t.level - 1)) & 1);
    if (rc == WR_OK && !ended)
        rc = wr_errorf(err, WR_E_INVALID, "", "tree: the stored Merkle tree lacks nodes (of %lld receipts)",
                       (long long)n);
    return rc;
}

int wr_chain_verify_store(wr_store *st, const unsigned char pk[WR_PK_LEN], int64_t *count_out, wr_error *err)
{
    return wr_chain_verify_store_workers(st, pk, 0, count_out, err);
}

int wr_chain_verify_store_workers(wr_store *st, const unsigned char pk[WR_PK_LEN], int workers, int64_t *count_out,
                                  wr_error *err)
{
    if (count_out)
        *count_out = 0;
    if (!st || !pk)
        return wr_errorf(err, WR_E_INVALID, "", "verify chain: missing store or key");
    store_walk s = {.rc = WR_OK, .pk = pk};
    int rc = walk_new(&s.w, pk, workers, err);
    if (rc)
        return rc;
    s.w->keep_leaves = true;
    rc = wr_store_iter_checkpoints(st, collect_checkpoint, &s, err);
    if (rc == WR_OK && (rc = s.rc) == WR_OK)
        rc = set_anchors(s.w, s.anchors, s.nanchors);
    free(s.anchors);
    if (rc == WR_OK)
        rc = wr_store_iter_receipts(st, store_step, &s, err);
    if (rc == WR_OK)
        rc = s.rc;
    if (rc == WR_OK)
        rc = run_batch(s.w);
    if (rc == WR_OK)
        rc = check_truncation(s.w);
    int64_t head = 0, last = s.w->last;
    char head_sha[WR_SHA256_HEX_LEN];
    if (rc == WR_OK)
        rc = wr_store_chain_head(st, &head, head_sha, err);
    /* A receipt cut off the end leaves every remaining link intact; the
     * head, moved in the same transaction as each append, still tells. */
    if (rc == WR_OK && head != last)
        rc = wr_errorf(err, WR_E_INVALID, "",
                       "seq %lld: gap: the chain head is seq %lld but the receipts end at seq %lld",
                       (long long)(last + 1), (long long)head, (long long)last);
    else if (rc == WR_OK && strcmp(head_sha, s.w->prev) != 0)
        rc = wr_errorf(err, WR_E_INVALID, "", "seq %lld: altered: the chain head's hash does not match it",
                       (long long)head);
    if (rc == WR_OK)
        rc = check_store_tree(st, s.w->leaves, last, err);
    walk_free(s.w);
    if (rc == WR_OK && count_out)
        *count_out = last;
    return rc;
}

/* ---- from a directory of exported receipts ------------------------------ */

typedef struct rfile {
    char *name;
    int64_t position;        /* seq from a name of digits + ".json", else 0 */
    unsigned long long lead; /* the number the name starts with, to sort by */
} rfile;

static int64_t name_position(const char *name)
{
    size_t digits = strspn(name, "0123456789");
    if (digits == 0 || digits > 18 || strcmp(name + digits, ".json") != 0)
        return 0;
    return strtoll(name, NULL, 10);
}

/* By the number the name starts with, then by name, so 10.json follows
 * 9.json and a stray copy "000002 copy.json" sits next to 000002.json. */
static int rfile_cmp(const void *a, const void *b)
{
    const rfile *x = a, *y = b;
    if (x->lead != y->lead)
        return x->lead < y->lead ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void rfiles_free(rfile *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].name);
    free(f);
}

static int list_dir(const char *dir, rfile **out, size_t *n_out, wr_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return wr_errorf(err, errno == ENOENT ? WR_E_NOTFOUND : WR_E_IO, dir, "cannot open %s: %s", dir,
                         strerror(errno));
    rfile *f = NULL;
    size_t n = 0, cap = 0;
    int rc = WR_OK;
    for (struct dirent *e; rc == WR_OK && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
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
        f[n].lead = strtoull(e->d_name, NULL, 10);
        if (!f[n].name)
            rc = wr_errorf(err, WR_E_NOMEM, dir, "out of memory");
        else
            n++;
    }
    closedir(d);
    if (rc) {
        rfiles_free(f, n);
        return rc;
    }
    if (n)
        qsort(f, n, sizeof *f, rfile_cmp);
    *out = f;
    *n_out = n;
    return WR_OK;
}

int wr_chain_verify_dir(const char *dir, const unsigned char pk[WR_PK_LEN], int64_t *count_out, wr_error *err)
{
    return wr_chain_verify_dir_anchored(dir, pk, NULL, 0, count_out, err);
}

int wr_chain_verify_dir_anchored(const char *dir, const unsigned char pk[WR_PK_LEN], const wr_tree_head *anchors,
                                 size_t nanchors, int64_t *count_out, wr_error *err)
{
    return wr_chain_verify_dir_workers(dir, pk, anchors, nanchors, 0, count_out, err);
}

int wr_chain_verify_dir_workers(const char *dir, const unsigned char pk[WR_PK_LEN], const wr_tree_head *anchors,
                                size_t nanchors, int workers, int64_t *count_out, wr_error *err)
{
    if (count_out)
        *count_out = 0;
    if (!dir || !*dir || !pk)
        return wr_errorf(err, WR_E_INVALID, "", "verify chain: missing directory or key");
    rfile *files = NULL;
    size_t n = 0;
    int rc = list_dir(dir, &files, &n, err);
    if (rc)
        return rc;
    chain_walk *w = NULL;
    rc = walk_new(&w, pk, workers, err);
    if (rc == WR_OK)
        rc = set_anchors(w, anchors, nanchors);
    if (rc == WR_OK) {
        w->dir = dir;
        if ((w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            rc = wr_errorf(err, WR_E_IO, dir, "cannot open %s: %s", dir, strerror(errno));
    }
    for (size_t i = 0; rc == WR_OK && i < n; i++) {
        if (strlen(dir) + 1 + strlen(files[i].name) >= PATH_MAX) {
            rc = wr_errorf(err, WR_E_INVALID, files[i].name, "path too long in %s", dir);
            break;
        }
        rc = walk_add(w, NULL, files[i].name, files[i].position, files[i].name);
    }
    if (rc == WR_OK)
        rc = run_batch(w);
    if (rc == WR_OK)
        rc = check_truncation(w);
    int64_t last = w ? w->last : 0;
    if (w)
        walk_free(w);
    rfiles_free(files, n);
    if (rc == WR_OK && count_out)
        *count_out = last;
    return rc;
}
