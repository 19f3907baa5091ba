/* warrant export | verify bundle — evidence bundles (tar.gz, libarchive),
 * run by warrant-archive (warrant_archive.c). */
#include <stdio.h>
#include <string.h>

#include "clients/cli.h"
#include "receipts/receipts.h"

int cmd_verify_bundle(int argc, char **argv)
{
    static const char usage[] = "verify bundle BUNDLE.tar.gz --pubkey PUB";
    if (argc < 2 || strcmp(argv[1], "bundle"))
        return cli_fail("usage: warrant %s", usage);
    cli_opts o;
    int rc = cli_parse_opts(argc - 1, argv + 1, &o, usage);
    if (rc)
        return rc;
    if (o.key_id)
        return cli_fail("verify bundle: --key-id applies to verify receipt only");
    if (o.npos != 1)
        return cli_fail("usage: warrant %s", usage);
    unsigned char pk[WR_PK_LEN];
    if ((rc = cli_load_pubkey(o.pubkey, pk, "verify")) != CLI_OK)
        return rc;
    wr_error err = {0};
    rc = wr_bundle_verify(o.pos[0], pk, &err);
    if (rc) { /* the message names the member; say which bundle */
        fprintf(stderr, "warrant: %s: %s\n", o.pos[0], err.message);
        return cli_exit_for(rc);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "valid", json_object_new_boolean(true));
    json_object_object_add(res, "bundle", json_object_new_string(o.pos[0]));
    cli_print_compact(res);
    return CLI_OK;
}

int cmd_export(int argc, char **argv)
{
    static const char usage[] = "export EXECUTION_ID --state-dir DIR -o BUNDLE.tar.gz";
    cli_opts o;
    int rc = cli_parse_opts(argc, argv, &o, usage);
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
    if (cli_open_existing(state_dir, &st, &err) != WR_OK)
        return cli_fail_at(CLI_USAGE, state_dir, &err);
    rc = wr_bundle_export(st, o.pos[0], o.out, &err);
    wr_store_close(st);
    if (rc)
        return cli_fail_at(CLI_USAGE, o.pos[0], &err);
    json_object *res = json_object_new_object();
    json_object_object_add(res, "execution_id", json_object_new_string(o.pos[0]));
    json_object_object_add(res, "bundle", json_object_new_string(o.out));
    cli_print_compact(res);
    return CLI_OK;
}
