/* approvals — the approval queue and the rules an approval artifact must pass
 * before it may authorise a run (issue #6).
 *
 * One checker (check_one) serves every channel — the gate (run approvals[],
 * --approval FILE, artifacts stored by the CLI), submit_approval and
 * `warrant approvals approve` — so an artifact the CLI accepts is exactly one
 * the gate accepts. The store is the only shared state; single-use
 * consumption itself is atomic in wr_store_begin_execution. */
#include "approvals/approvals.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schemas/schemas.h"

#define ARTIFACT_SCHEMA          "warrant.approval.schema.json"
#define DEFAULT_REQUEST_TTL_SEC  86400
#define DEFAULT_MAX_LIFETIME_SEC 3600
/* Bounds on the work one authorisation may cause: an agent controls how many
 * artifacts it supplies, and a state dir may collect many for one contract. */
#define MAX_SUPPLIED 16
#define MAX_STORED   256

/* ---- small helpers --------------------------------------------------------- */

bool wr_approval_interactive_allowed(const wr_policy *p, const char *risk_class, const wr_strv *effects, char *why,
                                     size_t len)
{
    if (!wr_strv_contains(&p->approval.interactive_risk_classes, risk_class)) {
        snprintf(why, len, "in-band approval (elicitation) is not enabled by policy %s for risk class %s", p->name,
                 risk_class);
        return false;
    }
    for (size_t i = 0; effects && i < effects->n; i++)
        if (!wr_strv_contains(&p->approval.interactive_effect_types, effects->v[i])) {
            snprintf(why, len, "in-band approval (elicitation) is not enabled by policy %s for effect type %.64s",
                     p->name, effects->v[i]);
            return false;
        }
    return true;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static json_object *jobj(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

/* Policy durations are clamped so that "now + seconds * 1000" cannot
 * overflow, whatever integer a policy file holds. */
#define MAX_DURATION_SEC (100LL * 366 * 86400)

static int64_t clamp_sec(int64_t sec, int64_t dflt)
{
    return sec <= 0 ? dflt : sec > MAX_DURATION_SEC ? MAX_DURATION_SEC : sec;
}

static int64_t policy_max_lifetime_sec(const wr_policy *p)
{
    return clamp_sec(p->approval.max_lifetime_sec, DEFAULT_MAX_LIFETIME_SEC);
}

/* Dual control comes from the decision (policy) or from the contract itself:
 * an agent may ask for more scrutiny, never for less. */
static int required_approvals(const wr_contract *ct, const wr_decision *d)
{
    int n = d && d->required_approvals > 1 ? d->required_approvals : 1;
    if (ct->approval_mode && strcmp(ct->approval_mode, "dual_control_required") == 0 && n < 2)
        n = 2;
    return n;
}

/* The signed bytes: canonical JSON of the artifact with only
 * signature.signature removed (the receipt rule, design.md). */
static char *signing_payload(json_object *art, size_t *len, wr_error *err)
{
    json_object *copy = NULL;
    if (json_object_deep_copy(art, &copy, NULL) != 0 || !copy) {
        wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        return NULL;
    }
    json_object *sig = jobj(copy, "signature");
    if (sig)
        json_object_object_del(sig, "signature");
    char *out = wr_canonical_json(copy, false, len, err);
    json_object_put(copy);
    return out;
}

static wr_schema *artifact_schema(wr_error *err)
{
    return wr_schema_embedded(ARTIFACT_SCHEMA, err);
}

/* Copies an error's message (which names the approval and the fault) into
 * a reason buffer, cutting it at a UTF-8 boundary if it must. */
static void reason_of(const wr_error *e, char *buf, size_t len)
{
    size_t n = strnlen(e->message, len - 1);
    while (n > 0 && n < strlen(e->message) && ((unsigned char)e->message[n] & 0xC0) == 0x80)
        n--;
    memcpy(buf, e->message, n);
    buf[n] = '\0';
}

/* Schema errors keep their JSON pointer in the message: the reason travels
 * as one line into receipts and tool results. */
static int schema_check(const wr_schema *schema, json_object *art, wr_error *err)
{
    wr_error e = {0};
    if (wr_schema_validate(schema, art, &e) == WR_OK)
        return WR_OK;
    return wr_errorf(err, WR_E_INVALID, e.path, "approval artifact invalid: %s%s%.400s", e.path, e.path[0] ? ": " : "",
                     e.message);
}

/* ---- stored artifacts -------------------------------------------------------
 * Copied out of the store's iteration first: the store holds its lock during
 * the callback, and the checks below need the store again. */
typedef struct stored {
    char *id;
    char *json;
    bool revoked;
    bool seen; /* the same artifact was also supplied with the call */
} stored;

typedef struct stored_list {
    stored *v;
    size_t n;
    bool nomem;
} stored_list;

static int collect_stored(void *ud, const char *approval_id, const char *artifact_json, bool revoked)
{
    stored_list *l = ud;
    if (l->n >= MAX_STORED)
        return 1;
    stored *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
    if (!nv) {
        l->nomem = true;
        return 1;
    }
    l->v = nv;
    stored *s = &l->v[l->n];
    *s = (stored){strdup(approval_id), strdup(artifact_json), revoked, false};
    if (!s->id || !s->json) {
        free(s->id);
        free(s->json);
        l->nomem = true;
        return 1;
    }
    l->n++;
    return 0;
}

static void stored_list_free(stored_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].id);
        free(l->v[i].json);
    }
    free(l->v);
    *l = (stored_list){0};
}

static int load_stored(wr_store *st, const char *sha256, stored_list *l, wr_error *err)
{
    *l = (stored_list){0};
    int rc = wr_store_list_approvals(st, sha256, collect_stored, l, err);
    if (rc == WR_OK && l->nomem)
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc != WR_OK)
        stored_list_free(l);
    return rc;
}

