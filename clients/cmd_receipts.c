/* warrant keygen | pubkey | receipts list|export | verify receipt|chain — keys
 * and offline verification for approvers and auditors (bundles: cmd_bundle.c).
 * Results are JSON (or one line per receipt) on stdout; a rejection is one
 * line on stderr and exit 1; usage or unreadable input is exit 2. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients/cli.h"
#include "receipts/receipts.h"

#define CHECKPOINT_FILE "checkpoint" /* beside the exported receipts */

/* ---- keygen, pubkey ------------------------------------------------------ */

int cmd_keygen(int argc, char **argv)
{
    cli_opts o;
    int rc = cli_parse_opts(argc, argv, &o, "keygen --out NAME");
    if (rc)
        return rc;
    if (!o.out || o.npos)
        return cli_fail("usage: warrant keygen --out NAME");
    wr_ctx ctx = wr_ctx_system();
    wr_keypair kp;
    wr_error err = {0};
    if (wr_key_generate(&ctx, &kp, &err) != WR_OK || wr_key_write_pair(&kp, o.out, &err) != WR_OK) {
        wr_keypair_wipe(&kp);
        return cli_fail_at(CLI_USAGE, o.out, &err);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "key_id", json_object_new_string(kp.key_id));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s.key", o.out);
    json_object_object_add(res, "private_key", json_object_new_string(path));
    snprintf(path, sizeof path, "%s.pub", o.out);
    json_object_object_add(res, "public_key", json_object_new_string(path));
    wr_keypair_wipe(&kp);
    cli_print_json(res);
    json_object_put(res);
    return CLI_OK;
}

int cmd_pubkey(int argc, char **argv)
{
    cli_opts o;
    int rc = cli_parse_opts(argc, argv, &o, "pubkey --state-dir DIR");
    if (rc)
        return rc;
    if (o.npos)
        return cli_fail("usage: warrant pubkey --state-dir DIR");
    char buf[CLI_PATH_MAX];
    const char *dir = cli_state_dir(o.state_dir, buf);
    if (!dir)
        return CLI_USAGE;
    unsigned char pk[WR_PK_LEN];
    wr_error err = {0};
    if (wr_server_pubkey_load(dir, pk, &err) != WR_OK)
        return cli_fail_at(CLI_USAGE, dir, &err);
    char *pem = wr_pubkey_pem(pk);
    if (!pem)
        return cli_fail("pubkey: out of memory");
    fputs(pem, stdout);
    free(pem);
    return CLI_OK;
}

/* ---- receipts list | export --------------------------------------------- */

typedef struct walk {
    bool json;
    const char *dir; /* export target, NULL to list */
    int64_t count;
    wr_error err;
} walk;

/* A string member, or "-" (a stored receipt should always have them). */
static const char *member(json_object *r, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(r, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                             : "-";
}

static int list_one(walk *w, int64_t seq, json_object *r)
{
    static const char *const keys[] = {"execution_id", "status", "contract_id"};
    if (w->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "seq", json_object_new_int64(seq));
        for (size_t i = 0; i < 3; i++)
            json_object_object_add(o, keys[i], json_object_new_string(member(r, keys[i])));
        cli_print_compact(o);
    } else {
        printf("%lld\t%s\t%s\t%s\n", (long long)seq, member(r, keys[0]), member(r, keys[1]), member(r, keys[2]));
    }
    return WR_OK;
}

/* One canonical JSON file per receipt, named by seq: exactly the bytes the
 * next receipt's prev_receipt_sha256 hashes. */
static int export_one(walk *w, int64_t seq, json_object *r)
{
    size_t len;
    char *canon = wr_canonical_json(r, false, &len, &w->err);
    if (!canon)
        return w->err.code;
    char path[PATH_MAX];
    int rc = WR_OK;
    if (snprintf(path, sizeof path, "%s/%06lld.json", w->dir, (long long)seq) >= (int)sizeof path)
        rc = wr_errorf(&w->err, WR_E_INVALID, w->dir, "output path is too long");
    else
        rc = wr_write_file_atomic(path, canon, len, 0644, &w->err);
    free(canon);
    return rc;
}

