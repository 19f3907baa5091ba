/* MCP tasks (2025-11-25, A/basic/utilities/tasks.mdx) for `run`: a
 * task-augmented tools/call answers at once with a task; the client polls
 * tasks/get, fetches the result with tasks/result (which waits for the end)
 * and may tasks/cancel. A run of any length then completes for a client
 * with a 60 s request timeout. Loop thread only.
 *
 * A task belongs to the client identity that created it (another identity
 * gets "unknown task"), outlives the connection (the run is not cancelled
 * when the session closes), and is forgotten ttl after its creation once it
 * ended. Any tool result, isError or not, completes the task: the result is
 * the tool's answer (a denial carries its receipt); a fault of the server
 * fails it; tasks/cancel or a cancellation cancels it. */
#include "server/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASK_POLL_MS        1000
#define TASK_DEFAULT_TTL_MS (60LL * 60 * 1000)
#define TASK_MAX_TTL_MS     (24LL * 60 * 60 * 1000)
#define TASKS_PER_CLIENT    64 /* ended tasks kept per identity; the oldest go first */
/* Results kept in total (a run's result holds up to its captured output):
 * past it the oldest ended tasks are forgotten, whoever they belong to. */
#define TASK_BYTES_MAX (64u * 1024u * 1024u)
#define RELATED_TASK   "io.modelcontextprotocol/related-task"

enum {
    TASK_WORKING = 0,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_CANCELLED
};
static const char *const task_status_names[] = {"working", "completed", "failed", "cancelled"};

typedef struct task_waiter {
    struct task_waiter *next;
    wr_session *ss; /* holds a reference */
    wr_outlet *out; /* NULL once gone */
    char *id_json;
} task_waiter;

struct wr_task {
    wr_task *next;
    char id[WR_ID_MAX];
    char identity[256];
    int status;
    char message[400];
    char *payload; /* "result" or "error" member text, with its name, once ended */
    int64_t created_ms, updated_ms, ttl_ms;
    wr_call *call; /* while working */
    task_waiter *waiters;
};

static int64_t now_ms(wr_server *s)
{
    return wr_now_ms(s->ctx);
}

json_object *wr_task_json(const wr_task *t)
{
    char created[WR_TIME_LEN], updated[WR_TIME_LEN];
    wr_time_format(t->created_ms, created);
    wr_time_format(t->updated_ms, updated);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "taskId", json_object_new_string(t->id));
    json_object_object_add(o, "status", json_object_new_string(task_status_names[t->status]));
    if (t->message[0])
        json_object_object_add(o, "statusMessage", json_object_new_string(t->message));
    json_object_object_add(o, "createdAt", json_object_new_string(created));
    json_object_object_add(o, "lastUpdatedAt", json_object_new_string(updated));
    json_object_object_add(o, "ttl", json_object_new_int64(t->ttl_ms));
    json_object_object_add(o, "pollInterval", json_object_new_int(TASK_POLL_MS));
    return o;
}

static void task_free(wr_server *s, wr_task *t)
{
    s->task_bytes -= t->payload ? strlen(t->payload) : 0;
    while (t->waiters) {
        task_waiter *w = t->waiters;
        t->waiters = w->next;
        wr_session_unref(w->ss);
        free(w->id_json);
        free(w);
    }
    free(t->payload);
    free(t);
}

static void task_unlink(wr_server *s, wr_task *t)
{
    for (wr_task **pp = &s->tasks; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            return;
        }
}

wr_task *wr_task_new(wr_session *ss, wr_call *c, int64_t ttl_ms)
{
    wr_server *s = ss->srv;
    /* an identity keeps a bounded number of ended tasks: the oldest go */
    int kept = 0;
    wr_task *oldest = NULL;
    for (wr_task *t = s->tasks; t; t = t->next)
        if (!strcmp(t->identity, ss->identity) && t->status != TASK_WORKING && !t->call) {
            kept++;
            oldest = t; /* newest first: the last one is the oldest */
        }
    if (kept >= TASKS_PER_CLIENT && oldest) {
        task_unlink(s, oldest);
        task_free(s, oldest);
    }
    wr_task *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    wr_random_id(s->ctx, "task-", t->id, sizeof t->id);
    snprintf(t->identity, sizeof t->identity, "%s", ss->identity);
    t->created_ms = t->updated_ms = now_ms(s);
    t->ttl_ms = ttl_ms <= 0 ? TASK_DEFAULT_TTL_MS : ttl_ms > TASK_MAX_TTL_MS ? TASK_MAX_TTL_MS : ttl_ms;
    t->call = c;
    t->next = s->tasks;
    s->tasks = t;
    return t;
}

wr_task *wr_task_find(wr_session *ss, const char *task_id)
{
    for (wr_task *t = ss->srv->tasks; t; t = t->next)
        if (!strcmp(t->id, task_id))
            return strcmp(t->identity, ss->identity) ? NULL : t; /* never another identity's */
    return NULL;
}

bool wr_task_ended(const wr_task *t)
{
    return t->status != TASK_WORKING;
}

