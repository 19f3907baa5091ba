/* warrant capsule pack|verify|run and warrant reproduce (docs/capsules.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capsules/capsules.h"
#include "clients/cli.h"
#include "receipts/receipts.h"

#define MAX_APPROVAL_FILES 16
#define RECEIPT_MAX_BYTES  (4u << 20) /* a receipt lists at most WR_CAPSULE_MAX_FILES products and materials */

extern char **environ;

#define USAGE_PACK   "usage: warrant capsule pack DIR -o NAME.capsule [--sign KEY]"
#define USAGE_VERIFY "usage: warrant capsule verify NAME.capsule [--pubkey PUB]"
#define USAGE_RUN                                                                                                      \
    "usage: warrant capsule run NAME.capsule [--policy P] [--state-dir S] [--out DIR] [--pubkey PUB] [--approval "     \
    "FILE]..."
#define USAGE_REPRODUCE                                                                                                \
    "usage: warrant reproduce RECEIPT --capsule NAME.capsule [--policy P] [--state-dir S] [--out DIR] [--pubkey PUB]"

/* A rejected capsule is exit 1; a file that cannot be read is exit 2. */
static int capsule_fail(const char *what, const wr_error *err)
{
    return cli_fail_err(err->code == WR_E_IO ? CLI_USAGE : CLI_REJECTED, what, err);
}

static int pack(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"sign", required_argument, NULL, 'k'}, {0, 0, 0, 0}};
    const char *out = NULL, *key = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'k')
            key = optarg;
        else
            return cli_fail(USAGE_PACK);
    }
    if (optind != argc - 1 || !out)
        return cli_fail(USAGE_PACK);
    wr_error err = {0};
    wr_keypair kp;
    if (key && wr_key_load_secret(key, true, &kp, &err) != WR_OK)
        return cli_fail_err(CLI_USAGE, key, &err);
    wr_capsule *info = NULL;
    int rc = wr_capsule_pack(argv[optind], out, key ? &kp : NULL, &info, &err);
    if (key)
        wr_keypair_wipe(&kp);
    if (rc != WR_OK)
        return cli_fail_err(rc == WR_E_IO ? CLI_USAGE : CLI_REJECTED, argv[optind], &err);
    printf("%s  %s\n", info->sha256, out);
    fprintf(stderr, "warrant: packed %s %s: %zu files%s%s\n", info->name, info->version, info->nfiles,
            info->is_signed ? ", signed by key " : ", unsigned", info->is_signed ? info->signer_key_id : "");
    wr_capsule_free(info);
    return CLI_OK;
}

static int load_pubkey(const char *path, unsigned char pk[WR_PK_LEN])
{
    wr_error err = {0};
    return wr_pubkey_load(path, pk, &err) == WR_OK ? CLI_OK : cli_fail_err(CLI_USAGE, path, &err);
}

static int verify(int argc, char **argv)
{
    static const struct option opts[] = {{"pubkey", required_argument, NULL, 'p'}, {0, 0, 0, 0}};
    const char *pub = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'p')
            return cli_fail(USAGE_VERIFY);
        pub = optarg;
    }
    if (optind != argc - 1)
        return cli_fail(USAGE_VERIFY);
    unsigned char pk[WR_PK_LEN];
    if (pub && load_pubkey(pub, pk) != CLI_OK)
        return CLI_USAGE;
    wr_error err = {0};
    wr_capsule *cap = NULL;
    if (wr_capsule_open(argv[optind], pub ? pk : NULL, NULL, &cap, &err) != WR_OK)
        return capsule_fail(argv[optind], &err);
    printf("%s  %s\n", cap->sha256, argv[optind]);
    if (cap->is_signed)
        fprintf(stderr, "warrant: %s %s %s: %zu files verified, signed by key %s%s\n", argv[optind], cap->name,
                cap->version, cap->nfiles, cap->signer_key_id,
                pub ? " (the trusted key)" : " (not checked: no --pubkey)");
    else
        fprintf(stderr, "warrant: %s %s %s: %zu files verified, unsigned\n", argv[optind], cap->name, cap->version,
                cap->nfiles);
    wr_capsule_free(cap);
    return CLI_OK;
}

/* Options shared by run and reproduce. */
typedef struct run_args {
    const char *capsule, *policy, *state_dir, *out, *pubkey, *receipt;
    const char *approval_files[MAX_APPROVAL_FILES];
    size_t napproval_files;
} run_args;

static int parse_run(int argc, char **argv, bool reproduce, run_args *a)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"state-dir", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"pubkey", required_argument, NULL, 'k'},
        {"capsule", required_argument, NULL, 'c'},
        {"approval", required_argument, NULL, 'a'},
        {0, 0, 0, 0},
    };
    const char *usage = reproduce ? USAGE_REPRODUCE : USAGE_RUN;
    memset(a, 0, sizeof *a);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            a->policy = optarg;
            break;
        case 's':
            a->state_dir = optarg;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'k':
            a->pubkey = optarg;
            break;
        case 'c':
            if (!reproduce)
                return cli_fail(USAGE_RUN);
            a->capsule = optarg;
            break;
        case 'a':
            if (a->napproval_files == MAX_APPROVAL_FILES)
                return cli_fail("at most %d --approval files", MAX_APPROVAL_FILES);
            a->approval_files[a->napproval_files++] = optarg;
            break;
        default:
            return cli_fail("%s", usage);
        }
    }
    if (optind != argc - 1 || (reproduce && !a->capsule))
        return cli_fail("%s", usage);
    if (reproduce)
        a->receipt = argv[optind];
    else
        a->capsule = argv[optind];
    return CLI_OK;
}

