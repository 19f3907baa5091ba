#include <getopt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/cli.h"
#include "gate/gate.h"
#include "receipts/receipts.h"

void cli_init(void)
{
    /* libcrypto serves the CLI SHA-256 and the key files' ASN.1 only (the
     * signatures are libsodium's): it needs no configuration, and a file
     * that OPENSSL_CONF names could load provider modules into this
     * process. Reading openssl.cnf cost 1.7 M instructions per command, and
     * freeing libcrypto's tables one by one at exit 0.8 M. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ATEXIT, NULL);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("warrant: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail_err(int code, const char *what, const wr_error *err)
{
    if (err->path[0])
        fprintf(stderr, "warrant: %s: %s: %s\n", what, err->path, err->message);
    else
        fprintf(stderr, "warrant: %s: %s\n", what, err->message);
    return code;
}

void cli_print_json(json_object *obj)
{
    puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *cli_state_dir(const char *opt, char *buf)
{
    if (opt)
        return opt;
    int rc = wr_gate_default_state_dir(buf, CLI_PATH_MAX);
    if (rc == WR_OK)
        return buf;
    if (rc == WR_E_LIMIT)
        cli_fail("state dir from the environment is longer than %d bytes: give --state-dir", CLI_PATH_MAX - 1);
    else
        cli_fail("no state dir: give --state-dir, or set WARRANT_STATE_DIR or HOME");
    return NULL;
}

int cli_parse_opts(int argc, char **argv, cli_opts *o, const char *usage)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"dir", required_argument, NULL, 'd'},
        {"pubkey", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"checkpoint", required_argument, NULL, 'c'},
        {"witness", required_argument, NULL, 'w'},
        {"proof", required_argument, NULL, 'P'},
        {"key", required_argument, NULL, 'k'},
        {"key-id", required_argument, NULL, 'K'},
        {"execution", required_argument, NULL, 'e'},
        {"old", required_argument, NULL, 'O'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->old_size = -1;
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
        case 'c':
            o->checkpoint = optarg;
            break;
        case 'w':
            o->witness = optarg;
            break;
        case 'P':
            o->proof = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'K':
            o->key_id = optarg;
            break;
        case 'e':
            o->execution = optarg;
            break;
        case 'O': {
            char *end = NULL;
            o->old_size = strtoll(optarg, &end, 10);
            if (!*optarg || *end || o->old_size < 0)
                return cli_fail("--old takes a tree size (a non-negative number)");
            break;
        }
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

int cli_fail_at(int code, const char *what, const wr_error *err)
{
    const char *path = err->path[0] ? err->path : what;
    if (path && *path && !strstr(err->message, path))
        fprintf(stderr, "warrant: %s: %s\n", path, err->message);
    else
        fprintf(stderr, "warrant: %s\n", err->message);
    return code;
}

int cli_exit_for(int code)
{
    return code == WR_E_INVALID || code == WR_E_CRYPTO || code == WR_E_LIMIT || code == WR_E_VERSION ? CLI_REJECTED
                                                                                                     : CLI_USAGE;
}

int cli_open_existing(const char *state_dir, wr_store **st, wr_error *err)
{
    char db[PATH_MAX];
    if (snprintf(db, sizeof db, "%s/warrant.db", state_dir) >= (int)sizeof db)
        return wr_errorf(err, WR_E_INVALID, state_dir, "state dir path is too long");
    if (access(db, F_OK) != 0)
        return wr_errorf(err, WR_E_NOTFOUND, state_dir, "no warrant state (no %s)", db);
    return wr_store_open(state_dir, st, err);
}

int cli_load_pubkey(const char *path, unsigned char pk[WR_PK_LEN], const char *what)
{
    if (!path)
        return cli_fail("%s: --pubkey PUB is required (the trusted receipt-signing public key)", what);
    wr_error err = {0};
    if (wr_pubkey_load(path, pk, &err) != WR_OK)
        return cli_fail_at(CLI_USAGE, path, &err);
    return CLI_OK;
}

void cli_print_compact(json_object *o)
{
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}
