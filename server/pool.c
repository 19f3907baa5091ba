/* Quick calls (tools with the quick column, check) on a pool of threads:
 * on message-stream transports, which may answer out of order, the loop
 * keeps reading while the pool evaluates. Replies come back through the
 * same ready queue as runs (calls.c). */
#include "server/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    wr_tools_call(c->tool_idx, &tc, c->args, &result, &rpc_err);
    /* Freed here, not by the loop thread that parsed them: the loop is the
     * one thread every pipelined request passes through, and freeing the
     * tree was a tenth of its work per check (bench/mcp). */
    json_object_put(c->args);
    c->args = NULL;
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
    wr_call_mark_ready(c);
    pthread_mutex_unlock(&s->mu);
    if (first)
        wr_server_wake(s);
}

void wr_call_queue_push(wr_call_queue *q, wr_call *c)
{
    c->job_next = NULL;
    if (q->tail)
        q->tail->job_next = c;
    else
        q->head = c;
    q->tail = c;
}

wr_call *wr_call_queue_pop(wr_call_queue *q)
{
    wr_call *c = q->head;
    if (c && !(q->head = c->job_next))
        q->tail = NULL;
    return c;
}

static void *pool_main(void *arg)
{
    wr_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->jobs.head && !s->pool_stop)
            pthread_cond_wait(&s->pool_cv, &s->mu);
        wr_call *c = wr_call_queue_pop(&s->jobs);
        if (!c)
            break; /* stopping, and nothing left to answer */
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
    if (!s->npool || !tc->out || !tc->out->may_reorder || !tc->out->quick_on_pool)
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
    wr_call_link(tc->ss, c);
    pthread_mutex_lock(&s->mu);
    s->quick_pending++;
    pthread_mutex_unlock(&s->mu);
    return c;
}

void wr_quick_submit(wr_call *c, json_object *args)
{
    wr_server *s = c->srv;
    c->args = args;
    pthread_mutex_lock(&s->mu);
    wr_call_queue_push(&s->jobs, c);
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->mu);
}
