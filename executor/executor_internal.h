/* executor internals shared by plan.c, seccomp.c, capture.c, artifacts.c
 * and launch.c (and by the executor's own unit tests). */
#ifndef WR_EXECUTOR_INTERNAL_H
#define WR_EXECUTOR_INTERNAL_H

#include "egress/egress.h"
#include "executor/executor.h"
#include "executor/init_proto.h"

#include <seccomp.h>
#include <sys/resource.h>
#include <sys/types.h>

#define WR_EXEC_BWRAP         "/usr/bin/bwrap"
#define WR_EXEC_PATH          "/usr/local/bin:/usr/bin:/bin"
#define WR_EXEC_HOME          "/tmp"
#define WR_EXEC_LANG          "C.UTF-8"
#define WR_SECCOMP_DEFAULT_ID "warrant-default-v2"
#define WR_SECCOMP_STRICT_ID  "warrant-strict-v2"

/* Socket families per network mode: AF_UNIX always; AF_INET/AF_INET6 only
 * with network; AF_NETLINK (NETLINK_ROUTE, for getaddrinfo) only in the
 * default profile with network; never packet, vsock or the rest. */
typedef enum wr_sock_families {
    WR_SOCK_UNIX,
    WR_SOCK_INET,
    WR_SOCK_INET_ROUTE,
} wr_sock_families;

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
    WR_OP_EXE,        /* segment's argv[0]: the checked file (fd) bound over its canonical path src = dest */
    WR_OP_INIT,       /* warrant-init (fd) bound at WR_INIT_SANDBOX_PATH */
} wr_op_kind;

typedef struct wr_plan_op {
    wr_op_kind kind;
    char *src;
    char *dest;
    char *data; /* FILE content; SETENV value */
    const char
        *origin;    /* SETENV: "fixed" | "host" | "secret"; binds: "system" | "read" | "write" | "cwd"; EXE: "argv0" */
    int64_t size;   /* TMPFS */
    int fd;         /* declared path binds: O_PATH fd of the checked path, else -1 */
    bool missing;   /* declared read path that does not exist: not mounted */
    bool created;   /* write path created under an existing write root */
    size_t segment; /* EXE: the pipeline segment it belongs to */
    bool root_path; /* EXE: only root can change its path (root_only_path): exec'd there, not bound */
} wr_plan_op;

/* ---- cgroups (cgroup.c) -------------------------------------------------- */
typedef enum wr_cg_mode {
    WR_CG_NONE = 0, /* no writable cgroup: rlimits only */
    WR_CG_V1,       /* hybrid host: v1 memory, pids, freezer (cpu) hierarchies */
    WR_CG_V2,       /* a delegated v2 parent with memory and pids */
} wr_cg_mode;
/* v1 hierarchies by index; v2 keeps its one directory at index 0. */
enum {
    WR_CG_MEMORY = 0,
    WR_CG_PIDS,
    WR_CG_FREEZER,
    WR_CG_CPU,
    WR_CG_NCTRL
};
/* What a command's cgroup will enforce on this host: part of the plan. */
typedef struct wr_cg_plan {
    wr_cg_mode mode;
    char *parent[WR_CG_NCTRL]; /* where run cgroups are created; NULL: controller unused */
    int64_t memory_bytes;      /* 0: none */
    bool swap_limited;         /* memsw (v1) or memory.swap.max = 0 (v2) */
    int64_t pids_max;          /* exact, for the whole sandbox */
    bool cpu;                  /* the cpu controller is usable */
    int64_t cpu_percent;       /* of one CPU; 0: none */
    char fallback[256];        /* NONE: why */
} wr_cg_plan;
typedef struct wr_cgroup {
    wr_cg_mode mode;
    char *dir[WR_CG_NCTRL];
    int procs_fd[WR_CG_NCTRL]; /* v1: cgroup.procs, the launcher joins through it; v2: the directory */
    bool limited;              /* every limit of `written` is in force (wr_cgroup_limit) */
    struct {
        int64_t memory_bytes, pids_max, cpu_percent;
        bool swap_limited;
    } written;
} wr_cgroup;

