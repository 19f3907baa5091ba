/* executor — run a validated contract's commands in a bwrap sandbox built
 * only from its declared scope. Only gate/ calls wr_exec_run.
 *
 * The sandbox is first built as a plan (bubblewrap style: an ordered list of
 * typed operations plus limits, uid and seccomp profile), which can be
 * inspected and hashed; then rendered to a bwrap argv and executed. */
#ifndef WR_EXECUTOR_H
#define WR_EXECUTOR_H

#include "contracts/contracts.h"
#include "policies/policies.h"

enum wr_stream {
    WR_STDOUT = 1,
    WR_STDERR = 2
};

/* Called from the executing thread as output arrives (already redacted of
 * secret values). Must not block for long. */
typedef void (*wr_output_fn)(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len);

typedef struct wr_secret {
    const char *name;  /* the secret_ref, exposed to the command as this env name */
    const char *value; /* redacted from captured and streamed output */
} wr_secret;

/* Warm launchers (docs/sandbox.md): processes started ahead of the run,
 * each already inside its own fresh cgroups, so that a run does not wait
 * for the cgroup attach. Each serves one command, then is gone. */
typedef struct wr_launch_pool wr_launch_pool;

#define WR_LAUNCH_POOL_DEFAULT 2 /* a server's pool: runs seconds apart never find it empty */
#define WR_LAUNCH_POOL_MAX     64

/* Starts size launchers for the cgroups under cgroup_root (as
 * wr_exec_request.cgroup_root). refill: a worker thread keeps the pool
 * full (servers; the launchers' parent-death signal follows that thread);
 * else the launchers are started now by the calling thread, which must
 * outlive them, and never replaced (a one-shot CLI run: their cgroup
 * attach overlaps the process's start-up). Launchers die with the process
 * (parent-death signal) and with wr_launch_pool_free; cgroups left by a
 * crash go at the next start (wr_exec_host_isolation's reaping). */
int wr_launch_pool_new(const char *cgroup_root, size_t size, bool refill, const wr_ctx *ctx, wr_launch_pool **out,
                       wr_error *err);
void wr_launch_pool_free(wr_launch_pool *pool);

typedef struct wr_exec_request {
    const wr_contract *contract;
    const wr_sandbox_limits *limits;
    char *const *host_env;    /* where env_allow names take their values (NULL: none) */
    const wr_secret *secrets; /* resolved secret_refs, only after approval */
    size_t nsecrets;
    wr_output_fn on_output; /* may be NULL */
    void *ud;
    int cancel_fd;             /* readable => cancel now (SIGTERM, grace, SIGKILL); -1: none */
    const char *cgroup_root;   /* NULL: /sys/fs/cgroup; else a v2 parent or v1 mount base (operators, tests) */
    wr_launch_pool *launchers; /* warm launchers for the same cgroup_root; NULL or empty: started per command */
    int landlock;              /* 0: the best Landlock ABI the kernel offers; N > 0: at most ABI N; < 0: none
                                  (tests and benchmarks of the fallback) */
    const wr_ctx *ctx;
    /* The caller's durable pre-exec commit (NULL: none). Called exactly
     * once per wr_exec_run that gets past its arguments: while the first
     * command's sandbox is being set up, before anything of the command
     * runs (its configuration is sent only after this returned WR_OK), so
     * the commit's fsync overlaps bwrap's work; or, when nothing is started
     * (blocked, an error), before wr_exec_run returns. Its failure stops
     * the sandbox before the command starts, and wr_exec_run returns that
     * failure (code and err) rather than a result. */
    int (*before_run)(void *ud, wr_error *err);
    void *before_run_ud;
    const wr_strv *allowed_egress_hosts; /* the policy's, for network: allowlisted (NULL: none) */
    /* Tests only: a hosts(5) file the egress proxy consults before DNS, so
     * tests can give names to 127.0.0.1 services. The server never sets it. */
    const char *egress_test_hosts;
} wr_exec_request;

typedef struct wr_exec_stream {
    unsigned char *captured; /* first cap bytes (all commands, in order) */
    size_t captured_len;
    bool truncated;
    uint64_t total_bytes;                    /* everything the commands wrote */
    char captured_sha256[WR_SHA256_HEX_LEN]; /* CSC stdout_hash: of captured bytes */
    char stream_sha256[WR_SHA256_HEX_LEN];   /* of the whole stream */
} wr_exec_stream;

typedef struct wr_artifact {
    char *path;
    char sha256[WR_SHA256_HEX_LEN];
} wr_artifact;

