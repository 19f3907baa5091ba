/* Progress of running calls: command output and waiting heartbeats as
 * notifications/progress (A/basic/utilities/progress.mdx). Workers buffer
 * output under srv->mu; the loop's tick sends it.
 *
 * Output streams in order and without loss up to the run's streaming
 * budget (--stream-budget-bytes, 1 MiB by default); past it, each tick
 * says how many bytes were not streamed and sends the newest output, so
 * the end is always seen. Text is never cut inside a UTF-8 character. */
#include "server/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Worker side, under srv->mu: bytes past the budget only feed the tail. */
static void overflow(wr_call *c, const unsigned char *data, size_t len)
{
    c->dropped += len;
    if (!c->tail && !(c->tail = malloc(WR_STREAM_TAIL_BYTES)))
        return; /* no memory: only counted, the marker still says so */
    if (len >= WR_STREAM_TAIL_BYTES) {
        memcpy(c->tail, data + len - WR_STREAM_TAIL_BYTES, WR_STREAM_TAIL_BYTES);
        c->tail_len = WR_STREAM_TAIL_BYTES;
        return;
    }
    size_t keep = c->tail_len + len > WR_STREAM_TAIL_BYTES ? WR_STREAM_TAIL_BYTES - len : c->tail_len;
    memmove(c->tail, c->tail + c->tail_len - keep, keep);
    memcpy(c->tail + keep, data, len);
    c->tail_len = keep + len;
}

void wr_call_on_output(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len)
{
    (void)command_id;
    (void)stream;
    wr_call *c = ud;
    if (!c->progress_token)
        return;
    size_t budget = c->srv->cfg.stream_budget_bytes;
    pthread_mutex_lock(&c->srv->mu);
    c->out_bytes += len;
    size_t take = 0;
    if (!c->over_budget) {
        take = budget - c->accepted < len ? budget - c->accepted : len;
        if (take < len) {
            /* the budget ends here: on a character boundary */
            take = wr_utf8_cut(data, take);
            c->over_budget = true;
        }
        if (c->slen + take > c->scap) {
            size_t cap = c->scap ? c->scap : 4096;
            while (cap < c->slen + take)
                cap *= 2;
            unsigned char *nb = realloc(c->sbuf, cap);
            if (!nb) {
                take = 0;
                c->over_budget = true;
            } else {
                c->sbuf = nb;
                c->scap = cap;
            }
        }
        memcpy(c->sbuf + c->slen, data, take);
        c->slen += take;
        c->accepted += take;
    }
    if (take < len)
        overflow(c, data + take, len - take);
    c->stream_dirty = true;
    pthread_mutex_unlock(&c->srv->mu);
    /* The loop's tick emits it; no wake per chunk. */
}

void wr_call_on_wait(void *ud, int64_t waited_ms, const char *request_id)
{
    wr_call *c = ud;
    /* about once a second from the gate: report every 5 s */
    if (!c->progress_token || (waited_ms > 1000 && (waited_ms / 1000) % 5 != 0))
        return;
    char text[200];
    snprintf(text, sizeof text, "waiting for approval of request %.80s (%llds)", request_id ? request_id : "?",
             (long long)(waited_ms / 1000));
    /* Plain text (not '{'): the loop sends it as progress with the next value. */
    wr_call_enqueue(c, strdup(text));
}

void wr_call_send_progress(wr_call *c, const char *message)
{
    wr_outlet *o = wr_call_outlet(c);
    if (!c->progress_token || !o || atomic_load(&c->state) == CALL_CANCELLED)
        return;
    c->progress_seq++;
    char *m = progress_msg(c->progress_token, c->out_bytes + c->progress_seq, message);
    o->send(o, m, strlen(m), false);
    free(m);
    c->last_emit_ms = wr_now_ms(c->srv->ctx);
}

/* Sends text (valid UTF-8 or not: sanitized) as progress messages of at
 * most WR_STREAM_TAIL_BYTES each, cut between characters. */
static void send_text(wr_call *c, const unsigned char *p, size_t len)
{
    while (len > 0) {
        size_t n = len > WR_STREAM_TAIL_BYTES ? wr_utf8_cut(p, WR_STREAM_TAIL_BYTES) : len;
        if (n == 0)
            n = len < WR_STREAM_TAIL_BYTES ? len : WR_STREAM_TAIL_BYTES; /* not UTF-8 at all */
        char *text = wr_utf8_sanitize(p, n);
        wr_call_send_progress(c, text ? text : "");
        free(text);
        p += n;
        len -= n;
    }
}

/* Loop side: what the worker buffered goes out in order. Unless the run is
 * done, an incomplete UTF-8 sequence at the end waits for its rest. */
static void flush_output(wr_server *s, wr_call *c)
{
    pthread_mutex_lock(&s->mu);
    bool done = c->done;
    size_t n = done ? c->slen : wr_utf8_cut(c->sbuf, c->slen);
    unsigned char *head = n ? malloc(n) : NULL;
    if (head) {
        memcpy(head, c->sbuf, n);
        memmove(c->sbuf, c->sbuf + n, c->slen - n);
        c->slen -= n;
    } else {
        n = 0;
    }
    unsigned char tail[WR_STREAM_TAIL_BYTES];
    size_t tlen = 0;
    uint64_t dropped = c->dropped;
    if (c->tail_len) {
        tlen = done ? c->tail_len : wr_utf8_cut(c->tail, c->tail_len);
        memcpy(tail, c->tail, tlen);
        dropped -= c->tail_len - tlen;
        memmove(c->tail, c->tail + tlen, c->tail_len - tlen);
        c->tail_len -= tlen;
    }
    c->dropped -= dropped;
    c->stream_dirty = c->slen > 0 || c->tail_len > 0;
    pthread_mutex_unlock(&s->mu);

    send_text(c, head, n);
    free(head);
    /* The newest output starts on a character: a cut-off lead is skipped. */
    size_t skip = 0;
    while (skip < tlen && (tail[skip] & 0xC0) == 0x80)
        skip++;
    if (dropped - (tlen - skip) > 0) {
        char marker[200];
        snprintf(marker, sizeof marker,
                 "[… %llu bytes not streamed; the full output is in the result and the store …]\n",
                 (unsigned long long)(dropped - (tlen - skip)));
        wr_call_send_progress(c, marker);
    }
    send_text(c, tail + skip, tlen - skip);
}

void wr_server_tick(wr_server *s)
{
    int64_t now = wr_now_ms(s->ctx);
    wr_tasks_expire(s);
    for (wr_session *ss = s->sessions; ss; ss = ss->next)
        for (wr_call *c = ss->calls; c; c = c->next) {
            if (!c->progress_token)
                continue;
            pthread_mutex_lock(&s->mu);
            bool due = c->stream_dirty && (c->done || now - c->last_emit_ms >= s->cfg.progress_interval_ms);
            pthread_mutex_unlock(&s->mu);
            if (due) {
                flush_output(s, c);
            } else if (now - c->last_emit_ms >= s->cfg.heartbeat_ms) {
                char text[100];
                snprintf(text, sizeof text, "running (%llds)", (long long)((now - c->started_ms) / 1000));
                wr_call_send_progress(c, text);
            }
        }
}
