/* warrant checkpoint [cosign|proof] | verify inclusion|consistency | doctor —
 * the receipt log as a transparency log (docs/transparency-log.md).
 * Checkpoints and proofs go to stdout; a rejection is one line on stderr
 * and exit 1; usage or unreadable input is exit 2. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clients/cli.h"
#include "receipts/receipts.h"

#define KEY_FILE "receipt-signing.key"

/* Reads a checkpoint file and checks its signatures: the log's by pk,
 * and the witness's too when witness_path is given. */
int cli_load_checkpoint(const char *path, const unsigned char pk[WR_PK_LEN], const char *witness_path,
                        wr_checkpoint *cp)
{
    unsigned char wpk[WR_PK_LEN];
    if (witness_path && cli_load_pubkey(witness_path, wpk, "--witness") != CLI_OK)
        return CLI_USAGE;
    char *text = NULL;
    size_t len = 0;
    wr_error err = {0};
    if (wr_read_file(path, WR_CHECKPOINT_MAX, &text, &len, &err) != WR_OK)
        return cli_fail_at(CLI_USAGE, path, &err);
    int rc = strlen(text) == len ? wr_checkpoint_verify(text, pk, witness_path ? wpk : NULL, cp, &err)
                                 : wr_errorf(&err, WR_E_INVALID, "", "not a checkpoint: a NUL byte");
    free(text);
    if (rc) {
        fprintf(stderr, "warrant: %s: %s\n", path, err.message);
        return cli_exit_for(rc);
    }
    return CLI_OK;
}

static int read_proof(const char *path, wr_tree_query kind, int64_t *arg, int64_t *size, wr_merkle_proof *p)
{
    wr_error err = {0};
    json_object *o = wr_json_read_file(path, NULL, &err);
    int rc = o ? wr_proof_from_json(o, kind, arg, size, p, &err) : err.code;
    json_object_put(o);
    return rc ? cli_fail_at(cli_exit_for(rc), path, &err) : CLI_OK;
}

static void print_valid(json_object *res)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "valid", json_object_new_boolean(true));
    json_object_object_foreach(res, k, v) json_object_object_add(o, k, json_object_get(v));
    json_object_put(res);
    cli_print_compact(o);
}

/* ---- verify inclusion | consistency -------------------------------------- */

int cli_verify_inclusion(const cli_opts *o, const unsigned char pk[WR_PK_LEN])
{
    if (o->npos != 1 || !o->proof || !o->checkpoint)
        return cli_fail("usage: warrant verify inclusion RECEIPT --proof PROOF --checkpoint CP --pubkey PUB "
                        "[--witness PUB]");
    wr_checkpoint cp;
    int rc = cli_load_checkpoint(o->checkpoint, pk, o->witness, &cp);
    int64_t index = 0, size = 0;
    wr_merkle_proof proof;
    if (rc || (rc = read_proof(o->proof, WR_TREE_INCLUSION, &index, &size, &proof)) != CLI_OK)
        return rc;
    wr_error err = {0};
    json_object *r = wr_json_read_file(o->pos[0], NULL, &err);
    if (!r)
        return cli_fail_at(cli_exit_for(err.code), o->pos[0], &err);
    rc = wr_receipt_verify(r, pk, &err);
    if (rc) {
        json_object_put(r);
        return cli_fail_at(cli_exit_for(rc), o->pos[0], &err);
    }
    rc = wr_receipt_verify_inclusion(r, &cp, index, size, &proof, &err);
    long long seq = (long long)json_object_get_int64(json_object_object_get(r, "seq"));
    json_object_put(r);
    if (rc) {
        fprintf(stderr, "warrant: %s: seq %lld: %s\n", o->pos[0], seq, err.message);
        return CLI_REJECTED;
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "seq", json_object_new_int64(index + 1));
    json_object_object_add(res, "tree_size", json_object_new_int64(size));
    print_valid(res);
    return CLI_OK;
}