const char *wr_cg_mode_name(wr_cg_mode m);
/* Finds what this host offers under root (NULL: /sys/fs/cgroup; an
 * operator's root is a v2 parent or a v1 mount base): the layout, every
 * controller found and no limits. Creates nothing. */
int wr_cg_layout(const char *root, wr_cg_plan *cg, wr_error *err);
/* The cgroups a command under lim gets in that layout (a copy: limits set,
 * controllers it does not use left out). */
int wr_cg_plan_for(const wr_cg_plan *layout, const wr_sandbox_limits *lim, wr_cg_plan *cg, wr_error *err);
/* Both at once. */
int wr_cg_probe(const char *root, const wr_sandbox_limits *lim, wr_cg_plan *cg, wr_error *err);
void wr_cg_plan_free(wr_cg_plan *cg);
json_object *wr_cg_plan_json(const wr_cg_plan *cg);
void wr_cgroup_init(wr_cgroup *c);
/* Creates a command's cgroups, without limits yet (a launcher joins them
 * ahead of the run); WR_OK with mode NONE when the plan has none. */
int wr_cgroup_make(const wr_cg_plan *cg, const wr_ctx *ctx, wr_cgroup *c, wr_error *err);
/* Whether c was made for the plan's parents (every controller it uses). */
bool wr_cgroup_under(const wr_cgroup *c, const wr_cg_plan *cg);
/* Writes the plan's limits into c: before its launcher is released. Once
 * they are all in, c remembers them: the same again writes nothing, other
 * ones replace them (a limit the new plan lacks is lifted). */
int wr_cgroup_limit(wr_cgroup *c, const wr_cg_plan *cg, wr_error *err);
/* SIGKILLs every task (cgroup.kill, or freeze-kill-thaw on v1). */
void wr_cgroup_kill(const wr_cgroup *c);
bool wr_cgroup_empty(const wr_cgroup *c);
/* Kills what is left, removes the directories. */
void wr_cgroup_destroy(wr_cgroup *c);
/* Kills and removes the run cgroups of warrant processes that died. */
int wr_cg_reap_orphans(const wr_cg_plan *cg, size_t *reaped);

/* ---- host facts (plan.c) ------------------------------------------------ */
/* What every plan needs from the host and what does not change while
 * warrant runs: probed once by a launcher pool (a server keeps its pool for
 * its life), else once per plan. A run then makes ~40 syscalls fewer. */
#define WR_HOST_TOP_DIRS 6 /* /bin /sbin /lib /lib32 /lib64 /libx32 */
typedef struct wr_host_facts {
    char *cgroup_root;                /* what cg was probed under (NULL: the default) */
    wr_cg_plan cg;                    /* wr_cg_layout */
    int landlock_abi;                 /* wr_landlock_abi */
    const char *landlock_note;        /* and why not, when 0 */
    char *top_link[WR_HOST_TOP_DIRS]; /* the root's /bin...: a symlink's target */
    bool top_dir[WR_HOST_TOP_DIRS];   /* or a directory (neither: absent) */
    char *init_path;                  /* warrant-init */
    int init_fd;                      /* its O_PATH fd, checked; each plan binds a dup of it */
} wr_host_facts;
int wr_host_facts_probe(const char *cgroup_root, wr_host_facts *f, wr_error *err);
void wr_host_facts_free(wr_host_facts *f);
/* The pool's facts when it was made for cgroup_root, else NULL. */
const wr_host_facts *wr_launch_pool_facts(const wr_launch_pool *pool, const char *cgroup_root);