/* ---- the rules for one artifact -------------------------------------------- */

/* What an artifact is checked against: the contract as the gate sees it. */
typedef struct subject {
    const wr_policy *p;
    const char *sha256;
    const char *risk_class; /* the decision's: raised by classification, never lowered */
    const wr_strv *effects; /* effect types that need approval */
    const char *agent_id;   /* the requesting agent (the gate checked it is the connection's identity) */
    const char *initiating_user;
    const unsigned char *server_pk; /* may be NULL */
} subject;

static subject subject_of(const wr_policy *p, const wr_contract *ct, const wr_decision *d,
                          const unsigned char *server_pk)
{
    return (subject){p,
                     ct->sha256,
                     d->risk_class ? d->risk_class : ct->risk_class,
                     &d->approval_effects,
                     ct->actor.agent_id,
                     ct->actor.initiating_user,
                     server_pk};
}

/* A checked artifact; strings point into the artifact. */
typedef struct checked {
    json_object *art;
    const char *approval_id, *identity, *method;
    char key_id[WR_KEY_ID_LEN];
    bool single_use;
    bool client_attested; /* in-band: the server recorded a client's answer, no human key signed */
    int64_t approved_ms, expires_ms;
} checked;

/* The approver whose declared key has this key_id, preferring one whose
 * identity matches (two approvers sharing a key are still one key). */
static const wr_approver *approver_by_key(const wr_policy *p, const char *key_id, const char *identity)
{
    const wr_approver *found = NULL;
    for (size_t i = 0; i < p->napprovers; i++) {
        char kid[WR_KEY_ID_LEN];
        wr_key_id(p->approvers[i].public_key, kid);
        if (strcmp(kid, key_id) != 0)
            continue;
        if (!found || strcmp(p->approvers[i].identity, identity) == 0)
            found = &p->approvers[i];
    }
    return found;
}

/* WR_OK when the artifact may count toward this contract. Otherwise err holds
 * the one precise reason; *expired is set when expiry was the only fault. The
 * order matters: integrity (schema, key, signature) before meaning, and
 * expiry last so that "expired" never hides another fault. */
