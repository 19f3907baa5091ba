/* The web approval console's API (issue 11). Approvers list and inspect
 * pending requests, approve with an artifact their browser signed with
 * their own key (the key never reaches us), deny, revoke, and see the last
 * receipts with their verification status.
 *
 * An approval posted here goes through wr_approval_accept, the routine
 * behind `warrant approvals approve` and submit_approval: the console adds
 * no rule of its own except that the artifact names the signed-in approver.
 * Agent-written text is returned as data; the page escapes it. */
#include "server/console_internal.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "receipts/receipts.h"

/* From the build: server/console/ files embedded by embed_console.py. */
const char *wr_console_asset(const char *name, size_t *len);

#define MAX_LISTED_REQUESTS 100
#define LAST_RECEIPTS       20

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

bool wr_console_owns(const char *uri)
{
    size_t n = strlen(WR_CONSOLE_PREFIX);
    return !strncmp(uri, WR_CONSOLE_PREFIX, n) && (uri[n] == '\0' || uri[n] == '/');
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

static void reply_error(wr_console_reply *out, int status, const char *message)
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
    reply_error(out, status_of(e->code), e->message);
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
    reply_error(out, 404, "no such console file");
}

/* ---- requests ------------------------------------------------------------- */

static int collect_id(void *ud, const wr_approval_request *r)
{
    wr_strv *ids = ud;
    return ids->n >= MAX_LISTED_REQUESTS || wr_strv_push(ids, r->request_id) != WR_OK;
}

static wr_contract *parse_stored(const wr_contracts *cs, const wr_approval_request *r)
{
    wr_contract *ct = NULL;
    wr_error e = {0};
    return cs && wr_contract_parse(cs, r->contract_json, strlen(r->contract_json), &ct, &e) == WR_OK ? ct : NULL;
}

/* Requests an approver can still act on (pending, or approved and unused:
 * a second approver, a revocation), newest first. */
static json_object *actionable_requests(wr_console *c, wr_error *err)
{
    wr_store *st = wr_gate_store(c->g);
    const wr_ctx *ctx = wr_gate_ctx(c->g);
    wr_strv ids = {0};
    if (wr_store_list_approval_requests(st, "pending", collect_id, &ids, err) != WR_OK) {
        wr_strv_free(&ids);
        return NULL;
    }
    const wr_contracts *cs = wr_gate_contracts(c->g);
    int64_t now = wr_now_ms(ctx);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; arr && i < ids.n; i++) {
        wr_approval_state s;
        if (wr_approval_state_get(st, ids.v[i], ctx, &s, err) != WR_OK) {
            json_object_put(arr);
            arr = NULL;
            break;
        }
        if (!strcmp(s.status, "pending") || !strcmp(s.status, "approved")) {
            wr_contract *ct = parse_stored(cs, &s.request);
            json_object_array_add(arr, wr_approval_state_json(&s, ct, now));
            wr_contract_free(ct);
        }
        wr_approval_state_clear(&s);
    }
    wr_strv_free(&ids);
    return arr;
}

static void list_requests(wr_console *c, wr_console_reply *out)
{
    wr_error err = {0};
    json_object *arr = actionable_requests(c, &err);
    if (!arr)
        return reply_err(out, &err);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "requests", arr);
    reply_json(out, 200, o);
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* The stored artifacts, as approvers need to see them: who, how, when,
 * and whether each still counts. */
static json_object *artifacts_view(wr_store *st, json_object *artifacts)
{
    json_object *arr = json_object_new_array();
    size_t n = artifacts ? json_object_array_length(artifacts) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(artifacts, i), *who = NULL;
        json_object_object_get_ex(a, "approver", &who);
        const char *id = jstr(a, "approval_id");
        json_object *v = json_object_new_object();
        json_object_object_add(v, "approval_id", json_object_new_string(id ? id : ""));
        json_object_object_add(v, "identity",
                               json_object_new_string(jstr(who, "identity") ? jstr(who, "identity") : ""));
        json_object_object_add(v, "method", json_object_new_string(jstr(who, "method") ? jstr(who, "method") : ""));
        json_object_object_add(v, "approved_at",
                               json_object_new_string(jstr(a, "approved_at") ? jstr(a, "approved_at") : ""));
        json_object_object_add(v, "expires_at",
                               json_object_new_string(jstr(a, "expires_at") ? jstr(a, "expires_at") : ""));
        json_object_object_add(v, "revoked", json_object_new_boolean(id && wr_store_approval_revoked(st, id)));
        json_object_object_add(v, "consumed", json_object_new_boolean(id && wr_store_approval_consumed(st, id)));
        json_object_array_add(arr, v);
    }
    return arr;
}

/* One request in full: the approver's view, the whole stored contract, the
 * decision made afresh under the active policy (classification, the risk
 * class that gates approval, reasons) and the approvals already in. */
