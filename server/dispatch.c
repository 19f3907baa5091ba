/* The transport-independent JSON-RPC core: one message in, answers out on
 * its outlet; the MCP lifecycle and methods (A/basic/index.mdx,
 * A/basic/lifecycle.mdx, mcp-checklist.md §1-2). */
#include "server/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Newest first; 2025-03-26 comes with batches (handle_batch). */
static const char *const wr_mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

bool wr_mcp_version_known(const char *v)
{
    for (size_t i = 0; v && wr_mcp_versions[i]; i++)
        if (!strcmp(v, wr_mcp_versions[i]))
            return true;
    return false;
}

static const char *const log_levels[] = {"debug",    "info",  "notice",    "warning", "error",
                                         "critical", "alert", "emergency", NULL};

static const char instructions[] =
    "warrant runs commands only under a warrant: a CSC v0.1 command contract "
    "(argv only, never a shell) that the server's policy allows or a human approves, "
    "executed in a sandbox that sees only the paths you declare, and sealed with a signed receipt. "
    "Flow: 1) describe_policy to learn the allowed commands, paths, network and limits; "
    "2) check {contract} for a dry-run decision (nothing stored); "
    "3) propose_contract {contract} to store it and, if it needs approval, queue a request "
    "(get_approval tells you when a human decided); "
    "4) run {contract_id} (or {contract}) to execute it - output streams as progress notifications, "
    "the result carries stdout/stderr and the signed receipt; "
    "5) get_receipt {execution_id} to fetch the receipt again. "
    "actor.agent_id in every contract must be your client identity. Declare every path, the network "
    "need and timeout honestly: undeclared access is denied.";

static void outlet_send(wr_outlet *o, const char *json, bool final)
{
    if (o && json)
        o->send(o, json, strlen(json), final);
}

/* ------------------------------------------------------------------------ */

typedef struct req {
    wr_session *ss;
    wr_outlet *out;
    wr_rpc_result *res;
    char *id_json; /* NULL: unreadable or absent */
} req;

static void reply_error(req *r, int code, int fault, const char *msg, json_object *data)
{
    char *m = wr_rpc_error_msg(r->id_json, code, msg, data);
    json_object_put(data);
    outlet_send(r->out, m, true);
    free(m);
    r->res->kind = WR_RPC_REPLIED;
    r->res->fault = fault;
}

static void reply_result(req *r, json_object *result)
{
    char *m = wr_rpc_result_msg(r->id_json, wr_json_compact(result));
    json_object_put(result);
    outlet_send(r->out, m, true);
    free(m);
    r->res->kind = WR_RPC_REPLIED;
}

static json_object *data_kv(const char *k, const char *v)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, k, json_object_new_string(v));
    return d;
}

static void do_initialize(req *r, json_object *params)
{
    wr_session *ss = r->ss;
    if (ss->initialize_seen) {
        reply_error(r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                    "initialize was already received on this session", NULL);
        return;
    }
    json_object *pv = NULL, *caps = NULL, *info = NULL;
    if (!params || !json_object_object_get_ex(params, "protocolVersion", &pv) ||
        !json_object_is_type(pv, json_type_string)) {
        json_object *d = json_object_new_object();
        json_object *sup = json_object_new_array();
        for (size_t i = 0; wr_mcp_versions[i]; i++)
            json_object_array_add(sup, json_object_new_string(wr_mcp_versions[i]));
        json_object_object_add(d, "supported", sup);
        json_object_object_add(d, "requested", pv ? json_object_get(pv) : NULL);
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_BAD_MESSAGE,
                    "initialize: params.protocolVersion must be a string", d);
        return;
    }
    if (json_object_object_get_ex(params, "capabilities", &caps) && !json_object_is_type(caps, json_type_object)) {
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_BAD_MESSAGE,
                    "initialize: params.capabilities must be an object", NULL);
        return;
    }
    if (json_object_object_get_ex(params, "clientInfo", &info) && !json_object_is_type(info, json_type_object)) {
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_BAD_MESSAGE,
                    "initialize: params.clientInfo must be an object", NULL);
        return;
    }
    const char *want = json_object_get_string(pv);
    /* Echo a version we support, otherwise answer our latest (not an error). */
    snprintf(ss->version, sizeof ss->version, "%s", wr_mcp_version_known(want) ? want : WR_MCP_LATEST);
    ss->initialize_seen = true;
    if (caps) {
        ss->client_caps = json_object_get(caps);
        json_object *el = NULL;
        /* {} means form mode; a form member also means form (A/client/elicitation.mdx). */
        json_object *form = NULL;
        ss->client_elicitation = json_object_object_get_ex(caps, "elicitation", &el) &&
                                 json_object_is_type(el, json_type_object) &&
                                 (json_object_object_length(el) == 0 || json_object_object_get_ex(el, "form", &form));
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "protocolVersion", json_object_new_string(ss->version));
    json_object *sc = json_object_new_object();
    json_object *tools = json_object_new_object();
    json_object_object_add(tools, "listChanged", json_object_new_boolean(false));
    json_object_object_add(sc, "tools", tools);
    json_object_object_add(sc, "logging", json_object_new_object());
    /* MCP tasks: task-augmented tools/call (run), tasks/get, tasks/result, tasks/cancel */
    json_object *tasks = json_object_new_object(), *treq = json_object_new_object(), *ttools = json_object_new_object();
    json_object_object_add(ttools, "call", json_object_new_object());
    json_object_object_add(treq, "tools", ttools);
    json_object_object_add(tasks, "cancel", json_object_new_object());
    json_object_object_add(tasks, "requests", treq);
    json_object_object_add(sc, "tasks", tasks);
    json_object_object_add(res, "capabilities", sc);
    json_object *si = json_object_new_object();
    json_object_object_add(si, "name", json_object_new_string("warrantd"));
    json_object_object_add(si, "title", json_object_new_string("warrant"));
    json_object_object_add(si, "version", json_object_new_string(WR_VERSION));
    json_object_object_add(res, "serverInfo", si);
    json_object_object_add(res, "instructions", json_object_new_string(instructions));
    reply_result(r, res);
    r->res->is_initialize = true;
}