static int walk_receipt(void *ud, int64_t seq, const char *json)
{
    walk *w = ud;
    json_object *r = wr_json_parse(json, strlen(json), NULL, &w->err);
    if (!r) {
        wr_error_prefix(&w->err, "receipt seq %lld", (long long)seq);
        return 1;
    }
    int rc = w->dir ? export_one(w, seq, r) : list_one(w, seq, r);
    json_object_put(r);
    if (rc == WR_OK)
        w->count++;
    return rc != WR_OK;
}

/* DIR/checkpoint: the newest checkpoint, if the log has one (an empty log
 * exported by someone without the key has none). */
static int export_checkpoint(const char *state_dir, wr_store *st, const char *dir, char **note, wr_error *err)
{
    int rc = cli_latest_checkpoint(state_dir, st, note, err);
    if (rc == WR_E_NOTFOUND) {
        wr_error_clear(err);
        return WR_OK;
    }
    char path[PATH_MAX];
    if (rc == WR_OK && snprintf(path, sizeof path, "%s/%s", dir, CHECKPOINT_FILE) >= (int)sizeof path)
        rc = wr_errorf(err, WR_E_INVALID, dir, "output path is too long");
    if (rc == WR_OK)
        rc = wr_write_file_atomic(path, *note, strlen(*note), 0644, err);
    return rc;
}

int cmd_receipts(int argc, char **argv)
{
    static const char usage[] = "receipts list [--json] | export --dir OUT  [--state-dir DIR]";
    if (argc < 2)
        return cli_fail("usage: warrant %s", usage);
    cli_opts o;
    int rc = cli_parse_opts(argc - 1, argv + 1, &o, usage);
    if (rc)
        return rc;
    bool export = !strcmp(argv[1], "export");
    if ((!export && strcmp(argv[1], "list") != 0) || o.npos || (export && !o.dir))
        return cli_fail("usage: warrant %s", usage);
    char buf[CLI_PATH_MAX];
    const char *state_dir = cli_state_dir(o.state_dir, buf);
    if (!state_dir)
        return CLI_USAGE;
    if (export && mkdir(o.dir, 0755) != 0 && errno != EEXIST)
        return cli_fail("receipts export: cannot create %s: %s", o.dir, strerror(errno));
    wr_store *st = NULL;
    walk w = {.json = o.json, .dir = export ? o.dir : NULL};
    wr_error err = {0};
    if (cli_open_existing(state_dir, &st, &err) != WR_OK)
        return cli_fail_at(CLI_USAGE, state_dir, &err);
    /* The checkpoint first: every receipt it covers is then exported. */
    char *note = NULL;
    rc = export ? export_checkpoint(state_dir, st, o.dir, &note, &err) : WR_OK;
    if (rc == WR_OK)
        rc = wr_store_iter_receipts(st, walk_receipt, &w, &err);
    wr_store_close(st);
    if (rc) {
        free(note);
        return cli_fail_at(CLI_USAGE, state_dir, &err);
    }
    if (w.err.code) {
        free(note);
        return cli_fail_at(CLI_USAGE, export ? o.dir : state_dir, &w.err);
    }
    if (export) {
        json_object *res = json_object_new_object();
        json_object_object_add(res, "exported", json_object_new_int64(w.count));
        json_object_object_add(res, "dir", json_object_new_string(o.dir));
        json_object_object_add(res, "checkpoint", note ? json_object_new_string(CHECKPOINT_FILE) : NULL);
        free(note);
        cli_print_compact(res);
    }
    return CLI_OK;
}

/* ---- verify receipt | chain ------------------------------------------------ */

