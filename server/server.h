/* server — JSON-RPC 2.0 core, MCP lifecycle and tools, transports (stdio,
 * WebSocket and Streamable HTTP on libwebsockets), and warrantd's main.
 *
 * Layout (docs/architecture.md, docs/server-extending.md):
 *   core (transport-independent; core.h): session.c (server and sessions),
 *     dispatch.c (JSON-RPC and MCP methods), rpc.c (envelopes), tools.c
 *     (the tool table), handlers.c (the tools, through gate/), calls.c
 *     (runs on workers, quick calls on the pool), elicit.c (in-band approval)
 *   loop and transports (net.h): loop.c, conn.c, stdio.c, ws.c, http.c
 *   options.c (warrantd's command line), auth.c (tokens, Origin/Host)
 *
 * This header is the one interface between them: a transport owns
 * connections, turns bytes into messages and hands each one to
 * wr_session_handle() together with a wr_outlet, the "stream" the answers
 * for that message go to (a stdio/WebSocket connection, or one HTTP POST's
 * JSON/SSE response). The core knows no transport: it says what kind of
 * answer a message got (wr_rpc_result), the transport maps that to its own
 * terms (HTTP status codes). Everything in the core runs on the event-loop
 * thread except `run`, which executes in a worker thread and hands its
 * messages back through a queue drained by wr_server_drain() after the
 * waker fired. */
#ifndef WR_SERVER_H
#define WR_SERVER_H

#include "gate/gate.h"

/* warrantd: parses the command line (design.md) and serves until stopped.
 * Returns the process exit status. */
int wr_server_main(int argc, char **argv);

/* ---- core --------------------------------------------------------------- */
typedef struct wr_server wr_server;
typedef struct wr_session wr_session;

/* Output a run streams losslessly as progress before only its newest
 * output is (the result and the store hold all of it). */
#define WR_STREAM_DEFAULT_BUDGET (1024u * 1024u)

/* MCP protocol versions: we negotiate 2025-11-25, 2025-06-18 and 2025-03-26. */
#define WR_MCP_LATEST "2025-11-25"
bool wr_mcp_version_known(const char *v);

/* The share of `total` one client identity may hold: `wanted` (if > 0) up
 * to half of total, so that one token holder never takes everything. */
int wr_limit_per_client(int total, int wanted);

typedef struct wr_server_config {
    size_t max_message_bytes;       /* one JSON-RPC message; 0: 4 MiB */
    int max_depth;                  /* JSON nesting; 0: 64 */
    int max_runs;                   /* concurrent runs in total; 0: 32 */
    int max_runs_per_client;        /* per client identity; 0 or more: half of max_runs */
    int64_t elicitation_timeout_ms; /* our elicitation/create requests; 0: 120 s */
    int64_t heartbeat_ms;           /* progress while silent; 0: 15 s (must stay <= 30 s) */
    int64_t progress_interval_ms;   /* minimum gap between output progress; 0: 200 ms */
    size_t stream_budget_bytes;     /* output streamed losslessly per run; 0: 1 MiB */
    int quick_workers;              /* threads that evaluate check off the loop; 0: inline */
} wr_server_config;

/* Where the messages for one inbound message go. Called on the loop thread
 * only. `final` marks the response to the request that opened the outlet;
 * begin_stream (may be NULL) announces that the request is asynchronous
 * (Streamable HTTP switches to SSE). */
typedef struct wr_outlet wr_outlet;
struct wr_outlet {
    void (*send)(wr_outlet *o, const char *json, size_t len, bool final);
    void (*begin_stream)(wr_outlet *o);
    /* The request ended without a response (cancelled); may be NULL.
     * Streamable HTTP ends the request's stream. */
    void (*end)(wr_outlet *o);
    /* Responses may go out in any order (a message stream: stdio, WebSocket),
     * so quick calls may be answered from the pool. Not a batch, not HTTP. */
    bool may_reorder;
    /* ...and they are (with may_reorder): the loop serves other clients
     * meanwhile (WebSocket; stdio beside listeners). A server with stdio
     * alone gains nothing from it but handoffs between cores, which doubled
     * the CPU time of a pipelined check (docs/performance.md): its checks
     * run inline. */
    bool quick_on_pool;
};

/* The gate is borrowed and must outlive the server. */
int wr_server_new(wr_gate *g, const wr_server_config *cfg, wr_server **out, wr_error *err);
void wr_server_free(wr_server *s);
/* wake(ud) is called from worker threads when wr_server_drain has work
 * (libwebsockets: lws_cancel_service). */
void wr_server_set_waker(wr_server *s, void (*wake)(void *ud), void *ud);
/* Loop thread: delivers what workers queued and finishes completed runs. */
void wr_server_drain(wr_server *s);
/* Loop thread, about every 100 ms while runs are active: output progress
 * (rate-limited) and heartbeats. */
void wr_server_tick(wr_server *s);
int wr_server_active_runs(wr_server *s);
/* Shutdown: cancels every running call (receipts record the cancellation)
 * and refuses new runs from now on. */
void wr_server_cancel_all(wr_server *s, const char *reason);
const wr_server_config *wr_server_get_config(const wr_server *s);
wr_gate *wr_server_gate(wr_server *s);

/* A session is one MCP session: a stdio process, a WebSocket connection, or
 * an Mcp-Session-Id. identity is the authenticated client (contracts'
 * actor.agent_id must equal it). default_outlet (may be NULL) receives
 * messages not tied to a request (logging). */
wr_session *wr_session_new(wr_server *s, const char *identity, wr_outlet *default_outlet);
/* The person behind a token marked elicitation:human (NULL: none): only
 * then may an elicitation answered on this session approve a run. */