static void echo_output(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len)
{
    (void)ud;
    (void)command_id;
    (void)stream;
    fwrite(data, 1, len, stderr);
}

/* The original receipt must be genuine: signed by --pubkey, or by this
 * state dir's key when it was sealed here. */
static json_object *load_original(const char *path, const char *pubkey, const char *state_dir)
{
    wr_error err = {0};
    json_object *r = wr_json_read_file(path, &(wr_json_limits){RECEIPT_MAX_BYTES, WR_JSON_DEFAULT_MAX_DEPTH}, &err);
    unsigned char pk[WR_PK_LEN];
    if (!r) {
        cli_fail_err(CLI_USAGE, path, &err);
        return NULL;
    }
    if (pubkey ? load_pubkey(pubkey, pk) != CLI_OK : wr_server_pubkey_load(state_dir, pk, &err) != WR_OK) {
        if (!pubkey)
            cli_fail_err(CLI_USAGE, state_dir, &err);
        json_object_put(r);
        return NULL;
    }
    if (wr_receipt_verify(r, pk, &err) != WR_OK) {
        cli_fail_err(CLI_USAGE, path, &err);
        json_object_put(r);
        return NULL;
    }
    return r;
}

static void print_outcome(const wr_capsule_outcome *o, bool reproduce)
{
    if (!reproduce) {
        puts(wr_json_compact(o->run.receipt));
    } else if (o->reproduced) {
        puts("reproduced");
    } else {
        for (size_t i = 0; i < o->differences.n; i++)
            puts(o->differences.v[i]);
    }
    if (o->run.error)
        fprintf(stderr, "warrant: capsule run %s: %s\n", o->run.status, o->run.error);
    fprintf(stderr, "warrant: receipt %s%s%s\n", o->run.execution_id, o->out_dir[0] ? "; outputs in " : "", o->out_dir);
}

static int run_common(int argc, char **argv, bool reproduce)
{
    run_args a;
    if (parse_run(argc, argv, reproduce, &a) != CLI_OK)
        return CLI_USAGE;
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    char state_buf[CLI_PATH_MAX];
    wr_gate_config cfg = {.state_dir = cli_state_dir(a.state_dir, state_buf),
                          .policy_path = a.policy,
                          .policy_pack = "capsule",
                          .ctx = &ctx,
                          .host_env = environ};
    if (!cfg.state_dir)
        return CLI_USAGE;
    wr_gate *g = NULL;
    if (wr_gate_open(&cfg, &g, &err) != WR_OK)
        return cli_fail_err(CLI_USAGE, a.policy ? a.policy : cfg.state_dir, &err);
    int status = CLI_USAGE;
    json_object *approvals[MAX_APPROVAL_FILES] = {0}, *original = NULL;
    unsigned char pk[WR_PK_LEN];
    if (a.pubkey && !reproduce && load_pubkey(a.pubkey, pk) != CLI_OK)
        goto out;
    if (reproduce && !(original = load_original(a.receipt, a.pubkey, cfg.state_dir)))
        goto out;
    for (size_t i = 0; i < a.napproval_files; i++)
        if (!(approvals[i] = wr_json_read_file(a.approval_files[i], NULL, &err))) {
            cli_fail_err(CLI_USAGE, a.approval_files[i], &err);
            goto out;
        }
    wr_capsule_run_opts o = {
        .capsule_path = a.capsule,
        .trusted_pk = a.pubkey && !reproduce ? pk : NULL,
        .out_dir = a.out,
        .approvals = approvals,
        .napprovals = a.napproval_files,
        .on_output = isatty(STDERR_FILENO) ? echo_output : NULL,
        .cancel_fd = -1,
        .original = original,
    };
    wr_capsule_outcome res;
    if (wr_capsule_run(g, &o, &res, &err) != WR_OK) {
        status = capsule_fail(a.capsule, &err);
    } else {
        print_outcome(&res, reproduce);
        status = strcmp(res.run.status, "success") == 0 && (!reproduce || res.reproduced) ? CLI_OK : CLI_REJECTED;
    }
    wr_capsule_outcome_clear(&res);
out:
    for (size_t i = 0; i < a.napproval_files; i++)
        json_object_put(approvals[i]);
    json_object_put(original);
    wr_gate_close(g);
    return status;
}

int cmd_capsule(int argc, char **argv)
{
    if (argc < 2)
        return cli_fail("usage: warrant capsule pack|verify|run ...");
    if (!strcmp(argv[1], "pack"))
        return pack(argc - 1, argv + 1);
    if (!strcmp(argv[1], "verify"))
        return verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run"))
        return run_common(argc - 1, argv + 1, false);
    return cli_fail("capsule: unknown verb '%s' (pack, verify, run)", argv[1]);
}

int cmd_reproduce(int argc, char **argv)
{
    return run_common(argc, argv, true);
}