static void show_request(wr_console *c, const char *id, wr_console_reply *out)
{
    wr_store *st = wr_gate_store(c->g);
    const wr_ctx *ctx = wr_gate_ctx(c->g);
    wr_error err = {0};
    wr_approval_state s;
    if (wr_approval_state_get(st, id, ctx, &s, &err) != WR_OK)
        return reply_err(out, &err);
    wr_contract *ct = parse_stored(wr_gate_contracts(c->g), &s.request);
    int64_t now = wr_now_ms(ctx);
    json_object *o = wr_approval_state_json(&s, ct, now);
    json_object_object_add(o, "contract",
                           wr_json_parse(s.request.contract_json, strlen(s.request.contract_json), NULL, NULL));
    const wr_policy *p = wr_gate_policy_acquire(c->g);
    wr_decision *d = NULL;
    if (ct && wr_policy_evaluate(p, ct, ctx, &d, &err) == WR_OK) {
        json_object *dj = wr_decision_to_json(d);
        json_object_object_add(dj, "risk_class", json_object_new_string(d->risk_class));
        json_object_object_add(dj, "approval_effects", wr_strv_to_json(&d->approval_effects));
        json_object_object_add(o, "decision", dj);
    }
    json_object_object_add(o, "policy", json_object_new_string(p->name));
    json_object_object_add(o, "max_lifetime_sec", json_object_new_int64(p->approval.max_lifetime_sec));
    wr_gate_policy_release(c->g, p);
    wr_decision_free(d);
    wr_contract_free(ct);
    char t[WR_TIME_LEN];
    wr_time_format(now, t);
    json_object_object_add(o, "server_time", json_object_new_string(t));
    json_object_object_add(o, "artifacts", artifacts_view(st, s.approvals));
    wr_approval_state_clear(&s);
    reply_json(out, 200, o);
}

/* ---- decisions ------------------------------------------------------------------ */

static json_object *parse_body(const char *body, size_t len, wr_console_reply *out)
{
    wr_error err = {0};
    json_object *o = len ? wr_json_parse(body, len, NULL, &err) : json_object_new_object();
    if (!o || !json_object_is_type(o, json_type_object)) {
        reply_error(out, 400, o ? "the body must be a JSON object" : err.message);
        json_object_put(o);
        return NULL;
    }
    return o;
}

static void reply_state(wr_console *c, const char *id, wr_console_reply *out)
{
    wr_error err = {0};
    wr_approval_state s;
    if (wr_approval_state_get(wr_gate_store(c->g), id, wr_gate_ctx(c->g), &s, &err) != WR_OK)
        return reply_err(out, &err);
    json_object *o = wr_approval_state_json(&s, NULL, wr_now_ms(wr_gate_ctx(c->g)));
    wr_approval_state_clear(&s);
    reply_json(out, 200, o);
}

/* The artifact was signed in the browser; it must be for this request and
 * name the approver who is signed in, then it meets the CLI's checks. */
static void approve(wr_console *c, const char *id, const char *approver, json_object *art, wr_console_reply *out)
{
    wr_store *st = wr_gate_store(c->g);
    wr_error err = {0};
    json_object *who = NULL;
    json_object_object_get_ex(art, "approver", &who);
    const char *named = jstr(who, "identity");
    if (!named || strcmp(named, approver) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "the artifact names approver \"%.200s\" but you are signed in as \"%.200s\"",
                 named ? named : "", approver);
        return reply_error(out, 403, msg);
    }
    wr_approval_request r;
    if (wr_store_get_approval_request(st, id, &r, &err) != WR_OK)
        return reply_err(out, &err);
    const char *sha = jstr(art, "contract_sha256");
    bool bound = sha && !strcasecmp(sha, r.contract_sha256);
    wr_approval_request_clear(&r);
    if (!bound)
        return reply_error(out, 400, "the artifact is bound to another contract than this request's");
    const wr_policy *p = wr_gate_policy_acquire(c->g);
    char stored_for[WR_ID_MAX];
    int rc = wr_approval_accept(st, p, art, wr_gate_server_key(c->g)->pk, wr_gate_ctx(c->g), stored_for, &err);
    wr_gate_policy_release(c->g, p);
    if (rc != WR_OK)
        return reply_err(out, &err);
    reply_state(c, stored_for, out);
}

/* Only approvers the active policy declares may decide: an approver token
 * for a name the policy does not list can look, not veto. */
static bool declared(wr_console *c, const char *approver)
{
    const wr_policy *p = wr_gate_policy_acquire(c->g);
    bool found = false;
    for (size_t i = 0; i < p->napprovers; i++)
        found |= !strcmp(p->approvers[i].identity, approver);
    wr_gate_policy_release(c->g, p);
    return found;
}

