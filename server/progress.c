/* Progress of running calls: command output and waiting heartbeats as
 * notifications/progress (A/basic/utilities/progress.mdx). Workers buffer
 * output under srv->mu; the loop's tick sends it, rate-limited. */
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

void wr_call_on_output(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len)
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
    if (!c->progress_token || !c->out || atomic_load(&c->state) == CALL_CANCELLED)
        return;
    c->progress_seq++;
    char *m = progress_msg(c->progress_token, c->out_bytes + c->progress_seq, message);
    c->out->send(c->out, m, strlen(m), false);
    free(m);
    c->last_emit_ms = wr_now_ms(c->srv->ctx);
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
                wr_call_send_progress(c, text);
                free(text);
            } else if (now - c->last_emit_ms >= s->cfg.heartbeat_ms) {
                char text[100];
                snprintf(text, sizeof text, "running (%llds)", (long long)((now - c->started_ms) / 1000));
                wr_call_send_progress(c, text);
            }
        }
}
