/* `run` in a worker thread: the gate call blocks only the worker; output,
 * progress, elicitation requests and the final response travel back to the
 * loop thread through the call's queue (srv->mu) and the waker. */
#include "server/server_internal.h"

#include <errno.h>
#include <fcntl.h>
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

static void link_call(wr_session *ss, wr_call *c)
{
    c->prev = NULL;
    c->next = ss->calls;
    if (ss->calls)
        ss->calls->prev = c;
    ss->calls = c;
}

static void unlink_call(wr_session *ss, wr_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (ss->calls == c)
        ss->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* ---- queue (worker side) ---------------------------------------------------- */

static void wake(wr_server *s)
{
    if (s->wake)
        s->wake(s->wake_ud);
}

/* Under s->mu. */
static void mark_ready(wr_call *c)
{
    if (!c->queued) {
        c->queued = true;
        c->ready_next = c->srv->ready;
        c->srv->ready = c;
    }
}

static void enqueue(wr_call *c, char *json)
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
    mark_ready(c);
    pthread_mutex_unlock(&c->srv->mu);
    wake(c->srv);
}

/* progress = cumulative output bytes + notifications sent, so that it
 * strictly increases even across heartbeats (A/basic/utilities/progress.mdx). */
static char *progress_msg(const char *token, uint64_t progress, const char *message)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "progressToken", json_tokener_parse(token));
    json_object_object_add(p, "progress", json_object_new_int64((int64_t)progress));
    if (message)
        json_object_object_add(p, "message", json_object_new_string(message));
    json_object *n = json_object_new_object();
    json_object_object_add(n, "jsonrpc", json_object_new_string("2.0"));
    json_object_object_add(n, "method", json_object_new_string("notifications/progress"));
    json_object_object_add(n, "params", p);
    char *s = strdup(wr_json_compact(n));
    json_object_put(n);
    return s;
}

static void on_output(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len)
{
    (void)command_id;
    (void)stream;
    wr_call *c = ud;
    if (!c->progress_token)
        return;
    pthread_mutex_lock(&c->srv->mu);
    c->out_bytes += len;
    size_t room = sizeof c->chunk - c->chunk_len;
    size_t take = len < room ? len : room;
    memcpy(c->chunk + c->chunk_len, data, take);
    c->chunk_len += take;
    c->chunk_dirty = true;
    pthread_mutex_unlock(&c->srv->mu);
    /* The loop's tick emits it, rate-limited; no wake per chunk. */
}

static void on_wait(void *ud, int64_t waited_ms, const char *request_id)
{
    wr_call *c = ud;
    /* about once a second from the gate: report every 5 s */
    if (!c->progress_token || (waited_ms > 1000 && (waited_ms / 1000) % 5 != 0))
        return;
    char text[200];
    snprintf(text, sizeof text, "waiting for approval of request %.80s (%llds)", request_id ? request_id : "?",
             (long long)(waited_ms / 1000));
    /* Plain text (not '{'): the loop sends it as progress with the next value. */
    enqueue(c, strdup(text));
}

/* In-band approval: elicitation/create on the live request, answered by a
 * response the loop routes here (mcp-checklist §5, legacy adapter). */
