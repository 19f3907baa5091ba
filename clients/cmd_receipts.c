/* warrant keygen | pubkey | receipts list|export | verify receipt|chain|bundle
 * | export — keys and offline verification for approvers and auditors.
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

typedef struct opts {
    const char *state_dir, *dir, *pubkey, *out;
    const char *key_id; /* verify receipt: the signer's own id for the key (CSC) */
    bool json;
    const char *pos[2]; /* positional arguments after the verb */
    int npos;
} opts;

/* Parses the options every command here shares; argv[0] is the verb. */
static int parse_opts(int argc, char **argv, opts *o, const char *usage)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'd'},
        {"pubkey", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"key-id", required_argument, NULL, 'k'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o->state_dir = optarg;
            break;
        case 'd':
            o->dir = optarg;
            break;
        case 'p':
            o->pubkey = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'k':
            o->key_id = optarg;
            break;
        default:
            return cli_fail("usage: warrant %s", usage);
        }
    }
    for (; optind < argc; optind++) {
        if (o->npos == 2)
            return cli_fail("usage: warrant %s", usage);
        o->pos[o->npos++] = argv[optind];
    }
    return CLI_OK;
}

/* One line; the path only when the message does not already name it
 * (lib and receipts errors usually do). */
static int fail_err(int code, const char *what, const wr_error *err)
{
    const char *path = err->path[0] ? err->path : what;
    if (path && *path && !strstr(err->message, path))
        fprintf(stderr, "warrant: %s: %s\n", path, err->message);
    else
        fprintf(stderr, "warrant: %s\n", err->message);
    return code;
}

/* Content problems reject (1); input that cannot be read at all is 2. */
static int exit_for(int code)
{
    return code == WR_E_INVALID || code == WR_E_CRYPTO || code == WR_E_LIMIT || code == WR_E_VERSION ? CLI_REJECTED
                                                                                                     : CLI_USAGE;
}

/* Read-only commands must not create a state dir where there was none. */
static int open_existing(const char *state_dir, wr_store **st, wr_error *err)
{
    char db[PATH_MAX];
    if (snprintf(db, sizeof db, "%s/warrant.db", state_dir) >= (int)sizeof db)
        return wr_errorf(err, WR_E_INVALID, state_dir, "state dir path is too long");
    if (access(db, F_OK) != 0)
        return wr_errorf(err, WR_E_NOTFOUND, state_dir, "no warrant state (no %s)", db);
    return wr_store_open(state_dir, st, err);
}

static int load_pubkey(const char *path, unsigned char pk[WR_PK_LEN], const char *what)
{
    if (!path)
        return cli_fail("%s: --pubkey PUB is required (the trusted receipt-signing public key)", what);
    wr_error err = {0};
    if (wr_pubkey_load(path, pk, &err) != WR_OK)
        return fail_err(CLI_USAGE, path, &err);
    return CLI_OK;
}