/* The tasks/result response for request id_json. */
char *wr_task_result_msg(const wr_task *t, const char *id_json)
{
    if (t->status == TASK_CANCELLED || !t->payload) {
        char msg[200];
        snprintf(msg, sizeof msg, "task %s was cancelled: it has no result (its receipt says cancelled)", t->id);
        return wr_rpc_error_msg(id_json, WR_RPC_INVALID_PARAMS, msg, NULL);
    }
    size_t n = strlen(id_json) + strlen(t->payload) + 40;
    char *m = malloc(n);
    if (m)
        snprintf(m, n, "{\"jsonrpc\":\"2.0\",\"id\":%s,%s}", id_json, t->payload);
    return m;
}

static void answer_waiters(wr_task *t)
{
    while (t->waiters) {
        task_waiter *w = t->waiters;
        t->waiters = w->next;
        if (w->out) {
            char *m = wr_task_result_msg(t, w->id_json);
            if (m)
                w->out->send(w->out, m, strlen(m), true);
            free(m);
        }
        wr_session_unref(w->ss);
        free(w->id_json);
        free(w);
    }
}

int wr_task_wait(wr_task *t, wr_session *ss, wr_outlet *out, const char *id_json)
{
    task_waiter *w = calloc(1, sizeof *w);
    if (!w || !(w->id_json = strdup(id_json))) {
        free(w);
        return WR_E_NOMEM;
    }
    w->ss = ss;
    wr_session_ref(ss);
    w->out = out;
    w->next = t->waiters;
    t->waiters = w;
    return WR_OK;
}

void wr_tasks_outlet_gone(wr_server *s, wr_outlet *o)
{
    for (wr_task *t = s->tasks; t; t = t->next)
        for (task_waiter *w = t->waiters; w; w = w->next)
            if (w->out == o)
                w->out = NULL;
}

/* The response the run would have sent, kept as the task's payload: its
 * "result" (with the related-task metadata) or its "error". */
static void keep_payload(wr_task *t, const char *final_json)
{
    json_object *m = final_json ? wr_json_parse(final_json, strlen(final_json), NULL, NULL) : NULL;
    json_object *result = NULL, *error = NULL;
    if (m && json_object_object_get_ex(m, "result", &result) && json_object_is_type(result, json_type_object)) {
        json_object *meta = NULL, *rel = json_object_new_object();
        json_object_object_add(rel, "taskId", json_object_new_string(t->id));
        if (!json_object_object_get_ex(result, "_meta", &meta)) {
            meta = json_object_new_object();
            json_object_object_add(result, "_meta", meta);
        }
        json_object_object_add(meta, RELATED_TASK, rel);
        json_object *text = NULL, *content = NULL;
        if (json_object_object_get_ex(result, "content", &content) && (text = json_object_array_get_idx(content, 0)) &&
            json_object_object_get_ex(text, "text", &text))
            snprintf(t->message, sizeof t->message, "%s", json_object_get_string(text));
        t->status = TASK_COMPLETED;
        size_t n = strlen(wr_json_compact(result)) + 16;
        if ((t->payload = malloc(n)))
            snprintf(t->payload, n, "\"result\":%s", wr_json_compact(result));
    } else if (m && json_object_object_get_ex(m, "error", &error)) {
        t->status = TASK_FAILED;
        json_object *msg = NULL;
        if (json_object_object_get_ex(error, "message", &msg))
            snprintf(t->message, sizeof t->message, "%s", json_object_get_string(msg));
        size_t n = strlen(wr_json_compact(error)) + 16;
        if ((t->payload = malloc(n)))
            snprintf(t->payload, n, "\"error\":%s", wr_json_compact(error));
    } else {
        t->status = TASK_CANCELLED;
    }
    json_object_put(m);
}

void wr_task_complete(wr_server *s, wr_task *t, const char *final_json)
{
    t->call = NULL;
    if (t->status == TASK_WORKING) {
        keep_payload(t, final_json);
        t->updated_ms = now_ms(s);
        s->task_bytes += t->payload ? strlen(t->payload) : 0;
    }
    answer_waiters(t);
    /* over the budget: the oldest ended tasks go (the list is newest first) */
    while (s->task_bytes > TASK_BYTES_MAX) {
        wr_task *oldest = NULL;
        for (wr_task *x = s->tasks; x; x = x->next)
            if (x->status != TASK_WORKING && !x->call && x->payload)
                oldest = x;
        if (!oldest)
            break;
        task_unlink(s, oldest);
        task_free(s, oldest);
    }
}

int wr_task_cancel(wr_task *t, wr_server *s)
{
    if (t->status != TASK_WORKING)
        return WR_E_CONFLICT;
    t->status = TASK_CANCELLED; /* sticky: the run's end changes nothing */
    snprintf(t->message, sizeof t->message, "cancelled by tasks/cancel");
    t->updated_ms = now_ms(s);
    if (t->call)
        wr_call_cancel(t->call, "cancelled by tasks/cancel");
    answer_waiters(t);
    return WR_OK;
}

void wr_tasks_expire(wr_server *s)
{
    int64_t now = now_ms(s);
    for (wr_task **pp = &s->tasks; *pp;) {
        wr_task *t = *pp;
        if (t->status != TASK_WORKING && !t->call && now - t->created_ms > t->ttl_ms) {
            *pp = t->next;
            task_free(s, t);
        } else {
            pp = &t->next;
        }
    }
}

void wr_tasks_free(wr_server *s)
{
    while (s->tasks) {
        wr_task *t = s->tasks;
        s->tasks = t->next;
        task_free(s, t);
    }
}
