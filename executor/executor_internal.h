/* executor internals shared by plan.c, seccomp.c, capture.c, artifacts.c
 * and launch.c (and by the executor's own unit tests). */
#ifndef WR_EXECUTOR_INTERNAL_H
#define WR_EXECUTOR_INTERNAL_H

#include "egress/egress.h"
#include "executor/executor.h"

#include <seccomp.h>
#include <sys/types.h>

#define WR_EXEC_BWRAP         "/usr/bin/bwrap"
#define WR_EXEC_PATH          "/usr/local/bin:/usr/bin:/bin"
#define WR_EXEC_HOME          "/tmp"
#define WR_EXEC_LANG          "C.UTF-8"
#define WR_SECCOMP_DEFAULT_ID "warrant-default-v1"
#define WR_SECCOMP_STRICT_ID  "warrant-strict-v1"

/* ---- plan ---------------------------------------------------------------- */
typedef enum wr_op_kind {
    WR_OP_RO_BIND,     /* src (host, resolved) -> dest, read-only */
    WR_OP_BIND,        /* src -> dest, writable */
    WR_OP_RO_BIND_TRY, /* system files that may be absent (/etc/localtime) */
    WR_OP_TMPFS,       /* dest, size bytes */
    WR_OP_PROC,
    WR_OP_DEV,
    WR_OP_DIR,
    WR_OP_SYMLINK,    /* src = link target, dest = link */
    WR_OP_FILE,       /* data -> dest, read-only (synthetic /etc/passwd) */
    WR_OP_SETENV,     /* dest = name; data = value (NULL in JSON when from host/secret) */
    WR_OP_REMOUNT_RO, /* dest: the sandbox root, once everything is mounted */
    WR_OP_CHDIR,      /* dest */
} wr_op_kind;

typedef struct wr_plan_op {
    wr_op_kind kind;
    char *src;
    char *dest;
    char *data;         /* FILE content; SETENV value */
    const char *origin; /* SETENV: "fixed" | "host" | "secret"; binds: "system" | "read" | "write" | "cwd" */
    int64_t size;       /* TMPFS */
    int fd;             /* declared path binds: O_PATH fd of the checked path, else -1 */
    bool missing;       /* declared read path that does not exist: not mounted */
    bool created;       /* write path created under an existing write root */
} wr_plan_op;

typedef struct wr_plan {
    wr_plan_op *ops;
    size_t nops, cap;
    wr_network_mode network; /* every mode has a private namespace, see network.c */
    bool share_net;          /* bwrap --share-net: allowlisted and full join the namespace network.c made */
    bool drop_root;          /* we are root: drop to uid/gid before bwrap */
    char *run_as;            /* user name when drop_root */
    uid_t uid;
    gid_t gid;
    struct {
        int64_t cpu_sec, as_bytes, nproc, fsize_bytes, nofile;
    } rl;
    const char *seccomp_id;
    bool seccomp_unix_only;
    unsigned char *bpf; /* exported seccomp program */
    size_t bpf_len;
    char bpf_sha256[WR_SHA256_HEX_LEN];
} wr_plan;

/* Builds the plan for command ci. apply=false only inspects (no directory is
 * created, for wr_exec_plan_json). A run-time path refusal (symlink escape,
 * missing write root, hostile path) is WR_E_DENIED; the caller reports it as
 * a BLOCKED result. uid/gid/run_as describe the sandbox user. */
int wr_plan_build(const wr_exec_request *req, size_t ci, bool apply, wr_plan *plan, wr_error *err);
/* globs.c: read paths with each CSC glob replaced by the entries it matches
 * now (sorted, no duplicates); plain paths and a last "**" stay as they are. */
int wr_read_globs_expand(const wr_strv *read_paths, wr_strv *out, wr_error *err);
void wr_plan_free(wr_plan *plan);
json_object *wr_plan_to_json(const wr_plan *plan);

/* Renders the bwrap argv (NULL-terminated, caller frees with wr_strv_free).
 * With fd slots: declared paths are passed as --ro-bind-fd/--bind-fd with the
 * fd numbers the child will hold (see wr_plan_fd_slots); seccomp and file
 * data at their slots too. With use_fds=false the same sandbox is written
 * with plain paths (the bare-bwrap benchmark). argv is appended after "--". */