static int verify_receipt(const cli_opts *o, const unsigned char pk[WR_PK_LEN])
{
    if (o->npos != 1)
        return cli_fail("usage: warrant verify receipt FILE --pubkey PUB [--key-id ID]");
    wr_error err = {0};
    json_object *r = wr_json_read_file(o->pos[0], NULL, &err);
    if (!r)
        return cli_fail_at(cli_exit_for(err.code), o->pos[0], &err);
    int rc = wr_receipt_verify_key_id(r, pk, o->key_id, &err);
    if (rc) {
        json_object_put(r);
        return cli_fail_at(cli_exit_for(rc), o->pos[0], &err);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "valid", json_object_new_boolean(true));
    static const char *const keys[] = {"execution_id", "status", "seq", "signing_key_id"};
    for (size_t i = 0; i < 4; i++) {
        json_object *v = json_object_object_get(r, keys[i]);
        if (v)
            json_object_object_add(res, keys[i], json_object_get(v));
    }
    json_object_put(r);
    cli_print_compact(res);
    return CLI_OK;
}

static int verify_chain(const cli_opts *o, const unsigned char pk[WR_PK_LEN])
{
    if (o->npos || (o->dir && o->state_dir) || (!o->dir && !o->state_dir) || (o->checkpoint && !o->dir) ||
        (o->witness && !o->checkpoint))
        return cli_fail("usage: warrant verify chain --state-dir DIR | --dir RECEIPTS_DIR [--checkpoint CP "
                        "[--witness PUB]] --pubkey PUB");
    const char *where = o->dir ? o->dir : o->state_dir;
    wr_error err = {0};
    int64_t n = 0;
    int rc;
    wr_checkpoint cp;
    wr_tree_head anchor;
    if (o->checkpoint) {
        if ((rc = cli_load_checkpoint(o->checkpoint, pk, o->witness, &cp)) != CLI_OK)
            return rc;
        anchor.size = cp.size;
        memcpy(anchor.root, cp.root, WR_MERKLE_HASH_LEN);
    }
    if (o->dir) {
        rc = wr_chain_verify_dir_anchored(o->dir, pk, &anchor, o->checkpoint ? 1 : 0, &n, &err);
    } else {
        wr_store *st = NULL;
        if (cli_open_existing(o->state_dir, &st, &err) != WR_OK)
            return cli_fail_at(CLI_USAGE, where, &err);
        rc = wr_chain_verify_store(st, pk, &n, &err);
        wr_store_close(st);
    }
    if (rc) { /* the message names the seq; say which chain */
        fprintf(stderr, "warrant: %s: %s\n", where, err.message);
        return cli_exit_for(rc);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "valid", json_object_new_boolean(true));
    json_object_object_add(res, "receipts", json_object_new_int64(n));
    if (o->checkpoint)
        json_object_object_add(res, "checkpoint_size", json_object_new_int64(cp.size));
    cli_print_compact(res);
    return CLI_OK;
}

int cmd_verify(int argc, char **argv)
{
    static const char usage[] =
        "verify receipt FILE [--key-id ID] | chain (--state-dir DIR | --dir DIR [--checkpoint CP]) | bundle FILE "
        "| inclusion RECEIPT --proof PROOF --checkpoint CP | consistency OLD_CP NEW_CP "
        "(--dir DIR | --proof PROOF)  --pubkey PUB [--witness PUB]";
    if (argc < 2)
        return cli_fail("usage: warrant %s", usage);
    cli_opts o;
    int rc = cli_parse_opts(argc - 1, argv + 1, &o, usage);
    if (rc)
        return rc;
    static const struct {
        const char *name;
        int (*fn)(const cli_opts *, const unsigned char *);
    } kinds[] = {{"receipt", verify_receipt},
                 {"chain", verify_chain},
                 {"inclusion", cli_verify_inclusion},
                 {"consistency", cli_verify_consistency}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(argv[1], kinds[i].name) != 0)
            continue;
        if (o.key_id && strcmp(argv[1], "receipt"))
            return cli_fail("verify %s: --key-id applies to verify receipt only", argv[1]);
        unsigned char pk[WR_PK_LEN];
        if ((rc = cli_load_pubkey(o.pubkey, pk, "verify")) != CLI_OK)
            return rc;
        return kinds[i].fn(&o, pk);
    }
    return cli_fail("usage: warrant %s", usage);
}