static int ask_human(void *ud, const wr_contract *ct, const wr_decision *d, const char *request_id)
{
    wr_call *c = ud;
    if (!c->elicitation_ok || atomic_load(&c->state) != CALL_RUNNING)
        return 0;
    json_object *argvs = json_object_new_array();
    for (size_t i = 0; i < ct->ncommands; i++) {
        const wr_command *cmd = &ct->commands[i];
        json_object *one = json_object_new_object();
        json_object *segs = json_object_new_array();
        for (size_t k = 0; k < cmd->nsegments; k++)
            json_object_array_add(segs, wr_strv_to_json(&cmd->segments[k]));
        json_object_object_add(one, "argv", segs);
        json_object_object_add(one, "read_paths", wr_strv_to_json(&cmd->read_paths));
        json_object_object_add(one, "write_paths", wr_strv_to_json(&cmd->write_paths));
        json_object_object_add(one, "network", json_object_new_string(wr_network_mode_name(cmd->network)));
        json_object_array_add(argvs, one);
    }
    char *detail = strdup(wr_json_compact(argvs));
    json_object_put(argvs);
    char *msgtext = malloc(strlen(detail) + 1024);
    if (!msgtext) {
        free(detail);
        return 0;
    }
    sprintf(msgtext,
            "Agent \"%.100s\" asks to run contract %.100s (risk %.20s, %.60s; approval request %.80s). "
            "Commands: %s. Its intent and justification are untrusted text. Approve this single execution?",
            ct->actor.agent_id, ct->contract_id, ct->risk_class, d->reason_code ? d->reason_code : "",
            request_id ? request_id : "-", detail);
    free(detail);
    char *clean = wr_utf8_sanitize((unsigned char *)msgtext, strlen(msgtext));
    free(msgtext);

    wr_random_id(c->srv->ctx, "wr-elicit-", c->elicit_id, sizeof c->elicit_id);
    /* the id as it comes back serialized (hex: nothing to escape) */
    snprintf(c->elicit_key, sizeof c->elicit_key, "\"%s\"", c->elicit_id);
    json_object *schema = json_object_new_object();
    json_object_object_add(schema, "type", json_object_new_string("object"));
    json_object *props = json_object_new_object();
    json_object *ap = json_object_new_object();
    json_object_object_add(ap, "type", json_object_new_string("boolean"));
    json_object_object_add(ap, "title", json_object_new_string("Approve this execution"));
    json_object_object_add(props, "approve", ap);
    json_object_object_add(schema, "properties", props);
    json_object *req = json_object_new_array();
    json_object_array_add(req, json_object_new_string("approve"));
    json_object_object_add(schema, "required", req);
    json_object *params = json_object_new_object();
    json_object_object_add(params, "message", json_object_new_string(clean ? clean : ""));
    json_object_object_add(params, "requestedSchema", schema);
    free(clean);
    json_object *m = json_object_new_object();
    json_object_object_add(m, "jsonrpc", json_object_new_string("2.0"));
    json_object_object_add(m, "id", json_object_new_string(c->elicit_id));
    json_object_object_add(m, "method", json_object_new_string("elicitation/create"));
    json_object_object_add(m, "params", params);
    char *text = strdup(wr_json_compact(m));
    json_object_put(m);

    pthread_mutex_lock(&c->srv->mu);
    c->elicit_waiting = true;
    c->elicit_answered = false;
    c->elicit_accept = 0;
    pthread_mutex_unlock(&c->srv->mu);
    enqueue(c, text);

    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ms = c->srv->cfg.elicitation_timeout_ms;
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&c->srv->mu);
    int rc = 0;
    while (!c->elicit_answered && atomic_load(&c->state) == CALL_RUNNING && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cv, &c->srv->mu, &until);
    bool answered = c->elicit_answered;
    int accept = c->elicit_accept;
    c->elicit_waiting = false;
    pthread_mutex_unlock(&c->srv->mu);
    if (!answered) {
        /* Abandoned our own request: tell the client (A/basic/lifecycle.mdx "Timeouts"). */
        json_object *n = json_object_new_object();
        json_object_object_add(n, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(n, "method", json_object_new_string("notifications/cancelled"));
        json_object *p = json_object_new_object();
        json_object_object_add(p, "requestId", json_object_new_string(c->elicit_id));
        json_object_object_add(p, "reason", json_object_new_string("approval prompt timed out"));
        json_object_object_add(n, "params", p);
        enqueue(c, strdup(wr_json_compact(n)));
        json_object_put(n);
    }
    return accept;
}

bool wr_call_route_response(wr_session *ss, const char *id_json, json_object *msg)
{
    for (wr_call *c = ss->calls; c; c = c->next) {
        pthread_mutex_lock(&ss->srv->mu);
        bool match = c->elicit_waiting && !c->elicit_answered && !strcmp(id_json, c->elicit_key);
        if (match) {
            json_object *result = NULL, *action = NULL, *content = NULL, *approve = NULL;
            /* Only an explicit accept with approve:true counts; anything else is a no. */
            c->elicit_accept =
                json_object_object_get_ex(msg, "result", &result) && json_object_is_type(result, json_type_object) &&
                json_object_object_get_ex(result, "action", &action) && json_object_is_type(action, json_type_string) &&
                !strcmp(json_object_get_string(action), "accept") &&
                json_object_object_get_ex(result, "content", &content) &&
                json_object_object_get_ex(content, "approve", &approve) &&
                json_object_is_type(approve, json_type_boolean) && json_object_get_boolean(approve);
            c->elicit_answered = true;
            pthread_cond_broadcast(&c->cv);
        }
        pthread_mutex_unlock(&ss->srv->mu);
        if (match)
            return true;
    }
    return false;
}

