/* gate — see gate.h. Every path through wr_gate_run ends in exactly one
 * sealed receipt; the executor is reached only after a fresh policy
 * evaluation and, where needed, an atomic consumption of approvals. */
#include "gate/gate.h"
#include "gate/gate_internal.h"

#include "approvals/approvals.h"
#include "executor/executor.h"
#include "receipts/receipts.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

/* A loaded policy with the number of callers still using it, so SIGHUP can
 * swap policies while runs that began under the old one finish with it. */
typedef struct policy_ref {
    wr_policy *policy;
    int refs;
    struct policy_ref *next; /* retired, still referenced */
} policy_ref;

/* Released marks whose files wait for the next wr_gate_prepare_run. */
#define SPENT_MARKS_MAX 16

struct wr_gate {
    wr_ctx ctx;
    char *state_dir;
    char *policy_pack; /* bundled pack loaded when no policy path is given */
    char *const *host_env;
    char *cgroup_root; /* NULL: /sys/fs/cgroup */
    wr_launch_pool *launchers;
    wr_store *store;
    wr_contracts *contracts;
    wr_schema *receipt_schema; /* compiled once: every outcome is sealed */
    wr_keypair key;
    /* The state dir (signing key, database, secrets) and the server's own
     * secrets, lexically normalised and with symlinks resolved. */
    wr_strv protected_paths;
    int64_t max_contracts, max_contract_bytes, max_pending; /* per agent: wr_gate_config */
    void (*observer)(void *ud, const wr_gate_event *ev);
    void *observer_ud;
    pthread_mutex_t mu; /* guards active and retired */
    policy_ref *active;
    policy_ref *retired;
    /* Live marks made ahead of runs (wr_gate_prepare_run), and the files of
     * released ones it removes, under marks_mu. */
    pthread_mutex_t marks_mu;
    struct live_mark {
        char execution_id[WR_ID_MAX];
        int fd;
    } marks[WR_GATE_MARKS_AHEAD];
    size_t nmarks;
    bool marks_ahead; /* wr_gate_prepare_run is called: it removes spent files */
    char spent[SPENT_MARKS_MAX][WR_ID_MAX];
    size_t nspent;
};

_Static_assert(WR_GATE_LAUNCHERS_MAX == WR_LAUNCH_POOL_MAX, "gate.h and executor.h disagree");

#define SECRET_MAX_BYTES (64u * 1024u)

/* The policy examples cache: a subdirectory of the state dir, and the
 * libsodium KDF subkey of the signing key's seed that keys its MACs. */
#define EXAMPLES_CACHE_DIR     "policy-examples"
#define EXAMPLES_CACHE_KDF_ID  1
#define EXAMPLES_CACHE_KDF_CTX "wrpolexa"

/* Default quotas per agent (wr_gate_config); contracts count for a day. */
#define QUOTA_CONTRACTS 1000
#define QUOTA_BYTES     (16LL * 1024 * 1024)
#define QUOTA_PENDING   64
#define QUOTA_WINDOW_MS (24LL * 60 * 60 * 1000)

/* ---- policy lifecycle --------------------------------------------------- */

/* A policy file's examples run once per policy and build, not at every
 * start: passes are recorded in the state dir, under a MAC key derived
 * from the signing key (policies/examples_cache.c). */
static int load_policy_file(wr_gate *g, const char *path, wr_policy **out, wr_error *err)
{
    char dir[PATH_MAX];
    wr_examples_cache cache = {.dir = dir};
    if (snprintf(dir, sizeof dir, "%s/" EXAMPLES_CACHE_DIR, g->state_dir) >= (int)sizeof dir)
        return wr_policy_load_file(path, out, err);
    crypto_kdf_derive_from_key(cache.key, sizeof cache.key, EXAMPLES_CACHE_KDF_ID, EXAMPLES_CACHE_KDF_CTX, g->key.sk);
    int rc = wr_policy_load_file_cached(path, &cache, out, err);
    sodium_memzero(cache.key, sizeof cache.key);
    return rc;
}

static int load_policy(wr_gate *g, const char *path, wr_policy **out, wr_error *err)
{
    int rc = path ? load_policy_file(g, path, out, err)
                  : wr_policy_load_bundled(g->policy_pack ? g->policy_pack : "default", out, err);
    if (rc != WR_OK)
        return rc;
    /* Bundles and auditors need the exact policy a receipt names. */
    char *canon = wr_canonical_json((*out)->json, false, NULL, err);
    if (!canon)
        goto fail;
    rc = wr_store_put_policy(g->store, (*out)->sha256, canon, err);
    free(canon);
    if (rc == WR_OK)
        return WR_OK;
fail:
    wr_policy_free(*out);
    *out = NULL;
    return err->code ? err->code : WR_E_INTERNAL;
}