typedef enum wr_exec_status {
    WR_EXEC_SUCCESS = 0,
    WR_EXEC_FAILED,  /* a command failed, timed out, or was cancelled */
    WR_EXEC_BLOCKED, /* refused at run time before anything ran (e.g. symlink escape) */
} wr_exec_status;

typedef struct wr_exec_result {
    wr_exec_status status;
    int exit_code; /* of the failing (or last) command; 124 on timeout */
    char *error;   /* NULL on success; e.g. "timeout after 5s", "cancelled" */
    wr_strv completed_command_ids;
    char *failed_command_id; /* NULL when none failed */
    wr_exec_stream out, err;
    wr_artifact *artifacts;
    size_t nartifacts;
    char sandbox_profile_id[96]; /* "bwrap-default-" or "bwrap-strict-" + first 16 hex of the sha256 */
    char sandbox_profile_sha256[WR_SHA256_HEX_LEN];
    json_object *isolation; /* wr_exec_isolation of sandbox_profile (owned) */
    int isolation_score;
    json_object *sandbox_profile; /* {"version":1,"commands":[{"id","plan"}]} (owned); its canonical
                                     sha256 is sandbox_profile_sha256 */
    int64_t started_ms, ended_ms;
    int64_t sandbox_start_ms; /* the first command: bwrap forked to it running in its sandbox; -1: none ran */
    bool network_used;        /* bytes actually left a command's network namespace */
    json_object *network;     /* allowlisted: {"hosts":[...],"refused":[...],"refused_total"} from the egress proxy
                                 (owned), or NULL when no command had a proxy */
    int secrets_used;
    bool timed_out, cancelled;
    bool artifacts_truncated; /* a write path held more than WR_ARTIFACT_MAX_FILES files */
    bool output_killed;       /* killed for passing limits->output_kill_bytes */
} wr_exec_result;

/* Runs the commands in order, stopping at the first failure. Blocks the
 * calling thread. Returns WR_OK whenever a result was produced (even
 * failed/blocked); an error only when the executor itself could not work.
 *
 * Before anything runs, every command's sandbox is built and its declared
 * paths re-resolved: a symlink leading out of the declared paths, a write
 * path missing outside an existing declared write root, a reserved path
 * (/, /proc, /dev), an unknown or root run_as user, a missing secret, an
 * argv over the contract limits, a network mode that cannot be built here
 * (docs/egress.md), or an argv[0] that does not exist or lies outside what
 * the sandbox shows gives WR_EXEC_BLOCKED and nothing runs.
 *
 * Exit codes: the command's own; 128+N when signal N killed it, as told by
 * the real wait status that warrant-init reports, never guessed from the
 * code (error names the signal; an upstream pipeline segment's SIGPIPE is
 * not a failure); error is always the executor's own words, never output;
 * 124 on timeout (error "timeout after Ns: command ID killed") and on
 * cancel (error "cancelled"); 137 when limits->output_kill_bytes was passed.
 *
 * As root, commands run as limits->run_as (default nobody) with no
 * supplementary groups: that user needs write access to the declared write
 * paths (and to traverse to cwd); directories the executor creates under a
 * write root are given to it. Unprivileged, commands run as the caller.
 * RLIMIT_NPROC (max_processes) counts every process of that user on the
 * host, so run_as should be a user nothing else runs as.
 *
 * Output is redacted of secret values before it is hashed, counted,
 * captured or delivered: total_bytes and stream_sha256 describe the
 * redacted stream. */
int wr_exec_run(const wr_exec_request *req, wr_exec_result **out, wr_error *err);
void wr_exec_result_free(wr_exec_result *r);

/* Isolation strength 0-100 of one command's plan JSON (rubric:
 * docs/isolation.md); breakdown (may be NULL) receives {factor: {points,
 * max}}. Pure function of the recorded plan. */
int wr_exec_strength(json_object *plan, json_object **breakdown);
/* The receipt's isolation facts of a sandbox profile: {score (of the
 * weakest command), cgroup, limits in force, landlock_abi}. */
json_object *wr_exec_isolation(json_object *profile, int *score);

/* What the sandbox layer enforces on this host under lim: {best_score
 * (a contract with no paths and no network), breakdown, cgroup (mode,
 * limits, or the fallback and why), landlock_abi, min_strength, rubric}.
 * With reaped non-NULL, also kills and removes the run cgroups that
 * warrant processes which died left behind (a start-up duty). */
json_object *wr_exec_host_isolation(const wr_sandbox_limits *lim, const char *cgroup_root, const wr_ctx *ctx,
                                    size_t *reaped, wr_error *err);

/* The sandbox plan for one command, as JSON (for tests and the receipt). */
int wr_exec_plan_json(const wr_exec_request *req, size_t command_index, json_object **out, wr_error *err);

#endif