/* ---- the worker ------------------------------------------------------------- */

static json_object *stream_text(const wr_exec_stream *s)
{
    char *t = wr_utf8_sanitize(s->captured ? s->captured : (const unsigned char *)"", s->captured_len);
    json_object *o = json_object_new_string(t ? t : "");
    free(t);
    return o;
}

static char *build_final(wr_call *c, int rc, wr_run_outcome *o, const wr_error *err, char **summary)
{
    if (rc != WR_OK) {
        /* No receipt could be sealed: a server fault, not a tool result. */
        char msg[900];
        snprintf(msg, sizeof msg, "run failed inside the server: %s", err->message);
        return wr_rpc_error_msg(c->id_json, WR_RPC_INTERNAL, msg, NULL);
    }
    const char *status = o->status ? o->status : "failed";
    json_object *sc = json_object_new_object();
    json_object *eid = NULL, *exit_code = NULL, *error = NULL;
    json_object_object_get_ex(o->receipt, "execution_id", &eid);
    json_object_object_get_ex(o->receipt, "exit_code", &exit_code);
    json_object_object_get_ex(o->receipt, "error", &error);
    if (eid)
        json_object_object_add(sc, "execution_id", json_object_get(eid));
    json_object_object_add(sc, "status", json_object_new_string(status));
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
    int n = snprintf(text, sizeof text, "run %s", status);
    if (exit_code && !json_object_is_type(exit_code, json_type_null))
        n += snprintf(text + n, sizeof text - (size_t)n, ", exit code %d", json_object_get_int(exit_code));
    if (error && json_object_is_type(error, json_type_string))
        n += snprintf(text + n, sizeof text - (size_t)n, ": %.400s", json_object_get_string(error));
    if (o->pending)
        n += snprintf(text + n, sizeof text - (size_t)n,
                      "; approval request %s is pending - poll get_approval, then run again", o->request_id);
    if (eid)
        snprintf(text + n, sizeof text - (size_t)n, " (execution_id %.100s)", json_object_get_string(eid));
    *summary = strdup(text);
    json_object *res = wr_tool_result(sc, text, strcmp(status, "success") != 0);
    char *msg = wr_rpc_result_msg(c->id_json, wr_json_compact(res));
    json_object_put(res);
    return msg;
}

static void *worker(void *arg)
{
    wr_call *c = arg;
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
        .on_wait = on_wait,
        .ask_human = ask_human,
        .elicitation_human = c->elicitation_human[0] ? c->elicitation_human : NULL,
        .on_output = on_output,
        .ud = c,
        .cancel_fd = c->cancel_pipe[0],
    };
    wr_run_outcome o;
    memset(&o, 0, sizeof o);
    wr_error err;
    wr_error_clear(&err);
    int rc = wr_gate_run(c->srv->gate, &rq, &o, &err);
    char *summary = NULL;
    char *final = build_final(c, rc, &o, &err, &summary);
    if (rc == WR_OK)
        wr_run_outcome_clear(&o);
    free(apps);

    int expect = CALL_RUNNING;
    bool completed = atomic_compare_exchange_strong(&c->state, &expect, CALL_COMPLETED);
    pthread_mutex_lock(&c->srv->mu);
    c->summary = summary;
    if (completed)
        c->final_json = final;
    else
        free(final); /* cancelled: the request gets no response (A/basic/utilities/cancellation.mdx) */
    c->done = true;
    mark_ready(c);
    pthread_mutex_unlock(&c->srv->mu);
    wake(c->srv);
    return NULL;
}