int wr_gate_reload_policy(wr_gate *g, const char *path, wr_error *err)
{
    wr_policy *p = NULL;
    int rc = load_policy(g, path, &p, err);
    if (rc != WR_OK)
        return rc;
    policy_ref *ref = calloc(1, sizeof *ref);
    if (!ref) {
        wr_policy_free(p);
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    ref->policy = p;
    ref->refs = 1; /* the gate's own reference while active */
    pthread_mutex_lock(&g->mu);
    policy_ref *old = g->active;
    g->active = ref;
    if (old && --old->refs > 0) {
        old->next = g->retired;
        g->retired = old;
        old = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    if (old) {
        wr_policy_free(old->policy);
        free(old);
    }
    return WR_OK;
}

const wr_policy *wr_gate_policy_acquire(wr_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->active->refs++;
    const wr_policy *p = g->active->policy;
    pthread_mutex_unlock(&g->mu);
    return p;
}

void wr_gate_policy_release(wr_gate *g, const wr_policy *p)
{
    policy_ref *dead = NULL;
    pthread_mutex_lock(&g->mu);
    if (g->active->policy == p) {
        g->active->refs--;
    } else {
        for (policy_ref **pp = &g->retired; *pp; pp = &(*pp)->next) {
            if ((*pp)->policy != p)
                continue;
            if (--(*pp)->refs == 0) {
                dead = *pp;
                *pp = dead->next;
            }
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (dead) {
        wr_policy_free(dead->policy);
        free(dead);
    }
}

/* ---- protected paths ------------------------------------------------------ */

/* Adds a path in both spellings a declared path could be compared with:
 * lexically normalised and with symlinks resolved (when it exists). */
static int protect_path(wr_gate *g, const char *path, wr_error *err)
{
    char *abs = NULL, *norm = NULL, real[PATH_MAX];
    if (path[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return wr_errorf(err, WR_E_IO, path, "cannot resolve %s", path);
        if (asprintf(&abs, "%s/%s", cwd, path) < 0)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    }
    int rc = wr_path_normalize(abs ? abs : path, &norm, err);
    free(abs);
    if (rc != WR_OK)
        return rc;
    rc = wr_strv_push(&g->protected_paths, norm);
    free(norm);
    if (rc == WR_OK && realpath(path, real))
        rc = wr_strv_push(&g->protected_paths, real);
    return rc == WR_OK ? WR_OK : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
}

/* A declared path exposes a protected one when either contains the other:
 * reading "/home/me" would expose "/home/me/.local/state/warrant". The
 * resolved form catches a declared path that is a symlink into it. */
static const char *exposed_by(const wr_gate *g, const char *declared)
{
    char root[PATH_MAX], real[PATH_MAX];
    snprintf(root, sizeof root, "%s", declared);
    size_t n = strlen(root);
    if (n >= 3 && strcmp(root + n - 3, "/**") == 0)
        root[n == 3 ? 1 : n - 3] = '\0';
    bool resolved = realpath(root, real) != NULL;
    for (size_t i = 0; i < g->protected_paths.n; i++) {
        const char *p = g->protected_paths.v[i];
        if (wr_path_within(root, p) || wr_path_within(p, root))
            return p;
        if (resolved && (wr_path_within(real, p) || wr_path_within(p, real)))
            return p;
    }
    return NULL;
}

static bool exposes_protected(const wr_gate *g, const wr_contract *ct, char *why, size_t whylen)
{
    for (size_t i = 0; i < ct->ncommands; i++) {
        const wr_command *c = &ct->commands[i];
        const wr_strv *lists[] = {&c->read_paths, &c->write_paths};
        const char *hit = NULL, *what = NULL;
        if ((hit = exposed_by(g, c->cwd)))
            what = c->cwd;
        for (size_t l = 0; !hit && l < 2; l++)
            for (size_t j = 0; !hit && j < lists[l]->n; j++)
                if ((hit = exposed_by(g, lists[l]->v[j])))
                    what = lists[l]->v[j];
        if (hit) {
            snprintf(why, whylen,
                     "command %s: declared path %s would expose %s, which holds warrant's own "
                     "keys and records; no contract may see it",
                     c->id, what, hit);
            return true;
        }
    }
    return false;
}

/* ---- open / close ------------------------------------------------------- */

int wr_gate_default_state_dir(char *buf, size_t len)
{
    const char *e = getenv("WARRANT_STATE_DIR");
    int n;
    if (e && *e)
        n = snprintf(buf, len, "%s", e);
    else if ((e = getenv("XDG_STATE_HOME")) && *e == '/')
        n = snprintf(buf, len, "%s/warrant", e);
    else if ((e = getenv("HOME")) && *e == '/')
        n = snprintf(buf, len, "%s/.local/state/warrant", e);
    else
        return WR_E_NOTFOUND;
    return n > 0 && (size_t)n < len ? WR_OK : WR_E_LIMIT;
}

static void seal_interrupted(wr_gate *g);
static void unmark_running(wr_gate *g, const char *execution_id, int fd);
static void remove_spent(wr_gate *g);

/* Said once at start: what isolates runs on this host (never a silent
 * fallback), after killing what dead predecessors left in their cgroups. */
static void log_isolation(wr_gate *g)
{
    const wr_policy *p = wr_gate_policy_acquire(g);
    size_t reaped = 0;
    wr_error e = {0};
    json_object *iso = wr_exec_host_isolation(&p->sandbox, g->cgroup_root, &g->ctx, &reaped, &e);
    wr_gate_policy_release(g, p);
    if (!iso) {
        wr_log(&g->ctx, WR_LOG_WARNING, "sandbox", "cannot tell what isolates runs on this host: %s", e.message);
        return;
    }
    json_object *cg = NULL, *mode = NULL, *why = NULL, *abi = NULL, *best = NULL;
    json_object_object_get_ex(iso, "cgroup", &cg);
    json_object_object_get_ex(cg, "mode", &mode);
    json_object_object_get_ex(cg, "fallback", &why);
    json_object_object_get_ex(iso, "landlock_abi", &abi);
    json_object_object_get_ex(iso, "best_score", &best);
    wr_log(&g->ctx, why ? WR_LOG_NOTICE : WR_LOG_INFO, "sandbox",
           "cgroup %s%s%s; Landlock ABI %d; best isolation strength %d/100%s", json_object_get_string(mode),
           why ? ": " : "", why ? json_object_get_string(why) : "", json_object_get_int(abi), json_object_get_int(best),
           reaped ? "; killed the run cgroups a dead warrant left" : "");
    json_object_put(iso);
}

json_object *wr_gate_isolation(wr_gate *g)
{
    const wr_policy *p = wr_gate_policy_acquire(g);
    json_object *iso = wr_exec_host_isolation(&p->sandbox, g->cgroup_root, &g->ctx, NULL, NULL);
    wr_gate_policy_release(g, p);
    return iso;
}

int wr_gate_open(const wr_gate_config *cfg, wr_gate **out, wr_error *err)
{
    *out = NULL;
    if (!cfg->state_dir || !*cfg->state_dir)
        return wr_errorf(err, WR_E_INVALID, "", "a state dir is required");
    wr_gate *g = calloc(1, sizeof *g);
    if (!g)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->marks_mu, NULL);
    g->ctx = cfg->ctx ? *cfg->ctx : wr_ctx_system();
    g->observer = cfg->observer;
    g->observer_ud = cfg->observer_ud;
    g->host_env = cfg->host_env;
    g->max_contracts = cfg->max_contracts_per_agent > 0 ? cfg->max_contracts_per_agent : QUOTA_CONTRACTS;
    g->max_contract_bytes = cfg->max_contract_bytes_per_agent > 0 ? cfg->max_contract_bytes_per_agent : QUOTA_BYTES;
    g->max_pending = cfg->max_pending_per_agent > 0 ? cfg->max_pending_per_agent : QUOTA_PENDING;
    int rc = WR_E_NOMEM;
    const char *cg = cfg->cgroup_root ? cfg->cgroup_root : getenv("WARRANT_CGROUP_ROOT");
    if (cg && *cg && !(g->cgroup_root = strdup(cg)))
        goto fail;
    /* First: the launchers join their cgroups while the rest starts up. */
    size_t nl = cfg->launchers < 0 ? WR_LAUNCH_POOL_DEFAULT : (size_t)cfg->launchers;
    if (nl &&
        (rc = wr_launch_pool_new(g->cgroup_root, nl, cfg->launchers_refill, &g->ctx, &g->launchers, err)) != WR_OK)
        goto fail;
    rc = WR_E_NOMEM;
    if (!(g->state_dir = strdup(cfg->state_dir)))
        goto fail;
    if (cfg->policy_pack && !(g->policy_pack = strdup(cfg->policy_pack)))
        goto fail;
    if ((rc = wr_store_open(cfg->state_dir, &g->store, err)) != WR_OK)
        goto fail;
    if ((rc = protect_path(g, cfg->state_dir, err)) != WR_OK)
        goto fail;
    for (size_t i = 0; cfg->protected_paths && cfg->protected_paths[i]; i++)
        if ((rc = protect_path(g, cfg->protected_paths[i], err)) != WR_OK)
            goto fail;
    if ((rc = wr_server_key_load_or_create(cfg->state_dir, &g->ctx, &g->key, err)) != WR_OK)
        goto fail;
    rc = WR_E_INTERNAL;
    if (!(g->contracts = wr_contracts_new(err)))
        goto fail;
    if (!(g->receipt_schema = wr_receipt_schema_new(err)))
        goto fail;
    if ((rc = wr_gate_reload_policy(g, cfg->policy_path, err)) != WR_OK)
        goto fail;
    log_isolation(g);
    seal_interrupted(g);
    *out = g;
    return WR_OK;
fail:
    if (err && !err->code)
        wr_errorf(err, rc, "", "out of memory");
    wr_gate_close(g);
    return rc;
}

void wr_gate_close(wr_gate *g)
{
    if (!g)
        return;
    /* Callers stop all runs before closing: remaining refs are a bug, but
     * freeing everything here keeps the process clean on shutdown. */
    if (g->active)
        g->active->next = g->retired;
    for (policy_ref *r = g->active ? g->active : g->retired, *next; r; r = next) {
        next = r->next;
        wr_policy_free(r->policy);
        free(r);
    }
    for (size_t i = 0; i < g->nmarks; i++)
        unmark_running(g, g->marks[i].execution_id, g->marks[i].fd);
    remove_spent(g);
    wr_launch_pool_free(g->launchers);
    wr_contracts_free(g->contracts);
    wr_schema_free(g->receipt_schema);
    wr_store_close(g->store);
    wr_keypair_wipe(&g->key);
    wr_strv_free(&g->protected_paths);
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->marks_mu);
    free(g->state_dir);
    free(g->policy_pack);
    free(g->cgroup_root);
    free(g);
}

const wr_contracts *wr_gate_contracts(wr_gate *g)
{
    return g->contracts;
}
const wr_ctx *wr_gate_ctx(wr_gate *g)
{
    return &g->ctx;
}

wr_store *wr_gate__store(wr_gate *g)
{
    return g->store;
}

const wr_keypair *wr_gate__key(wr_gate *g)
{
    return &g->key;
}

static int count_one(void *ud, const wr_approval_request *r)
{
    (void)r;
    (*(long *)ud)++;
    return 0;
}

int wr_gate_count_pending_approvals(wr_gate *g, long *out, wr_error *err)
{
    *out = 0;
    return wr_store_list_approval_requests(g->store, "pending", count_one, out, err);
}

/* ---- decisions ------------------------------------------------------------ */

static double seconds_since(const wr_gate *g, int64_t start_ms)
{
    return (double)(wr_now_ms(&g->ctx) - start_ms) / 1000.0;
}

static void observe(const wr_gate *g, const wr_gate_event *ev)
{
    if (g->observer)
        g->observer(g->observer_ud, ev);
}

/* Every evaluation goes through here, so each one is observed once. */
static int evaluate(wr_gate *g, const char *operation, const wr_policy *p, const wr_contract *ct, const char *identity,
                    wr_decision **out, wr_error *err)
{
    /* check is the hot path: read the clock only for an observer */
    int64_t start = g->observer ? wr_now_ms(&g->ctx) : 0;
    int rc = wr_policy_evaluate(p, ct, &g->ctx, out, err);
    if (rc == WR_OK && g->observer)
        observe(g, &(wr_gate_event){.kind = WR_GATE_DECISION,
                                    .identity = identity ? identity : ct->actor.agent_id,
                                    .outcome = wr_decision_kind_name((*out)->kind),
                                    .reason = (*out)->reason_code,
                                    .operation = operation,
                                    .seconds = seconds_since(g, start)});
    return rc;
}

static int identity_mismatch(const wr_contract *ct, const char *client_identity, wr_error *err)
{
    const char *actor = ct->actor.agent_id ? ct->actor.agent_id : "";
    if (!client_identity || strcmp(actor, client_identity) == 0)
        return WR_OK;
    return wr_errorf(err, WR_E_DENIED, "/actor/agent_id",
                     "identity mismatch: actor.agent_id \"%.200s\" is not the authenticated client \"%.200s\"", actor,
                     client_identity);
}

int wr_gate_check(wr_gate *g, const wr_contract *ct, const char *client_identity, wr_decision **out, wr_error *err)
{
    *out = NULL;
    int rc = identity_mismatch(ct, client_identity, err);
    if (rc != WR_OK)
        return rc;
    const wr_policy *p = wr_gate_policy_acquire(g);
    rc = evaluate(g, "check", p, ct, client_identity, out, err);
    wr_gate_policy_release(g, p);
    return rc;
}

/* An agent's quotas (the local CLI, without identity, has none): a new
 * contract must fit the day's count and bytes; a new approval request the
 * pending count. Contracts stored before (same hash) cost nothing. */
static int check_quota(wr_gate *g, const wr_contract *ct, const char *client_identity, bool new_request, wr_error *err)
{
    if (!client_identity)
        return WR_OK;
    int64_t now = wr_now_ms(&g->ctx);
    wr_agent_usage u = {0};
    int rc = wr_store_agent_usage(g->store, client_identity, now - QUOTA_WINDOW_MS, now, &u, err);
    if (rc != WR_OK)
        return rc;
    if (new_request && u.pending_requests >= g->max_pending)
        return wr_errorf(err, WR_E_LIMIT, "",
                         "quota exceeded: agent \"%.100s\" has %lld approval requests pending (limit %lld); they "
                         "expire after the policy's request_ttl_sec, or a human decides them",
                         client_identity, (long long)u.pending_requests, (long long)g->max_pending);
    int64_t size = (int64_t)strlen(wr_json_compact(ct->json));
    if (u.contracts < g->max_contracts && u.contract_bytes + size <= g->max_contract_bytes)
        return WR_OK;
    char *stored = NULL;
    wr_error e;
    wr_error_clear(&e);
    if (wr_store_get_contract(g->store, ct->sha256, &stored, &e) == WR_OK) {
        free(stored);
        return WR_OK;
    }
    return wr_errorf(err, WR_E_LIMIT, "",
                     "quota exceeded: agent \"%.100s\" stored %lld contracts (%lld bytes) in the last 24 h "
                     "(limit %lld contracts, %lld bytes); run stored contracts by contract_id, or wait",
                     client_identity, (long long)u.contracts, (long long)u.contract_bytes, (long long)g->max_contracts,
                     (long long)g->max_contract_bytes);
}

/* Stores the contract and the decision made for it (evidence for bundles)
 * and, when rec names one, the execution: one durable transaction. */
static int store_contract_and_decision(wr_gate *g, const wr_contract *ct, const wr_decision *d, wr_run_record *rec,
                                       wr_error *err)
{
    char *canon = wr_canonical_json(ct->json, false, NULL, err);
    if (!canon)
        return err->code ? err->code : WR_E_INTERNAL;
    json_object *dj = d ? wr_decision_to_json(d) : NULL;
    wr_run_record plain = {0};
    if (!rec)
        rec = &plain;
    rec->contract_id = ct->contract_id;
    rec->contract_sha256 = ct->sha256;
    rec->agent_id = ct->actor.agent_id;
    rec->contract_json = canon;
    rec->decision_json = dj ? wr_json_compact(dj) : NULL;
    rec->now_ms = wr_now_ms(&g->ctx);
    int rc = wr_store_record_run(g->store, rec, err);
    json_object_put(dj);
    free(canon);
    return rc;
}

static int refuse(wr_gate *g, const wr_contract *ct, const char *error, json_object **receipt_out, wr_error *err);

int wr_gate_propose(wr_gate *g, const wr_contract *ct, const char *client_identity, wr_proposal *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = identity_mismatch(ct, client_identity, err);
    if (rc != WR_OK) {
        wr_error e;
        wr_error_clear(&e);
        if (refuse(g, ct, err->message, &out->refusal_receipt, &e) != WR_OK)
            *err = e; /* a fault of the server outranks the refusal */
        return err->code;
    }
    const wr_policy *p = wr_gate_policy_acquire(g);
    rc = evaluate(g, "propose", p, ct, client_identity, &out->decision, err);
    if (rc == WR_OK)
        rc = check_quota(g, ct, client_identity, out->decision->kind == WR_NEEDS_APPROVAL, err);
    if (rc == WR_OK)
        rc = store_contract_and_decision(g, ct, out->decision, NULL, err);
    if (rc == WR_OK && out->decision->kind == WR_NEEDS_APPROVAL) {
        rc = wr_approval_request_open(g->store, ct, out->decision, p, &g->ctx, out->request_id, err);
        out->has_request = rc == WR_OK;
    }
    wr_gate_policy_release(g, p);
    if (rc != WR_OK)
        wr_proposal_clear(out);
    return rc;
}

void wr_proposal_clear(wr_proposal *p)
{
    wr_decision_free(p->decision);
    json_object_put(p->refusal_receipt);
    memset(p, 0, sizeof *p);
}

int wr_gate_load_contract(wr_gate *g, const char *id, wr_contract **out, wr_error *err)
{
    char *json = NULL;
    int rc = wr_store_get_contract(g->store, id, &json, err);
    if (rc != WR_OK)
        return rc;
    rc = wr_contract_parse(g->contracts, json, strlen(json), out, err);
    free(json);
    return rc;
}

int wr_gate_get_receipt(wr_gate *g, const char *client_identity, const char *execution_id, json_object **out,
                        wr_error *err)
{
    *out = NULL;
    char *text = NULL;
    int rc = wr_store_get_receipt(g->store, execution_id, &text, err);
    if (rc != WR_OK)
        return rc;
    json_object *r = wr_json_parse(text, strlen(text), NULL, err);
    free(text);
    if (!r)
        return wr_errorf(err, WR_E_INTERNAL, "", "stored receipt %s is unreadable: %s", execution_id, err->message);
    json_object *agent = NULL;
    if (client_identity &&
        (!json_object_object_get_ex(r, "agent_id", &agent) || !json_object_is_type(agent, json_type_string) ||
         strcmp(json_object_get_string(agent), client_identity))) {
        json_object_put(r);
        return wr_errorf(err, WR_E_NOTFOUND, "", "no receipt with execution_id %.128s", execution_id);
    }
    *out = r;
    return WR_OK;
}

int wr_gate_get_approval(wr_gate *g, const char *client_identity, const char *request_id, wr_gate_approval *out,
                         wr_error *err)
{
    memset(out, 0, sizeof *out);
    wr_approval_state as;
    memset(&as, 0, sizeof as);
    int rc = wr_approval_state_get(g->store, request_id, &g->ctx, &as, err);
    if (rc != WR_OK)
        return rc;
    if (client_identity && (!as.request.agent_id || strcmp(as.request.agent_id, client_identity))) {
        wr_approval_state_clear(&as);
        return wr_errorf(err, WR_E_NOTFOUND, "", "no approval request %.128s", request_id);
    }
    snprintf(out->status, sizeof out->status, "%s", as.status);
    snprintf(out->contract_id, sizeof out->contract_id, "%s", as.request.contract_id ? as.request.contract_id : "");
    snprintf(out->contract_sha256, sizeof out->contract_sha256, "%s",
             as.request.contract_sha256 ? as.request.contract_sha256 : "");
    out->required_approvals = as.request.required_approvals;
    out->approvals_valid = as.approvals_valid;
    out->expires_at_ms = as.request.expires_at_ms;
    out->approvals = as.approvals ? json_object_get(as.approvals) : json_object_new_array();
    wr_approval_state_clear(&as);
    return WR_OK;
}

void wr_gate_approval_clear(wr_gate_approval *a)
{
    json_object_put(a->approvals);
    memset(a, 0, sizeof *a);
}

void wr_gate__observe_approval(wr_gate *g, const char *identity, const char *request_id, const char *outcome)
{
    observe(g, &(wr_gate_event){.kind = WR_GATE_APPROVAL, .identity = identity, .outcome = outcome});
    wr_log_event(
        &g->ctx, WR_LOG_INFO, "gate",
        &(wr_log_fields){.event = "approval", .identity = identity, .request_id = request_id, .outcome = outcome},
        "approval %s", outcome);
}

int wr_gate_submit_approval(wr_gate *g, json_object *artifact, char request_id[WR_ID_MAX], wr_error *err)
{
    request_id[0] = '\0';
    const wr_policy *p = wr_gate_policy_acquire(g);
    int rc = wr_approval_accept(g->store, p, artifact, g->key.pk, &g->ctx, request_id, err);
    wr_gate_policy_release(g, p);
    json_object *approver = NULL, *identity = NULL;
    json_object_object_get_ex(artifact, "approver", &approver);
    json_object_object_get_ex(approver, "identity", &identity);
    wr_gate__observe_approval(g, json_object_get_string(identity), request_id[0] ? request_id : NULL,
                              rc == WR_OK ? "accepted" : "refused");
    return rc;
}

/* ---- receipts ------------------------------------------------------------- */

/* Everything a receipt needs, gathered along the run. */
typedef struct run_state {
    wr_gate *g;
    const wr_contract *ct;
    const wr_policy *policy;
    const wr_decision *decision;
    const char *client_identity;
    char execution_id[WR_ID_MAX];
    int64_t started_ms;
    wr_exec_result *exec;
    wr_authz authz;
    const wr_gate_provenance *provenance;
    wr_gate_digest *written; /* the run's artifacts, as handed to collect_products */
    bool unrecorded;         /* evaluated, contract and decision not stored yet */
} run_state;

/* receipts/ has its own plain types: one list holds materials, then products. */
static int receipt_provenance(const wr_gate_provenance *gp, wr_receipt_provenance *rp, wr_receipt_artifact **list)
{
    size_t nm = gp->nmaterials, np = gp->nproducts;
    wr_receipt_artifact *l = *list = calloc(nm + np + 1, sizeof *l);
    if (!l)
        return WR_E_NOMEM;
    for (size_t i = 0; i < nm; i++)
        l[i] = (wr_receipt_artifact){gp->materials[i].path, gp->materials[i].sha256};
    for (size_t i = 0; i < np; i++)
        l[nm + i] = (wr_receipt_artifact){gp->products[i].path, gp->products[i].sha256};
    *rp = (wr_receipt_provenance){
        .capsule_name = gp->capsule_name,
        .capsule_version = gp->capsule_version,
        .capsule_sha256 = gp->capsule_sha256,
        .signer_key_id = gp->signer_key_id,
        .materials = l,
        .nmaterials = nm,
        .products = l + nm,
        .nproducts = np,
        .reproduces = gp->reproduces,
        .reproduced = gp->reproduced,
    };
    return WR_OK;
}

static int seal(run_state *rs, const char *status, const char *error, json_object **receipt_out, wr_error *err)
{
    wr_receipt_input in = {
        .execution_id = rs->execution_id,
        .contract_id = rs->ct->contract_id,
        .contract_sha256 = rs->ct->sha256,
        .status = status,
        .started_ms = rs->started_ms,
        .ended_ms = wr_now_ms(&rs->g->ctx),
        .error = error,
        .agent_id = rs->ct->actor.agent_id,
    };
    wr_receipt_provenance prov;
    wr_receipt_artifact *prov_list = NULL;
    if (rs->provenance) {
        if (receipt_provenance(rs->provenance, &prov, &prov_list) != WR_OK)
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        in.provenance = &prov;
    }
    if (rs->policy) {
        in.policy_profile = rs->policy->name;
        in.policy_schema_version = rs->policy->schema_version;
        in.policy_sha256 = rs->policy->sha256;
    }
    if (rs->decision) {
        in.decision = wr_decision_kind_name(rs->decision->kind);
        in.reason_code = rs->decision->reason_code;
    }
    wr_receipt_approval approvals[8];
    for (size_t i = 0; i < rs->authz.nuses && i < 8; i++) {
        const wr_approval_use *u = &rs->authz.uses[i];
        approvals[i] = (wr_receipt_approval){u->approval_id, u->identity, u->method, u->key_id,
                                             u->client_attested ? "client" : "approver_key"};
        in.napprovals = i + 1;
    }
    in.approvals = approvals;
    wr_receipt_artifact *arts = NULL;
    const wr_exec_result *x = rs->exec;
    if (x) {
        in.has_exit_code = x->status != WR_EXEC_BLOCKED;
        in.exit_code = x->exit_code;
        if (in.has_exit_code) {
            in.stdout_hash = x->out.captured_sha256;
            in.stderr_hash = x->err.captured_sha256;
            in.stdout_stream_sha256 = x->out.stream_sha256;
            in.stderr_stream_sha256 = x->err.stream_sha256;
        }
        in.stdout_truncated = x->out.truncated;
        in.stderr_truncated = x->err.truncated;
        in.stdout_bytes = x->out.total_bytes;
        in.stderr_bytes = x->err.total_bytes;
        in.completed_command_ids = &x->completed_command_ids;
        in.failed_command_id = x->failed_command_id;
        in.network_used = x->network_used;
        in.network_egress = x->network;
        in.secrets_used = x->secrets_used;
        in.sandbox_profile_id = x->sandbox_profile_id[0] ? x->sandbox_profile_id : NULL;
        in.sandbox_profile_sha256 = x->sandbox_profile_sha256[0] ? x->sandbox_profile_sha256 : NULL;
        in.isolation = x->isolation;
        if (x->nartifacts) {
            arts = calloc(x->nartifacts, sizeof *arts);
            if (!arts)
                return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            for (size_t i = 0; i < x->nartifacts; i++)
                arts[i] = (wr_receipt_artifact){x->artifacts[i].path, x->artifacts[i].sha256};
            in.artifacts = arts;
            in.nartifacts = x->nartifacts;
        }
    }
    json_object *unsigned_receipt = wr_receipt_build(&in);
    free(arts);
    free(prov_list);
    if (!unsigned_receipt)
        return wr_errorf(err, WR_E_NOMEM, "", "could not build the receipt");
    /* A run stopped before its execution was recorded still leaves its
     * contract and decision behind. */
    int rc = rs->unrecorded ? store_contract_and_decision(rs->g, rs->ct, rs->decision, NULL, err) : WR_OK;
    /* The captured output commits with the receipt (one transaction). */
    wr_store_output output = {0};
    if (x)
        output = (wr_store_output){x->out.captured, x->err.captured, x->out.captured_len, x->err.captured_len};
    if (rc == WR_OK)
        rc = wr_receipt_seal_output(rs->g->store, &rs->g->key, &rs->g->ctx, rs->g->receipt_schema, unsigned_receipt,
                                    rs->execution_id, x ? &output : NULL, receipt_out, err);
    else
        json_object_put(unsigned_receipt);
    if (rc == WR_OK) {
        wr_gate_event ev = {.kind = WR_GATE_SEALED,
                            .identity = rs->client_identity ? rs->client_identity : rs->ct->actor.agent_id,
                            .execution_id = rs->execution_id,
                            .outcome = status,
                            .reason = in.reason_code,
                            .seconds = seconds_since(rs->g, rs->started_ms),
                            .sandbox_start_sec = rs->exec && rs->exec->sandbox_start_ms >= 0
                                                     ? (double)rs->exec->sandbox_start_ms / 1000.0
                                                     : -1};
        observe(rs->g, &ev);
        wr_log_event(
            &rs->g->ctx, WR_LOG_INFO, "gate",
            &(wr_log_fields){
                .event = "run.sealed", .identity = ev.identity, .execution_id = ev.execution_id, .outcome = status},
            "receipt sealed: %s", status);
    }
    return rc;
}

/* A blocked receipt for a contract refused before evaluation. */
static int refuse(wr_gate *g, const wr_contract *ct, const char *error, json_object **receipt_out, wr_error *err)
{
    run_state rs = {.g = g, .ct = ct, .started_ms = wr_now_ms(&g->ctx)};
    wr_random_id(&g->ctx, "exe_", rs.execution_id, sizeof rs.execution_id);
    rs.policy = wr_gate_policy_acquire(g);
    int rc = seal(&rs, "blocked", error, receipt_out, err);
    wr_gate_policy_release(g, rs.policy);
    return rc;
}

/* ---- approvals ------------------------------------------------------------ */

static bool cancel_requested(int fd, int timeout_ms)
{
    if (fd < 0) {
        if (timeout_ms > 0)
            poll(NULL, 0, timeout_ms);
        return false;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) > 0;
}

/* ---- runs interrupted by a crash -------------------------------------------
 * A run holds an flock on STATE_DIR/running/EXECUTION_ID from before its
 * execution row exists until its receipt is sealed. An execution still
 * "running" in the store whose lock nobody holds belonged to a warrant
 * that died: the next start seals it failed, "interrupted". */
#define RUNNING_DIR "running"

static void running_path(const wr_gate *g, const char *execution_id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" RUNNING_DIR "/%s", g->state_dir, execution_id);
}

/* The lock fd (held until unmark_running), or -1 with err set. */
static int mark_running(wr_gate *g, const char *execution_id, wr_error *err)
{
    char path[PATH_MAX];
    running_path(g, execution_id, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    wr_errorf(err, WR_E_IO, path, "cannot mark the run live in %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd), unlink(path);
    return -1;
}

static void unmark_running(wr_gate *g, const char *execution_id, int fd)
{
    char path[PATH_MAX];
    running_path(g, execution_id, path, sizeof path);
    unlink(path);
    close(fd);
}

/* Creating the mark is journal work on the state dir's file system (~0.1
 * ms, up to 0.7 ms measured) that needs nothing of the request but a fresh
 * execution id: a server makes the next runs' marks ahead, after a run. A
 * mark that a crash leaves unused names no execution and is never read. */
void wr_gate_prepare_run(wr_gate *g)
{
    remove_spent(g);
    pthread_mutex_lock(&g->marks_mu);
    g->marks_ahead = true;
    bool full = g->nmarks == WR_GATE_MARKS_AHEAD;
    pthread_mutex_unlock(&g->marks_mu);
    if (full)
        return;
    struct live_mark m;
    wr_random_id(&g->ctx, "exe_", m.execution_id, sizeof m.execution_id);
    if ((m.fd = mark_running(g, m.execution_id, NULL)) < 0)
        return; /* the run makes its own, and reports why it cannot */
    pthread_mutex_lock(&g->marks_mu);
    full = g->nmarks == WR_GATE_MARKS_AHEAD;
    if (!full)
        g->marks[g->nmarks++] = m;
    pthread_mutex_unlock(&g->marks_mu);
    if (full)
        unmark_running(g, m.execution_id, m.fd);
}

/* A run's mark once its receipt is sealed: its lock goes at once. Where
 * marks are made ahead, its file goes with the next one: the unlink and the
 * inode's eviction at its last close are journal work too (~35 µs). A file
 * that a crash leaves names a sealed execution and is never read. */
static void release_mark(wr_gate *g, const char *execution_id, int fd)
{
    pthread_mutex_lock(&g->marks_mu);
    bool later = g->marks_ahead && g->nspent < SPENT_MARKS_MAX;
    if (later)
        snprintf(g->spent[g->nspent++], WR_ID_MAX, "%s", execution_id);
    pthread_mutex_unlock(&g->marks_mu);
    if (later)
        close(fd);
    else
        unmark_running(g, execution_id, fd);
}

static void remove_spent(wr_gate *g)
{
    char spent[SPENT_MARKS_MAX][WR_ID_MAX];
    pthread_mutex_lock(&g->marks_mu);
    size_t n = g->nspent;
    memcpy(spent, g->spent, n * sizeof spent[0]);
    g->nspent = 0;
    pthread_mutex_unlock(&g->marks_mu);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        running_path(g, spent[i], path, sizeof path);
        unlink(path);
    }
}

/* A mark made ahead (its fd, the id in execution_id), or -1. */
static int take_mark(wr_gate *g, char execution_id[WR_ID_MAX])
{
    int fd = -1;
    pthread_mutex_lock(&g->marks_mu);
    if (g->nmarks) {
        struct live_mark *m = &g->marks[--g->nmarks];
        memcpy(execution_id, m->execution_id, WR_ID_MAX);
        fd = m->fd;
    }
    pthread_mutex_unlock(&g->marks_mu);
    return fd;
}

/* Whether the run's lock is free (its process is gone): then it is ours. */
static bool run_abandoned(wr_gate *g, const char *execution_id)
{
    char path[PATH_MAX];
    running_path(g, execution_id, path, sizeof path);
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT; /* crashed before it could be marked */
    bool free_lock = flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (free_lock)
        unlink(path);
    close(fd);
    return free_lock;
}

static void seal_interrupted(wr_gate *g)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/" RUNNING_DIR, g->state_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        wr_log(&g->ctx, WR_LOG_WARNING, "gate", "cannot create %s: %s", dir, strerror(errno));
    wr_strv ids, shas;
    wr_error e = {0};
    if (wr_store_list_running(g->store, &ids, &shas, &e) != WR_OK) {
        wr_log(&g->ctx, WR_LOG_WARNING, "gate", "cannot list interrupted runs: %s", e.message);
        return;
    }
    size_t sealed = 0;
    for (size_t i = 0; i < ids.n; i++) {
        wr_contract *ct = NULL;
        if (!run_abandoned(g, ids.v[i]) || wr_gate_load_contract(g, shas.v[i], &ct, &e) != WR_OK) {
            wr_error_clear(&e);
            continue;
        }
        /* What is known: its sandbox was SIGKILLed with its warrant (parent-
         * death signal, or the run cgroups killed at this start) and the
         * output went with it: nothing captured, marked truncated. */
        wr_exec_result lost = {.status = WR_EXEC_FAILED, .exit_code = 128 + SIGKILL};
        wr_exec_stream *streams[] = {&lost.out, &lost.err};
        for (size_t k = 0; k < 2; k++) {
            streams[k]->truncated = true;
            wr_sha256_hex("", 0, streams[k]->captured_sha256);
            wr_sha256_hex("", 0, streams[k]->stream_sha256);
        }
        run_state rs = {.g = g, .ct = ct, .started_ms = wr_now_ms(&g->ctx), .exec = &lost};
        snprintf(rs.execution_id, sizeof rs.execution_id, "%s", ids.v[i]);
        rs.policy = wr_gate_policy_acquire(g);
        json_object *receipt = NULL;
        if (seal(&rs, "failed", "interrupted: the warrant process running it ended before it finished", &receipt, &e) ==
            WR_OK)
            sealed++;
        else
            wr_log(&g->ctx, WR_LOG_WARNING, "gate", "execution %s: %s", ids.v[i], e.message);
        json_object_put(receipt);
        wr_gate_policy_release(g, rs.policy);
        wr_contract_free(ct);
    }
    if (sealed)
        wr_log(&g->ctx, WR_LOG_NOTICE, "gate", "sealed %zu interrupted run%s as failed", sealed,
               sealed == 1 ? "" : "s");
    wr_strv_free(&ids);
    wr_strv_free(&shas);
}

/* The person behind a client the operator marked elicitation:human
 * answered (MCP elicitation): the server signs an artifact recording exactly
 * that, under that person's identity; approvals/ counts it only where the
 * policy allows in-band approval, flagged client-attested. */
static int record_elicitation(run_state *rs, const char *human, const char *request_id, wr_error *err)
{
    int64_t now = wr_now_ms(&rs->g->ctx);
    int64_t life = rs->policy->approval.max_lifetime_sec > 0 ? rs->policy->approval.max_lifetime_sec : 300;
    if (life > 300)
        life = 300; /* an in-band answer is for this run, not for later */
    wr_approval_params ap = {
        .identity = human,
        .method = "elicitation",
        .contract_sha256 = rs->ct->sha256,
        .approved_at_ms = now,
        .expires_at_ms = now + life * 1000,
        .reason = "accepted by the user in the MCP client (elicitation)",
    };
    json_object *artifact = NULL;
    int rc = wr_approval_sign(&rs->g->key, &ap, &rs->g->ctx, &artifact, err);
    if (rc != WR_OK)
        return rc;
    json_object *id = json_object_object_get(artifact, "approval_id");
    rc = wr_store_put_approval(rs->g->store, json_object_get_string(id), request_id, rs->ct->sha256, ap.identity,
                               wr_json_compact(artifact), ap.expires_at_ms, now, err);
    json_object_put(artifact);
    return rc;
}

/* Returns the receipt status to seal when approval is not granted, or NULL
 * when it is (rs->authz then lists the approvals to use). */
static const char *authorize(run_state *rs, const wr_run_request *req, wr_run_outcome *out, char *why, size_t whylen,
                             wr_error *err)
{
    wr_gate *g = rs->g;
    if (wr_approval_request_open(g->store, rs->ct, rs->decision, rs->policy, &g->ctx, out->request_id, err) != WR_OK) {
        snprintf(why, whylen, "could not queue the approval request: %s", err->message);
        return "blocked";
    }
    int64_t waited = 0, limit = req->wait_for_approval_ms;
    int64_t max_wait = rs->policy->approval.max_wait_sec * 1000;
    if (limit > max_wait)
        limit = max_wait;
    bool asked = false;
    char inband[300] = "";
    for (;;) {
        wr_authz_clear(&rs->authz);
        wr_error aerr = {0};
        if (wr_approvals_authorize(g->store, rs->policy, rs->ct, rs->decision, req->approvals, req->napprovals, &g->key,
                                   &g->ctx, &rs->authz, &aerr) != WR_OK) {
            snprintf(why, whylen, "approval check failed: %s", aerr.message);
            return "blocked";
        }
        switch (rs->authz.status) {
        case WR_AUTHZ_GRANTED:
            return NULL;
        case WR_AUTHZ_EXPIRED:
            snprintf(why, whylen, "%s", rs->authz.reason);
            return "expired";
        case WR_AUTHZ_REFUSED:
            snprintf(why, whylen, "approval refused: %s", rs->authz.reason);
            return "blocked";
        case WR_AUTHZ_PENDING:
            break;
        }
        if (!asked && req->ask_human) {
            asked = true;
            char off[256];
            if (!req->elicitation_human)
                snprintf(inband, sizeof inband,
                         "; in-band approval (MCP elicitation) on the agent's own session is not an approval: an "
                         "agent never approves its own request");
            else if (!wr_approval_interactive_allowed(rs->policy, rs->decision->risk_class,
                                                      &rs->decision->approval_effects, off, sizeof off))
                snprintf(inband, sizeof inband, "; %s", off);
            else if (req->ask_human(req->ud, rs->ct, rs->decision, out->request_id) == 1) {
                if (record_elicitation(rs, req->elicitation_human, out->request_id, err) != WR_OK) {
                    snprintf(why, whylen, "could not record the in-band approval: %s", err->message);
                    return "blocked";
                }
                continue;
            }
        }
        if (waited >= limit)
            break;
        if (cancel_requested(req->cancel_fd, 1000)) {
            snprintf(why, whylen, "cancelled while waiting for approval of request %s", out->request_id);
            return "failed";
        }
        waited += 1000;
        if (req->on_wait)
            req->on_wait(req->ud, waited, out->request_id);
    }
    out->pending = true;
    snprintf(why, whylen,
             "approval pending: request %s needs %d approval(s) (%s)%s; an approver runs "
             "`warrant approvals approve %s` or uses the console",
             out->request_id, rs->decision->required_approvals, rs->authz.reason[0] ? rs->authz.reason : "none yet",
             inband, out->request_id);
    return "blocked";
}

/* ---- secrets and environment ----------------------------------------------- */

/* Secret values live in STATE_DIR/secrets/NAME (owner-only files): never in
 * the contract, never in argv; the executor redacts them from output. */
static int load_secrets(run_state *rs, wr_secret **out, size_t *n, char *why, size_t whylen)
{
    *out = NULL;
    *n = 0;
    size_t total = 0;
    for (size_t i = 0; i < rs->ct->ncommands; i++)
        total += rs->ct->commands[i].secret_refs.n;
    if (!total)
        return WR_OK;
    if (rs->authz.nuses == 0) {
        snprintf(why, whylen, "secret_refs are released only to an approved run");
        return WR_E_DENIED;
    }
    wr_secret *s = calloc(total, sizeof *s);
    if (!s)
        return WR_E_NOMEM;
    for (size_t i = 0; i < rs->ct->ncommands; i++) {
        const wr_strv *refs = &rs->ct->commands[i].secret_refs;
        for (size_t j = 0; j < refs->n; j++) {
            const char *name = refs->v[j];
            bool seen = false;
            for (size_t k = 0; k < *n; k++)
                seen |= strcmp(s[k].name, name) == 0;
            if (seen)
                continue;
            if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name)) {
                snprintf(why, whylen, "secret_ref '%.64s' must be [A-Za-z0-9_]+", name);
                goto fail;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/secrets/%s", rs->g->state_dir, name);
            struct stat st;
            if (stat(path, &st) != 0 || (st.st_mode & 077)) {
                snprintf(why, whylen,
                         "secret '%s' is not available (needs an owner-only file secrets/%s in the state dir)", name,
                         name);
                goto fail;
            }
            char *value = NULL;
            size_t len = 0;
            wr_error e = {0};
            if (wr_read_file(path, SECRET_MAX_BYTES, &value, &len, &e) != WR_OK) {
                snprintf(why, whylen, "secret '%s': %s", name, e.message);
                goto fail;
            }
            while (len && (value[len - 1] == '\n' || value[len - 1] == '\r'))
                value[--len] = 0;
            s[*n].name = name;
            s[(*n)++].value = value;
        }
    }
    *out = s;
    return WR_OK;
fail:
    for (size_t k = 0; k < *n; k++)
        free((char *)s[k].value);
    free(s);
    *n = 0;
    return WR_E_DENIED;
}

static void free_secrets(wr_secret *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        char *v = (char *)s[k].value;
        sodium_memzero(v, strlen(v));
        free(v);
    }
    free(s);
}

/* ---- run ------------------------------------------------------------------- */

static int finish(run_state *rs, const char *status, const char *error, wr_run_outcome *out, wr_error *err)
{
    int rc = seal(rs, status, error, &out->receipt, err);
    if (rc != WR_OK)
        return rc;
    /* The typed outcome says what the receipt says: callers never parse it. */
    out->status = status;
    snprintf(out->execution_id, sizeof out->execution_id, "%s", rs->execution_id);
    out->has_exit_code = rs->exec && rs->exec->status != WR_EXEC_BLOCKED;
    out->exit_code = out->has_exit_code ? rs->exec->exit_code : 0;
    if (error && !(out->error = strdup(error)))
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    return WR_OK;
}

/* The caller owns the captured bytes from here on. */
static void take_stream(wr_exec_stream *from, wr_run_stream *to)
{
    *to = (wr_run_stream){from->captured, from->captured_len, from->truncated, from->total_bytes};
    from->captured = NULL;
    from->captured_len = 0;
}

/* The durable record before exec: contract, decision, execution row and
 * the single-use approvals it consumes, in one commit. */
typedef struct pre_exec {
    run_state *rs;
    int live; /* mark_running's result; < 0: live_err */
    wr_error live_err;
    wr_run_record rec;
    int rc; /* the commit's outcome */
    wr_error err;
} pre_exec;

static int record_pre_exec(pre_exec *pe, wr_error *err)
{
    run_state *rs = pe->rs;
    pe->rc = pe->live < 0 ? pe->live_err.code : store_contract_and_decision(rs->g, rs->ct, rs->decision, &pe->rec, err);
    if (pe->live < 0 && err)
        *err = pe->live_err;
    if (pe->rc == WR_OK)
        rs->unrecorded = false;
    else if (err)
        pe->err = *err;
    return pe->rc;
}

/* The executor's before_run: called while the first sandbox sets up. */
static int record_pre_exec_cb(void *ud, wr_error *err)
{
    return record_pre_exec(ud, err);
}

/* The run stops when its pre-exec record fails: an approval that another
 * run consumed first is a blocked run, anything else an error. */
static int pre_exec_failed(run_state *rs, int rc, const wr_error *e, wr_run_outcome *out, wr_error *err)
{
    if (rc != WR_E_CONFLICT) {
        if (err)
            *err = *e;
        return rc;
    }
    char why[1024];
    snprintf(why, sizeof why, "approval already used: %s", e->message);
    return finish(rs, "blocked", why, out, err);
}

int wr_gate_run(wr_gate *g, const wr_run_request *req, wr_run_outcome *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    run_state rs = {
        .g = g, .ct = req->contract, .client_identity = req->client_identity, .provenance = req->provenance};
    rs.started_ms = wr_now_ms(&g->ctx);
    int live = take_mark(g, rs.execution_id);
    if (live < 0)
        wr_random_id(&g->ctx, "exe_", rs.execution_id, sizeof rs.execution_id);
    rs.policy = wr_gate_policy_acquire(g);
    char why[1024] = "";
    int rc;
    wr_error e = {0};

    if (identity_mismatch(rs.ct, req->client_identity, &e) != WR_OK) {
        rc = finish(&rs, "blocked", e.message, out, err);
        goto done;
    }
    /* Always a fresh evaluation: a decision computed earlier is never trusted. */
    if ((rc = evaluate(g, "run", rs.policy, rs.ct, req->client_identity, &out->decision, err)) != WR_OK)
        goto done;
    rs.decision = out->decision;
    if (check_quota(g, rs.ct, req->client_identity, false, &e) != WR_OK) {
        if (e.code != WR_E_LIMIT) {
            *err = e;
            rc = e.code;
            goto done;
        }
        rc = finish(&rs, "blocked", e.message, out, err);
        goto done;
    }
    /* Stored with the execution row below, in one commit (or when sealing,
     * if the run stops before). */
    rs.unrecorded = true;

    if (rs.decision->kind == WR_DENY) {
        snprintf(why, sizeof why, "denied by policy %s: %s: %s", rs.policy->name, rs.decision->reason_code,
                 rs.decision->reason ? rs.decision->reason : "");
        rc = finish(&rs, "blocked", why, out, err);
        goto done;
    }
    /* Whatever the policy allows, no sandbox sees warrant's own secrets:
     * refused before any approval is consumed. */
    if (exposes_protected(g, rs.ct, why, sizeof why)) {
        rc = finish(&rs, "blocked", why, out, err);
        goto done;
    }
    if (rs.policy->sandbox.memory_mb > 0 && req->memory_mb > rs.policy->sandbox.memory_mb) {
        snprintf(why, sizeof why, "the run needs memory_mb %lld; policy %s allows at most %lld",
                 (long long)req->memory_mb, rs.policy->name, (long long)rs.policy->sandbox.memory_mb);
        rc = finish(&rs, "blocked", why, out, err);
        goto done;
    }
    if (rs.decision->kind == WR_NEEDS_APPROVAL) {
        const char *status = authorize(&rs, req, out, why, sizeof why, err);
        if (status) {
            rc = finish(&rs, status, why, out, err);
            goto done;
        }
    }

    /* Single-use approvals are consumed in the same transaction that records
     * the execution: of two racing runs with one artifact, one proceeds. */
    wr_strv consume = {0};
    for (size_t i = 0; i < rs.authz.nuses; i++)
        if (rs.authz.uses[i].single_use && wr_strv_push(&consume, rs.authz.uses[i].approval_id) != WR_OK) {
            wr_strv_free(&consume);
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            goto done;
        }
    if (live < 0)
        live = mark_running(g, rs.execution_id, &e);
    /* A time-window approval stays usable: its request is not consumed. */
    pre_exec pe = {.rs = &rs,
                   .live = live,
                   .live_err = e,
                   .rec = {.execution_id = rs.execution_id,
                           .consume_ids = &consume,
                           .consumed_request_id = out->request_id[0] && consume.n ? out->request_id : NULL}};

    wr_secret *secrets = NULL;
    size_t nsecrets = 0;
    if (load_secrets(&rs, &secrets, &nsecrets, why, sizeof why) != WR_OK) {
        /* refused after the approvals were checked: recorded (and they are
         * consumed) first, as for any run that got this far */
        rc = record_pre_exec(&pe, &e);
        wr_strv_free(&consume);
        rc = rc != WR_OK ? pre_exec_failed(&rs, rc, &e, out, err)
                         : finish(&rs, "blocked", why[0] ? why : "out of memory", out, err);
        goto done;
    }
    wr_sandbox_limits limits = rs.policy->sandbox;
    if (req->memory_mb > 0)
        limits.memory_mb = req->memory_mb;
    /* The pre-exec commit runs while the sandbox sets up (before_run):
     * nothing of the command runs before it is durable. */
    wr_exec_request xr = {
        .contract = rs.ct,
        .limits = &limits,
        .allowed_egress_hosts = &rs.policy->allowed_egress_hosts,
        .host_env = g->host_env,
        .secrets = secrets,
        .nsecrets = nsecrets,
        .on_output = req->on_output,
        .ud = req->ud,
        .cancel_fd = req->cancel_fd,
        .cgroup_root = g->cgroup_root,
        .launchers = g->launchers,
        .ctx = &g->ctx,
        .before_run = record_pre_exec_cb,
        .before_run_ud = &pe,
    };
    rc = wr_exec_run(&xr, &rs.exec, &e);
    free_secrets(secrets, nsecrets);
    wr_strv_free(&consume);
    if (pe.rc != WR_OK) {
        rc = pre_exec_failed(&rs, pe.rc, &pe.err, out, err);
        goto done;
    }
    if (rc != WR_OK) {
        snprintf(why, sizeof why, "sandbox could not start: %s", e.message);
        rc = finish(&rs, "failed", why, out, err);
        goto done;
    }
    if (req->provenance && req->collect_products && rs.exec->status != WR_EXEC_BLOCKED) {
        const wr_exec_result *x = rs.exec;
        if (!(rs.written = calloc(x->nartifacts + 1, sizeof *rs.written))) {
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            goto done;
        }
        for (size_t i = 0; i < x->nartifacts; i++)
            rs.written[i] = (wr_gate_digest){x->artifacts[i].path, x->artifacts[i].sha256};
        req->collect_products(req->provenance_ud, rs.written, x->nartifacts, x->artifacts_truncated, req->provenance);
    }
    const char *status = rs.exec->status == WR_EXEC_SUCCESS   ? "success"
                         : rs.exec->status == WR_EXEC_BLOCKED ? "blocked"
                                                              : "failed";
    rc = finish(&rs, status, rs.exec->error, out, err);
    if (rc == WR_OK) {
        /* Hand the captured output to the caller without copying it. */
        take_stream(&rs.exec->out, &out->out);
        take_stream(&rs.exec->err, &out->err);
    }
done:
    if (live >= 0)
        release_mark(g, rs.execution_id, live);
    wr_exec_result_free(rs.exec);
    free(rs.written);
    wr_authz_clear(&rs.authz);
    wr_gate_policy_release(g, rs.policy);
    if (rc != WR_OK)
        wr_run_outcome_clear(out);
    return rc;
}

void wr_run_outcome_clear(wr_run_outcome *o)
{
    if (o->receipt)
        json_object_put(o->receipt);
    wr_decision_free(o->decision);
    free(o->error);
    free(o->out.captured);
    free(o->err.captured);
    memset(o, 0, sizeof *o);
}

/* ---- the transparency log ------------------------------------------------ */

/* The tree size of the newest stored checkpoint, -1 when there is none. */
static int newest_checkpoint_size(wr_gate *g, int64_t *size, wr_error *err)
{
    char *note = NULL;
    *size = -1;
    int rc = wr_store_get_checkpoint(g->store, -1, size, &note, err);
    free(note);
    if (rc == WR_E_NOTFOUND) {
        wr_error_clear(err);
        *size = -1;
        return WR_OK;
    }
    return rc;
}

int wr_gate_checkpoint_size(wr_gate *g, int64_t *size, wr_error *err)
{
    int rc = newest_checkpoint_size(g, size, err);
    if (*size < 0)
        *size = 0;
    return rc;
}

int wr_gate_publish_checkpoint(wr_gate *g, bool *published, wr_error *err)
{
    int64_t before = -1, after = -1;
    int rc = newest_checkpoint_size(g, &before, err);
    if (rc != WR_OK)
        return rc;
    char *note = NULL;
    rc = wr_checkpoint_publish(g->store, &g->key, &g->ctx, &note, err);
    free(note);
    if (rc == WR_OK)
        rc = newest_checkpoint_size(g, &after, err);
    if (published)
        *published = rc == WR_OK && after > before;
    return rc;
}

void wr_gate_checkpoint_clear(wr_gate_checkpoint *c)
{
    free(c->note);
    json_object_put(c->proof);
    memset(c, 0, sizeof *c);
}

/* The newest checkpoint and, for kind != WR_TREE_ROOT, a proof against it. */
static int checkpoint_with(wr_gate *g, wr_tree_query kind, int64_t arg, wr_gate_checkpoint *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    wr_checkpoint cp;
    wr_tree_head head;
    wr_merkle_proof proof;
    int rc = wr_checkpoint_publish(g->store, &g->key, &g->ctx, &out->note, err);
    if (rc == WR_OK)
        rc = wr_checkpoint_verify(out->note, g->key.pk, NULL, &cp, err);
    if (rc == WR_OK && kind != WR_TREE_ROOT &&
        (rc = wr_store_tree(g->store, kind, arg, cp.size, &head, &proof, err)) == WR_OK &&
        !(out->proof = wr_proof_to_json(kind, arg, head.size, &proof)))
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc) {
        wr_gate_checkpoint_clear(out);
        return rc;
    }
    out->size = cp.size;
    return WR_OK;
}

int wr_gate_get_checkpoint(wr_gate *g, int64_t old_size, wr_gate_checkpoint *out, wr_error *err)
{
    return checkpoint_with(g, old_size < 0 ? WR_TREE_ROOT : WR_TREE_CONSISTENCY, old_size, out, err);
}

int wr_gate_receipt_inclusion(wr_gate *g, json_object *receipt, wr_gate_checkpoint *out, wr_error *err)
{
    json_object *seq = NULL;
    if (!json_object_object_get_ex(receipt, "seq", &seq) || !json_object_is_type(seq, json_type_int))
        return wr_errorf(err, WR_E_INTERNAL, "", "a stored receipt without seq");
    /* Leaf seq - 1 (docs/transparency-log.md). */
    return checkpoint_with(g, WR_TREE_INCLUSION, json_object_get_int64(seq) - 1, out, err);
}
