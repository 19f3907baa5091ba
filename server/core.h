/* The session core's own structures, shared by session.c, dispatch.c,
 * tools.c, handlers.c, calls.c and elicit.c. Transports never include this
 * file: they speak to the core through server.h. */
#ifndef WR_SERVER_CORE_H
#define WR_SERVER_CORE_H

#include "server/server.h"

#include <pthread.h>
#include <stdatomic.h>

/* Past its streaming budget a run streams the newest output only: at most
 * this much per progress notification, after a marker naming what was
 * skipped, so the end of the output is always seen. */
#define WR_STREAM_TAIL_BYTES (16u * 1024u)

/* A run's life: exactly one of complete / cancel wins (one CAS), so a
 * cancelled request never gets a response and a completed one always does. */
enum {
    CALL_RUNNING = 0,
    CALL_COMPLETED,
    CALL_CANCELLED
};

typedef struct wr_msg {
    struct wr_msg *next;
    char *json;
} wr_msg;

typedef struct wr_call wr_call;
typedef struct wr_call_queue {
    wr_call *head, *tail;
} wr_call_queue;
typedef struct wr_task wr_task;
struct wr_call {
    wr_server *srv;
    wr_session *ss;              /* holds a reference */
    wr_outlet *out;              /* loop thread only; NULL once the outlet is gone */
    char *id_json;               /* serialized request id, echoed verbatim */
    char *progress_token;        /* serialized progressToken or NULL */
    char identity[256];          /* copy: workers never read the session */
    char elicitation_human[256]; /* copy of the session's, or "" */
    bool elicitation_ok;         /* the client declared elicitation */
    _Atomic int state;
    int cancel_pipe[2]; /* wr_run_request.cancel_fd = [0] */

    /* the work (owned by the worker once started) */
    bool is_run;            /* counts against the run limits (a quick call does not) */
    int tool_idx;           /* quick call: the tool */
    json_object *args;      /* quick call: its arguments, owned by the call alone */
    wr_call *job_next;      /* srv->jobs (quick call) or srv->run_jobs (run) */
    wr_contract *contract;  /* run; NULL for a capsule run */
    char *capsule_path;     /* run_capsule: the .capsule file (checked against the policy) */
    char *capsule_out;      /* run_capsule: the output directory, or NULL for a fresh one */
    json_object *approvals; /* private deep copy (json-c refcounts are not atomic) */
    int64_t wait_ms;
    int64_t started_ms;

    /* worker -> loop, under srv->mu */
    wr_msg *q_head, *q_tail; /* messages in order (elicitation requests, wait progress) */
    char *final_json;        /* the response, once done */
    char *summary;           /* one line for notifications/message */
    bool done;
    bool queued; /* on srv->ready */
    wr_call *ready_next;
    /* streamed output (progress.c): in order and lossless up to the run's
     * streaming budget, then the newest bytes after a marker */
    unsigned char *sbuf; /* accepted, not yet sent */
    size_t slen, scap;
    uint64_t out_bytes;  /* everything the commands wrote */
    uint64_t accepted;   /* bytes taken into sbuf so far */
    bool over_budget;    /* from now on only the newest output is streamed */
    uint64_t dropped;    /* past the budget since the last marker, tail included */
    unsigned char *tail; /* WR_STREAM_TAIL_BYTES, on the first overflow: most calls never stream */
    size_t tail_len;
    bool stream_dirty;

    /* loop thread only */
    int64_t last_emit_ms;
    uint64_t progress_seq;
    wr_call *next, *prev; /* session's list (doubly linked: thousands may be pending) */
    wr_task *task;        /* a task-augmented run: its answer goes to the task (tasks.c) */

    /* elicitation (ask_human): the worker waits on cv, the loop answers */
    pthread_cond_t cv;
    char elicit_id[WR_ID_MAX];
    char elicit_key[WR_ID_MAX + 2];
    bool elicit_waiting, elicit_answered;
    int elicit_accept;
};

struct wr_session {
    wr_server *srv;
    int refs; /* loop thread only: the transport + each call */
    bool closed;
    char identity[256];
    char elicitation_human[256]; /* its token's elicitation:human person, or "" */
    wr_outlet *default_out;
    bool initialize_seen, initialized;
    char version[16];
    bool client_elicitation;
    json_object *client_caps;
    void *inflight; /* tsearch tree of the ids (serialized) of requests in progress: a duplicate is refused */
    int log_level;  /* -1: not set by logging/setLevel */
    wr_call *calls;
    wr_session *next; /* server's list */
};

