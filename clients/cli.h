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

/* First thing in main: libraries set up for a short-lived command. */
void cli_init(void);
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

/* The options the receipt and log commands share (cmd_receipts.c,
 * cmd_tlog.c); argv[0] is the verb. */
typedef struct cli_opts {
    const char *state_dir, *dir, *pubkey, *out;
    const char *checkpoint, *witness, *proof, *key, *execution;
    const char *key_id; /* verify receipt: the signer's own id for the key (CSC) */
    int64_t old_size;   /* --old, -1 when absent */
    bool json;
    const char *pos[2]; /* positional arguments after the verb */
    int npos;
} cli_opts;
int cli_parse_opts(int argc, char **argv, cli_opts *o, const char *usage);
/* One line naming what failed unless the message already does. */
int cli_fail_at(int code, const char *what, const wr_error *err);
/* Content problems reject (1); input that cannot be read at all is 2. */
int cli_exit_for(int code);
/* Opens the store of a state dir that exists (read-only commands must not create one). */
typedef struct wr_store wr_store;
int cli_open_existing(const char *state_dir, wr_store **st, wr_error *err);
int cli_load_pubkey(const char *path, unsigned char pk[WR_PK_LEN], const char *what);
/* Compact JSON line on stdout; consumes o. */
void cli_print_compact(json_object *o);

/* The log's verifiers (cmd_tlog.c), dispatched by `warrant verify`. */
typedef struct wr_checkpoint wr_checkpoint;
int cli_load_checkpoint(const char *path, const unsigned char pk[WR_PK_LEN], const char *witness_path,
                        wr_checkpoint *cp);
/* The newest checkpoint of a state dir, signing one first when the log
 * grew and the server key is readable (warrantd's user); otherwise the
 * newest stored one. */
int cli_latest_checkpoint(const char *state_dir, wr_store *st, char **note, wr_error *err);
int cli_verify_inclusion(const cli_opts *o, const unsigned char pk[WR_PK_LEN]);
int cli_verify_consistency(const cli_opts *o, const unsigned char pk[WR_PK_LEN]);

/* Subcommands: argv[0] is the subcommand name. */
int cmd_validate(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_pubkey(int argc, char **argv);
int cmd_receipts(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

/* The commands that read or write archives, in warrant-archive only
 * (warrant_archive.c): `warrant` execs it for them. */
int cmd_capsule(int argc, char **argv);
int cmd_reproduce(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_verify_bundle(int argc, char **argv); /* verify bundle */

#endif
