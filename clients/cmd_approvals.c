/* warrant approvals list|show|approve|deny|revoke — the approver's side of
 * the queue (design.md, issue #6).
 *
 * Everything shown here comes from an agent and is treated as hostile text:
 * control, bidi and zero-width characters are escaped before they reach the
 * approver's terminal, so a crafted intent or argv cannot redraw the screen
 * or make one command look like another. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "approvals/approvals.h"
#include "clients/cli.h"
#include "receipts/receipts.h"

#define USAGE_APPROVALS                                                                                                \
    "usage: warrant approvals list [--json] [--all] | show ID [--json] | approve ID --key KEY [--identity NAME] "      \
    "[--expires DURATION] [--scope single|window] [--reason TEXT] [--ticket ID] [--policy FILE] | deny ID "            \
    "[--reason TEXT] | revoke ID [--reason TEXT]   (all take [--state-dir DIR])"

/* ---- options ----------------------------------------------------------------- */

typedef struct opts {
    const char *id, *state_dir, *key, *identity, *expires, *scope, *reason, *ticket, *policy;
    bool json, all;
} opts;

/* Options may come before or after ID; every verb accepts the same set and
 * checks afterwards which ones it needs, so errors name the verb. */
static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct {
        const char *name;
        size_t off;
    } valued[] = {
        {"--state-dir", offsetof(opts, state_dir)}, {"--key", offsetof(opts, key)},
        {"--identity", offsetof(opts, identity)},   {"--expires", offsetof(opts, expires)},
        {"--scope", offsetof(opts, scope)},         {"--reason", offsetof(opts, reason)},
        {"--ticket", offsetof(opts, ticket)},       {"--policy", offsetof(opts, policy)},
    };
    memset(o, 0, sizeof *o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "--all")) {
            o->all = true;
            continue;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
            if (strcmp(a, valued[k].name) != 0)
                continue;
            if (i + 1 >= argc)
                return cli_fail("approvals %s: %s needs a value", argv[1], a);
            *(const char **)((char *)o + valued[k].off) = argv[++i];
            matched = true;
        }
        if (matched)
            continue;
        if (a[0] == '-' && a[1])
            return cli_fail("approvals %s: unknown option %s\n%s", argv[1], a, USAGE_APPROVALS);
        if (o->id)
            return cli_fail("approvals %s: unexpected argument '%s'", argv[1], a);
        o->id = a;
    }
    return CLI_OK;
}

/* Opens the state dir's store, refusing to create one: a mistyped
 * --state-dir must not look like an empty queue. */
static int open_store(const opts *o, wr_store **st)
{
    char buf[CLI_PATH_MAX];
    const char *dir = cli_state_dir(o->state_dir, buf);
    if (!dir)
        return CLI_USAGE;
    char db[4096];
    struct stat sb;
    snprintf(db, sizeof db, "%s/warrant.db", dir);
    if (stat(db, &sb) != 0)
        return cli_fail("no warrant state in %s (%s: %s); pass --state-dir DIR", dir, db, strerror(errno));
    wr_error err = {0};
    if (wr_store_open(dir, st, &err) != WR_OK)
        return cli_fail_err(CLI_USAGE, dir, &err);
    return CLI_OK;
}

/* ---- hostile text -------------------------------------------------------------- */

/* s as hostile text (cli_put_safe); inside pretty JSON, where json-c
 * already escaped C0, its newlines stay. */
static void put_safe(FILE *f, const char *s, bool json_text)
{
    cli_put_safe(f, (const unsigned char *)s, strlen(s), json_text ? "\n" : "", true);
}

static void print_json_safe(json_object *obj)
{
    put_safe(stdout,
             json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE),
             true);
    putchar('\n');
}