int cli_verify_consistency(const cli_opts *o, const unsigned char pk[WR_PK_LEN])
{
    if (o->npos != 2 || (o->dir && o->proof))
        return cli_fail("usage: warrant verify consistency OLD_CP NEW_CP --pubkey PUB [--dir DIR | --proof PROOF] "
                        "[--witness PUB]");
    wr_checkpoint old, cur;
    int rc = cli_load_checkpoint(o->pos[0], pk, o->witness, &old);
    if (rc || (rc = cli_load_checkpoint(o->pos[1], pk, o->witness, &cur)) != CLI_OK)
        return rc;
    wr_error err = {0};
    if (old.size > cur.size) {
        fprintf(stderr, "warrant: %s: size %lld is smaller than the old checkpoint's %lld: the log shrank\n", o->pos[1],
                (long long)cur.size, (long long)old.size);
        return CLI_REJECTED;
    }
    if (!o->dir) {
        /* Without a proof only the same tree (or one from the empty tree) is shown to extend. */
        int64_t from = old.size, to = cur.size;
        wr_merkle_proof proof = {0};
        if (o->proof && (rc = read_proof(o->proof, WR_TREE_CONSISTENCY, &from, &to, &proof)) != CLI_OK)
            return rc;
        if (from != old.size || to != cur.size)
            rc = wr_errorf(&err, WR_E_INVALID, "",
                           "the proof is from size %lld to %lld, the checkpoints are %lld and %lld", (long long)from,
                           (long long)to, (long long)old.size, (long long)cur.size);
        else
            rc = wr_merkle_verify_consistency(old.size, cur.size, old.root, cur.root, &proof, &err);
    } else {
        /* Both roots recomputed from the receipts themselves. */
        wr_tree_head anchors[2] = {{.size = old.size}, {.size = cur.size}};
        memcpy(anchors[0].root, old.root, WR_MERKLE_HASH_LEN);
        memcpy(anchors[1].root, cur.root, WR_MERKLE_HASH_LEN);
        rc = wr_chain_verify_dir_anchored(o->dir, pk, anchors, 2, NULL, &err);
    }
    if (rc) {
        fprintf(stderr, "warrant: %s does not extend %s: %s\n", o->pos[1], o->pos[0], err.message);
        return CLI_REJECTED;
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "old_size", json_object_new_int64(old.size));
    json_object_object_add(res, "tree_size", json_object_new_int64(cur.size));
    print_valid(res);
    return CLI_OK;
}

/* ---- checkpoint [cosign | proof] ------------------------------------------- */

int cli_latest_checkpoint(const char *state_dir, wr_store *st, char **note, wr_error *err)
{
    wr_keypair kp;
    wr_ctx ctx = wr_ctx_system();
    int rc = wr_server_key_load(state_dir, &kp, err);
    if (rc == WR_OK)
        rc = wr_checkpoint_publish(st, &kp, &ctx, note, err);
    wr_keypair_wipe(&kp);
    if (rc == WR_E_NOTFOUND || rc == WR_E_DENIED || rc == WR_E_IO) {
        int64_t size;
        wr_error_clear(err);
        rc = wr_store_get_checkpoint(st, -1, &size, note, err);
    }
    return rc;
}

static int checkpoint_print(const cli_opts *o)
{
    char buf[CLI_PATH_MAX];
    const char *dir = cli_state_dir(o->state_dir, buf);
    if (!dir)
        return CLI_USAGE;
    wr_store *st = NULL;
    wr_error err = {0};
    char *note = NULL;
    int rc = cli_open_existing(dir, &st, &err);
    if (rc == WR_OK)
        rc = cli_latest_checkpoint(dir, st, &note, &err);
    wr_store_close(st);
    if (rc)
        return cli_fail_at(CLI_USAGE, dir, &err);
    fputs(note, stdout);
    free(note);
    return CLI_OK;
}

static int checkpoint_cosign(const cli_opts *o)
{
    if (o->npos != 1 || !o->key || !o->checkpoint != !o->proof)
        return cli_fail("usage: warrant checkpoint cosign CP --key WITNESS.key --pubkey LOG.pub "
                        "[--checkpoint PREVIOUS --proof PROOF]");
    unsigned char pk[WR_PK_LEN];
    int rc = cli_load_pubkey(o->pubkey, pk, "checkpoint cosign");
    if (rc)
        return rc;
    /* A witness vouches for an append-only log: CP must extend the last
     * checkpoint it cosigned, by the consistency proof. */
    wr_checkpoint prev, cur;
    if (o->checkpoint && ((rc = cli_load_checkpoint(o->checkpoint, pk, NULL, &prev)) != CLI_OK ||
                          (rc = cli_load_checkpoint(o->pos[0], pk, NULL, &cur)) != CLI_OK))
        return rc;
    if (o->checkpoint) {
        int64_t from = 0, to = 0;
        wr_merkle_proof proof;
        wr_error perr = {0};
        if ((rc = read_proof(o->proof, WR_TREE_CONSISTENCY, &from, &to, &proof)) != CLI_OK)
            return rc;
        if (from != prev.size || to != cur.size)
            rc = wr_errorf(&perr, WR_E_INVALID, "", "the proof is from size %lld to %lld, not %lld to %lld",
                           (long long)from, (long long)to, (long long)prev.size, (long long)cur.size);
        else
            rc = wr_merkle_verify_consistency(prev.size, cur.size, prev.root, cur.root, &proof, &perr);
        if (rc) {
            fprintf(stderr, "warrant: refusing to cosign %s: it does not extend %s: %s\n", o->pos[0], o->checkpoint,
                    perr.message);
            return CLI_REJECTED;
        }
    }
    wr_keypair witness;
    wr_error err = {0};
    if (wr_key_load_secret(o->key, true, &witness, &err) != WR_OK)
        return cli_fail_at(CLI_USAGE, o->key, &err);
    char *text = NULL, *note = NULL;
    size_t len = 0;
    wr_ctx ctx = wr_ctx_system();
    rc = wr_read_file(o->pos[0], WR_CHECKPOINT_MAX, &text, &len, &err);
    if (rc == WR_OK)
        rc = wr_checkpoint_cosign(text, pk, &witness, &ctx, &note, &err);
    wr_keypair_wipe(&witness);
    free(text);
    if (rc)
        return cli_fail_at(cli_exit_for(rc), o->pos[0], &err);
    fputs(note, stdout);
    free(note);
    return CLI_OK;
}

