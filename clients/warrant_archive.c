/* warrant-archive: the `warrant` commands that read or write archives
 * (capsules, evidence bundles). It is the only CLI binary linked with
 * libarchive, whose dependency chain (libxml2, ICU, libstdc++) would
 * otherwise be loaded and relocated at every `warrant` start; `warrant`
 * execs it with its own arguments (warrant.c, docs/performance.md). */
#include <stdio.h>
#include <string.h>

#include "clients/cli.h"

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {
        {"capsule", cmd_capsule},
        {"reproduce", cmd_reproduce},
        {"export", cmd_export},
        {"verify", cmd_verify_bundle},
    };
    cli_init();
    for (size_t i = 0; argc > 1 && i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    return cli_fail("warrant-archive runs the archive commands of warrant (see warrant --help)");
}