/* An argv as a shell-like line, quoting words a reader could misparse. */
static void put_argv(FILE *f, const wr_strv *argv)
{
    for (size_t i = 0; i < argv->n; i++) {
        const char *a = argv->v[i];
        bool plain = *a != '\0';
        for (const char *q = a; *q && plain; q++)
            plain = isalnum((unsigned char)*q) || strchr("-_./=:,@+%^", *q);
        fputs(i ? " " : "", f);
        if (plain) {
            put_safe(f, a, false);
            continue;
        }
        fputc('\'', f);
        for (const char *q = a;;) {
            const char *quote = strchr(q, '\'');
            char *chunk = strndup(q, quote ? (size_t)(quote - q) : strlen(q));
            if (chunk)
                put_safe(f, chunk, false);
            free(chunk);
            if (!quote)
                break;
            fputs("'\\''", f);
            q = quote + 1;
        }
        fputc('\'', f);
    }
}

static void put_list(FILE *f, const wr_strv *sv)
{
    if (!sv->n)
        fputs("-", f);
    for (size_t i = 0; i < sv->n; i++) {
        fputs(i ? "," : "", f);
        put_safe(f, sv->v[i], false);
    }
}

static void format_age(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms < 0 ? 0 : ms / 1000;
    if (s < 60)
        snprintf(buf, len, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, len, "%" PRId64 "m", s / 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRId64 "h", s / 3600);
    else
        snprintf(buf, len, "%" PRId64 "d", s / 86400);
}

/* ---- one request, as text or JSON ---------------------------------------------- */

static void print_request_text(const wr_approval_state *s, const wr_contract *ct, int64_t now)
{
    const wr_approval_request *r = &s->request;
    char age[32];
    format_age(now - r->requested_at_ms, age, sizeof age);
    printf("%s  %-8s  %d/%d approvals  age %s  agent ", r->request_id, s->status, s->approvals_valid,
           r->required_approvals, age);
    put_safe(stdout, r->agent_id ? r->agent_id : "-", false);
    if (!ct) {
        printf("\n    (stored contract unreadable)\n");
        return;
    }
    printf("  risk %s  %s\n    intent (agent text, untrusted): ", ct->risk_class, ct->approval_mode);
    put_safe(stdout, ct->intent ? ct->intent : "", false);
    putchar('\n');
    for (size_t i = 0; i < ct->ncommands; i++) {
        const wr_command *c = &ct->commands[i];
        fputs("    ", stdout);
        put_safe(stdout, c->id, false);
        fputs(": ", stdout);
        for (size_t k = 0; k < c->nsegments; k++) {
            fputs(k ? " | " : "", stdout);
            put_argv(stdout, &c->segments[k]);
        }
        fputs("\n      cwd ", stdout);
        put_safe(stdout, c->cwd ? c->cwd : "-", false);
        fputs("  read ", stdout);
        put_list(stdout, &c->read_paths);
        fputs("  write ", stdout);
        put_list(stdout, &c->write_paths);
        printf("  network %s", wr_network_mode_name(c->network));
        if (c->secret_refs.n) {
            fputs("  secrets ", stdout);
            put_list(stdout, &c->secret_refs);
        }
        putchar('\n');
    }
}

static wr_contract *parse_stored(const wr_contracts *cs, const wr_approval_request *r)
{
    wr_contract *ct = NULL;
    wr_error err = {0};
    if (wr_contract_parse(cs, r->contract_json, strlen(r->contract_json), &ct, &err) != WR_OK) {
        fprintf(stderr, "warrant: request %s: stored contract does not parse: %s\n", r->request_id, err.message);
        return NULL;
    }
    return ct;
}

/* ---- list ------------------------------------------------------------------------ */

static int collect_id(void *ud, const wr_approval_request *r)
{
    return wr_strv_push(ud, r->request_id) != WR_OK;
}