static int checkpoint_proof(const cli_opts *o)
{
    if (o->npos || (!o->execution == (o->old_size < 0)))
        return cli_fail("usage: warrant checkpoint proof (--execution ID | --old SIZE) [--state-dir DIR]");
    char buf[CLI_PATH_MAX];
    const char *dir = cli_state_dir(o->state_dir, buf);
    if (!dir)
        return CLI_USAGE;
    wr_store *st = NULL;
    wr_error err = {0};
    char *note = NULL, *receipt = NULL;
    wr_checkpoint cp;
    wr_tree_head head;
    wr_merkle_proof proof;
    unsigned char pk[WR_PK_LEN];
    int64_t arg = o->old_size;
    int rc = cli_open_existing(dir, &st, &err);
    if (rc == WR_OK)
        rc = cli_latest_checkpoint(dir, st, &note, &err);
    if (rc == WR_OK && (rc = wr_server_pubkey_load(dir, pk, &err)) == WR_OK)
        rc = wr_checkpoint_verify(note, pk, NULL, &cp, &err);
    if (rc == WR_OK && o->execution && (rc = wr_store_get_receipt(st, o->execution, &receipt, &err)) == WR_OK) {
        json_object *r = wr_json_parse(receipt, strlen(receipt), NULL, &err);
        arg = json_object_get_int64(json_object_object_get(r, "seq")) - 1;
        json_object_put(r);
    }
    wr_tree_query kind = o->execution ? WR_TREE_INCLUSION : WR_TREE_CONSISTENCY;
    if (rc == WR_OK)
        rc = wr_store_tree(st, kind, arg, cp.size, &head, &proof, &err);
    wr_store_close(st);
    free(note);
    free(receipt);
    if (rc)
        return cli_fail_at(CLI_USAGE, o->execution ? o->execution : dir, &err);
    cli_print_compact(wr_proof_to_json(kind, arg, head.size, &proof));
    return CLI_OK;
}

int cmd_checkpoint(int argc, char **argv)
{
    static const char usage[] = "checkpoint [--state-dir DIR] | checkpoint cosign CP --key WITNESS.key --pubkey "
                                "LOG.pub [--checkpoint PREVIOUS --proof PROOF] | checkpoint proof (--execution ID | "
                                "--old SIZE) [--state-dir DIR]";
    bool verb = argc > 1 && argv[1][0] != '-';
    cli_opts o;
    int rc = cli_parse_opts(verb ? argc - 1 : argc, verb ? argv + 1 : argv, &o, usage);
    if (rc)
        return rc;
    if (!verb)
        return o.npos ? cli_fail("usage: warrant %s", usage) : checkpoint_print(&o);
    if (!strcmp(argv[1], "cosign"))
        return checkpoint_cosign(&o);
    if (!strcmp(argv[1], "proof"))
        return checkpoint_proof(&o);
    return cli_fail("usage: warrant %s", usage);
}

/* ---- doctor ------------------------------------------------------------------ */

typedef struct doctor {
    int findings;
    wr_store *st;
    const unsigned char *pk;
} doctor;