static int check_one(wr_store *st, const wr_schema *schema, const subject *s, json_object *art, int64_t now, checked *c,
                     bool *expired, wr_error *err)
{
    *expired = false;
    *c = (checked){.art = art};
    if (!json_object_is_type(art, json_type_object))
        return wr_errorf(err, WR_E_INVALID, "", "approval artifact is not a JSON object");
    if (schema_check(schema, art, err) != WR_OK)
        return WR_E_INVALID;
    json_object *approver = jobj(art, "approver"), *sig = jobj(art, "signature");
    const char *id = c->approval_id = jstr(art, "approval_id");
    c->identity = jstr(approver, "identity");
    c->method = jstr(approver, "method");
    const char *key_id = jstr(sig, "key_id"), *pub = jstr(sig, "public_key");
    snprintf(c->key_id, sizeof c->key_id, "%s", key_id ? key_id : "");

    if (pub) {
        unsigned char pk[WR_PK_LEN];
        char kid[WR_KEY_ID_LEN];
        wr_error e = {0};
        if (wr_pubkey_parse(pub, pk, &e) != WR_OK)
            return wr_errorf(err, WR_E_CRYPTO, "/signature/public_key",
                             "approval %s: signature.public_key is not an Ed25519 public key", id);
        wr_key_id(pk, kid);
        if (strcmp(kid, key_id) != 0)
            return wr_errorf(err, WR_E_CRYPTO, "/signature/public_key",
                             "approval %s: signature.public_key does not match key_id %s", id, key_id);
    }

    /* The server's receipt key is checked first: even if a policy listed it
     * as an approver, it must never stand in for a human (issue #6). */
    const unsigned char *pk = NULL;
    const wr_approver *who = NULL;
    bool by_server = false;
    if (s->server_pk) {
        char skid[WR_KEY_ID_LEN];
        wr_key_id(s->server_pk, skid);
        if (strcmp(skid, key_id) == 0) {
            by_server = true;
            pk = s->server_pk;
        }
    }
    if (!by_server) {
        who = approver_by_key(s->p, key_id, c->identity);
        if (!who)
            return wr_errorf(err, WR_E_CRYPTO, "/signature/key_id",
                             "approval %s: signing key %s is not the key of any approver declared in the policy", id,
                             key_id);
        pk = who->public_key;
    }

    size_t len = 0;
    char *payload = signing_payload(art, &len, err);
    if (!payload)
        return err ? err->code : WR_E_NOMEM;
    bool ok = wr_verify_b64(pk, payload, len, jstr(sig, "signature"));
    free(payload);
    if (!ok)
        return wr_errorf(err, WR_E_CRYPTO, "/signature/signature",
                         "approval %s: signature does not verify with key %s (the artifact was altered or signed "
                         "with another key)",
                         id, key_id);

    if (by_server) {
        if (strcmp(c->method, "elicitation") != 0)
            return wr_errorf(err, WR_E_DENIED, "/signature/key_id",
                             "approval %s is signed with the server's receipt key, which is not an approver's key", id);
        char why[256];
        if (!wr_approval_interactive_allowed(s->p, s->risk_class, s->effects, why, sizeof why))
            return wr_errorf(err, WR_E_DENIED, "/approver/method", "approval %s: %s", id, why);
        c->client_attested = true;
    } else {
        if (strcmp(c->method, "elicitation") == 0)
            return wr_errorf(err, WR_E_DENIED, "/approver/method",
                             "approval %s: method elicitation is reserved for in-band approvals signed by the server",
                             id);
        if (strcmp(c->identity, who->identity) != 0)
            return wr_errorf(err, WR_E_DENIED, "/approver/identity",
                             "approval %s claims identity %s but is signed with the key of approver %s", id,
                             c->identity, who->identity);
    }

    /* The hash covers every field of the contract (contract_id and
     * justification too): an approval for A never authorises B. */
    if (strcasecmp(jstr(art, "contract_sha256"), s->sha256) != 0)
        return wr_errorf(err, WR_E_DENIED, "/contract_sha256", "approval %s is bound to contract %s, not to %s", id,
                         jstr(art, "contract_sha256"), s->sha256);

    if (!by_server) {
        if (!wr_strv_contains(&who->risk_classes, s->risk_class))
            return wr_errorf(err, WR_E_DENIED, "/approver/identity",
                             "approval %s: approver %s may not approve risk class %s", id, who->identity,
                             s->risk_class);
        for (size_t i = 0; s->effects && i < s->effects->n; i++)
            if (!wr_strv_contains(&who->effect_types, s->effects->v[i]))
                return wr_errorf(err, WR_E_DENIED, "/approver/identity",
                                 "approval %s: approver %s may not approve effect type %s", id, who->identity,
                                 s->effects->v[i]);
    }
    /* Whoever asks never approves, by any channel (issue 11). */
    if (s->agent_id && strcmp(c->identity, s->agent_id) == 0)
        return wr_errorf(err, WR_E_DENIED, "/approver/identity",
                         "approval %s: self-approval refused: %s is the agent that requests this contract", id,
                         c->identity);
    if (s->initiating_user && strcmp(c->identity, s->initiating_user) == 0)
        return wr_errorf(err, WR_E_DENIED, "/approver/identity",
                         "approval %s: self-approval refused: %s is the initiating user of this contract", id,
                         c->identity);

    if (wr_time_parse(jstr(art, "approved_at"), &c->approved_ms, err) != WR_OK ||
        wr_time_parse(jstr(art, "expires_at"), &c->expires_ms, err) != WR_OK) {
        wr_error_prefix(err, "approval %s", id);
        return WR_E_INVALID;
    }
    if (c->expires_ms <= c->approved_ms)
        return wr_errorf(err, WR_E_DENIED, "/expires_at", "approval %s: expires_at is not after approved_at", id);
    int64_t max_sec = policy_max_lifetime_sec(s->p);
    if (c->expires_ms - c->approved_ms > max_sec * 1000)
        return wr_errorf(err, WR_E_DENIED, "/expires_at",
                         "approval %s: lifetime of %" PRId64 "s exceeds the policy maximum of %" PRId64 "s", id,
                         (c->expires_ms - c->approved_ms) / 1000, max_sec);
    if (now < c->approved_ms)
        return wr_errorf(err, WR_E_DENIED, "/approved_at",
                         "approval %s is not yet valid: approved_at %s is in the future", id, jstr(art, "approved_at"));
    c->single_use = strcmp(jstr(art, "scope"), "single_execution") == 0;
    if (!c->single_use && !s->p->approval.allow_time_window)
        return wr_errorf(err, WR_E_DENIED, "/scope", "approval %s: scope time_window is not allowed by the policy", id);
    if (wr_store_approval_revoked(st, id))
        return wr_errorf(err, WR_E_DENIED, "/approval_id", "approval %s has been revoked", id);
    if (c->single_use && wr_store_approval_consumed(st, id))
        return wr_errorf(err, WR_E_CONFLICT, "/approval_id",
                         "approval %s has already been used (scope single_execution)", id);
    if (now >= c->expires_ms) {
        *expired = true;
        return wr_errorf(err, WR_E_DENIED, "/expires_at", "approval %s expired at %s", id, jstr(art, "expires_at"));
    }
    return WR_OK;
}

/* Stores a checked artifact once. An approval_id already stored with other
 * content is refused: consumption and revocation go by id, so two artifacts
 * must never share one. */
static int store_checked(wr_store *st, stored_list *sl, const char *request_id, const char *sha256, const checked *c,
                         const wr_ctx *ctx, wr_error *err)
{
    char *mine = wr_canonical_json(c->art, false, NULL, err);
    if (!mine)
        return err->code;
    int rc = WR_OK;
    for (size_t i = 0; i < sl->n; i++) {
        if (strcmp(sl->v[i].id, c->approval_id) != 0)
            continue;
        json_object *o = wr_json_parse(sl->v[i].json, strlen(sl->v[i].json), NULL, err);
        char *theirs = o ? wr_canonical_json(o, false, NULL, err) : NULL;
        json_object_put(o);
        if (theirs && strcmp(theirs, mine) == 0)
            sl->v[i].seen = true;
        else if (theirs)
            rc = wr_errorf(err, WR_E_CONFLICT, "/approval_id",
                           "approval %s: another artifact with this approval_id is already stored", c->approval_id);
        else
            rc = err->code;
        free(theirs);
        free(mine);
        return rc;
    }
    rc = wr_store_put_approval(st, c->approval_id, request_id, sha256, c->identity, mine, c->expires_ms, wr_now_ms(ctx),
                               err);
    if (rc == WR_E_CONFLICT)
        rc = wr_errorf(err, WR_E_CONFLICT, "/approval_id",
                       "approval %s: another artifact with this approval_id is already stored", c->approval_id);
    free(mine);
    return rc;
}

/* ---- effective status of a request ----------------------------------------- */

typedef struct tally {
    int valid;          /* distinct identities with a usable artifact */
    bool consumed;      /* an artifact given for this request was used */
    json_object *array; /* the stored artifacts */
} tally;

/* Counts usable artifacts without re-verifying signatures: only verified
 * artifacts are ever stored, and the gate verifies again before any use. */