static int do_list(wr_store *st, const opts *o, const wr_ctx *ctx)
{
    wr_error err = {0};
    wr_strv ids = {0};
    /* Ids first, details after: the store must not be re-entered from
     * inside its own iteration. */
    if (wr_store_list_approval_requests(st, o->all ? NULL : "pending", collect_id, &ids, &err) != WR_OK) {
        wr_strv_free(&ids);
        return cli_fail_err(CLI_USAGE, "approvals list", &err);
    }
    wr_contracts *cs = wr_contracts_new(&err);
    if (!cs) {
        wr_strv_free(&ids);
        return cli_fail_err(CLI_USAGE, "approvals list", &err);
    }
    int64_t now = wr_now_ms(ctx);
    json_object *arr = json_object_new_array();
    size_t shown = 0;
    int rc = CLI_OK;
    for (size_t i = 0; i < ids.n && rc == CLI_OK; i++) {
        wr_approval_state s;
        if (wr_approval_state_get(st, ids.v[i], ctx, &s, &err) != WR_OK) {
            rc = cli_fail_err(CLI_USAGE, ids.v[i], &err);
            break;
        }
        if (o->all || !strcmp(s.status, "pending")) {
            wr_contract *ct = parse_stored(cs, &s.request);
            if (o->json)
                json_object_array_add(arr, wr_approval_state_json(&s, ct, now));
            else
                print_request_text(&s, ct, now);
            shown++;
            wr_contract_free(ct);
        }
        wr_approval_state_clear(&s);
    }
    if (rc == CLI_OK && o->json)
        print_json_safe(arr);
    else if (rc == CLI_OK && !shown)
        printf("no %srequests\n", o->all ? "" : "pending ");
    json_object_put(arr);
    wr_contracts_free(cs);
    wr_strv_free(&ids);
    return rc;
}

/* ---- show ------------------------------------------------------------------------ */

static int do_show(wr_store *st, const opts *o, const wr_ctx *ctx)
{
    wr_error err = {0};
    wr_approval_state s;
    int code = 0;
    if ((code = wr_approval_state_get(st, o->id, ctx, &s, &err)) != WR_OK)
        return cli_fail_err(CLI_USAGE, o->id, &err);
    json_object *contract = wr_json_parse(s.request.contract_json, strlen(s.request.contract_json), NULL, &err);
    json_object *decision = s.request.decision_json
                                ? wr_json_parse(s.request.decision_json, strlen(s.request.decision_json), NULL, NULL)
                                : NULL;
    wr_contracts *cs = wr_contracts_new(&err);
    wr_contract *ct = cs ? parse_stored(cs, &s.request) : NULL;
    int64_t now = wr_now_ms(ctx);
    if (o->json) {
        json_object *out = wr_approval_state_json(&s, ct, now);
        json_object_object_add(out, "contract", json_object_get(contract));
        json_object_object_add(out, "decision", json_object_get(decision));
        json_object_object_add(out, "artifacts", json_object_get(s.approvals));
        print_json_safe(out);
        json_object_put(out);
    } else {
        printf("WARNING: \"intent\" and \"justification\" are written by the agent: untrusted text, never\n"
               "evidence. Judge the request by its argv, paths, network, secrets and risk class.\n\n");
        print_request_text(&s, ct, now);
        printf("\ncontract_sha256 %s\n", s.request.contract_sha256);
        if (s.request.reason) {
            fputs("reason ", stdout);
            put_safe(stdout, s.request.reason, false);
            putchar('\n');
        }
        size_t n = json_object_array_length(s.approvals);
        for (size_t i = 0; i < n; i++) {
            json_object *a = json_object_array_get_idx(s.approvals, i), *who = NULL, *v = NULL;
            json_object_object_get_ex(a, "approver", &who);
            fputs("approval ", stdout);
            put_safe(stdout, json_object_object_get_ex(a, "approval_id", &v) ? json_object_get_string(v) : "?", false);
            fputs(" by ", stdout);
            put_safe(stdout, json_object_object_get_ex(who, "identity", &v) ? json_object_get_string(v) : "?", false);
            fputs(" until ", stdout);
            put_safe(stdout, json_object_object_get_ex(a, "expires_at", &v) ? json_object_get_string(v) : "?", false);
            putchar('\n');
        }
        putchar('\n');
        if (decision) {
            printf("decision:\n");
            print_json_safe(decision);
        }
        printf("contract:\n");
        if (contract)
            print_json_safe(contract);
    }
    wr_contract_free(ct);
    wr_contracts_free(cs);
    json_object_put(contract);
    json_object_put(decision);
    wr_approval_state_clear(&s);
    return CLI_OK;
}

