/* warrant — the CLI for humans and auditors (design.md "warrant — the CLI"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *usage;
} commands[] = {
    {"keygen", cmd_keygen, "keygen --out NAME"},
    {"validate", cmd_validate, "validate contract|policy|decision|receipt|approval FILE"},
    {"hash", cmd_hash, "hash contract|policy FILE"},
    {"check", cmd_check, "check --policy POLICY CONTRACT"},
    {"policy", cmd_policy, "policy test POLICY | explain [--policy POLICY] [--] ARGV... | grammar TOOL"},
    {"run", cmd_run, "run [--policy POLICY] [--state-dir DIR] [--approval FILE]... CONTRACT"},
    {"approvals", cmd_approvals, "approvals list|show|approve|deny|revoke ... [--state-dir DIR]"},
    {"pubkey", cmd_pubkey, "pubkey --state-dir DIR"},
    {"receipts", cmd_receipts, "receipts list|export --state-dir DIR [--dir OUT]"},
    {"verify", cmd_verify, "verify receipt FILE|chain (--state-dir DIR|--dir DIR)|bundle FILE --pubkey PUB"},
    {"export", cmd_export, "export EXECUTION_ID --state-dir DIR -o BUNDLE.tar.gz"},
};

static int usage(FILE *f)
{
    fprintf(f, "usage: warrant COMMAND [ARGS]\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  warrant %s\n", commands[i].usage);
    fprintf(f, "\nexit status: 0 ok, 1 rejected, 2 usage or bad input\n");
    return f == stdout ? CLI_OK : CLI_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return usage(stdout);
    if (!strcmp(argv[1], "--version")) {
        printf("warrant %s\n", WR_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "warrant: unknown command '%s' (see warrant --help)\n", argv[1]);
    return CLI_USAGE;
}
