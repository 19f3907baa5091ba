/* The web approval console (issue 11): its embedded files and the routing
 * of its JSON API to the gate's approver functions (gate/approver.c).
 * Approvers list and inspect pending requests, approve with an artifact
 * their browser signed with their own key (the key never reaches us), deny,
 * revoke, and see the last receipts with their verification status.
 * Agent-written text is returned as data; the page escapes it. */
#include "server/console_internal.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* From the build: server/console/'s files, embedded by embed.py. */
const char *wr_console_asset(const char *name, size_t *len);

struct wr_console {
    wr_gate *g;
};

wr_console *wr_console_new(wr_gate *g)
{
    wr_console *c = calloc(1, sizeof *c);
    if (c)
        c->g = g;
    return c;
}

void wr_console_free(wr_console *c)
{
    free(c);
}

bool wr_console_is_api(const char *uri)
{
    return !strncmp(uri, WR_CONSOLE_API_PREFIX, strlen(WR_CONSOLE_API_PREFIX));
}

void wr_console_reply_clear(wr_console_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ---- replies ------------------------------------------------------------- */

static void reply_json(wr_console_reply *out, int status, json_object *o)
{
    out->status = status;
    out->content_type = "application/json";
    out->body = o ? strdup(wr_json_compact(o)) : NULL;
    out->len = out->body ? strlen(out->body) : 0;
    if (o && !out->body)
        out->status = 500;
    json_object_put(o);
}

void wr_console_error(wr_console_reply *out, int status, const char *message)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(message));
    reply_json(out, status, o);
}

static int status_of(int code)
{
    switch (code) {
    case WR_E_NOTFOUND:
        return 404;
    case WR_E_INVALID:
        return 400;
    case WR_E_DENIED:
    case WR_E_CRYPTO:
        return 403;
    case WR_E_CONFLICT:
        return 409;
    default:
        return 500;
    }
}

static void reply_err(wr_console_reply *out, const wr_error *e)
{
    wr_console_error(out, status_of(e->code), e->message);
}

/* ---- static assets ---------------------------------------------------------- */

static void serve_asset(const char *uri, wr_console_reply *out)
{
    const char *name = uri + strlen(WR_CONSOLE_PREFIX);
    if (!*name || !strcmp(name, "/"))
        name = "/index.html";
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
    };
    size_t len = 0;
    const char *data = wr_console_asset(name + 1, &len);
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; data && dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext)) {
            out->status = 200;
            out->content_type = types[i].type;
            out->static_body = data;
            out->len = len;
            return;
        }
    wr_console_error(out, 404, "no such console file");
}

/* ---- the API: the gate does the work --------------------------------------- */

/* o is read after rc was computed: the gate call fills it. */
static void reply_result(wr_console_reply *out, int rc, json_object *const *result, const char *key,
                         const wr_error *err)
{
    if (rc != WR_OK)
        return reply_err(out, err);
    json_object *o = *result;
    if (key) {
        json_object *w = json_object_new_object();
        json_object_object_add(w, key, o);
        o = w;
    }
    reply_json(out, 200, o);
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static void decide(wr_console *c, const char *id, const char *verb, const char *approver, const char *body, size_t len,
                   wr_console_reply *out)
{
    wr_error err = {0};
    json_object *in = len ? wr_json_parse(body, len, NULL, &err) : json_object_new_object();
    if (!in || !json_object_is_type(in, json_type_object)) {
        wr_console_error(out, 400, in ? "the body must be a JSON object" : err.message);
        json_object_put(in);
        return;
    }
    json_object *state = NULL;
    int rc;
    if (!strcmp(verb, "approve"))
        rc = wr_gate_approver_approve(c->g, approver, id, in, &state, &err);
    else if (!strcmp(verb, "deny"))
        rc = wr_gate_approver_deny(c->g, approver, id, jstr(in, "reason"), &state, &err);
    else
        rc = wr_gate_approver_revoke(c->g, approver, id, jstr(in, "approval_id"), jstr(in, "reason"), &state, &err);
    json_object_put(in);
    reply_result(out, rc, &state, NULL, &err);
}

/* ---- routing ------------------------------------------------------------------------- */

#define REQUEST_ROUTE "requests/" /* requests/ID, requests/ID/VERB */

static bool id_ok(const char *s, size_t n)
{
    if (!n || n >= WR_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

void wr_console_handle(wr_console *c, const char *method, const char *uri, const char *approver, const char *body,
                       size_t len, wr_console_reply *out)
{
    memset(out, 0, sizeof *out);
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!wr_console_is_api(uri)) {
        if (!get)
            return wr_console_error(out, 405, "the console's files are read with GET");
        return serve_asset(uri, out);
    }
    const char *route = uri + strlen(WR_CONSOLE_API_PREFIX);
    if (get && !strcmp(route, "whoami")) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "identity", json_object_new_string(approver));
        return reply_json(out, 200, o);
    }
    wr_error err = {0};
    json_object *o = NULL;
    if (get && !strcmp(route, "requests"))
        return reply_result(out, wr_gate_approver_queue(c->g, &o, &err), &o, "requests", &err);
    if (get && !strcmp(route, "receipts"))
        return reply_result(out, wr_gate_recent_receipts(c->g, &o, &err), &o, "receipts", &err);
    if (!strncmp(route, REQUEST_ROUTE, strlen(REQUEST_ROUTE))) {
        const char *id = route + strlen(REQUEST_ROUTE), *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        char rid[WR_ID_MAX];
        if (!id_ok(id, idlen))
            return wr_console_error(out, 404, "no such request");
        snprintf(rid, sizeof rid, "%.*s", (int)idlen, id);
        if (get && !slash)
            return reply_result(out, wr_gate_approver_request(c->g, rid, &o, &err), &o, NULL, &err);
        const char *verb = slash ? slash + 1 : "";
        if (post && (!strcmp(verb, "approve") || !strcmp(verb, "deny") || !strcmp(verb, "revoke")))
            return decide(c, rid, verb, approver, body, len, out);
    }
    wr_console_error(out, 404, "no such console endpoint");
}

/* ---- live updates -------------------------------------------------------------------- */

char *wr_console_next_event(wr_console *c, wr_console_seen *seen)
{
    wr_error err = {0};
    int64_t seq = 0;
    json_object *arr = NULL;
    if (wr_gate_approver_queue(c->g, &arr, &err) != WR_OK || wr_gate_receipt_head(c->g, &seq, &err) != WR_OK) {
        json_object_put(arr);
        return NULL; /* the store is busy: the next check tells */
    }
    const char *text = wr_json_compact(arr);
    unsigned char now[32];
    crypto_hash_sha256(now, (const unsigned char *)text, strlen(text));
    bool queue = sodium_memcmp(now, seen->requests, sizeof now) != 0, sealed = seq != seen->receipt_seq;
    size_t n = strlen(text) + 128;
    char *ev = queue || sealed ? malloc(n) : NULL;
    if (ev) {
        int k = queue ? snprintf(ev, n, "event: requests\ndata: %s\n\n", text) : 0;
        if (sealed)
            snprintf(ev + k, n - (size_t)k, "event: receipts\ndata: {\"seq\":%lld}\n\n", (long long)seq);
        memcpy(seen->requests, now, sizeof now);
        seen->receipt_seq = seq;
    }
    json_object_put(arr);
    return ev;
}
