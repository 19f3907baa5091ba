/* placeholder: written by its owner */
#include "clients/cli.h"
int cmd_run(int argc, char **argv) { (void)argc; return cli_fail("%s: not implemented yet", argv[0]); }