static void call_free(wr_call *c)
{
    wr_contract_free(c->contract);
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

tool_status wr_run_start(tool_call *tc, wr_contract *ct, json_object *approvals, int64_t wait_ms, json_object **result)
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
    c->approvals = approvals;
    ct = NULL;
    approvals = NULL;
    c->wait_ms = wait_ms;
    c->out = tc->out;
    c->id_json = strdup(tc->id_json);
    c->progress_token = tc->progress_token ? strdup(tc->progress_token) : NULL;
    snprintf(c->identity, sizeof c->identity, "%s", who);
    snprintf(c->elicitation_human, sizeof c->elicitation_human, "%s", tc->ss->elicitation_human);
    /* No server requests before notifications/initialized (A/basic/lifecycle.mdx). */
    c->elicitation_ok = tc->ss->client_elicitation && tc->ss->initialized;
    c->started_ms = c->last_emit_ms = wr_now_ms(s->ctx);
    atomic_init(&c->state, CALL_RUNNING);
    /* O_CLOEXEC: commands never inherit server descriptors. */
    if (!c->id_json || pipe2(c->cancel_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        call_free(c);
        goto fail;
    }
    c->ss = tc->ss;
    tc->ss->refs++;
    link_call(tc->ss, c);
    if (tc->out && tc->out->begin_stream)
        tc->out->begin_stream(tc->out);
    if (pthread_create(&c->thread, NULL, worker, c) != 0) {
        /* Never started: finish it as an internal error through the normal path. */
        pthread_mutex_lock(&s->mu);
        c->final_json = wr_rpc_error_msg(c->id_json, WR_RPC_INTERNAL, "cannot start a worker thread", NULL);
        c->done = true;
        mark_ready(c);
        pthread_mutex_unlock(&s->mu);
    } else {
        c->thread_started = true;
    }
    *result = NULL;
    return TOOL_ASYNC;
fail:
    wr_contract_free(ct);
    json_object_put(approvals);
    pthread_mutex_lock(&s->mu);
    s->active_runs--;
    if ((cc = client_slot(s, who, false)))
        cc->runs--;
    pthread_mutex_unlock(&s->mu);
    *result = wr_tool_error("cannot start the run: out of resources", "");
    return TOOL_DONE;
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

/* ---- quick calls on the pool ------------------------------------------------ */

/* The pool thread's side of a quick call: the whole tool (arguments check
 * included) on the call's own arguments, then the serialized response
 * handed to the loop like a run's. */
static void run_quick(wr_call *c)
{
    tool_call tc = {.ss = c->ss, .id_json = c->id_json}; /* ss: only its immutable identity and srv are read */
    json_object *result = NULL;
    wr_error rpc_err;
    wr_error_clear(&rpc_err);
    /* The arguments are freed by the loop thread that allocated them
     * (call_free): freeing them here would contend for its malloc arena. */
    wr_tools_call(c->tool_idx, &tc, c->args, &result, &rpc_err);
    char *final = result ? wr_rpc_result_msg(c->id_json, wr_json_compact(result))
                         : wr_rpc_error_msg(c->id_json, WR_RPC_INTERNAL,
                                            rpc_err.message[0] ? rpc_err.message : "internal error", NULL);
    json_object_put(result);
    int expect = CALL_RUNNING;
    bool completed = atomic_compare_exchange_strong(&c->state, &expect, CALL_COMPLETED);
    wr_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    if (completed)
        c->final_json = final;
    else
        free(final);
    c->done = true;
    /* One wake per batch: a non-empty ready list already has one pending. */
    bool first = s->ready == NULL;
    mark_ready(c);
    pthread_mutex_unlock(&s->mu);
    if (first)
        wake(s);
}

static void *pool_main(void *arg)
{
    wr_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->jobs && !s->pool_stop)
            pthread_cond_wait(&s->pool_cv, &s->mu);
        wr_call *c = s->jobs;
        if (!c)
            break; /* stopping, and nothing left to answer */
        s->jobs = c->job_next;
        if (!s->jobs)
            s->jobs_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        run_quick(c);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int wr_server_start_pool(wr_server *s, wr_error *err)
{
    int n = s->cfg.quick_workers;
    if (n <= 0)
        return WR_OK;
    if (!(s->pool = calloc((size_t)n, sizeof *s->pool)))
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (; s->npool < n; s->npool++)
        if (pthread_create(&s->pool[s->npool], NULL, pool_main, s) != 0)
            break; /* fewer workers still work; none means inline */
    return WR_OK;
}

void wr_server_stop_pool(wr_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->pool_stop = true;
    pthread_cond_broadcast(&s->pool_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->npool; i++)
        pthread_join(s->pool[i], NULL);
    free(s->pool);
    s->pool = NULL;
    s->npool = 0;
}

wr_call *wr_quick_new(tool_call *tc, int idx)
{
    wr_server *s = tc->ss->srv;
    if (!s->npool || !tc->out || !tc->out->may_reorder)
        return NULL;
    wr_call *c = calloc(1, sizeof *c);
    if (!c || !(c->id_json = strdup(tc->id_json))) {
        free(c);
        return NULL;
    }
    c->cancel_pipe[0] = c->cancel_pipe[1] = -1;
    pthread_cond_init(&c->cv, NULL);
    c->srv = s;
    c->tool_idx = idx;
    c->out = tc->out;
    snprintf(c->identity, sizeof c->identity, "%s", tc->ss->identity);
    atomic_init(&c->state, CALL_RUNNING);
    c->ss = tc->ss;
    tc->ss->refs++;
    link_call(tc->ss, c);
    pthread_mutex_lock(&s->mu);
    s->quick_pending++;
    pthread_mutex_unlock(&s->mu);
    return c;
}

void wr_quick_submit(wr_call *c, json_object *args)
{
    wr_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    c->args = args;
    if (s->jobs_tail)
        s->jobs_tail->job_next = c;
    else
        s->jobs = c;
    s->jobs_tail = c;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- loop side ------------------------------------------------------------ */

static void send_progress(wr_call *c, const char *message)
{
    if (!c->progress_token || !c->out || atomic_load(&c->state) == CALL_CANCELLED)
        return;
    c->progress_seq++;
    char *m = progress_msg(c->progress_token, c->out_bytes + c->progress_seq, message);
    c->out->send(c->out, m, strlen(m), false);
    free(m);
    c->last_emit_ms = wr_now_ms(c->srv->ctx);
}

static void finish(wr_call *c)
{
    wr_server *s = c->srv;
    if (c->thread_started)
        pthread_join(c->thread, NULL);
    if (c->final_json && c->out)
        c->out->send(c->out, c->final_json, strlen(c->final_json), true);
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
    call_free(c);
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
            mark_ready(c); /* retry on the next wake */
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
                if (c->out)
                    c->out->send(c->out, m->json, strlen(m->json), false);
            } else {
                send_progress(c, m->json); /* a waiting-for-approval heartbeat */
            }
            free(m->json);
            free(m);
            m = next;
        }
        if (items[i].done) {
            /* flush output that arrived after the last tick */
            pthread_mutex_lock(&s->mu);
            bool dirty = c->chunk_dirty;
            pthread_mutex_unlock(&s->mu);
            if (dirty)
                wr_server_tick(s);
            finish(c);
        }
    }
    free(items);
}

