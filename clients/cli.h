/* Private to the `warrant` CLI: shared helpers for its subcommand files.
 * Exit codes (style.md, signify): 0 ok, 1 rejected, 2 usage or bad input. */
#ifndef WR_CLI_H
#define WR_CLI_H

#include "lib/lib.h"

enum {
    CLI_OK = 0,
    CLI_REJECTED = 1,
    CLI_USAGE = 2
};

/* One line "warrant: message" on stderr; returns CLI_USAGE. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One line naming the file and the error; returns code. */
int cli_fail_err(int code, const char *what, const wr_error *err);
/* Pretty JSON on stdout, "/" unescaped, newline-terminated. */
void cli_print_json(json_object *obj);
/* Writes len bytes of hostile text (agent or command output) to f with
 * every terminal control, bidi and zero-width character escaped as \uXXXX
 * and invalid UTF-8 as \xNN (safe_text.c); ASCII controls in keep (e.g.
 * "\n\t") pass. Unless final, a UTF-8 sequence cut at the end is not
 * written: returns the bytes consumed, the caller keeps the rest. */
size_t cli_put_safe(FILE *f, const unsigned char *s, size_t len, const char *keep, bool final);
/* The state dir: --state-dir, else warrantd's default (gate.h), written
 * into buf (CLI_PATH_MAX bytes); NULL when there is none. */
#define CLI_PATH_MAX 4096
const char *cli_state_dir(const char *opt, char *buf);

/* Subcommands: argv[0] is the subcommand name. */
int cmd_validate(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);
int cmd_receipts(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_capsule(int argc, char **argv);
int cmd_reproduce(int argc, char **argv);

#endif