/* ---- approve ----------------------------------------------------------------------- */

/* "90s", "30m", "2h", "1d" (or bare seconds) to seconds; 0 if invalid. */
static int64_t parse_duration(const char *s)
{
    char *end = NULL;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0 || v > 366ull * 86400)
        return 0;
    int64_t mult = 1;
    if (*end == 'm')
        mult = 60;
    else if (*end == 'h')
        mult = 3600;
    else if (*end == 'd')
        mult = 86400;
    else if (*end != 's' && *end != '\0')
        return 0;
    if (*end && end[1])
        return 0;
    int64_t sec = (int64_t)v * mult;
    return sec > 366 * 86400 ? 0 : sec;
}

static int do_approve(wr_store *st, const opts *o, const wr_ctx *ctx)
{
    if (!o->key)
        return cli_fail("approvals approve: --key KEY (the approver's private key file) is required");
    bool window = false;
    if (o->scope && !strcmp(o->scope, "window"))
        window = true;
    else if (o->scope && strcmp(o->scope, "single") != 0)
        return cli_fail("approvals approve: --scope must be single or window, not '%s'", o->scope);
    int64_t dur = o->expires ? parse_duration(o->expires) : 0;
    if (o->expires && !dur)
        return cli_fail("approvals approve: --expires '%s' is not a duration like 90s, 30m, 2h or 1d", o->expires);

    wr_error err = {0};
    wr_policy *p = NULL;
    wr_keypair kp;
    wr_approval_state s = {0};
    json_object *artifact = NULL;
    int rc = CLI_USAGE, code;
    if ((code = wr_approval_state_get(st, o->id, ctx, &s, &err)) != WR_OK) {
        cli_fail_err(CLI_USAGE, o->id, &err);
        goto done;
    }
    /* The approver trust store: the named policy, else the one this request
     * was decided under (warrantd stored it). */
    const char *policy_name = o->policy ? o->policy : "the request's policy";
    code = o->policy ? wr_policy_load_file(o->policy, &p, &err) : wr_approval_request_policy(st, &s.request, &p, &err);
    if (code != WR_OK) {
        if (!o->policy)
            wr_error_prefix(&err, "no --policy given and the request's policy is not available");
        cli_fail_err(CLI_USAGE, policy_name, &err);
        goto done;
    }
    if ((code = wr_key_load_secret(o->key, true, &kp, &err)) != WR_OK) {
        cli_fail_err(CLI_USAGE, o->key, &err);
        goto done;
    }
    int64_t max = p->approval.max_lifetime_sec > 0 ? p->approval.max_lifetime_sec : 3600;
    if (!dur)
        dur = max < 3600 ? max : 3600;
    if (dur > max) {
        cli_fail("approvals approve: --expires %s exceeds the policy's maximum approval lifetime of %" PRId64 "s",
                 o->expires, max);
        rc = CLI_REJECTED;
        goto done_k;
    }
    const char *identity = o->identity;
    char kid[WR_KEY_ID_LEN];
    wr_key_id(kp.pk, kid);
    for (size_t i = 0; !identity && i < p->napprovers; i++)
        if (!memcmp(p->approvers[i].public_key, kp.pk, WR_PK_LEN))
            identity = p->approvers[i].identity;
    if (!identity) {
        cli_fail("approvals approve: key %s is not the key of any approver in %s", kid, policy_name);
        rc = CLI_REJECTED;
        goto done_k;
    }
    if (strcmp(s.status, "pending") != 0 && strcmp(s.status, "approved") != 0) {
        cli_fail("approvals approve: request %s is %s: it can no longer be approved", o->id, s.status);
        rc = CLI_REJECTED;
        goto done_k;
    }
    int64_t now = wr_now_ms(ctx);
    wr_approval_params ap = {
        .identity = identity,
        .method = "cli",
        .contract_sha256 = s.request.contract_sha256,
        .approved_at_ms = now,
        .expires_at_ms = now + dur * 1000,
        .time_window = window,
        .reason = o->reason,
        .ticket_id = o->ticket,
    };
    if (wr_approval_sign(&kp, &ap, ctx, &artifact, &err) != WR_OK) {
        cli_fail_err(CLI_USAGE, "approvals approve", &err);
        goto done_k;
    }
    /* The gate's own checks, before anything is stored: an approver who may
     * not approve this gets told now, not the agent later. */
    unsigned char server_pk[WR_PK_LEN];
    char buf[CLI_PATH_MAX];
    const char *dir = cli_state_dir(o->state_dir, buf);
    bool have_server = dir && wr_server_pubkey_load(dir, server_pk, NULL) == WR_OK;
    char request_id[WR_ID_MAX];
    if ((code = wr_approval_accept(st, p, artifact, have_server ? server_pk : NULL, ctx, request_id, &err)) != WR_OK) {
        fprintf(stderr, "warrant: approval refused: %s\n", err.message);
        rc = code == WR_E_NOTFOUND || code == WR_E_IO || code == WR_E_NOMEM ? CLI_USAGE : CLI_REJECTED;
        goto done_k;
    }
    print_json_safe(artifact);
    wr_approval_state_clear(&s);
    if (wr_approval_state_get(st, request_id, ctx, &s, &err) == WR_OK)
        fprintf(stderr, "warrant: approval stored for %s: %d of %d approvals, request %s\n", request_id,
                s.approvals_valid, s.request.required_approvals, s.status);
    rc = CLI_OK;
done_k:
    wr_keypair_wipe(&kp);
done:
    wr_policy_free(p);
    json_object_put(artifact);
    wr_approval_state_clear(&s);
    return rc;
}