static void do_set_level(req *r, json_object *params)
{
    json_object *lv = NULL;
    if (params && json_object_object_get_ex(params, "level", &lv) && json_object_is_type(lv, json_type_string))
        for (int i = 0; log_levels[i]; i++)
            if (!strcmp(json_object_get_string(lv), log_levels[i])) {
                r->ss->log_level = i;
                reply_result(r, json_object_new_object());
                return;
            }
    reply_error(
        r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE,
        "logging/setLevel: level must be one of debug, info, notice, warning, error, critical, alert, emergency", NULL);
}

static void do_tools_call(req *r, json_object *params)
{
    json_object *name = NULL, *args = NULL, *meta = NULL, *tok = NULL;
    if (!params || !json_object_object_get_ex(params, "name", &name) || !json_object_is_type(name, json_type_string)) {
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE, "tools/call: params.name must be a string", NULL);
        return;
    }
    int idx = wr_tools_find(json_object_get_string(name));
    if (idx < 0) {
        char msg[400];
        snprintf(msg, sizeof msg, "unknown tool: %.300s", json_object_get_string(name));
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE, msg, data_kv("tool", json_object_get_string(name)));
        return;
    }
    bool have_args = json_object_object_get_ex(params, "arguments", &args) && args;
    if (have_args && !json_object_is_type(args, json_type_object)) {
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE, "tools/call: params.arguments must be an object",
                    NULL);
        return;
    }
    json_object *owned = have_args ? json_object_get(args) : json_object_new_object();
    char *token = NULL;
    if (json_object_object_get_ex(params, "_meta", &meta) && json_object_is_type(meta, json_type_object) &&
        json_object_object_get_ex(meta, "progressToken", &tok) &&
        (json_object_is_type(tok, json_type_string) || json_object_is_type(tok, json_type_int)) &&
        strlen(wr_json_compact(tok)) <= 256) /* echoed in every notification: keep it small */
        token = strdup(wr_json_compact(tok));
    /* Task-augmented (MCP tasks) where the tool allows it; elsewhere the
     * field is ignored and the call runs as usual. */
    json_object *task = NULL, *ttl = NULL;
    bool as_task = wr_tool_table[idx].task_support && json_object_object_get_ex(params, "task", &task) &&
                   json_object_is_type(task, json_type_object);
    int64_t ttl_ms = as_task && json_object_object_get_ex(task, "ttl", &ttl) && json_object_is_type(ttl, json_type_int)
                         ? json_object_get_int64(ttl)
                         : 0;
    tool_call tc = {.ss = r->ss,
                    .out = r->out,
                    .id_json = r->id_json,
                    .progress_token = token,
                    .task = as_task,
                    .task_ttl_ms = ttl_ms};
    wr_call *quick = wr_tool_table[idx].quick ? wr_quick_new(&tc, idx) : NULL;
    if (quick) {
        /* Detached from the message, the arguments are the call's alone:
         * json-c reference counts are not atomic. */
        if (have_args)
            json_object_object_del(params, "arguments");
        wr_quick_submit(quick, owned);
        free(token);
        r->res->kind = WR_RPC_ASYNC;
        return;
    }
    json_object *result = NULL;
    wr_error rpc_err;
    wr_error_clear(&rpc_err);
    tool_status st = wr_tools_call(idx, &tc, owned, &result, &rpc_err);
    json_object_put(owned);
    free(token);
    if (st == TOOL_ASYNC) {
        r->res->kind = WR_RPC_ASYNC;
        return;
    }
    if (result)
        reply_result(r, result);
    else
        reply_error(r, WR_RPC_INTERNAL, WR_RPC_FAULT_INTERNAL, rpc_err.message[0] ? rpc_err.message : "internal error",
                    NULL);
}