#define WR_SLOT_SECCOMP 3
#define WR_SLOT_FIRST   4
int wr_plan_render(const wr_plan *plan, bool use_fds, bool with_seccomp, char *const *argv, wr_strv *out,
                   wr_error *err);
/* The environment of bwrap (= of the command): values never go through argv,
 * which other host users can read in /proc/PID/cmdline. */
int wr_plan_envp(const wr_plan *plan, wr_strv *out, wr_error *err);

/* ---- network (network.c) ------------------------------------------------------ */
typedef struct wr_run_net {
    wr_network_mode mode;
    bool active; /* a namespace of ours exists */
    wr_netns ns;
    wr_egress_proxy *proxy;
    wr_slirp slirp;
} wr_run_net;

/* Before anything runs: the command's namespace (WR_E_DENIED when it
 * cannot be built here: the run is refused, never widened). */
int wr_run_net_prepare(const wr_plan *p, wr_run_net *n, wr_error *err);
/* Right before the command: the proxy (allowlisted) or slirp4netns (full). */
int wr_run_net_start(wr_run_net *n, const wr_exec_request *req, wr_error *err);
/* After it: stops them, adds the proxy's record to r->network and sets
 * r->network_used when bytes flowed. */
void wr_run_net_finish(wr_run_net *n, wr_exec_result *r);
void wr_run_net_free(wr_run_net *n);

/* ---- seccomp --------------------------------------------------------------- */
/* The filter: deny-list with EPERM (clone3: ENOSYS so libc falls back to
 * clone, whose namespace flags can be checked). unix_only adds the strict
 * socket rule. Caller releases with seccomp_release. */
scmp_filter_ctx wr_seccomp_filter(bool unix_only, wr_error *err);
/* Exported BPF program of the filter. */
int wr_seccomp_bpf(bool unix_only, unsigned char **bpf, size_t *len, wr_error *err);

/* ---- output capture ------------------------------------------------------- */
typedef struct wr_capture {
    wr_exec_stream *st;
    int stream;
    size_t cap;
    void *md; /* EVP_MD_CTX of the whole stream */
    const wr_secret *secrets;
    size_t nsecrets;
    size_t maxsecret;
    unsigned char *hold; /* bytes held back: may be the start of a secret */
    size_t nhold;
    wr_output_fn fn;
    void *ud;
    const char *command_id;
    uint64_t cmd_raw_bytes; /* raw bytes of the current command (kill cap) */
} wr_capture;

int wr_capture_init(wr_capture *c, wr_exec_stream *st, int stream, const wr_exec_request *req, wr_error *err);
/* Feeds raw bytes of the current command. */
int wr_capture_feed(wr_capture *c, const unsigned char *data, size_t len, wr_error *err);
/* End of a command: flushes held-back bytes. */
int wr_capture_flush(wr_capture *c, wr_error *err);
/* End of the run: hashes into st. */
void wr_capture_finish(wr_capture *c);
void wr_capture_free(wr_capture *c);
/* Finishes an EVP_MD_CTX (SHA-256) into lowercase hex. */
void wr_exec_md_hex(void *md, char out[WR_SHA256_HEX_LEN]);

/* ---- artifacts -------------------------------------------------------------- */
#define WR_ARTIFACT_MAX_FILES 10000
typedef struct wr_snapshot wr_snapshot;
/* Walks the (resolved) write roots of a plan without following symlinks. */
int wr_snapshot_take(const wr_plan *plan, wr_snapshot **out, wr_error *err);
void wr_snapshot_free(wr_snapshot *s);
/* Adds files created or modified since `before` to r->artifacts. */
int wr_snapshot_diff(const wr_snapshot *before, const wr_plan *plan, wr_exec_result *r, wr_error *err);

/* sha256 of a file through OpenSSL, streaming. */
int wr_exec_file_sha256(int fd, char out[WR_SHA256_HEX_LEN], wr_error *err);

#endif
