/* `run` on a run thread: the gate call blocks only that thread; output,
 * progress, elicitation requests and the final response travel back to the
 * loop thread through the call's queue (srv->mu) and the waker. */
#include "server/core.h"

#include "capsules/capsules.h"

#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- limits --------------------------------------------------------------- */

static client_count *client_slot(wr_server *s, const char *identity, bool create)
{
    for (size_t i = 0; i < s->nclients; i++)
        if (!strcmp(s->clients[i].identity, identity))
            return &s->clients[i];
    if (!create)
        return NULL;
    client_count *n = realloc(s->clients, (s->nclients + 1) * sizeof *n);
    if (!n)
        return NULL;
    s->clients = n;
    client_count *c = &n[s->nclients++];
    snprintf(c->identity, sizeof c->identity, "%s", identity);
    c->runs = 0;
    return c;
}

int wr_server_active_runs(wr_server *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->active_runs + s->quick_pending;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- the session's calls ------------------------------------------------------ */

/* The ids in progress are a balanced tree (tsearch), not a json-c object:
 * json-c's table keeps a tombstone per deleted key and a lookup of an
 * absent id (every new request) walks them, so after a burst of pipelined
 * requests each later one cost a walk over the whole burst's table. */
static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

bool wr_call_in_progress(const wr_session *ss, const char *id_json)
{
    return tfind(id_json, &ss->inflight, cmp_id) != NULL;
}

void wr_call_link(wr_session *ss, wr_call *c)
{
    tsearch(c->id_json, &ss->inflight, cmp_id); /* out of memory: no duplicate check for this id */
    c->prev = NULL;
    c->next = ss->calls;
    if (ss->calls)
        ss->calls->prev = c;
    ss->calls = c;
}

static void unlink_call(wr_session *ss, wr_call *c)
{
    tdelete(c->id_json, &ss->inflight, cmp_id);
    if (c->prev)
        c->prev->next = c->next;
    else if (ss->calls == c)
        ss->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* ---- queue (worker side) ---------------------------------------------------- */

void wr_server_wake(wr_server *s)
{
    if (s->wake)
        s->wake(s->wake_ud);
}

/* Under s->mu. */
void wr_call_mark_ready(wr_call *c)
{
    if (!c->queued) {
        c->queued = true;
        c->ready_next = c->srv->ready;
        c->srv->ready = c;
    }
}

void wr_call_enqueue(wr_call *c, char *json)
{
    wr_msg *m = calloc(1, sizeof *m);
    if (!m) {
        free(json);
        return;
    }
    m->json = json;
    pthread_mutex_lock(&c->srv->mu);
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    wr_call_mark_ready(c);
    pthread_mutex_unlock(&c->srv->mu);
    wr_server_wake(c->srv);
}

/* ---- the run threads ---------------------------------------------------------- */

static json_object *stream_text(const wr_run_stream *s)
{
    char *t = wr_utf8_sanitize(s->captured ? s->captured : (const unsigned char *)"", s->captured_len);
    json_object *o = json_object_new_string(t ? t : "");
    free(t);
    return o;
}

/* The one place a run result is built, from the gate's typed outcome
 * (identity refusals, denials, pending approvals and executions alike). */
static char *build_final(wr_call *c, int rc, const wr_run_outcome *o, const wr_error *err, char **summary)
{
    if (rc != WR_OK) {
        /* No receipt could be sealed: a server fault, not a tool result. */
        char msg[900];
        snprintf(msg, sizeof msg, "run failed inside the server: %s", err->message);
        return wr_rpc_error_msg(c->id_json, WR_RPC_INTERNAL, msg, NULL);
    }
    json_object *sc = json_object_new_object();
    json_object_object_add(sc, "execution_id", json_object_new_string(o->execution_id));
    json_object_object_add(sc, "status", json_object_new_string(o->status));
    if (o->error)
        json_object_object_add(sc, "error", json_object_new_string(o->error));
    json_object_object_add(sc, "receipt", json_object_get(o->receipt));
    json_object_object_add(sc, "stdout", stream_text(&o->out));
    json_object_object_add(sc, "stderr", stream_text(&o->err));
    json_object_object_add(sc, "stdout_truncated", json_object_new_boolean(o->out.truncated));
    json_object_object_add(sc, "stderr_truncated", json_object_new_boolean(o->err.truncated));
    if (o->pending)
        json_object_object_add(sc, "pending", json_object_new_boolean(true));
    if (o->request_id[0])
        json_object_object_add(sc, "approval_request_id", json_object_new_string(o->request_id));
    char text[1200];
    int n = snprintf(text, sizeof text, "run %s", o->status);
    if (o->has_exit_code)
        n += snprintf(text + n, sizeof text - (size_t)n, ", exit code %d", o->exit_code);
    if (o->error)
        n += snprintf(text + n, sizeof text - (size_t)n, ": %.400s", o->error);
    if (o->pending)
        n += snprintf(text + n, sizeof text - (size_t)n,
                      "; approval request %s is pending - poll get_approval, then run again", o->request_id);
    snprintf(text + n, sizeof text - (size_t)n, " (execution_id %.100s)", o->execution_id);
    *summary = strdup(text);
    json_object *res = wr_tool_result(sc, text, strcmp(o->status, "success") != 0);
    char *msg = wr_rpc_result_msg(c->id_json, wr_json_compact(res));
    json_object_put(res);
    return msg;
}

/* A capsule run: the run request's callbacks and approvals, the capsule's
 * own contract. A capsule refused before any receipt (it does not verify,
 * its output directory is not empty) is a tool error the model can act on. */
static char *run_capsule(wr_call *c, const wr_run_request *rq, char **summary)
{
    wr_capsule_run_opts o = {
        .capsule_path = c->capsule_path,
        .out_dir = c->capsule_out,
        .agent_id = c->identity,
        .client_identity = c->identity,
        .approvals = rq->approvals,
        .napprovals = rq->napprovals,
        .wait_for_approval_ms = rq->wait_for_approval_ms,
        .on_output = rq->on_output,
        .ud = c,
        .cancel_fd = rq->cancel_fd,
    };
    wr_capsule_outcome co;
    wr_error err;
    wr_error_clear(&err);
    int rc = wr_capsule_run(c->srv->gate, &o, &co, &err);
    char *final;
    if (rc == WR_OK || err.code == WR_E_NOMEM || err.code == WR_E_INTERNAL) {
        final = build_final(c, rc, &co.run, &err, summary);
    } else {
        char msg[900];
        snprintf(msg, sizeof msg, "capsule refused: %s", err.message);
        *summary = strdup(msg);
        json_object *res = wr_tool_error(msg, "/capsule_path");
        final = wr_rpc_result_msg(c->id_json, wr_json_compact(res));
        json_object_put(res);
    }
    wr_capsule_outcome_clear(&co);
    return final;
}

/* One run on a run thread. Once it marks the call done, the loop may free
 * it: nothing here touches c after that. */
static void run_call(wr_call *c)
{
    wr_server *s = c->srv;
    json_object **apps = NULL;
    size_t napps = c->approvals ? json_object_array_length(c->approvals) : 0;
    if (napps) {
        apps = calloc(napps, sizeof *apps);
        for (size_t i = 0; apps && i < napps; i++)
            apps[i] = json_object_array_get_idx(c->approvals, i);
    }
    wr_run_request rq = {
        .contract = c->contract,
        .client_identity = c->identity,
        .approvals = apps,
        .napprovals = apps ? napps : 0,
        .wait_for_approval_ms = c->wait_ms,
        .on_wait = wr_call_on_wait,
        .ask_human = wr_call_ask_human,
        .elicitation_human = c->elicitation_human[0] ? c->elicitation_human : NULL,
        .on_output = wr_call_on_output,
        .ud = c,
        .cancel_fd = c->cancel_pipe[0],
    };
    wr_run_outcome o;
    memset(&o, 0, sizeof o);
    wr_error err;
    wr_error_clear(&err);
    char *summary = NULL, *final;
    if (c->capsule_path) {
        final = run_capsule(c, &rq, &summary);
    } else {
        int rc = wr_gate_run(c->srv->gate, &rq, &o, &err);
        final = build_final(c, rc, &o, &err, &summary);
        if (rc == WR_OK)
            wr_run_outcome_clear(&o);
    }
    free(apps);

    int expect = CALL_RUNNING;
    bool completed = atomic_compare_exchange_strong(&c->state, &expect, CALL_COMPLETED);
    pthread_mutex_lock(&s->mu);
    c->summary = summary;
    if (completed)
        c->final_json = final;
    else
        free(final); /* cancelled: the request gets no response (A/basic/utilities/cancellation.mdx) */
    c->done = true;
    wr_call_mark_ready(c);
    s->run_idle++; /* this thread takes the next run from here on */
    pthread_mutex_unlock(&s->mu);
    wr_server_wake(s);
}

/* Run threads are kept across runs: a thread created per run cost a clone,
 * and the loop joined it (waiting for its exit) before it could answer.
 * Idle ones beyond RUN_THREADS_IDLE_MAX end: a burst of runs leaves no crowd
 * of idle threads, each holding the stack pages its run touched (+3.9 MiB
 * after 50 at once). */
#define RUN_THREADS_IDLE_MAX 4

struct run_thread {
    pthread_t t;
    wr_server *s;
    bool ended; /* under s->mu: returned or returning, to be joined */
    struct run_thread *next;
};

static void *run_thread(void *arg)
{
    struct run_thread *self = arg;
    wr_server *s = self->s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->run_jobs.head && !s->runs_stop)
            pthread_cond_wait(&s->run_cv, &s->mu);
        wr_call *c = wr_call_queue_pop(&s->run_jobs);
        if (!c)
            break; /* stopping: every run has finished */
        pthread_mutex_unlock(&s->mu);
        run_call(c);
        wr_gate_prepare_run(s->gate); /* the next run's file system work, while the loop answers */
        pthread_mutex_lock(&s->mu);
        if (s->run_idle > RUN_THREADS_IDLE_MAX) {
            s->run_idle--; /* unclaimed: the others serve what is queued */
            break;
        }
    }
    self->ended = true;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Joins the threads that ended. Under s->mu (an ended thread needs it no more). */
static void reap_run_threads(wr_server *s)
{
    for (struct run_thread **p = &s->run_threads; *p;) {
        struct run_thread *r = *p;
        if (!r->ended) {
            p = &r->next;
            continue;
        }
        pthread_join(r->t, NULL);
        *p = r->next;
        free(r);
    }
}

/* Queues c for a waiting run thread, or a new one. Under s->mu. */
static bool submit_run(wr_server *s, wr_call *c)
{
    reap_run_threads(s);
    if (!s->run_idle) {
        struct run_thread *r = calloc(1, sizeof *r);
        if (!r)
            return false;
        r->s = s;
        if (pthread_create(&r->t, NULL, run_thread, r) != 0) {
            free(r);
            return false;
        }
        r->next = s->run_threads;
        s->run_threads = r;
    } else {
        s->run_idle--;
    }
    wr_call_queue_push(&s->run_jobs, c);
    pthread_cond_signal(&s->run_cv);
    return true;
}

void wr_server_stop_runs(wr_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->runs_stop = true;
    pthread_cond_broadcast(&s->run_cv);
    struct run_thread *all = s->run_threads;
    s->run_threads = NULL;
    pthread_mutex_unlock(&s->mu);
    while (all) {
        struct run_thread *r = all;
        all = r->next;
        pthread_join(r->t, NULL);
        free(r);
    }
}

void wr_call_free(wr_call *c)
{
    free(c->sbuf);
    free(c->tail);
    wr_contract_free(c->contract);
    free(c->capsule_path);
    free(c->capsule_out);
    json_object_put(c->approvals);
    json_object_put(c->args);
    if (c->cancel_pipe[0] >= 0)
        close(c->cancel_pipe[0]);
    if (c->cancel_pipe[1] >= 0)
        close(c->cancel_pipe[1]);
    while (c->q_head) {
        wr_msg *m = c->q_head;
        c->q_head = m->next;
        free(m->json);
        free(m);
    }
    free(c->final_json);
    free(c->summary);
    pthread_cond_destroy(&c->cv);
    free(c->id_json);
    free(c->progress_token);
    free(c);
}

static tool_status start_call(tool_call *tc, wr_contract *ct, char *capsule_path, char *capsule_out,
                              json_object *approvals, int64_t wait_ms, json_object **result)
{
    wr_server *s = tc->ss->srv;
    const char *who = tc->ss->identity;
    pthread_mutex_lock(&s->mu);
    client_count *cc = client_slot(s, who, true);
    char msg[400] = "";
    if (s->stopping)
        snprintf(msg, sizeof msg, "the server is shutting down: no new runs");
    else if (s->active_runs >= s->cfg.max_runs)
        snprintf(msg, sizeof msg,
                 "too many concurrent runs: the server runs at most %d at once; retry when one finished",
                 s->cfg.max_runs);
    else if (!cc || cc->runs >= s->cfg.max_runs_per_client)
        snprintf(msg, sizeof msg,
                 "too many concurrent runs for client \"%.100s\": at most %d at once; retry when one finished", who,
                 s->cfg.max_runs_per_client);
    else {
        s->active_runs++;
        cc->runs++;
    }
    pthread_mutex_unlock(&s->mu);
    if (msg[0]) {
        wr_contract_free(ct);
        free(capsule_path);
        free(capsule_out);
        json_object_put(approvals);
        *result = wr_tool_error(msg, "");
        return TOOL_DONE;
    }

    wr_call *c = calloc(1, sizeof *c);
    if (!c)
        goto fail;
    c->cancel_pipe[0] = c->cancel_pipe[1] = -1;
    pthread_cond_init(&c->cv, NULL);
    c->srv = s;
    c->is_run = true;
    c->contract = ct;
    c->capsule_path = capsule_path;
    c->capsule_out = capsule_out;
    c->approvals = approvals;
    ct = NULL;
    capsule_path = capsule_out = NULL;
    approvals = NULL;
    c->wait_ms = wait_ms;
    /* A task's request is answered at once: on HTTP its messages go to the
     * session's GET stream (wr_call_outlet), on a message stream as usual. */
    c->out = tc->task && !(tc->out && tc->out->may_reorder) ? NULL : tc->out;
    c->id_json = strdup(tc->id_json);
    c->progress_token = tc->progress_token ? strdup(tc->progress_token) : NULL;
    snprintf(c->identity, sizeof c->identity, "%s", who);
    snprintf(c->elicitation_human, sizeof c->elicitation_human, "%s", tc->ss->elicitation_human);
    /* No server requests before notifications/initialized (A/basic/lifecycle.mdx). */
    c->elicitation_ok = tc->ss->client_elicitation && tc->ss->initialized;
    c->started_ms = c->last_emit_ms = wr_now_ms(s->ctx);
    atomic_init(&c->state, CALL_RUNNING);
    /* O_CLOEXEC: commands never inherit server descriptors. */
    if (!c->id_json || pipe2(c->cancel_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
        (tc->task && !(c->task = wr_task_new(tc->ss, c, tc->task_ttl_ms)))) {
        wr_call_free(c);
        goto fail;
    }
    c->ss = tc->ss;
    tc->ss->refs++;
    wr_call_link(tc->ss, c);
    if (!c->task && tc->out && tc->out->begin_stream)
        tc->out->begin_stream(tc->out);
    pthread_mutex_lock(&s->mu);
    if (!submit_run(s, c)) {
        /* Never started: finish it as an internal error through the normal path. */
        c->final_json = wr_rpc_error_msg(c->id_json, WR_RPC_INTERNAL, "cannot start a worker thread", NULL);
        c->done = true;
        wr_call_mark_ready(c);
    }
    pthread_mutex_unlock(&s->mu);
    if (c->task) { /* CreateTaskResult: the run goes on, the client polls */
        *result = json_object_new_object();
        json_object_object_add(*result, "task", wr_task_json(c->task));
        return TOOL_DONE;
    }
    *result = NULL;
    return TOOL_ASYNC;
fail:
    wr_contract_free(ct);
    free(capsule_path);
    free(capsule_out);
    json_object_put(approvals);
    pthread_mutex_lock(&s->mu);
    s->active_runs--;
    if ((cc = client_slot(s, who, false)))
        cc->runs--;
    pthread_mutex_unlock(&s->mu);
    *result = wr_tool_error("cannot start the run: out of resources", "");
    return TOOL_DONE;
}

tool_status wr_run_start(tool_call *tc, wr_contract *ct, json_object *approvals, int64_t wait_ms, json_object **result)
{
    return start_call(tc, ct, NULL, NULL, approvals, wait_ms, result);
}

tool_status wr_capsule_start(tool_call *tc, char *path, char *out_dir, json_object *approvals, int64_t wait_ms,
                             json_object **result)
{
    return start_call(tc, NULL, path, out_dir, approvals, wait_ms, result);
}

void wr_call_cancel(wr_call *c, const char *reason)
{
    int expect = CALL_RUNNING;
    if (!atomic_compare_exchange_strong(&c->state, &expect, CALL_CANCELLED))
        return; /* already completed: its response stands */
    wr_log(c->srv->ctx, WR_LOG_INFO, "server", "cancelling request %s: %s", c->id_json, reason);
    /* The executor watches cancel_fd: SIGTERM, grace, SIGKILL of the whole tree. */
    ssize_t w = write(c->cancel_pipe[1], "x", 1);
    (void)w;
    pthread_mutex_lock(&c->srv->mu);
    pthread_cond_broadcast(&c->cv); /* an elicitation wait ends at once */
    pthread_mutex_unlock(&c->srv->mu);
}

void wr_server_cancel_all(wr_server *s, const char *reason)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    for (wr_session *ss = s->sessions; ss; ss = ss->next)
        for (wr_call *c = ss->calls; c; c = c->next)
            wr_call_cancel(c, reason);
}

/* ---- loop side ------------------------------------------------------------ */

static void finish(wr_call *c)
{
    wr_server *s = c->srv;
    if (c->task)
        wr_task_complete(s, c->task, c->final_json);
    else if (c->final_json && c->out)
        c->out->send(c->out, c->final_json, strlen(c->final_json), true);
    else if (c->out && c->out->end)
        c->out->end(c->out); /* cancelled: no response, but the stream ends */
    if (c->summary)
        wr_session_log(c->ss, 1 /* info */, c->summary);
    wr_session *ss = c->ss;
    unlink_call(ss, c);
    pthread_mutex_lock(&s->mu);
    if (c->is_run) {
        s->active_runs--;
        client_count *cc = client_slot(s, c->identity, false);
        if (cc)
            cc->runs--;
    } else {
        s->quick_pending--;
    }
    pthread_mutex_unlock(&s->mu);
    wr_call_free(c);
    wr_session_unref(ss);
}

void wr_server_drain(wr_server *s)
{
    pthread_mutex_lock(&s->mu);
    /* mark_ready pushes to the front: reversed, calls finish oldest first,
     * so pipelined quick calls are mostly answered in request order. */
    wr_call *list = NULL;
    for (wr_call *c = s->ready, *next; c; c = next) {
        next = c->ready_next;
        c->ready_next = list;
        list = c;
    }
    s->ready = NULL;
    /* Detach each call's queue under the lock, deliver outside it. */
    typedef struct item {
        wr_call *c;
        wr_msg *msgs;
        bool done;
    } item;
    size_t n = 0;
    for (wr_call *c = list; c; c = c->ready_next)
        n++;
    item *items = calloc(n ? n : 1, sizeof *items);
    size_t k = 0;
    for (wr_call *c = list; c; c = c->ready_next) {
        c->queued = false;
        if (!items) {
            wr_call_mark_ready(c); /* retry on the next wake */
            continue;
        }
        items[k].c = c;
        items[k].msgs = c->q_head;
        items[k].done = c->done;
        c->q_head = c->q_tail = NULL;
        k++;
    }
    pthread_mutex_unlock(&s->mu);
    /* Messages of one call stay in their order; calls go oldest first. */
    for (size_t i = 0; i < k; i++) {
        wr_call *c = items[i].c;
        for (wr_msg *m = items[i].msgs; m;) {
            wr_msg *next = m->next;
            if (m->json[0] == '{') {
                wr_outlet *o = wr_call_outlet(c);
                if (o)
                    o->send(o, m->json, strlen(m->json), false);
            } else {
                wr_call_send_progress(c, m->json); /* a waiting-for-approval heartbeat */
            }
            free(m->json);
            free(m);
            m = next;
        }
        if (items[i].done) {
            /* flush output that arrived after the last tick */
            pthread_mutex_lock(&s->mu);
            bool dirty = c->stream_dirty;
            pthread_mutex_unlock(&s->mu);
            if (dirty)
                wr_server_tick(s);
            finish(c);
        }
    }
    free(items);
}