typedef struct wr_plan {
    wr_plan_op *ops;
    size_t nops, cap;
    wr_network_mode network; /* every mode has a private namespace, see network.c */
    bool share_net;          /* bwrap --share-net: allowlisted and full join the namespace network.c made */
    bool drop_root;          /* we are root: drop to uid/gid before bwrap */
    char *run_as;            /* user name when drop_root */
    const char *run_as_note; /* the default user was missing: what was used instead */
    bool dynamic;            /* uid/gid leased from the dynamic range (uids.c) */
    int uid_lock;            /* the lease, held until wr_plan_free; -1: none */
    uid_t owner_uid;         /* dynamic: run_as, who gets what the run leaves */
    gid_t owner_gid;         /* and whose group is the run's supplementary group */
    uid_t uid;
    gid_t gid;
    struct {
        int64_t cpu_sec, as_bytes, nproc, fsize_bytes, nofile;
    } rl;
    wr_cg_plan cg;
    const char *seccomp_id;
    wr_sock_families sock;
    unsigned char *bpf; /* exported seccomp program */
    size_t bpf_len;
    char bpf_sha256[WR_SHA256_HEX_LEN];
    int landlock_abi; /* 0: none (landlock_note says why) */
    const char *landlock_note;
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

/* Renders the bwrap argv of pipeline segment `segment` (NULL-terminated,
 * caller frees with wr_strv_free). WR_RENDER_FDS: declared paths, argv[0]
 * and init are passed as --ro-bind-fd/--bind-fd with the fd numbers the
 * child will hold (fixed slots below, then one per fd-carrying op in plan
 * order); file data at their slots too; without it the same sandbox is
 * written with plain paths (the bare-bwrap benchmark). WR_RENDER_SECCOMP:
 * --seccomp. WR_RENDER_INIT: warrant-init is pid 1 (--as-pid-1), bwrap's
 * status goes to WR_SLOT_BWRAP_STATUS, and init gets its status and config
 * slots; without it argv runs directly. argv is appended after "--". */
#define WR_SLOT_SECCOMP      3
#define WR_SLOT_BWRAP_STATUS 4 /* --json-status-fd */
#define WR_SLOT_INIT_STATUS  5 /* the same pipe, for warrant-init */
#define WR_SLOT_INIT_CONFIG  6
#define WR_SLOT_FIRST        7
enum {
    WR_RENDER_FDS = 1,
    WR_RENDER_SECCOMP = 2,
    WR_RENDER_INIT = 4,
};
/* Which fd an operation hands to bwrap (taking a slot): its own checked fd,
 * WR_OP_DATA_FD (a fresh data fd the launcher makes: FILE), or
 * WR_OP_NO_FD. Render and launcher walk the ops alike with it. */
#define WR_OP_NO_FD   (-1)
#define WR_OP_DATA_FD (-2)
int wr_plan_op_fd(const wr_plan_op *op, int flags, size_t segment);
int wr_plan_render(const wr_plan *plan, int flags, size_t segment, char *const *argv, wr_strv *out, wr_error *err);
/* The command's environment as NAME=VALUE strings (what init is given). */
int wr_plan_envp(const wr_plan *plan, wr_strv *out, wr_error *err);
/* warrant-init's configuration (init_proto.h): environment and Landlock
 * rules, derived from the plan's operations. Secret values included: the
 * caller wipes and frees *buf. */
int wr_plan_config(const wr_plan *plan, char **buf, size_t *len, wr_error *err);

/* ---- launchers (pool.c, launcher.c) ------------------------------------------- */
/* A warrant-launch process waiting, in its own fresh cgroups, to become
 * one command's bwrap (launch_proto.h). Never reused: one command each. */
typedef struct wr_launcher {
    pid_t pid;
    int pidfd;
    int sock;   /* our end of its control socket */
    bool ready; /* it answered that it is in its cgroups */
    wr_cgroup cg;
} wr_launcher;

/* Makes fresh cgroups for cg (no limits) and starts a launcher in them:
 * on v2 cloned into them (CLONE_INTO_CGROUP), on v1 joining them itself
 * as its first act, so this returns before the join's cost is paid. */
int wr_launcher_start(const wr_cg_plan *cg, const wr_ctx *ctx, wr_launcher *l, wr_error *err);
/* Waits until it has joined its cgroups (or died). */
int wr_launcher_ready(wr_launcher *l, wr_error *err);
/* What one pipeline segment's bwrap gets (the launcher does the rest). */
typedef struct wr_launch_spec {
    char *const *argv;
    const int *slots; /* installed at fds 0..nslots-1 */
    int nslots;
    const wr_netns *net; /* the namespace to join, or NULL */
    bool drop_root;
    uid_t uid;
    gid_t gid;
    gid_t group; /* the one supplementary group when ngroups is 1 */
    int ngroups;
    mode_t umask;
    struct {
        int res;
        rlim_t v;
    } rl[6];
    int nrl;
} wr_launch_spec;
/* Sends one segment: fork starts it in a new child of ours (*pid is its
 * pid), else the launcher itself becomes it (*pid = l->pid) and l's socket
 * is closed. */
int wr_launcher_launch(wr_launcher *l, const wr_launch_spec *s, bool fork, pid_t *pid, wr_error *err);
/* Kills and reaps it if it is still waiting, closes its fds; its cgroups
 * are the caller's (l->cg) unless destroy_cg. */
void wr_launcher_discard(wr_launcher *l, bool destroy_cg);
/* A launcher for plan cg: a warm one from pool when it has one for these
 * cgroups, else one started now (the synchronous path). Its cgroups end
 * with wr_cgroup_retire(pool, ...): the pool is refilled once no taken
 * launcher's command is still running (or when it is empty). */
int wr_launcher_take(wr_launch_pool *pool, const wr_cg_plan *cg, const wr_ctx *ctx, wr_launcher *l, wr_error *err);
/* The end of a command's cgroups: what is left in them is killed now, the
 * directories are removed by the pool's worker (at once without one). */
void wr_cgroup_retire(wr_launch_pool *pool, wr_cgroup *c);
/* Tests: the pids of the launchers the pool holds now (ready or not). */
size_t wr_launch_pool_pids(wr_launch_pool *pool, pid_t *pids, size_t max);
/* Where a helper binary (warrant-init, warrant-launch) is: next to the
 * running binary, or (when running from the build tree) in the build
 * tree, or where it is installed. */
int wr_exec_helper_path(const char *name, char *out, size_t len, wr_error *err);

/* ---- dynamic uids (uids.c) --------------------------------------------------- */
/* Leases a uid in lo..hi that no account uses and no other run holds;
 * *lock is held until closed. */
int wr_uid_lease(int64_t lo, int64_t hi, const wr_ctx *ctx, uid_t *uid, int *lock, wr_error *err);
/* Gives everything the dynamic uid left in the write roots to the owner
 * (artifacts.c: the same fd-relative walk, no symlink followed). */
int wr_uid_handback(const wr_plan *p, wr_error *err);

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
/* The filter: deny-list with EPERM (clone3 and io_uring: ENOSYS, so libc
 * and runtimes fall back to calls the filter can check) plus the socket
 * family rules. Caller releases with seccomp_release. */
scmp_filter_ctx wr_seccomp_filter(wr_sock_families fam, wr_error *err);
/* The filter's BPF program as libseccomp exports it now. */
int wr_seccomp_export(wr_sock_families fam, unsigned char **bpf, size_t *len, wr_error *err);
/* The same programs exported once at build time (seccomp_gen.c writes
 * them, indexed by wr_sock_families): compiling one costs libseccomp
 * ~3.5 M instructions, more than the rest of a run's set-up. */
typedef struct wr_bpf_program {
    const unsigned char *code;
    size_t len;
} wr_bpf_program;
extern const wr_bpf_program wr_seccomp_programs[];
extern const size_t wr_seccomp_nprograms;
/* A copy (malloc'd) of the build-time program for fam. */
int wr_seccomp_bpf(wr_sock_families fam, unsigned char **bpf, size_t *len, wr_error *err);

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
/* Opens the single component name in dirfd with openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV and O_NOFOLLOW: the only way the
 * host opens anything inside an agent-writable tree. -1 and errno. */
int wr_open_beneath(int dirfd, const char *name, int flags);
/* Walks the write roots of a plan fd-relative from the fds the plan
 * checked (see artifacts.c), as the sandbox user. */
int wr_snapshot_take(const wr_plan *plan, wr_snapshot **out, wr_error *err);
void wr_snapshot_free(wr_snapshot *s);
/* Adds files created or modified since `before` to r->artifacts. */
int wr_snapshot_diff(const wr_snapshot *before, const wr_plan *plan, wr_exec_result *r, wr_error *err);

/* sha256 of a file through OpenSSL, streaming. */
int wr_exec_file_sha256(int fd, char out[WR_SHA256_HEX_LEN], wr_error *err);

#endif