void wr_session_set_elicitation_human(wr_session *ss, const char *person);
/* Ends the session: with cancel_runs its runs are cancelled (their receipts
 * say so), otherwise they finish. It is freed once its last run finished. */
void wr_session_close(wr_session *ss, bool cancel_runs);
/* The transport's outlet is going away: nothing is sent to it any more. */
void wr_session_outlet_gone(wr_session *ss, wr_outlet *o);
/* The outlet for messages not tied to a request (HTTP: the GET stream). */
void wr_session_set_default_outlet(wr_session *ss, wr_outlet *o);
wr_outlet *wr_session_default_outlet(const wr_session *ss);
const char *wr_session_identity(const wr_session *ss);
/* The session has calls in flight (it must not expire). */
bool wr_session_busy(const wr_session *ss);
/* wr_session_close was called (the transport still holds a reference). */
bool wr_session_closed(const wr_session *ss);
/* The transport's reference (HTTP: one per request naming the session). */
void wr_session_ref(wr_session *ss);
void wr_session_unref(wr_session *ss);
/* The negotiated protocol version; "" until initialize succeeded. */
const char *wr_session_version(const wr_session *ss);

/* JSON-RPC 2.0 and MCP error codes (A/basic/index.mdx). */
enum {
    WR_RPC_PARSE_ERROR = -32700,
    WR_RPC_INVALID_REQUEST = -32600,
    WR_RPC_METHOD_NOT_FOUND = -32601,
    WR_RPC_INVALID_PARAMS = -32602,
    WR_RPC_INTERNAL = -32603,
};

enum wr_rpc_kind {
    WR_RPC_NONE = 0, /* notification or response: nothing sent (HTTP 202) */
    WR_RPC_REPLIED,  /* the final response was sent to the outlet */
    WR_RPC_ASYNC,    /* a run started: more follows on the outlet */
};
/* What was wrong with a message answered by an error, as far as the
 * transport cares (HTTP: 400, 413, 500; none: 200). */
enum wr_rpc_fault {
    WR_RPC_FAULT_NONE = 0,    /* answered (a result, or an error about the call itself) */
    WR_RPC_FAULT_BAD_MESSAGE, /* unparseable or not a valid message for this session */
    WR_RPC_FAULT_TOO_LARGE,   /* over max_message_bytes */
    WR_RPC_FAULT_INTERNAL,    /* the server failed */
};
typedef struct wr_rpc_result {
    int kind;
    int fault;          /* enum wr_rpc_fault, for a reply */
    bool is_initialize; /* the message was an initialize that succeeded */
} wr_rpc_result;

/* Handles one message (bytes as received, without framing). Errors in the
 * message itself are answered on the outlet; the session keeps serving. */
void wr_session_handle(wr_session *ss, const char *buf, size_t len, wr_outlet *out, wr_rpc_result *res);

/* JSON-RPC envelopes (malloc'd, compact, no newline). id_json is the
 * serialized request id or NULL to omit it (unreadable id). */
char *wr_rpc_result_msg(const char *id_json, const char *result_json);
char *wr_rpc_error_msg(const char *id_json, int code, const char *message, json_object *data);

/* Copies bytes into a NUL-terminated string that is valid UTF-8: invalid
 * sequences become U+FFFD. */
char *wr_utf8_sanitize(const unsigned char *buf, size_t len);
/* Largest n <= len such that buf[0..n) does not end inside a UTF-8 sequence. */
size_t wr_utf8_cut(const unsigned char *buf, size_t len);

/* ---- network auth (loop-independent helpers) ---------------------------- */
typedef struct wr_tokens wr_tokens;
/* What a token opens (auth.c's token_kinds table names them). */
typedef enum wr_token_kind {
    WR_TOKEN_AGENT = 0, /* an MCP client: /mcp and /ws */
    WR_TOKEN_METRICS,   /* a scraper: GET /metrics only */
    WR_TOKEN_APPROVER,  /* a person: the approval console (/console) only */
} wr_token_kind;
/* "ID TOKEN [KIND] [elicitation:human=PERSON]" or "KIND:ID TOKEN" per line
 * (KIND defaults to agent), '#' comments; refuses a group/world readable
 * file, duplicate tokens, tokens shorter than 16 bytes, and one name in two
 * roles that would let an agent approve itself (an agent that is an
 * approver or a marked token's person; docs/approvals.md). */
int wr_tokens_load(const char *path, wr_tokens **out, wr_error *err);
void wr_tokens_free(wr_tokens *t);
/* The identity bound to a token of that kind, compared in constant time;
 * NULL if none. */
const char *wr_tokens_identity(const wr_tokens *t, const char *token, size_t len, wr_token_kind kind);
/* For identity as wr_tokens_identity returned it (the entry's own string):
 * the person its elicitation:human mark names, or NULL. */
const char *wr_tokens_elicitation_human(const wr_tokens *t, const char *identity);
/* The token is in the file, of whatever kind (a wrong-kind token is 403). */
bool wr_tokens_known(const wr_tokens *t, const char *token, size_t len);

/* Origin / Host checks against the loopback names of the bound port (and
 * the bind address itself), plus extra allowed hosts ("name:port") and
 * origins ("scheme://name:port"), compared exactly. */
bool wr_host_allowed(const char *host, int port, const char *bind_host, const wr_strv *extra);
bool wr_origin_allowed(const char *origin, int port, const char *bind_host, const wr_strv *extra);
bool wr_host_is_loopback(const char *host);

#endif