static void do_ping(req *r, json_object *params)
{
    (void)params;
    /* Exactly {} at any time, before initialize too (A/basic/utilities/ping.mdx). */
    reply_result(r, json_object_new_object());
}

static void do_discover(req *r, json_object *params)
{
    (void)params;
    /* 2026 probe: answer -32601 promptly so dual-era clients fall back. */
    reply_error(r, WR_RPC_METHOD_NOT_FOUND, WR_RPC_FAULT_NONE, "method not found: server/discover (use initialize)",
                data_kv("method", "server/discover"));
}

static void do_tools_list(req *r, json_object *params)
{
    json_object *cur = NULL;
    if (params && json_object_object_get_ex(params, "cursor", &cur)) {
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE,
                    "tools/list: unknown cursor (the list is not paginated)", NULL);
        return;
    }
    char *m = wr_rpc_result_msg(r->id_json, r->ss->srv->tools_list_json);
    outlet_send(r->out, m, true);
    free(m);
    r->res->kind = WR_RPC_REPLIED;
}

/* tasks/get, tasks/result, tasks/cancel: the task named by params.taskId,
 * or NULL after answering "unknown task". */
static wr_task *task_of(req *r, json_object *params)
{
    json_object *id = NULL;
    wr_task *t = params && json_object_object_get_ex(params, "taskId", &id) && json_object_is_type(id, json_type_string)
                     ? wr_task_find(r->ss, json_object_get_string(id))
                     : NULL;
    if (!t)
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE, "unknown task: params.taskId names no task of yours",
                    NULL);
    return t;
}

static void do_tasks_get(req *r, json_object *params)
{
    wr_task *t = task_of(r, params);
    if (t)
        reply_result(r, wr_task_json(t));
}

static void do_tasks_result(req *r, json_object *params)
{
    wr_task *t = task_of(r, params);
    if (!t)
        return;
    if (wr_task_ended(t)) {
        char *m = wr_task_result_msg(t, r->id_json);
        outlet_send(r->out, m, true);
        free(m);
        r->res->kind = WR_RPC_REPLIED;
        return;
    }
    /* The answer waits for the end of the task (HTTP: on an SSE stream). */
    if (wr_task_wait(t, r->ss, r->out, r->id_json) != WR_OK) {
        reply_error(r, WR_RPC_INTERNAL, WR_RPC_FAULT_INTERNAL, "out of memory", NULL);
        return;
    }
    if (r->out && r->out->begin_stream)
        r->out->begin_stream(r->out);
    r->res->kind = WR_RPC_ASYNC;
}

static void do_tasks_cancel(req *r, json_object *params)
{
    wr_task *t = task_of(r, params);
    if (!t)
        return;
    if (wr_task_cancel(t, r->ss->srv) != WR_OK) {
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE, "the task already ended: it cannot be cancelled",
                    NULL);
        return;
    }
    reply_result(r, wr_task_json(t));
}

/* Every request method the server answers. Adding one: a row here. */
typedef struct method_row {
    const char *name;
    bool before_initialize; /* allowed before initialize */
    void (*fn)(req *r, json_object *params);
} method_row;

static const method_row methods[] = {
    {"ping", true, do_ping},
    {"initialize", true, do_initialize},
    {"server/discover", true, do_discover},
    {"tools/list", false, do_tools_list},
    {"tools/call", false, do_tools_call},
    {"logging/setLevel", false, do_set_level},
    {"tasks/get", false, do_tasks_get},
    {"tasks/result", false, do_tasks_result},
    {"tasks/cancel", false, do_tasks_cancel},
};

