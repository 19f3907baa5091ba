/* server internals shared by the core (session.c, tools.c, run.c) and the loop (net.c). */
#ifndef WR_SERVER_INTERNAL_H
#define WR_SERVER_INTERNAL_H

#include "server/server.h"

#include <pthread.h>
#include <stdatomic.h>

/* JSON-RPC 2.0 and MCP error codes (A/basic/index.mdx). */
enum {
    WR_RPC_PARSE_ERROR = -32700,
    WR_RPC_INVALID_REQUEST = -32600,
    WR_RPC_METHOD_NOT_FOUND = -32601,
    WR_RPC_INVALID_PARAMS = -32602,
    WR_RPC_INTERNAL = -32603,
};

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
    pthread_t thread;
    bool thread_started;

    /* the work (owned by the worker once started) */
    bool is_run;       /* counts against the run limits (a quick call does not) */
    int tool_idx;      /* quick call: the tool */
    json_object *args; /* quick call: its arguments, owned by the call alone */
    wr_call *job_next; /* quick call: srv->jobs */
    wr_contract *contract;
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
    char chunk[4096]; /* newest output since the last progress */
    size_t chunk_len;
    uint64_t out_bytes; /* cumulative output */
    bool chunk_dirty;

    /* loop thread only */
    int64_t last_emit_ms;
    uint64_t progress_seq;
    wr_call *next, *prev; /* session's list (doubly linked: thousands may be pending) */

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
    int log_level; /* -1: not set by logging/setLevel */
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
    wr_call *jobs, *jobs_tail;
    bool pool_stop;
    int quick_pending;
    wr_session *sessions; /* loop thread only */
};

/* ---- tools (tools.c) ---- */
typedef enum {
    TOOL_DONE,
    TOOL_ASYNC
} tool_status;
typedef struct tool_call {
    wr_session *ss;
    wr_outlet *out;
    const char *id_json;
    const char *progress_token; /* serialized, or NULL */
} tool_call;

int wr_tools_build(wr_server *s, wr_error *err);
/* Pure computation on the arguments (no store, no session state): may run
 * on a pool thread. */
bool wr_tools_is_quick(int idx);
void wr_tools_free(wr_server *s);
/* index of the tool or -1 */
int wr_tools_find(const char *name);
/* Runs tool idx. TOOL_DONE: *result is a CallToolResult (or NULL with
 * *rpc_err set for a JSON-RPC error). */
tool_status wr_tools_call(int idx, tool_call *tc, json_object *args, json_object **result, wr_error *rpc_err);
/* CallToolResult: text summary + serialized structured content. */
json_object *wr_tool_result(json_object *structured, const char *summary, bool is_error);
json_object *wr_tool_error(const char *message, const char *pointer);

/* ---- runs (run.c) ---- */
/* Starts ct (ownership taken) in a worker: TOOL_ASYNC, or TOOL_DONE with an
 * isError result (limits). */
tool_status wr_run_start(tool_call *tc, wr_contract *ct, json_object *approvals, int64_t wait_ms, json_object **result);
void wr_call_cancel(wr_call *c, const char *reason);
/* Quick calls: on message-stream transports, which may answer out of order,
 * a quick tool runs on the pool so the loop keeps reading. wr_quick_new
 * returns NULL when the call must run inline (no pool, HTTP, no memory);
 * wr_quick_submit takes args, which nothing else may reference. */
wr_call *wr_quick_new(tool_call *tc, int idx);
void wr_quick_submit(wr_call *c, json_object *args);
int wr_server_start_pool(wr_server *s, wr_error *err);
void wr_server_stop_pool(wr_server *s);
/* Routes a response to one of our elicitation requests; true if it matched. */
bool wr_call_route_response(wr_session *ss, const char *id_json, json_object *msg);
static inline void wr_session_ref(wr_session *ss)
{
    ss->refs++;
}
void wr_session_unref(wr_session *ss);
/* notifications/message to the session's default outlet when the client's
 * level (logging/setLevel; warning until then) admits it. level indexes
 * debug..emergency. */
void wr_session_log(wr_session *ss, int level, const char *text);

#endif
