/* placeholder: written by its owner */
#include "clients/cli.h"
int cmd_keygen(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
int cmd_pubkey(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
int cmd_receipts(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
int cmd_verify(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
int cmd_export(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