void wr_server_tick(wr_server *s)
{
    int64_t now = wr_now_ms(s->ctx);
    for (wr_session *ss = s->sessions; ss; ss = ss->next)
        for (wr_call *c = ss->calls; c; c = c->next) {
            if (!c->progress_token)
                continue;
            char chunk[sizeof c->chunk + 1];
            size_t len = 0;
            pthread_mutex_lock(&s->mu);
            bool due = c->chunk_dirty && now - c->last_emit_ms >= s->cfg.progress_interval_ms;
            if (due || (c->done && c->chunk_dirty)) {
                len = wr_utf8_cut((unsigned char *)c->chunk, c->chunk_len);
                memcpy(chunk, c->chunk, len);
                /* keep an incomplete UTF-8 tail for the next chunk */
                memmove(c->chunk, c->chunk + len, c->chunk_len - len);
                c->chunk_len -= len;
                c->chunk_dirty = c->chunk_len > 0 && !c->done;
                due = true;
            }
            pthread_mutex_unlock(&s->mu);
            if (due) {
                char *text = wr_utf8_sanitize((unsigned char *)chunk, len);
                send_progress(c, text);
                free(text);
            } else if (now - c->last_emit_ms >= s->cfg.heartbeat_ms) {
                char text[100];
                snprintf(text, sizeof text, "running (%llds)", (long long)((now - c->started_ms) / 1000));
                send_progress(c, text);
            }
        }
}
