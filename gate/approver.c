/* The approver's side of the gate (issue 11): what the web console shows
 * and does. Approvals still go through wr_gate_submit_approval, the same
 * routine as the CLI's and submit_approval's; this file adds only the
 * console's own conditions (the artifact names the signed-in approver and
 * this request; only declared approvers deny or revoke). */
#include "gate/gate_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "approvals/approvals.h"
#include "receipts/receipts.h"

#define MAX_LISTED_REQUESTS 100

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static wr_contract *parse_stored(wr_gate *g, const wr_approval_request *r)
{
    wr_contract *ct = NULL;
    wr_error e = {0};
    return wr_contract_parse(wr_gate_contracts(g), r->contract_json, strlen(r->contract_json), &ct, &e) == WR_OK ? ct
                                                                                                                 : NULL;
}

/* ---- the queue ------------------------------------------------------------- */

static int collect_id(void *ud, const wr_approval_request *r)
{
    wr_strv *ids = ud;
    return ids->n >= MAX_LISTED_REQUESTS || wr_strv_push(ids, r->request_id) != WR_OK;
}

int wr_gate_approver_queue(wr_gate *g, json_object **out, wr_error *err)
{
    *out = NULL;
    wr_store *st = wr_gate__store(g);
    const wr_ctx *ctx = wr_gate_ctx(g);
    wr_strv ids = {0};
    /* stored "pending" covers effective pending and approved-but-unused */
    int rc = wr_store_list_approval_requests(st, "pending", collect_id, &ids, err);
    int64_t now = wr_now_ms(ctx);
    json_object *arr = rc == WR_OK ? json_object_new_array() : NULL;
    for (size_t i = 0; arr && i < ids.n; i++) {
        wr_approval_state s;
        if ((rc = wr_approval_state_get(st, ids.v[i], ctx, &s, err)) != WR_OK)
            break;
        if (!strcmp(s.status, "pending") || !strcmp(s.status, "approved")) {
            wr_contract *ct = parse_stored(g, &s.request);
            json_object_array_add(arr, wr_approval_state_json(&s, ct, now));
            wr_contract_free(ct);
        }
        wr_approval_state_clear(&s);
    }
    wr_strv_free(&ids);
    if (rc != WR_OK) {
        json_object_put(arr);
        return rc;
    }
    *out = arr;
    return WR_OK;
}

/* ---- one request -------------------------------------------------------------- */

/* The stored artifacts as approvers need them: who, how, when, and whether
 * each still counts. */
static json_object *artifacts_view(wr_store *st, json_object *artifacts)
{
    json_object *arr = json_object_new_array();
    size_t n = artifacts ? json_object_array_length(artifacts) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(artifacts, i), *who = NULL;
        json_object_object_get_ex(a, "approver", &who);
        const char *id = jstr(a, "approval_id");
        json_object *v = json_object_new_object();
        static const char *const copied[] = {"approval_id", "approved_at", "expires_at", "scope"};
        for (size_t k = 0; k < sizeof copied / sizeof copied[0]; k++)
            json_object_object_add(v, copied[k], json_object_new_string(jstr(a, copied[k]) ? jstr(a, copied[k]) : ""));
        json_object_object_add(v, "identity",
                               json_object_new_string(jstr(who, "identity") ? jstr(who, "identity") : ""));
        json_object_object_add(v, "method", json_object_new_string(jstr(who, "method") ? jstr(who, "method") : ""));
        json_object_object_add(v, "revoked", json_object_new_boolean(id && wr_store_approval_revoked(st, id)));
        json_object_object_add(v, "consumed", json_object_new_boolean(id && wr_store_approval_consumed(st, id)));
        json_object_array_add(arr, v);
    }
    return arr;
}