static void finding(doctor *d, bool ok, const char *what, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void finding(doctor *d, bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-5s %-12s ", ok ? "ok" : "FAIL", what);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    d->findings += !ok;
}

static void check_key(doctor *d, const char *dir)
{
    char path[PATH_MAX];
    struct stat sd, sk;
    snprintf(path, sizeof path, "%s/%s", dir, KEY_FILE);
    if (stat(dir, &sd) != 0 || lstat(path, &sk) != 0) {
        finding(d, false, "key", "%s: %s", path, strerror(errno));
        return;
    }
    if (sd.st_mode & 077)
        finding(d, false, "key", "state dir %s has mode %03o: others may reach the key (chmod 700)", dir,
                (unsigned)(sd.st_mode & 0777));
    bool ok = S_ISREG(sk.st_mode) && !(sk.st_mode & 077) && sk.st_uid == sd.st_uid;
    finding(d, ok, "key", "%s: mode %03o, owner %u%s", path, (unsigned)(sk.st_mode & 0777), (unsigned)sk.st_uid,
            ok ? "" : ": must be a regular file, 0600, owned like the state dir");
}

typedef struct stored {
    int64_t size;
    char *note;
} stored;

typedef struct stored_list {
    stored *v;
    size_t n;
} stored_list;

static int collect(void *ud, int64_t size, const char *note)
{
    stored_list *l = ud;
    stored *more = realloc(l->v, (l->n + 1) * sizeof *more);
    if (!more)
        return 1;
    l->v = more;
    l->v[l->n] = (stored){size, strdup(note)};
    return l->v[l->n++].note == NULL;
}

/* Every stored checkpoint is signed by the key and matches the tree
 * (collected first: a store callback must not call the store). */
static void check_checkpoints(doctor *d)
{
    stored_list l = {0};
    wr_error err = {0};
    if (wr_store_iter_checkpoints(d->st, collect, &l, &err) != WR_OK)
        finding(d, false, "checkpoint", "%s", err.message);
    int before = d->findings;
    for (size_t i = 0; i < l.n; i++) {
        wr_checkpoint cp;
        wr_tree_head head;
        int rc = l.v[i].note ? wr_checkpoint_verify(l.v[i].note, d->pk, NULL, &cp, &err)
                             : wr_errorf(&err, WR_E_NOMEM, "", "out of memory");
        if (rc == WR_OK && cp.size != l.v[i].size)
            rc = wr_errorf(&err, WR_E_INVALID, "", "its note says size %lld", (long long)cp.size);
        if (rc == WR_OK && (rc = wr_store_tree(d->st, WR_TREE_ROOT, 0, cp.size, &head, NULL, &err)) == WR_OK &&
            memcmp(head.root, cp.root, WR_MERKLE_HASH_LEN) != 0)
            rc = wr_errorf(&err, WR_E_INVALID, "", "the tree's root at this size differs from the signed one");
        if (rc)
            finding(d, false, "checkpoint", "size %lld: %s", (long long)l.v[i].size, err.message);
        free(l.v[i].note);
    }
    if (d->findings == before)
        finding(d, true, "checkpoint", "%zu stored checkpoints: signed, and the tree has their roots", l.n);
    free(l.v);
}

static int report_running(void *ud, const char *execution_id, int64_t started_ms)
{
    char t[WR_TIME_LEN];
    wr_time_format(started_ms, t);
    finding(ud, false, "execution", "%s left running since %s (no receipt: the server stopped during it)", execution_id,
            t);
    return 0;
}

int cmd_doctor(int argc, char **argv)
{
    cli_opts o;
    int rc = cli_parse_opts(argc, argv, &o, "doctor [--state-dir DIR]");
    if (rc)
        return rc;
    if (o.npos)
        return cli_fail("usage: warrant doctor [--state-dir DIR]");
    char buf[CLI_PATH_MAX];
    const char *dir = cli_state_dir(o.state_dir, buf);
    if (!dir)
        return CLI_USAGE;
    doctor d = {0};
    wr_error err = {0};
    unsigned char pk[WR_PK_LEN];
    d.pk = pk;
    if (cli_open_existing(dir, &d.st, &err) != WR_OK)
        return cli_fail_at(CLI_USAGE, dir, &err);
    char *report = NULL;
    rc = wr_store_integrity_check(d.st, &report, &err);
    finding(&d, rc == WR_OK, "database", "%s", rc == WR_OK ? "SQLite integrity check: ok" : err.message);
    free(report);
    check_key(&d, dir);
    if (wr_server_pubkey_load(dir, pk, &err) != WR_OK) {
        finding(&d, false, "chain", "cannot check without the public key: %s", err.message);
    } else {
        int64_t n = 0;
        rc = wr_chain_verify_store(d.st, pk, &n, &err);
        finding(&d, rc == WR_OK, "chain", "%s",
                rc == WR_OK ? "receipts, links, Merkle tree and checkpoints agree" : err.message);
        check_checkpoints(&d);
    }
    int before = d.findings;
    rc = wr_store_list_executions(d.st, "running", report_running, &d, &err);
    if (rc)
        finding(&d, false, "execution", "%s", err.message);
    else if (d.findings == before)
        finding(&d, true, "execution", "none left running");
    wr_store_close(d.st);
    return d.findings ? CLI_REJECTED : CLI_OK;
}
