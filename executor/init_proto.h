/* The protocol between the executor and warrant-init, the sandbox's pid 1
 * (executor/init.c). Shared by both sides so that neither can drift.
 *
 * The executor starts bwrap with `--as-pid-1 ... -- WR_INIT_SANDBOX_PATH
 * STATUS_FD CONFIG_FD EXE ARGV...`:
 * - CONFIG_FD is the read end of a pipe holding NUL-terminated records, each
 *   starting with a tag byte (below). init reads it to EOF before anything
 *   else: the environment (secrets included) never appears in an environ or
 *   cmdline outside the sandbox.
 * - STATUS_FD is the write end of the pipe bwrap also writes its
 *   --json-status-fd lines to; init adds one line per event, each shorter
 *   than PIPE_BUF so lines never interleave. The command cannot reach it
 *   (close-on-exec, and init is not dumpable). */
#ifndef WR_INIT_PROTO_H
#define WR_INIT_PROTO_H

#define WR_INIT_NAME         "warrant-init"
#define WR_INIT_SANDBOX_PATH "/.warrant-init"
#define WR_INIT_CONFIG_MAX   (1024 * 1024) /* pipe-max-size default: fits in one pipe */

/* config record tags */
#define WR_CFG_ENV          'e' /* NAME=VALUE */
#define WR_CFG_LANDLOCK_ABI 'a' /* decimal; 0: no Landlock */
#define WR_CFG_TCP          't' /* TCP under Landlock: "-1" any, "0" none, else the one port it may connect to */
#define WR_CFG_READ         'r' /* path: read and execute beneath */
#define WR_CFG_WRITE        'w' /* path: every file-system right beneath */
#define WR_CFG_DEVICES      'd' /* path: read, write and ioctl of device files, no exec */
#define WR_CFG_PROC         'p' /* path: read only, no exec */
/* Always the last record: init never runs a command from a configuration
 * without it. The executor may close the pipe unwritten to stop a sandbox
 * that is already setting up (the run's pre-exec commit failed). */
#define WR_CFG_END 'z'

/* status lines written by init (bwrap's are "child-pid" and "exit-code") */
#define WR_INIT_KEY          "warrant-init"
#define WR_INIT_STARTED      "started"      /* the command was exec'd */
#define WR_INIT_EXEC_FAILED  "exec-failed"  /* + "errno" */
#define WR_INIT_SETUP_FAILED "setup-failed" /* + "stage", "errno" */
#define WR_INIT_EXITED       "exited"       /* + "wait-status": the raw waitpid status */

#endif