int wr_gate_approver_request(wr_gate *g, const char *request_id, json_object **out, wr_error *err)
{
    *out = NULL;
    wr_store *st = wr_gate__store(g);
    const wr_ctx *ctx = wr_gate_ctx(g);
    wr_approval_state s;
    int rc = wr_approval_state_get(st, request_id, ctx, &s, err);
    if (rc != WR_OK)
        return rc;
    wr_contract *ct = parse_stored(g, &s.request);
    int64_t now = wr_now_ms(ctx);
    json_object *o = wr_approval_state_json(&s, ct, now);
    json_object_object_add(o, "contract",
                           wr_json_parse(s.request.contract_json, strlen(s.request.contract_json), NULL, NULL));
    const wr_policy *p = wr_gate_policy_acquire(g);
    wr_decision *d = NULL;
    wr_error e = {0};
    if (ct && wr_policy_evaluate(p, ct, ctx, &d, &e) == WR_OK) {
        json_object *dj = wr_decision_to_json(d);
        json_object_object_add(dj, "risk_class", json_object_new_string(d->risk_class));
        json_object_object_add(dj, "approval_effects", wr_strv_to_json(&d->approval_effects));
        json_object_object_add(o, "decision", dj);
    }
    json_object_object_add(o, "policy", json_object_new_string(p->name));
    json_object_object_add(o, "max_lifetime_sec", json_object_new_int64(p->approval.max_lifetime_sec));
    wr_gate_policy_release(g, p);
    wr_decision_free(d);
    wr_contract_free(ct);
    char t[WR_TIME_LEN];
    wr_time_format(now, t);
    json_object_object_add(o, "server_time", json_object_new_string(t));
    json_object_object_add(o, "artifacts", artifacts_view(st, s.approvals));
    wr_approval_state_clear(&s);
    *out = o;
    return WR_OK;
}

static int state_view(wr_gate *g, const char *request_id, json_object **out, wr_error *err)
{
    wr_approval_state s;
    int rc = wr_approval_state_get(wr_gate__store(g), request_id, wr_gate_ctx(g), &s, err);
    if (rc != WR_OK)
        return rc;
    *out = wr_approval_state_json(&s, NULL, wr_now_ms(wr_gate_ctx(g)));
    wr_approval_state_clear(&s);
    return WR_OK;
}

/* ---- decisions ---------------------------------------------------------------- */

int wr_gate_approver_approve(wr_gate *g, const char *approver, const char *request_id, json_object *artifact,
                             json_object **state_out, wr_error *err)
{
    *state_out = NULL;
    json_object *who = NULL;
    json_object_object_get_ex(artifact, "approver", &who);
    const char *named = jstr(who, "identity");
    if (!named || strcmp(named, approver) != 0)
        return wr_errorf(err, WR_E_DENIED, "/approver/identity",
                         "the artifact names approver \"%.200s\" but you are signed in as \"%.200s\"",
                         named ? named : "", approver);
    wr_approval_request r;
    int rc = wr_store_get_approval_request(wr_gate__store(g), request_id, &r, err);
    if (rc != WR_OK)
        return rc;
    const char *sha = jstr(artifact, "contract_sha256");
    bool bound = sha && !strcasecmp(sha, r.contract_sha256);
    wr_approval_request_clear(&r);
    if (!bound)
        return wr_errorf(err, WR_E_INVALID, "/contract_sha256",
                         "the artifact is bound to another contract than request %.100s's", request_id);
    char stored_for[WR_ID_MAX];
    if ((rc = wr_gate_submit_approval(g, artifact, stored_for, err)) != WR_OK)
        return rc;
    return state_view(g, stored_for, state_out, err);
}

/* Only approvers the active policy declares may decide: an approver token
 * for a name the policy does not list can look, not veto. */
static int declared(wr_gate *g, const char *approver, wr_error *err)
{
    const wr_policy *p = wr_gate_policy_acquire(g);
    bool found = false;
    for (size_t i = 0; i < p->napprovers; i++)
        found |= !strcmp(p->approvers[i].identity, approver);
    wr_gate_policy_release(g, p);
    return found ? WR_OK : wr_errorf(err, WR_E_DENIED, "", "%.200s is not an approver of the active policy", approver);
}

/* The reason recorded with a deny or revocation says who, and where. */
static void reason_of(char *buf, size_t len, const char *verb, const char *approver, const char *why)
{
    snprintf(buf, len, "%s by %.200s in the console%s%.400s", verb, approver, why && *why ? ": " : "", why ? why : "");
}