/* ---- deny / revoke ------------------------------------------------------------------ */

static int do_deny_revoke(wr_store *st, const opts *o, const wr_ctx *ctx, bool deny)
{
    wr_error err = {0};
    int code =
        deny ? wr_approval_deny(st, o->id, o->reason, ctx, &err) : wr_approval_revoke(st, o->id, o->reason, ctx, &err);
    if (code != WR_OK)
        return cli_fail_err(code == WR_E_CONFLICT || code == WR_E_DENIED ? CLI_REJECTED : CLI_USAGE,
                            deny ? "approvals deny" : "approvals revoke", &err);
    printf("%s %s\n", o->id, deny ? "denied" : "revoked");
    return CLI_OK;
}

int cmd_approvals(int argc, char **argv)
{
    if (argc < 2)
        return cli_fail("%s", USAGE_APPROVALS);
    const char *verb = argv[1];
    if (!strcmp(verb, "-h") || !strcmp(verb, "--help")) {
        puts(USAGE_APPROVALS);
        return CLI_OK;
    }
    static const char *const verbs[] = {"list", "show", "approve", "deny", "revoke"};
    size_t v = 0;
    while (v < 5 && strcmp(verb, verbs[v]) != 0)
        v++;
    if (v == 5)
        return cli_fail("approvals: unknown verb '%s'\n%s", verb, USAGE_APPROVALS);
    opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != CLI_OK)
        return rc;
    if (v == 0 && o.id)
        return cli_fail("approvals list takes no ID");
    if (v != 0 && !o.id)
        return cli_fail("approvals %s: missing request ID", verb);
    wr_store *st = NULL;
    if ((rc = open_store(&o, &st)) != CLI_OK)
        return rc;
    wr_ctx ctx = wr_ctx_system();
    switch (v) {
    case 0:
        rc = do_list(st, &o, &ctx);
        break;
    case 1:
        rc = do_show(st, &o, &ctx);
        break;
    case 2:
        rc = do_approve(st, &o, &ctx);
        break;
    default:
        rc = do_deny_revoke(st, &o, &ctx, v == 3);
        break;
    }
    wr_store_close(st);
    return rc;
}