static void decide(wr_console *c, const char *id, const char *verb, const char *approver, const char *body, size_t len,
                   wr_console_reply *out)
{
    if (!declared(c, approver))
        return reply_error(out, 403, "you are not an approver of the active policy");
    json_object *in = parse_body(body, len, out);
    if (!in)
        return;
    if (!strcmp(verb, "approve")) {
        approve(c, id, approver, in, out);
        json_object_put(in);
        return;
    }
    /* deny and revoke record who did it: the reason travels into the
     * request and the revocation ledger */
    const char *why = jstr(in, "reason");
    char reason[700];
    snprintf(reason, sizeof reason, "%s by %.200s in the console%s%.400s", !strcmp(verb, "deny") ? "denied" : "revoked",
             approver, why && *why ? ": " : "", why ? why : "");
    const char *one = jstr(in, "approval_id");
    wr_error err = {0};
    int rc;
    if (!strcmp(verb, "deny"))
        rc = wr_approval_deny(wr_gate_store(c->g), id, reason, wr_gate_ctx(c->g), &err);
    else
        rc = wr_approval_revoke(wr_gate_store(c->g), one ? one : id, reason, wr_gate_ctx(c->g), &err);
    json_object_put(in);
    if (rc != WR_OK)
        return reply_err(out, &err);
    reply_state(c, id, out);
}

/* ---- receipts ------------------------------------------------------------------------ */

typedef struct last_receipts {
    char *json[LAST_RECEIPTS];
    int64_t seq[LAST_RECEIPTS];
    size_t n, next;
} last_receipts;

static int keep_last(void *ud, int64_t seq, const char *json)
{
    last_receipts *l = ud;
    char *copy = strdup(json);
    if (!copy)
        return 1;
    free(l->json[l->next]);
    l->json[l->next] = copy;
    l->seq[l->next] = seq;
    l->next = (l->next + 1) % LAST_RECEIPTS;
    if (l->n < LAST_RECEIPTS)
        l->n++;
    return 0;
}

/* The newest receipts, newest first, each verified with the server's key
 * (schema, key id, signature) and its link to the one before checked. */
static void list_receipts(wr_console *c, wr_console_reply *out)
{
    last_receipts l = {0};
    wr_error err = {0};
    if (wr_store_iter_receipts(wr_gate_store(c->g), keep_last, &l, &err) != WR_OK)
        return reply_err(out, &err);
    const unsigned char *pk = wr_gate_server_key(c->g)->pk;
    json_object *arr = json_object_new_array();
    char prev_hash[WR_SHA256_HEX_LEN] = "";
    json_object **items = calloc(l.n ? l.n : 1, sizeof *items);
    /* oldest to newest, so that each link can be checked */
    for (size_t k = 0; items && k < l.n; k++) {
        size_t i = (l.next + LAST_RECEIPTS - l.n + k) % LAST_RECEIPTS;
        wr_error e = {0};
        json_object *r = wr_json_parse(l.json[i], strlen(l.json[i]), NULL, &e);
        json_object *v = json_object_new_object();
        json_object_object_add(v, "seq", json_object_new_int64(l.seq[i]));
        bool ok = r && wr_receipt_verify(r, pk, &e) == WR_OK;
        json_object_object_add(v, "verified", json_object_new_boolean(ok));
        if (!ok)
            json_object_object_add(v, "verify_error", json_object_new_string(e.message));
        const char *prev = jstr(r, "prev_receipt_sha256");
        if (prev_hash[0])
            json_object_object_add(v, "linked", json_object_new_boolean(prev && !strcmp(prev, prev_hash)));
        if (!r || wr_receipt_hash(r, prev_hash, &e) != WR_OK)
            prev_hash[0] = '\0';
        json_object_object_add(v, "receipt", r);
        items[k] = v;
    }
    for (size_t k = l.n; items && k-- > 0;)
        json_object_array_add(arr, items[k]);
    free(items);
    for (size_t i = 0; i < LAST_RECEIPTS; i++)
        free(l.json[i]);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "receipts", arr);
    reply_json(out, 200, o);
}

/* ---- routing ------------------------------------------------------------------------- */

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
            return reply_error(out, 405, "the console's files are read with GET");
        return serve_asset(uri, out);
    }
    const char *route = uri + strlen(WR_CONSOLE_API_PREFIX);
    if (get && !strcmp(route, "whoami")) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "identity", json_object_new_string(approver));
        return reply_json(out, 200, o);
    }
    if (get && !strcmp(route, "requests"))
        return list_requests(c, out);
    if (get && !strcmp(route, "receipts"))
        return list_receipts(c, out);
    if (!strncmp(route, "requests/", 9)) {
        const char *id = route + 9, *slash = strchr(id, '/');
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        char rid[WR_ID_MAX];
        if (!id_ok(id, idlen))
            return reply_error(out, 404, "no such request");
        snprintf(rid, sizeof rid, "%.*s", (int)idlen, id);
        if (get && !slash)
            return show_request(c, rid, out);
        const char *verb = slash ? slash + 1 : "";
        if (post && (!strcmp(verb, "approve") || !strcmp(verb, "deny") || !strcmp(verb, "revoke")))
            return decide(c, rid, verb, approver, body, len, out);
    }
    reply_error(out, 404, "no such console endpoint");
}

/* ---- live updates -------------------------------------------------------------------- */

char *wr_console_next_event(wr_console *c, wr_console_seen *seen)
{
    wr_error err = {0};
    int64_t seq = 0;
    char head[WR_SHA256_HEX_LEN];
    json_object *arr = actionable_requests(c, &err);
    if (!arr || wr_store_chain_head(wr_gate_store(c->g), &seq, head, &err) != WR_OK) {
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
