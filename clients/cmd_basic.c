/* placeholder: written by its owner */
#include "clients/cli.h"
int cmd_validate(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
int cmd_hash(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
int cmd_check(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
