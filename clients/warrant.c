/* warrant — the CLI for humans and auditors (design.md "warrant — the CLI"). */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/cli.h"
#include "contracts/contracts.h"

/* The help text comes from the man page (docs/man/warrant.1.scd). */
#include "warrant_help.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"keygen", cmd_keygen},       {"validate", cmd_validate},     {"hash", cmd_hash},
    {"check", cmd_check},         {"policy", cmd_policy},         {"run", cmd_run},
    {"approvals", cmd_approvals}, {"pubkey", cmd_pubkey},         {"receipts", cmd_receipts},
    {"verify", cmd_verify},       {"checkpoint", cmd_checkpoint}, {"doctor", cmd_doctor},
};

/* The commands warrant-archive runs (warrant_archive.c): only it links
 * libarchive, so no other command loads that library's chain at start. */
static const char *const archive_commands[] = {"capsule", "reproduce", "export"};

static bool archive_command(int argc, char **argv)
{
    for (size_t i = 0; i < COUNT(archive_commands); i++)
        if (!strcmp(argv[1], archive_commands[i]))
            return true;
    return !strcmp(argv[1], "verify") && argc > 2 && !strcmp(argv[2], "bundle");
}

/* The build tree's warrant runs the build tree's warrant-archive (tests,
 * benchmarks); an installed one runs the installed one, never a file found
 * through PATH or the working directory. */
static int exec_archive(char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    const char *path = n > 0 && wr_path_within(self, WR_BUILD_ROOT) ? WR_ARCHIVE_BUILD_PATH : WR_ARCHIVE_INSTALL_PATH;
    execv(path, argv);
    fprintf(stderr, "warrant: %s: cannot run %s: %s\n", argv[1], path, strerror(errno));
    return CLI_USAGE;
}

static bool documented(const char *name)
{
    for (size_t i = 0; i < COUNT(warrant_help); i++)
        if (!strcmp(warrant_help[i].topic, name))
            return true;
    return false;
}

/* Synopses from the man page; a command missing there is listed as such, so
 * the test that compares --help with the dispatch table catches it. */
static int usage(FILE *f)
{
    fprintf(f, "usage: warrant COMMAND [ARGS]   (warrant help TOPIC, man warrant)\n\n");
    for (size_t i = 0; i < COUNT(warrant_help); i++)
        fprintf(f, "  %s\n", warrant_help[i].synopsis);
    for (size_t i = 0; i < COUNT(commands); i++)
        if (!documented(commands[i].name))
            fprintf(f, "  warrant %s (undocumented)\n", commands[i].name);
    for (size_t i = 0; i < COUNT(archive_commands); i++)
        if (!documented(archive_commands[i]))
            fprintf(f, "  warrant %s (undocumented)\n", archive_commands[i]);
    fprintf(f, "\nexit status: 0 ok, 1 rejected, 2 usage or bad input\n");
    return f == stdout ? CLI_OK : CLI_USAGE;
}

/* `warrant help TOPIC`: every man page entry for TOPIC. */
static int help_topic(const char *topic)
{
    bool found = false;
    for (size_t i = 0; i < COUNT(warrant_help); i++) {
        if (strcmp(warrant_help[i].topic, topic))
            continue;
        printf("%s\n%s\n", warrant_help[i].synopsis, warrant_help[i].text);
        found = true;
    }
    if (!found) {
        fprintf(stderr, "warrant: no help topic '%s' (see warrant --help)\n", topic);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (!strcmp(argv[1], "help") && argc > 2)
        return help_topic(argv[2]);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
        return usage(stdout);
    if (!strcmp(argv[1], "--version")) {
        printf("warrant %s\n", WR_VERSION);
        return CLI_OK;
    }
    if (archive_command(argc, argv))
        return exec_archive(argv);
    cli_init();
    for (size_t i = 0; i < COUNT(commands); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "warrant: unknown command '%s' (see warrant --help)\n", argv[1]);
    return CLI_USAGE;
}