static int tally_request(wr_store *st, const wr_approval_request *r, int64_t now, tally *t, wr_error *err)
{
    *t = (tally){.array = json_object_new_array()};
    stored_list sl = {0};
    int rc = t->array ? load_stored(st, r->contract_sha256, &sl, err) : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc != WR_OK) {
        json_object_put(t->array);
        t->array = NULL;
        return rc;
    }
    wr_strv who = {0};
    for (size_t i = 0; i < sl.n && rc == WR_OK; i++) {
        json_object *a = wr_json_parse(sl.v[i].json, strlen(sl.v[i].json), NULL, err);
        if (!a) {
            rc = err->code;
            break;
        }
        json_object_array_add(t->array, a);
        int64_t approved = 0, expires = 0;
        const char *scope = jstr(a, "scope"), *identity = jstr(jobj(a, "approver"), "identity");
        if (!scope || !identity || wr_time_parse(jstr(a, "approved_at"), &approved, NULL) != WR_OK ||
            wr_time_parse(jstr(a, "expires_at"), &expires, NULL) != WR_OK)
            continue;
        bool single = strcmp(scope, "single_execution") == 0;
        bool consumed = single && wr_store_approval_consumed(st, sl.v[i].id);
        if (consumed && approved >= r->requested_at_ms)
            t->consumed = true;
        if (sl.v[i].revoked || consumed || now < approved || now >= expires)
            continue;
        if (!wr_strv_contains(&who, identity)) {
            if (wr_strv_push(&who, identity) != WR_OK)
                rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            t->valid++;
        }
    }
    wr_strv_free(&who);
    stored_list_free(&sl);
    if (rc != WR_OK) {
        json_object_put(t->array);
        t->array = NULL;
    }
    return rc;
}

static const char *effective_status(const wr_approval_request *r, const tally *t, int64_t now)
{
    if (strcmp(r->status, "pending") != 0)
        return r->status;
    if (t->valid >= r->required_approvals)
        return "approved";
    if (t->consumed)
        return "consumed";
    if (now >= r->expires_at_ms)
        return "expired";
    return "pending";
}

int wr_approval_state_get(wr_store *st, const char *request_id, const wr_ctx *ctx, wr_approval_state *out,
                          wr_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = wr_store_get_approval_request(st, request_id, &out->request, err);
    if (rc != WR_OK)
        return rc;
    int64_t now = wr_now_ms(ctx);
    tally t;
    rc = tally_request(st, &out->request, now, &t, err);
    if (rc != WR_OK) {
        wr_approval_request_clear(&out->request);
        return rc;
    }
    snprintf(out->status, sizeof out->status, "%s", effective_status(&out->request, &t, now));
    out->approvals_valid = t.valid;
    out->approvals = t.array;
    return WR_OK;
}

void wr_approval_state_clear(wr_approval_state *s)
{
    wr_approval_request_clear(&s->request);
    json_object_put(s->approvals);
    memset(s, 0, sizeof *s);
}