static void do_request(req *r, const char *method, json_object *params)
{
    /* Responses are matched by id: a second request with the id of one in
     * progress could never be told apart (nor cancelled alone). */
    if (wr_call_in_progress(r->ss, r->id_json)) {
        reply_error(r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                    "invalid request: a request with this id is still in progress", NULL);
        return;
    }
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcmp(method, methods[i].name))
            continue;
        if (!methods[i].before_initialize && !r->ss->initialize_seen)
            reply_error(r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                        "server not initialized: send initialize first", NULL);
        else
            methods[i].fn(r, params);
        return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "method not found: %.200s", method);
    reply_error(r, WR_RPC_METHOD_NOT_FOUND, WR_RPC_FAULT_NONE, msg, data_kv("method", method));
}

static void do_notification(wr_session *ss, const char *method, json_object *params)
{
    if (!strcmp(method, "notifications/initialized")) {
        ss->initialized = true;
    } else if (!strcmp(method, "notifications/cancelled") && params) {
        json_object *rid = NULL, *why = NULL;
        if (!json_object_object_get_ex(params, "requestId", &rid) || !rid)
            return;
        const char *key = wr_json_compact(rid);
        json_object_object_get_ex(params, "reason", &why);
        for (wr_call *c = ss->calls; c; c = c->next)
            if (!strcmp(c->id_json, key)) {
                wr_call_cancel(c, json_object_is_type(why, json_type_string) ? json_object_get_string(why)
                                                                             : "cancelled by client");
                break;
            }
    }
    /* Anything else, known or not, is never answered (A/basic/index.mdx). */
}

static bool id_valid(json_object *id)
{
    /* string or integer; never null, bool, object or fractional */
    return json_object_is_type(id, json_type_string) || json_object_is_type(id, json_type_int);
}

static void handle_object(req *r, json_object *msg)
{
    json_object *jv = NULL, *method = NULL, *id = NULL, *params = NULL;
    bool has_id = json_object_object_get_ex(msg, "id", &id);
    if (has_id && id_valid(id))
        r->id_json = strdup(wr_json_compact(id));
    bool has_method = json_object_object_get_ex(msg, "method", &method);
    if (!json_object_object_get_ex(msg, "jsonrpc", &jv) || !json_object_is_type(jv, json_type_string) ||
        strcmp(json_object_get_string(jv), "2.0")) {
        if (has_method && !has_id)
            return; /* a notification is never answered, even when malformed */
        reply_error(r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE, "invalid request: \"jsonrpc\" must be \"2.0\"",
                    NULL);
        return;
    }
    if (!has_method) {
        json_object *x;
        if (has_id && (json_object_object_get_ex(msg, "result", &x) || json_object_object_get_ex(msg, "error", &x))) {
            /* A response to one of our requests; unknown (or null) ids are
             * ignored: a response is never answered. */
            if (r->id_json)
                wr_call_route_response(r->ss, r->id_json, msg);
            return;
        }
        reply_error(
            r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
            "invalid request: not a request (method + id), notification (method) or response (id + result|error)",
            NULL);
        return;
    }
    if (!json_object_is_type(method, json_type_string)) {
        if (has_id)
            reply_error(r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                        "invalid request: \"method\" must be a string", NULL);
        return;
    }
    bool has_params = json_object_object_get_ex(msg, "params", &params);
    bool params_ok = !has_params || json_object_is_type(params, json_type_object);
    if (!has_id) {
        if (params_ok)
            do_notification(r->ss, json_object_get_string(method), params);
        return;
    }
    if (!r->id_json) {
        reply_error(r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                    "invalid request: \"id\" must be a string or an integer (not null, boolean, object or fraction)",
                    NULL);
        return;
    }
    if (!params_ok) {
        reply_error(r, WR_RPC_INVALID_PARAMS, WR_RPC_FAULT_NONE, "invalid params: \"params\" must be an object", NULL);
        return;
    }
    do_request(r, json_object_get_string(method), has_params ? params : NULL);
}

/* 2025-03-26 batches: each element is handled in order and the responses
 * are returned as one array. Elements that would run asynchronously (run)
 * are refused inside a batch, so the array can be answered at once. */
typedef struct batch_outlet {
    wr_outlet base;
    json_object *responses;
} batch_outlet;

static void batch_send(wr_outlet *o, const char *json, size_t len, bool final)
{
    batch_outlet *b = (batch_outlet *)o;
    (void) final;
    json_object *m = wr_json_parse(json, len, NULL, NULL);
    if (m)
        json_object_array_add(b->responses, m);
}

