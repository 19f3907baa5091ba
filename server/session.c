/* The server object and its sessions: creation, references, closing.
 * What a session does with a message is dispatch.c's. */
#include "server/core.h"

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ids in the tree belong to the calls. */
static void id_not_owned(void *id)
{
    (void)id;
}

static void session_destroy(wr_session *ss)
{
    json_object_put(ss->client_caps);
    tdestroy(ss->inflight, id_not_owned);
    free(ss);
}

/* ------------------------------------------------------------------------ */

int wr_server_new(wr_gate *g, const wr_server_config *cfg, wr_server **out, wr_error *err)
{
    wr_server *s = calloc(1, sizeof *s);
    if (!s)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    s->gate = g;
    s->ctx = wr_gate_ctx(g);
    if (cfg)
        s->cfg = *cfg;
    if (!s->cfg.max_message_bytes)
        s->cfg.max_message_bytes = WR_JSON_DEFAULT_MAX_BYTES;
    if (s->cfg.max_depth <= 0)
        s->cfg.max_depth = WR_JSON_DEFAULT_MAX_DEPTH;
    if (s->cfg.max_runs <= 0)
        s->cfg.max_runs = 32;
    s->cfg.max_runs_per_client = wr_limit_per_client(s->cfg.max_runs, s->cfg.max_runs_per_client);
    if (s->cfg.elicitation_timeout_ms <= 0)
        s->cfg.elicitation_timeout_ms = 120000;
    if (s->cfg.heartbeat_ms <= 0 || s->cfg.heartbeat_ms > 30000)
        s->cfg.heartbeat_ms = 15000;
    if (s->cfg.progress_interval_ms <= 0)
        s->cfg.progress_interval_ms = 200;
    if (s->cfg.stream_budget_bytes == 0)
        s->cfg.stream_budget_bytes = WR_STREAM_DEFAULT_BUDGET;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    pthread_cond_init(&s->run_cv, NULL);
    wr_json_limits lim = {.max_bytes = s->cfg.max_message_bytes, .max_depth = s->cfg.max_depth};
    if (!(s->parser = wr_json_parser_new(&lim, err)) || wr_tools_build(s, err) != WR_OK ||
        wr_server_start_pool(s, err) != WR_OK) {
        wr_server_free(s);
        return err ? err->code : WR_E_INTERNAL;
    }
    wr_gate_prepare_run(s->gate); /* the first run's live mark */
    *out = s;
    return WR_OK;
}

int wr_limit_per_client(int total, int wanted)
{
    int half = total / 2 > 0 ? total / 2 : 1;
    return wanted > 0 && wanted <= half ? wanted : half;
}

void wr_server_free(wr_server *s)
{
    if (!s)
        return;
    wr_server_stop_pool(s);
    wr_server_stop_runs(s);
    wr_tasks_free(s);
    while (s->sessions) {
        wr_session *ss = s->sessions;
        s->sessions = ss->next;
        session_destroy(ss);
    }
    wr_tools_free(s);
    wr_json_parser_free(s->parser);
    free(s->clients);
    pthread_cond_destroy(&s->pool_cv);
    pthread_cond_destroy(&s->run_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void wr_server_set_waker(wr_server *s, void (*wake)(void *ud), void *ud)
{
    s->wake = wake;
    s->wake_ud = ud;
}

const wr_server_config *wr_server_get_config(const wr_server *s)
{
    return &s->cfg;
}
wr_gate *wr_server_gate(wr_server *s)
{
    return s->gate;
}

/* ------------------------------------------------------------------------ */

wr_session *wr_session_new(wr_server *s, const char *identity, wr_outlet *default_outlet)
{
    wr_session *ss = calloc(1, sizeof *ss);
    if (!ss)
        return NULL;
    ss->srv = s;
    ss->refs = 1;
    snprintf(ss->identity, sizeof ss->identity, "%s", identity ? identity : "");
    ss->default_out = default_outlet;
    ss->log_level = -1;
    ss->next = s->sessions;
    s->sessions = ss;
    return ss;
}

void wr_session_set_elicitation_human(wr_session *ss, const char *person)
{
    snprintf(ss->elicitation_human, sizeof ss->elicitation_human, "%s", person ? person : "");
}

void wr_session_unref(wr_session *ss)
{
    if (--ss->refs > 0)
        return;
    wr_session **pp = &ss->srv->sessions;
    while (*pp && *pp != ss)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ss->next;
    session_destroy(ss);
}

void wr_session_close(wr_session *ss, bool cancel_runs)
{
    if (ss->closed)
        return;
    ss->closed = true;
    ss->default_out = NULL;
    for (wr_call *c = ss->calls; c; c = c->next) {
        c->out = NULL;               /* the connection is gone: results stay in the receipts */
        if (cancel_runs && !c->task) /* a task outlives its connection */
            wr_call_cancel(c, "session closed");
    }
    wr_session_unref(ss);
}

void wr_session_outlet_gone(wr_session *ss, wr_outlet *o)
{
    if (ss->default_out == o)
        ss->default_out = NULL;
    for (wr_call *c = ss->calls; c; c = c->next)
        if (c->out == o)
            c->out = NULL;
    wr_tasks_outlet_gone(ss->srv, o);
}

void wr_session_set_default_outlet(wr_session *ss, wr_outlet *o)
{
    ss->default_out = o;
}
wr_outlet *wr_session_default_outlet(const wr_session *ss)
{
    return ss->default_out;
}
const char *wr_session_identity(const wr_session *ss)
{
    return ss->identity;
}
const char *wr_session_version(const wr_session *ss)
{
    return ss->version;
}
bool wr_session_busy(const wr_session *ss)
{
    return ss->calls != NULL;
}
bool wr_session_closed(const wr_session *ss)
{
    return ss->closed;
}
void wr_session_ref(wr_session *ss)
{
    ss->refs++;
}