int wr_approval_status(wr_store *st, const char *request_id, const wr_ctx *ctx, char **status_out,
                       json_object **approvals_out, wr_error *err)
{
    wr_approval_state s;
    int rc = wr_approval_state_get(st, request_id, ctx, &s, err);
    if (rc != WR_OK)
        return rc;
    *status_out = strdup(s.status);
    if (!*status_out) {
        wr_approval_state_clear(&s);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    *approvals_out = s.approvals;
    s.approvals = NULL;
    wr_approval_state_clear(&s);
    return WR_OK;
}

/* ---- the queue --------------------------------------------------------------- */

int wr_approval_request_open(wr_store *st, const wr_contract *ct, const wr_decision *d, const wr_policy *p,
                             const wr_ctx *ctx, char request_id_out[WR_ID_MAX], wr_error *err)
{
    int64_t now = wr_now_ms(ctx);
    request_id_out[0] = '\0';
    /* A pending row whose approval was used up or whose time ran out is
     * closed first: the next run of the same contract needs a new approval. */
    wr_approval_request cur;
    int rc = wr_store_find_approval_request(st, ct->sha256, &cur, err);
    if (rc == WR_OK) {
        if (strcmp(cur.status, "pending") == 0) {
            tally t;
            rc = tally_request(st, &cur, now, &t, err);
            if (rc == WR_OK) {
                const char *eff = effective_status(&cur, &t, now);
                json_object_put(t.array);
                if (strcmp(eff, "consumed") == 0 || strcmp(eff, "expired") == 0) {
                    rc = wr_store_set_approval_request_status(st, cur.request_id, "pending", eff, NULL, err);
                    if (rc == WR_E_CONFLICT)
                        rc = WR_OK; /* another process closed it first */
                } else
                    snprintf(request_id_out, WR_ID_MAX, "%s", cur.request_id);
            }
            if (rc != WR_OK || request_id_out[0]) {
                wr_approval_request_clear(&cur);
                return rc;
            }
        }
        wr_approval_request_clear(&cur);
    } else if (rc != WR_E_NOTFOUND) {
        return rc;
    }

    char id[WR_ID_MAX];
    wr_random_id(ctx, "apr_", id, sizeof id);
    /* The policy goes into the store too, and its hash into the stored
     * decision, so that an approver's CLI can check an artifact against the
     * very trust store this request was decided under. */
    char *policy_json = wr_canonical_json(p->json, false, NULL, err);
    if (!policy_json)
        return err->code;
    rc = wr_store_put_policy(st, p->sha256, policy_json, err);
    free(policy_json);
    if (rc != WR_OK)
        return rc;
    char *contract_json = wr_canonical_json(ct->json, false, NULL, err);
    if (!contract_json)
        return err->code;
    json_object *dj = wr_decision_to_json(d);
    if (dj)
        json_object_object_add(dj, "policy_sha256", json_object_new_string(p->sha256));
    char *decision_json = dj ? strdup(wr_json_compact(dj)) : NULL;
    json_object_put(dj);
    if (!decision_json) {
        free(contract_json);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    int64_t ttl = clamp_sec(p->approval.request_ttl_sec, DEFAULT_REQUEST_TTL_SEC);
    wr_approval_request r = {
        .request_id = id,
        .contract_id = ct->contract_id,
        .contract_sha256 = (char *)ct->sha256,
        .agent_id = ct->actor.agent_id,
        .status = "pending",
        .contract_json = contract_json,
        .decision_json = decision_json,
        .required_approvals = required_approvals(ct, d),
        .requested_at_ms = now,
        .expires_at_ms = now + ttl * 1000,
    };
    char *existing = NULL;
    rc = wr_store_put_approval_request(st, &r, &existing, err);
    if (rc == WR_OK)
        snprintf(request_id_out, WR_ID_MAX, "%s", existing ? existing : id);
    free(existing);
    free(contract_json);
    free(decision_json);
    return rc;
}

int wr_approval_request_policy(wr_store *st, const wr_approval_request *r, wr_policy **out, wr_error *err)
{
    *out = NULL;
    json_object *dj = r->decision_json ? wr_json_parse(r->decision_json, strlen(r->decision_json), NULL, NULL) : NULL;
    const char *sha = jstr(dj, "policy_sha256");
    char *text = NULL;
    int rc = sha ? wr_store_get_policy(st, sha, &text, err)
                 : wr_errorf(err, WR_E_NOTFOUND, "", "request %s does not name its policy", r->request_id);
    json_object *doc = rc == WR_OK ? wr_json_parse(text, strlen(text), NULL, err) : NULL;
    if (rc == WR_OK && !doc)
        rc = err->code;
    if (doc)
        rc = wr_policy_from_json(doc, out, err);
    json_object_put(doc);
    json_object_put(dj);
    free(text);
    return rc;
}

/* ---- authorisation for a run -------------------------------------------------- */

typedef struct candidate {
    checked c;
    bool supplied;
} candidate;

static void set_reason(wr_authz *out, wr_authz_status status, const char *reason)
{
    wr_error e = {0};
    snprintf(e.message, sizeof e.message, "%s", reason);
    out->status = status;
    reason_of(&e, out->reason, sizeof out->reason);
}

/* Picks approvals from distinct identities with distinct keys, supplied
 * ones first. Returns how many were picked; *dup gets the reason the first
 * skipped one did not count, and *dup_supplied whether it was supplied. */
static size_t pick_distinct(const candidate *cands, size_t n, size_t required, size_t *picked, char *dup, size_t duplen,
                            bool *dup_supplied)
{
    size_t np = 0;
    for (size_t i = 0; i < n && np < required; i++) {
        const checked *c = &cands[i].c;
        const checked *clash = NULL;
        bool same_key = false;
        for (size_t j = 0; j < np && !clash; j++) {
            const checked *o = &cands[picked[j]].c;
            if (strcmp(o->identity, c->identity) == 0)
                clash = o;
            else if (strcmp(o->key_id, c->key_id) == 0)
                clash = o, same_key = true;
        }
        if (!clash) {
            picked[np++] = i;
            continue;
        }
        if (dup[0])
            continue;
        *dup_supplied = cands[i].supplied;
        if (same_key)
            snprintf(dup, duplen,
                     "dual control: approvals %s and %s are signed with the same key %s; %zu distinct approvers "
                     "with distinct keys are required",
                     clash->approval_id, c->approval_id, c->key_id, required);
        else
            snprintf(dup, duplen,
                     "dual control: %s approved twice (approvals %s and %s); %zu distinct approvers are required",
                     c->identity, clash->approval_id, c->approval_id, required);
    }
    return np;
}

static int fill_uses(wr_authz *out, const candidate *cands, const size_t *picked, size_t np, wr_error *err)
{
    out->uses = calloc(np, sizeof *out->uses);
    if (!out->uses)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (size_t i = 0; i < np; i++) {
        const checked *c = &cands[picked[i]].c;
        wr_approval_use *u = &out->uses[i];
        out->nuses = i + 1;
        u->approval_id = strdup(c->approval_id);
        u->identity = strdup(c->identity);
        u->method = strdup(c->method);
        u->key_id = strdup(c->key_id);
        u->single_use = c->single_use;
        u->client_attested = c->client_attested;
        if (!u->approval_id || !u->identity || !u->method || !u->key_id)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    out->status = WR_AUTHZ_GRANTED;
    return WR_OK;
}

int wr_approvals_authorize(wr_store *st, const wr_policy *p, const wr_contract *ct, const wr_decision *d,
                           json_object *const *supplied, size_t nsupplied, const wr_keypair *server_key,
                           const wr_ctx *ctx, wr_authz *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    out->status = WR_AUTHZ_PENDING;
    size_t required = (size_t)required_approvals(ct, d);
    if (nsupplied > MAX_SUPPLIED) {
        char why[128];
        snprintf(why, sizeof why, "too many approval artifacts supplied (%zu, at most %d)", nsupplied, MAX_SUPPLIED);
        set_reason(out, WR_AUTHZ_REFUSED, why);
        return WR_OK;
    }
    wr_schema *schema = artifact_schema(err);
    if (!schema)
        return err->code;
    stored_list sl;
    int rc = load_stored(st, ct->sha256, &sl, err);
    if (rc != WR_OK) {
        wr_schema_free(schema);
        return rc;
    }
    candidate *cands = calloc(nsupplied + sl.n + 1, sizeof *cands);
    size_t *picked = calloc(required, sizeof *picked);
    json_object **parsed = calloc(sl.n + 1, sizeof *parsed);
    if (!cands || !picked || !parsed) {
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        goto done;
    }
    subject s = subject_of(p, ct, d, server_key ? server_key->pk : NULL);
    int64_t now = wr_now_ms(ctx);
    size_t nc = 0, nexpired = 0;
    char expired_why[512] = "", skipped_why[512] = "";
    char request_id[WR_ID_MAX] = "";
    wr_approval_request req;
    if (nsupplied && wr_store_find_approval_request(st, ct->sha256, &req, NULL) == WR_OK) {
        snprintf(request_id, sizeof request_id, "%s", req.request_id);
        wr_approval_request_clear(&req);
    }

    for (size_t i = 0; i < nsupplied; i++) {
        wr_error e = {0};
        bool expired = false;
        checked c;
        if (check_one(st, schema, &s, supplied[i], now, &c, &expired, &e) != WR_OK) {
            reason_of(&e, expired ? expired_why : out->reason, sizeof out->reason);
            if (!expired) {
                out->status = WR_AUTHZ_REFUSED;
                goto done;
            }
            nexpired++;
            continue;
        }
        for (size_t j = 0; j < nc; j++)
            if (strcmp(cands[j].c.approval_id, c.approval_id) == 0) {
                char why[256];
                snprintf(why, sizeof why, "approval %s was supplied twice; each artifact counts once", c.approval_id);
                set_reason(out, WR_AUTHZ_REFUSED, why);
                goto done;
            }
        int src = store_checked(st, &sl, request_id[0] ? request_id : NULL, ct->sha256, &c, ctx, &e);
        if (src == WR_E_CONFLICT) {
            out->status = WR_AUTHZ_REFUSED;
            reason_of(&e, out->reason, sizeof out->reason);
            goto done;
        }
        if (src != WR_OK) {
            *err = e;
            rc = src;
            goto done;
        }
        cands[nc++] = (candidate){c, true};
    }

    for (size_t i = 0; i < sl.n; i++) {
        if (sl.v[i].seen)
            continue; /* revoked ones too: their reason explains a pending state */
        wr_error e = {0};
        parsed[i] = wr_json_parse(sl.v[i].json, strlen(sl.v[i].json), NULL, &e);
        bool expired = false;
        checked c;
        if (parsed[i] && check_one(st, schema, &s, parsed[i], now, &c, &expired, &e) == WR_OK) {
            cands[nc++] = (candidate){c, false};
            continue;
        }
        reason_of(&e, expired ? expired_why : skipped_why, sizeof skipped_why);
        if (expired)
            nexpired++;
    }

    char dup[512] = "";
    bool dup_supplied = false;
    size_t np = pick_distinct(cands, nc, required, picked, dup, sizeof dup, &dup_supplied);
    if (np >= required) {
        rc = fill_uses(out, cands, picked, np, err);
    } else if (dup[0] && dup_supplied) {
        set_reason(out, WR_AUTHZ_REFUSED, dup);
    } else if (np == 0 && nexpired > 0) {
        set_reason(out, WR_AUTHZ_EXPIRED, expired_why);
    } else {
        const char *detail = dup[0] ? dup : skipped_why[0] ? skipped_why : expired_why;
        snprintf(out->reason, sizeof out->reason, "%zu of %zu required approval(s) from distinct approvers%s%s", np,
                 required, detail[0] ? "; " : "", detail);
        out->status = WR_AUTHZ_PENDING;
    }

done:
    if (out->status == WR_AUTHZ_REFUSED && err)
        wr_errorf(err, WR_E_DENIED, "", "%s", out->reason);
    if (rc != WR_OK)
        wr_authz_clear(out);
    for (size_t i = 0; parsed && i < sl.n; i++)
        json_object_put(parsed[i]);
    free(parsed);
    free(picked);
    free(cands);
    stored_list_free(&sl);
    wr_schema_free(schema);
    return rc;
}

void wr_authz_clear(wr_authz *a)
{
    for (size_t i = 0; i < a->nuses; i++) {
        free(a->uses[i].approval_id);
        free(a->uses[i].identity);
        free(a->uses[i].method);
        free(a->uses[i].key_id);
    }
    free(a->uses);
    memset(a, 0, sizeof *a);
}

/* ---- artifacts from outside a run ---------------------------------------------- */

int wr_approval_accept(wr_store *st, const wr_policy *p, json_object *artifact, const unsigned char *server_pk,
                       const wr_ctx *ctx, char request_id_out[WR_ID_MAX], wr_error *err)
{
    wr_schema *schema = artifact_schema(err);
    if (!schema)
        return err->code;
    int rc = json_object_is_type(artifact, json_type_object)
                 ? schema_check(schema, artifact, err)
                 : wr_errorf(err, WR_E_INVALID, "", "approval artifact is not a JSON object");
    if (rc != WR_OK) {
        wr_schema_free(schema);
        return rc;
    }
    char sha[WR_SHA256_HEX_LEN];
    snprintf(sha, sizeof sha, "%s", jstr(artifact, "contract_sha256"));
    for (char *q = sha; *q; q++)
        if (*q >= 'A' && *q <= 'F')
            *q = (char)(*q - 'A' + 'a');

    wr_approval_request req = {0};
    wr_contracts *cs = NULL;
    wr_contract *ct = NULL;
    wr_decision *d = NULL;
    stored_list sl = {0};
    int64_t now = wr_now_ms(ctx);
    rc = wr_store_find_approval_request(st, sha, &req, err);
    if (rc == WR_E_NOTFOUND)
        rc = wr_errorf(err, WR_E_NOTFOUND, "/contract_sha256", "no approval request for contract %s", sha);
    if (rc != WR_OK)
        goto done;
    tally t;
    if ((rc = tally_request(st, &req, now, &t, err)) != WR_OK)
        goto done;
    const char *eff = effective_status(&req, &t, now);
    json_object_put(t.array);
    if (strcmp(eff, "pending") != 0 && strcmp(eff, "approved") != 0) {
        rc = wr_errorf(
            err, WR_E_DENIED, "", "approval request %s is %s: it can no longer be approved%s", req.request_id, eff,
            strcmp(eff, "consumed") == 0 || strcmp(eff, "expired") == 0 ? " (the agent proposes the contract again)"
                                                                        : "");
        goto done;
    }
    /* The decision is evaluated afresh (a stored decision is never trusted):
     * it names the effect types the approver must be allowed to approve. */
    if (!(cs = wr_contracts_new(err))) {
        rc = err->code;
        goto done;
    }
    if ((rc = wr_contract_parse(cs, req.contract_json, strlen(req.contract_json), &ct, err)) != WR_OK) {
        wr_error_prefix(err, "stored contract of request %s", req.request_id);
        goto done;
    }
    if ((rc = wr_policy_evaluate(p, ct, ctx, &d, err)) != WR_OK)
        goto done;
    if (d->kind == WR_DENY) {
        rc = wr_errorf(err, WR_E_DENIED, "",
                       "the policy denies contract %s (%s: %s): an approval cannot override a deny", sha,
                       d->reason_code, d->reason ? d->reason : "");
        goto done;
    }
    subject s = subject_of(p, ct, d, server_pk);
    checked c;
    bool expired = false;
    if ((rc = check_one(st, schema, &s, artifact, now, &c, &expired, err)) != WR_OK)
        goto done;
    if ((rc = load_stored(st, sha, &sl, err)) != WR_OK)
        goto done;
    rc = store_checked(st, &sl, req.request_id, sha, &c, ctx, err);
    if (rc == WR_OK && request_id_out)
        snprintf(request_id_out, WR_ID_MAX, "%s", req.request_id);

done:
    stored_list_free(&sl);
    wr_decision_free(d);
    wr_contract_free(ct);
    wr_contracts_free(cs);
    wr_approval_request_clear(&req);
    wr_schema_free(schema);
    return rc;
}

int wr_approval_check_artifact(wr_store *st, const wr_policy *p, json_object *artifact, const wr_ctx *ctx,
                               wr_error *err)
{
    return wr_approval_accept(st, p, artifact, NULL, ctx, NULL, err);
}

/* ---- signing ----------------------------------------------------------------- */

static bool is_sha256_hex(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

int wr_approval_sign(const wr_keypair *key, const wr_approval_params *ap, const wr_ctx *ctx, json_object **artifact_out,
                     wr_error *err)
{
    *artifact_out = NULL;
    if (!ap->identity || !*ap->identity)
        return wr_errorf(err, WR_E_INVALID, "/approver/identity", "approver identity is empty");
    if (!is_sha256_hex(ap->contract_sha256))
        return wr_errorf(err, WR_E_INVALID, "/contract_sha256", "contract_sha256 must be 64 lowercase hex digits");
    if (ap->expires_at_ms <= ap->approved_at_ms)
        return wr_errorf(err, WR_E_INVALID, "/expires_at", "expires_at must be after approved_at");
    char id[WR_ID_MAX], approved[WR_TIME_LEN], expires[WR_TIME_LEN], key_id[WR_KEY_ID_LEN];
    wr_random_id(ctx, "apv_", id, sizeof id);
    wr_time_format(ap->approved_at_ms, approved);
    wr_time_format(ap->expires_at_ms, expires);
    wr_key_id(key->pk, key_id);
    char *pub = wr_base64_encode(key->pk, WR_PK_LEN);

    json_object *a = json_object_new_object(), *who = json_object_new_object(), *sig = json_object_new_object();
    if (!a || !who || !sig || !pub) {
        json_object_put(a);
        json_object_put(who);
        json_object_put(sig);
        free(pub);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    json_object_object_add(a, "approval_version", json_object_new_string("csc.approval.v0.1"));
    json_object_object_add(a, "approval_id", json_object_new_string(id));
    json_object_object_add(a, "contract_sha256", json_object_new_string(ap->contract_sha256));
    json_object_object_add(who, "identity", json_object_new_string(ap->identity));
    json_object_object_add(who, "method", json_object_new_string(ap->method ? ap->method : "cli"));
    json_object_object_add(a, "approver", who);
    json_object_object_add(a, "approved_at", json_object_new_string(approved));
    json_object_object_add(a, "expires_at", json_object_new_string(expires));
    json_object_object_add(a, "scope", json_object_new_string(ap->time_window ? "time_window" : "single_execution"));
    if (ap->ticket_id)
        json_object_object_add(a, "ticket_id", json_object_new_string(ap->ticket_id));
    if (ap->reason)
        json_object_object_add(a, "reason", json_object_new_string(ap->reason));
    json_object_object_add(sig, "algorithm", json_object_new_string("ed25519"));
    json_object_object_add(sig, "key_id", json_object_new_string(key_id));
    json_object_object_add(sig, "public_key", json_object_new_string(pub));
    json_object_object_add(a, "signature", sig);
    free(pub);

    /* Validate before signing: a malformed artifact (bad method, reason too
     * long, invalid UTF-8) is an input error here, not a useless signature. */
    wr_schema *schema = artifact_schema(err);
    int rc = schema ? WR_OK : err->code;
    json_object_object_add(sig, "signature", json_object_new_string("-"));
    if (rc == WR_OK && (rc = wr_schema_validate(schema, a, err)) != WR_OK)
        wr_error_prefix(err, "approval artifact");
    wr_schema_free(schema);
    size_t len = 0;
    char *payload = rc == WR_OK ? signing_payload(a, &len, err) : NULL;
    char *b64 = payload ? wr_sign_b64(key, payload, len) : NULL;
    free(payload);
    if (rc == WR_OK && !b64)
        rc = wr_errorf(err, WR_E_CRYPTO, "", "signing the approval failed");
    if (rc != WR_OK) {
        json_object_put(a);
        return rc;
    }
    json_object_object_add(sig, "signature", json_object_new_string(b64));
    free(b64);
    *artifact_out = a;
    return WR_OK;
}

/* ---- the approver's view ------------------------------------------------------- */

static json_object *commands_json(const wr_contract *ct)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < ct->ncommands; i++) {
        const wr_command *c = &ct->commands[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(c->id));
        if (c->is_pipeline) {
            json_object *segs = json_object_new_array();
            for (size_t k = 0; k < c->nsegments; k++)
                json_object_array_add(segs, wr_strv_to_json(&c->segments[k]));
            json_object_object_add(o, "pipeline", segs);
        } else {
            json_object_object_add(o, "argv", wr_strv_to_json(&c->segments[0]));
        }
        json_object_object_add(o, "cwd", c->cwd ? json_object_new_string(c->cwd) : NULL);
        json_object_object_add(o, "read_paths", wr_strv_to_json(&c->read_paths));
        json_object_object_add(o, "write_paths", wr_strv_to_json(&c->write_paths));
        json_object_object_add(o, "network", json_object_new_string(wr_network_mode_name(c->network)));
        json_object_object_add(o, "secret_refs", wr_strv_to_json(&c->secret_refs));
        json_object_object_add(o, "env_allow", wr_strv_to_json(&c->env_allow));
        json_object_object_add(o, "timeout_sec", json_object_new_int64(c->timeout_sec));
        if (c->proposed_effect_type)
            json_object_object_add(o, "proposed_effect_type", json_object_new_string(c->proposed_effect_type));
        json_object_array_add(arr, o);
    }
    return arr;
}

json_object *wr_approval_state_json(const wr_approval_state *s, const wr_contract *ct, int64_t now)
{
    const wr_approval_request *r = &s->request;
    char at[WR_TIME_LEN], until[WR_TIME_LEN];
    wr_time_format(r->requested_at_ms, at);
    wr_time_format(r->expires_at_ms, until);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "request_id", json_object_new_string(r->request_id));
    json_object_object_add(o, "contract_sha256", json_object_new_string(r->contract_sha256));
    json_object_object_add(o, "status", json_object_new_string(s->status));
    json_object_object_add(o, "contract_id", json_object_new_string(r->contract_id ? r->contract_id : ""));
    json_object_object_add(o, "agent_id", json_object_new_string(r->agent_id ? r->agent_id : ""));
    json_object_object_add(o, "required_approvals", json_object_new_int(r->required_approvals));
    json_object_object_add(o, "approvals", json_object_new_int(s->approvals_valid));
    json_object_object_add(o, "requested_at", json_object_new_string(at));
    json_object_object_add(o, "expires_at", json_object_new_string(until));
    json_object_object_add(o, "age_sec", json_object_new_int64((now - r->requested_at_ms) / 1000));
    if (r->reason)
        json_object_object_add(o, "reason", json_object_new_string(r->reason));
    if (ct) {
        json_object_object_add(o, "intent", json_object_new_string(ct->intent ? ct->intent : ""));
        json_object_object_add(o, "risk_class", json_object_new_string(ct->risk_class));
        json_object_object_add(o, "approval_mode", json_object_new_string(ct->approval_mode));
        json_object_object_add(o, "initiating_user",
                               json_object_new_string(ct->actor.initiating_user ? ct->actor.initiating_user : ""));
        json_object_object_add(o, "commands", commands_json(ct));
        if (ct->justification)
            json_object_object_add(o, "justification", json_object_new_string(ct->justification));
    }
    return o;
}

/* ---- human decisions ------------------------------------------------------------- */

/* Revokes every unrevoked artifact stored for a contract hash. */
static int revoke_all(wr_store *st, const char *sha256, const char *reason, int64_t now, wr_error *err)
{
    stored_list sl;
    int rc = load_stored(st, sha256, &sl, err);
    for (size_t i = 0; rc == WR_OK && i < sl.n; i++)
        if (!sl.v[i].revoked)
            rc = wr_store_revoke_approval(st, sl.v[i].id, reason, now, err);
    stored_list_free(&sl);
    return rc;
}

int wr_approval_deny(wr_store *st, const char *request_id, const char *reason, const wr_ctx *ctx, wr_error *err)
{
    wr_approval_state s;
    int rc = wr_approval_state_get(st, request_id, ctx, &s, err);
    if (rc != WR_OK)
        return rc;
    if (strcmp(s.status, "pending") != 0 && strcmp(s.status, "approved") != 0) {
        rc = wr_errorf(err, WR_E_CONFLICT, "", "approval request %s is %s, not pending", request_id, s.status);
    } else {
        /* A deny is a veto: approvals already given (one of two, or one the
         * agent has not used yet) stop counting. */
        rc = wr_store_set_approval_request_status(st, request_id, "pending", "denied", reason, err);
        if (rc == WR_OK)
            rc = revoke_all(st, s.request.contract_sha256, reason ? reason : "request denied", wr_now_ms(ctx), err);
    }
    wr_approval_state_clear(&s);
    return rc;
}

int wr_approval_revoke(wr_store *st, const char *id, const char *reason, const wr_ctx *ctx, wr_error *err)
{
    int64_t now = wr_now_ms(ctx);
    if (strncmp(id, "apv_", 4) == 0)
        return wr_store_revoke_approval(st, id, reason ? reason : "revoked", now, err);
    wr_approval_request r;
    int rc = wr_store_get_approval_request(st, id, &r, err);
    if (rc != WR_OK)
        return rc;
    rc = wr_store_set_approval_request_status(st, id, NULL, "revoked", reason, err);
    if (rc == WR_OK)
        rc = revoke_all(st, r.contract_sha256, reason ? reason : "request revoked", now, err);
    wr_approval_request_clear(&r);
    return rc;
}