int wr_gate_approver_deny(wr_gate *g, const char *approver, const char *request_id, const char *reason,
                          json_object **state_out, wr_error *err)
{
    *state_out = NULL;
    char why[700];
    reason_of(why, sizeof why, "denied", approver, reason);
    int rc = declared(g, approver, err);
    if (rc == WR_OK)
        rc = wr_approval_deny(wr_gate__store(g), request_id, why, wr_gate_ctx(g), err);
    if (rc == WR_OK)
        wr_gate__observe_approval(g, approver, request_id, "denied");
    return rc == WR_OK ? state_view(g, request_id, state_out, err) : rc;
}

int wr_gate_approver_revoke(wr_gate *g, const char *approver, const char *request_id, const char *approval_id,
                            const char *reason, json_object **state_out, wr_error *err)
{
    *state_out = NULL;
    int rc = declared(g, approver, err);
    if (rc != WR_OK)
        return rc;
    if (approval_id) {
        /* one artifact, and only one of this request's */
        wr_approval_state s;
        if ((rc = wr_approval_state_get(wr_gate__store(g), request_id, wr_gate_ctx(g), &s, err)) != WR_OK)
            return rc;
        bool ours = false;
        for (size_t i = 0; s.approvals && i < json_object_array_length(s.approvals); i++)
            ours |= jstr(json_object_array_get_idx(s.approvals, i), "approval_id") &&
                    !strcmp(jstr(json_object_array_get_idx(s.approvals, i), "approval_id"), approval_id);
        wr_approval_state_clear(&s);
        if (!ours)
            return wr_errorf(err, WR_E_NOTFOUND, "/approval_id", "approval %.100s is not one of request %.100s's",
                             approval_id, request_id);
    }
    char why[700];
    reason_of(why, sizeof why, "revoked", approver, reason);
    rc = wr_approval_revoke(wr_gate__store(g), approval_id ? approval_id : request_id, why, wr_gate_ctx(g), err);
    if (rc == WR_OK)
        wr_gate__observe_approval(g, approver, request_id, "revoked");
    return rc == WR_OK ? state_view(g, request_id, state_out, err) : rc;
}

/* ---- receipts ------------------------------------------------------------------- */

typedef struct last_receipts {
    char *json[WR_GATE_RECENT_RECEIPTS];
    int64_t seq[WR_GATE_RECENT_RECEIPTS];
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
    l->next = (l->next + 1) % WR_GATE_RECENT_RECEIPTS;
    if (l->n < WR_GATE_RECENT_RECEIPTS)
        l->n++;
    return 0;
}

int wr_gate_recent_receipts(wr_gate *g, json_object **out, wr_error *err)
{
    *out = NULL;
    last_receipts l = {0};
    int rc = wr_store_iter_receipts(wr_gate__store(g), keep_last, &l, err);
    const unsigned char *pk = wr_gate__key(g)->pk;
    json_object *views[WR_GATE_RECENT_RECEIPTS] = {0};
    char prev_hash[WR_SHA256_HEX_LEN] = "";
    /* oldest first, so that each link can be checked */
    for (size_t k = 0; rc == WR_OK && k < l.n; k++) {
        size_t i = (l.next + WR_GATE_RECENT_RECEIPTS - l.n + k) % WR_GATE_RECENT_RECEIPTS;
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
        views[k] = v;
    }
    for (size_t i = 0; i < WR_GATE_RECENT_RECEIPTS; i++)
        free(l.json[i]);
    if (rc != WR_OK)
        return rc;
    json_object *arr = json_object_new_array();
    for (size_t k = l.n; k-- > 0;)
        json_object_array_add(arr, views[k]);
    *out = arr;
    return WR_OK;
}

int wr_gate_receipt_head(wr_gate *g, int64_t *seq, wr_error *err)
{
    char sha[WR_SHA256_HEX_LEN];
    return wr_store_chain_head(wr_gate__store(g), seq, sha, err);
}