static void handle_batch(wr_session *ss, json_object *arr, wr_outlet *out, wr_rpc_result *res)
{
    size_t n = json_object_array_length(arr);
    if (n == 0) {
        req r = {.ss = ss, .out = out, .res = res};
        reply_error(&r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE, "invalid request: empty batch", NULL);
        return;
    }
    batch_outlet b = {.base = {.send = batch_send}, .responses = json_object_new_array()};
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(arr, i);
        wr_rpc_result sub = {0};
        req r = {.ss = ss, .out = &b.base, .res = &sub};
        json_object *meth = NULL, *p = NULL, *nm = NULL;
        if (!json_object_is_type(m, json_type_object)) {
            reply_error(&r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                        "invalid request: batch element must be an object", NULL);
        } else if (json_object_object_get_ex(m, "method", &meth) && json_object_is_type(meth, json_type_string) &&
                   (!strcmp(json_object_get_string(meth), "initialize") ||
                    (!strcmp(json_object_get_string(meth), "tools/call") &&
                     json_object_object_get_ex(m, "params", &p) && json_object_object_get_ex(p, "name", &nm) &&
                     json_object_is_type(nm, json_type_string) && !strcmp(json_object_get_string(nm), "run")))) {
            json_object *id = NULL;
            if (json_object_object_get_ex(m, "id", &id) && id_valid(id)) {
                r.id_json = strdup(wr_json_compact(id));
                reply_error(&r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                            "invalid request: initialize and run may not be sent inside a batch", NULL);
            }
        } else {
            handle_object(&r, m);
        }
        free(r.id_json);
    }
    if (json_object_array_length(b.responses) > 0) {
        outlet_send(out, wr_json_compact(b.responses), true);
        res->kind = WR_RPC_REPLIED;
    } else {
        res->kind = WR_RPC_NONE; /* only notifications: nothing is sent */
    }
    json_object_put(b.responses);
}

void wr_session_handle(wr_session *ss, const char *buf, size_t len, wr_outlet *out, wr_rpc_result *res)
{
    memset(res, 0, sizeof *res);
    req r = {.ss = ss, .out = out, .res = res};
    const wr_server_config *cfg = &ss->srv->cfg;
    if (len > cfg->max_message_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid request: message of %zu bytes exceeds the limit of %zu bytes", len,
                 cfg->max_message_bytes);
        reply_error(&r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_TOO_LARGE, msg, NULL);
        return;
    }
    wr_error err;
    wr_error_clear(&err);
    json_object *msg = wr_json_parser_parse(ss->srv->parser, buf, len, &err);
    if (!msg) {
        char text[900];
        snprintf(text, sizeof text, "parse error: %s", err.message[0] ? err.message : "invalid JSON");
        json_object *d = json_object_new_object();
        json_object_object_add(d, "reason", json_object_new_string(wr_code_name(err.code)));
        reply_error(&r, err.code == WR_E_LIMIT ? WR_RPC_INVALID_REQUEST : WR_RPC_PARSE_ERROR, WR_RPC_FAULT_BAD_MESSAGE,
                    text, d);
        return;
    }
    if (json_object_is_type(msg, json_type_array)) {
        if (!strcmp(ss->version, "2025-03-26"))
            handle_batch(ss, msg, out, res);
        else
            reply_error(&r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                        "invalid request: JSON-RPC batches are not supported in this protocol version", NULL);
    } else if (!json_object_is_type(msg, json_type_object)) {
        reply_error(&r, WR_RPC_INVALID_REQUEST, WR_RPC_FAULT_BAD_MESSAGE,
                    "invalid request: a message must be a JSON object", NULL);
    } else {
        handle_object(&r, msg);
    }
    free(r.id_json);
    json_object_put(msg);
}

void wr_session_log(wr_session *ss, int level, const char *text)
{
    int threshold = ss->log_level < 0 ? 3 /* warning until setLevel */ : ss->log_level;
    if (level < threshold || !ss->default_out || !ss->initialize_seen)
        return;
    json_object *n = json_object_new_object();
    json_object_object_add(n, "jsonrpc", json_object_new_string("2.0"));
    json_object_object_add(n, "method", json_object_new_string("notifications/message"));
    json_object *p = json_object_new_object();
    json_object_object_add(p, "level", json_object_new_string(log_levels[level]));
    json_object_object_add(p, "logger", json_object_new_string("warrant"));
    char *clean = wr_utf8_sanitize((const unsigned char *)text, strlen(text));
    json_object_object_add(p, "data", json_object_new_string(clean ? clean : ""));
    free(clean);
    json_object_object_add(n, "params", p);
    outlet_send(ss->default_out, wr_json_compact(n), false);
    json_object_put(n);
}