static void print_compact(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

/* ---- keygen, pubkey ------------------------------------------------------ */

int cmd_keygen(int argc, char **argv)
{
    opts o;
    int rc = parse_opts(argc, argv, &o, "keygen --out NAME");
    if (rc)
        return rc;
    if (!o.out || o.npos)
        return cli_fail("usage: warrant keygen --out NAME");
    wr_ctx ctx = wr_ctx_system();
    wr_keypair kp;
    wr_error err = {0};
    if (wr_key_generate(&ctx, &kp, &err) != WR_OK || wr_key_write_pair(&kp, o.out, &err) != WR_OK) {
        wr_keypair_wipe(&kp);
        return fail_err(CLI_USAGE, o.out, &err);
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
    opts o;
    int rc = parse_opts(argc, argv, &o, "pubkey --state-dir DIR");
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
        return fail_err(CLI_USAGE, dir, &err);
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
        print_compact(o);
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

int cmd_receipts(int argc, char **argv)
{
    static const char usage[] = "receipts list [--json] | export --dir OUT  [--state-dir DIR]";
    if (argc < 2)
        return cli_fail("usage: warrant %s", usage);
    opts o;
    int rc = parse_opts(argc - 1, argv + 1, &o, usage);
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
    if (open_existing(state_dir, &st, &err) != WR_OK)
        return fail_err(CLI_USAGE, state_dir, &err);
    rc = wr_store_iter_receipts(st, walk_receipt, &w, &err);
    wr_store_close(st);
    if (rc)
        return fail_err(CLI_USAGE, state_dir, &err);
    if (w.err.code)
        return fail_err(CLI_USAGE, export ? o.dir : state_dir, &w.err);
    if (export) {
        json_object *res = json_object_new_object();
        json_object_object_add(res, "exported", json_object_new_int64(w.count));
        json_object_object_add(res, "dir", json_object_new_string(o.dir));
        print_compact(res);
    }
    return CLI_OK;
}

/* ---- verify receipt | chain | bundle ------------------------------------ */

static int verify_receipt(const opts *o, const unsigned char pk[WR_PK_LEN])
{
    if (o->npos != 1)
        return cli_fail("usage: warrant verify receipt FILE --pubkey PUB [--key-id ID]");
    wr_error err = {0};
    json_object *r = wr_json_read_file(o->pos[0], NULL, &err);
    if (!r)
        return fail_err(exit_for(err.code), o->pos[0], &err);
    int rc = wr_receipt_verify_key_id(r, pk, o->key_id, &err);
    if (rc) {
        json_object_put(r);
        return fail_err(exit_for(rc), o->pos[0], &err);
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
    print_compact(res);
    return CLI_OK;
}

static int verify_chain(const opts *o, const unsigned char pk[WR_PK_LEN])
{
    if (o->npos || (o->dir && o->state_dir) || (!o->dir && !o->state_dir))
        return cli_fail("usage: warrant verify chain --state-dir DIR | --dir RECEIPTS_DIR --pubkey PUB");
    const char *where = o->dir ? o->dir : o->state_dir;
    wr_error err = {0};
    int64_t n = 0;
    int rc;
    if (o->dir) {
        rc = wr_chain_verify_dir(o->dir, pk, &n, &err);
    } else {
        wr_store *st = NULL;
        if (open_existing(o->state_dir, &st, &err) != WR_OK)
            return fail_err(CLI_USAGE, where, &err);
        rc = wr_chain_verify_store(st, pk, &n, &err);
        wr_store_close(st);
    }
    if (rc) { /* the message names the seq; say which chain */
        fprintf(stderr, "warrant: %s: %s\n", where, err.message);
        return exit_for(rc);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "valid", json_object_new_boolean(true));
    json_object_object_add(res, "receipts", json_object_new_int64(n));
    print_compact(res);
    return CLI_OK;
}

static int verify_bundle(const opts *o, const unsigned char pk[WR_PK_LEN])
{
    if (o->npos != 1)
        return cli_fail("usage: warrant verify bundle BUNDLE.tar.gz --pubkey PUB");
    wr_error err = {0};
    int rc = wr_bundle_verify(o->pos[0], pk, &err);
    if (rc) { /* the message names the member; say which bundle */
        fprintf(stderr, "warrant: %s: %s\n", o->pos[0], err.message);
        return exit_for(rc);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "valid", json_object_new_boolean(true));
    json_object_object_add(res, "bundle", json_object_new_string(o->pos[0]));
    print_compact(res);
    return CLI_OK;
}

int cmd_verify(int argc, char **argv)
{
    static const char usage[] =
        "verify receipt FILE [--key-id ID] | chain (--state-dir DIR | --dir DIR) | bundle FILE  --pubkey PUB";
    if (argc < 2)
        return cli_fail("usage: warrant %s", usage);
    opts o;
    int rc = parse_opts(argc - 1, argv + 1, &o, usage);
    if (rc)
        return rc;
    static const struct {
        const char *name;
        int (*fn)(const opts *, const unsigned char *);
    } kinds[] = {{"receipt", verify_receipt}, {"chain", verify_chain}, {"bundle", verify_bundle}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(argv[1], kinds[i].name) != 0)
            continue;
        if (o.key_id && strcmp(argv[1], "receipt"))
            return cli_fail("verify %s: --key-id applies to verify receipt only", argv[1]);
        unsigned char pk[WR_PK_LEN];
        if ((rc = load_pubkey(o.pubkey, pk, "verify")) != CLI_OK)
            return rc;
        return kinds[i].fn(&o, pk);
    }
    return cli_fail("usage: warrant %s", usage);
}

/* ---- export ---------------------------------------------------------------- */

int cmd_export(int argc, char **argv)
{
    static const char usage[] = "export EXECUTION_ID --state-dir DIR -o BUNDLE.tar.gz";
    opts o;
    int rc = parse_opts(argc, argv, &o, usage);
    if (rc)
        return rc;
    if (o.npos != 1 || !o.out)
        return cli_fail("usage: warrant %s", usage);
    char buf[CLI_PATH_MAX];
    const char *state_dir = cli_state_dir(o.state_dir, buf);
    if (!state_dir)
        return CLI_USAGE;
    wr_store *st = NULL;
    wr_error err = {0};
    if (open_existing(state_dir, &st, &err) != WR_OK)
        return fail_err(CLI_USAGE, state_dir, &err);
    rc = wr_bundle_export(st, o.pos[0], o.out, &err);
    wr_store_close(st);
    if (rc)
        return fail_err(CLI_USAGE, o.pos[0], &err);
    json_object *res = json_object_new_object();
    json_object_object_add(res, "execution_id", json_object_new_string(o.pos[0]));
    json_object_object_add(res, "bundle", json_object_new_string(o.out));
    print_compact(res);
    return CLI_OK;
}
