/* In-band human approval (MCP elicitation): the gate's ask_human callback
 * sends elicitation/create on the live request from the worker and waits;
 * the loop routes the client's response back here. */
#include "server/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* In-band approval: elicitation/create on the live request, answered by a
 * response the loop routes here (mcp-checklist §5, legacy adapter). */
int wr_call_ask_human(void *ud, const wr_contract *ct, const wr_decision *d, const char *request_id)
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
    wr_call_enqueue(c, text);

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
        wr_call_enqueue(c, strdup(wr_json_compact(n)));
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