typedef struct client_count {
    char identity[256];
    int runs;
} client_count;

struct wr_server {
    wr_gate *gate;
    const wr_ctx *ctx;
    wr_server_config cfg;
    char *tools_list_json;    /* the tools/list result, built once */
    wr_json_parser *parser;   /* loop thread only: every message of every session */
    wr_schema **tool_schemas; /* compiled input schemas, by tool index */

    pthread_mutex_t mu; /* guards the worker -> loop queues below and in calls */
    wr_call *ready;
    int active_runs;
    bool stopping; /* shutting down: no new runs */
    client_count *clients;
    size_t nclients;

    void (*wake)(void *ud);
    void *wake_ud;

    /* Quick calls (check) evaluated off the loop, under mu. */
    pthread_t *pool;
    int npool;
    pthread_cond_t pool_cv;
    wr_call_queue jobs;
    bool pool_stop;
    int quick_pending;
    /* Runs, under mu: threads kept across runs (calls.c). run_idle counts
     * the waiting threads no queued run has claimed yet; a thread that ends
     * (too many idle) stays on run_threads, marked, until joined. */
    struct run_thread *run_threads;
    int run_idle;
    pthread_cond_t run_cv;
    wr_call_queue run_jobs;
    bool runs_stop;
    wr_session *sessions; /* loop thread only */
    wr_task *tasks;       /* loop thread only, newest first */
    size_t task_bytes;    /* results kept by ended tasks */
};

/* ---- tools (tools.c: the machinery; handlers.c: the table and the tools) ---- */
typedef enum {
    TOOL_DONE,
    TOOL_ASYNC
} tool_status;
typedef struct tool_call {
    wr_session *ss;
    wr_outlet *out;
    const char *id_json;
    const char *progress_token; /* serialized, or NULL */
    bool task;                  /* task-augmented (params.task): answer with a task at once */
    int64_t task_ttl_ms;        /* params.task.ttl; 0: the default */
} tool_call;

/* A tool: TOOL_DONE with a CallToolResult (or NULL with *rpc_err set for a
 * JSON-RPC error), or TOOL_ASYNC when it answers later (run). */
typedef json_object *(*tool_fn)(tool_call *tc, json_object *args, tool_status *st, wr_error *rpc_err);

typedef struct tool_row {
    const char *name, *title, *description;
    bool read_only, destructive, idempotent, open_world; /* MCP annotations */
    /* Pure computation on the arguments (no store, no session state): on
     * message-stream transports it runs on the pool, off the loop. */
    bool quick;
    /* MCP tasks: "optional" lets a client run it as a task; NULL: forbidden. */
    const char *task_support;
    tool_fn fn;
} tool_row;

/* The tool table (handlers.c), the only dispatch: tools/list, argument
 * schemas (schemas/tools/NAME.{input,output}.json) and calls all come from it. */
extern const tool_row wr_tool_table[];
extern const size_t wr_tool_count;

int wr_tools_build(wr_server *s, wr_error *err);
void wr_tools_free(wr_server *s);
/* index of the tool or -1 */
int wr_tools_find(const char *name);
/* Validates args against the tool's input schema, then runs tool idx. */
tool_status wr_tools_call(int idx, tool_call *tc, json_object *args, json_object **result, wr_error *rpc_err);
/* CallToolResult: a short human summary as text + the structured content. */
json_object *wr_tool_result(json_object *structured, const char *summary, bool is_error);
/* The same with the structured content already compact JSON text. Both
 * give a value that is only to be serialised (wr_json_raw). */
json_object *wr_tool_result_text(const char *structured, const char *summary, bool is_error);
/* An isError result without the tool's output shape: details go in the
 * text only (clients validate structuredContent against outputSchema). */
json_object *wr_tool_error(const char *message, const char *pointer);
json_object *wr_tool_error_details(json_object *details, const char *summary);

/* ---- tasks (tasks.c) ---- */
/* A task for run c (the tool answers with wr_task_json at once); NULL: no memory. */
wr_task *wr_task_new(wr_session *ss, wr_call *c, int64_t ttl_ms);
json_object *wr_task_json(const wr_task *t);
/* The task named task_id if it belongs to the session's identity. */
wr_task *wr_task_find(wr_session *ss, const char *task_id);
bool wr_task_ended(const wr_task *t);
/* The tasks/result response (malloc'd) of an ended task. */
char *wr_task_result_msg(const wr_task *t, const char *id_json);
/* tasks/result before the end: answered on out when the task ends. */
int wr_task_wait(wr_task *t, wr_session *ss, wr_outlet *out, const char *id_json);
/* The run ended: final_json is its response, NULL when cancelled. */
void wr_task_complete(wr_server *s, wr_task *t, const char *final_json);
/* WR_E_CONFLICT when it already ended. */
int wr_task_cancel(wr_task *t, wr_server *s);
void wr_tasks_outlet_gone(wr_server *s, wr_outlet *o);
/* Tick: ended tasks past their ttl are forgotten. */
void wr_tasks_expire(wr_server *s);
void wr_tasks_free(wr_server *s);

/* Where a call's messages go: its request's outlet, or for a task whose
 * request was answered at once (HTTP), the session's GET stream. */
static inline wr_outlet *wr_call_outlet(const wr_call *c)
{
    return c->out ? c->out : c->task && !c->ss->closed ? c->ss->default_out : NULL;
}

/* ---- calls (calls.c; elicit.c) ---- */
/* Starts ct (ownership taken) in a worker: TOOL_ASYNC, or TOOL_DONE with an
 * isError result (limits). */
tool_status wr_run_start(tool_call *tc, wr_contract *ct, json_object *approvals, int64_t wait_ms, json_object **result);
/* The same for run_capsule (capsules/): takes path and out_dir (may be NULL). */
tool_status wr_capsule_start(tool_call *tc, char *path, char *out_dir, json_object *approvals, int64_t wait_ms,
                             json_object **result);
void wr_call_cancel(wr_call *c, const char *reason);
/* Quick calls: on message-stream transports, which may answer out of order,
 * a quick tool runs on the pool so the loop keeps reading. wr_quick_new
 * returns NULL when the call must run inline (no pool, HTTP, no memory);
 * wr_quick_submit takes args, which nothing else may reference. */
wr_call *wr_quick_new(tool_call *tc, int idx);
void wr_quick_submit(wr_call *c, json_object *args);
int wr_server_start_pool(wr_server *s, wr_error *err);
void wr_server_stop_pool(wr_server *s);
/* Ends the run threads (calls.c): every run has finished. */
void wr_server_stop_runs(wr_server *s);
/* Progress (progress.c): the gate's on_output / on_wait callbacks (worker
 * side) and one notifications/progress with message (loop side). */
void wr_call_on_output(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len);
void wr_call_on_wait(void *ud, int64_t waited_ms, const char *request_id);
void wr_call_send_progress(wr_call *c, const char *message);
/* In-band approval (elicit.c): the gate's ask_human callback, on the worker. */
int wr_call_ask_human(void *ud, const wr_contract *ct, const wr_decision *d, const char *request_id);
/* The call machinery pool.c shares (calls.c): a call joins its session's
 * list; under srv->mu it is marked for wr_server_drain; the waker; free. */
void wr_call_link(wr_session *ss, wr_call *c);
/* Whether a request with this id (serialized) is in progress on ss. */
bool wr_call_in_progress(const wr_session *ss, const char *id_json);
void wr_call_mark_ready(wr_call *c);
/* First in, first out, through wr_call.job_next; under the server's mu. */
void wr_call_queue_push(wr_call_queue *q, wr_call *c);
wr_call *wr_call_queue_pop(wr_call_queue *q);
void wr_server_wake(wr_server *s);
void wr_call_free(wr_call *c);
/* Queues a message for the loop to send (worker side; takes json). */
void wr_call_enqueue(wr_call *c, char *json);
/* Routes a response to one of our elicitation requests; true if it matched. */
bool wr_call_route_response(wr_session *ss, const char *id_json, json_object *msg);
/* notifications/message to the session's default outlet when the client's
 * level (logging/setLevel; warning until then) admits it. level indexes
 * debug..emergency. */
void wr_session_log(wr_session *ss, int level, const char *text);

#endif
