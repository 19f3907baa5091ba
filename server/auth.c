/* Network authentication helpers: the token file, constant-time token
 * lookup, and Origin/Host allow-listing against DNS rebinding
 * (A/basic/transports.mdx "Security Warning"; SBP "Local MCP Server"). */
#include "server/server.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct token_entry {
    char *identity;
    wr_token_kind kind;
    /* agent tokens marked elicitation:human=PERSON: who answers there */
    char *elicitation_human;
    unsigned char digest[32]; /* sha256(token): compared in constant time */
} token_entry;

/* What a token may be used for: the optional third column of its line, or
 * a KIND: prefix of its identity (`metrics:prometheus TOKEN`).
 * Adding a kind: a value in wr_token_kind (server.h) and a row here; the
 * routes that accept it ask for it in net_check_access. */
static const struct {
    const char *name;
    wr_token_kind kind;
} token_kinds[] = {
    {"agent", WR_TOKEN_AGENT},
    {"metrics", WR_TOKEN_METRICS},
    {"approver", WR_TOKEN_APPROVER},
};

/* The option that marks an agent token whose client shows elicitations to
 * a person (docs/approvals.md). */
#define ELICIT_HUMAN_OPTION "elicitation:human="

static bool token_kind_parse(const char *name, wr_token_kind *out)
{
    for (size_t i = 0; i < sizeof token_kinds / sizeof token_kinds[0]; i++)
        if (!strcmp(name, token_kinds[i].name)) {
            *out = token_kinds[i].kind;
            return true;
        }
    return false;
}

struct wr_tokens {
    token_entry *v;
    size_t n;
};

#define WR_TOKEN_MIN_LEN    16
#define WR_TOKENS_MAX_BYTES (1024u * 1024u)

void wr_tokens_free(wr_tokens *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].identity);
        free(t->v[i].elicitation_human);
    }
    sodium_memzero(t->v, t->n * sizeof *t->v);
    free(t->v);
    free(t);
}

static bool identity_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isgraph((unsigned char)*s))
            return false;
    return true;
}

/* A token listed twice, or one name in two roles that would let an agent
 * approve its own requests: an agent that is also an approver, or that is
 * a marked token's person. */
static int check_roles(const wr_tokens *t, const token_entry *e, const char *path, int lineno, wr_error *err)
{
    for (size_t i = 0; i < t->n; i++) {
        const token_entry *o = &t->v[i];
        if (sodium_memcmp(o->digest, e->digest, 32) == 0)
            return wr_errorf(err, WR_E_INVALID, path, "%s:%d: the same token is listed twice", path, lineno);
        bool agent_approver = (e->kind == WR_TOKEN_AGENT && o->kind == WR_TOKEN_APPROVER) ||
                              (e->kind == WR_TOKEN_APPROVER && o->kind == WR_TOKEN_AGENT);
        bool clash =
            (agent_approver && !strcmp(e->identity, o->identity)) ||
            (e->kind == WR_TOKEN_AGENT && o->elicitation_human && !strcmp(e->identity, o->elicitation_human)) ||
            (o->kind == WR_TOKEN_AGENT && e->elicitation_human && !strcmp(o->identity, e->elicitation_human));
        if (clash)
            return wr_errorf(err, WR_E_INVALID, path,
                             "%s:%d: \"%s\" is both an agent and an approver (or a marked token's person): an agent "
                             "never approves",
                             path, lineno, e->identity);
    }
    return WR_OK;
}

int wr_tokens_load(const char *path, wr_tokens **out, wr_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return wr_errorf(err, WR_E_IO, path, "%s: cannot read the token file", path);
    /* A token file others can read leaks every agent's credential. */
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return wr_errorf(err, WR_E_DENIED, path, "%s: token file must not be group or world accessible (chmod 600)",
                         path);
    char *buf = NULL;
    size_t len = 0;
    if (wr_read_file(path, WR_TOKENS_MAX_BYTES, &buf, &len, err) != WR_OK)
        return err->code;
    wr_tokens *t = calloc(1, sizeof *t);
    if (!t) {
        free(buf);
        return wr_errorf(err, WR_E_NOMEM, path, "out of memory");
    }
    int rc = WR_OK, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        char *id = strtok_r(p, " \t", &p);
        char *tok = strtok_r(NULL, " \t", &p);
        char *kind_name = NULL;
        const char *human = NULL;
        bool bad = !id || !tok;
        for (char *w; !bad && (w = strtok_r(NULL, " \t", &p));) {
            if (!human && !strncmp(w, ELICIT_HUMAN_OPTION, strlen(ELICIT_HUMAN_OPTION)))
                human = w + strlen(ELICIT_HUMAN_OPTION);
            else if (!kind_name)
                kind_name = w;
            else
                bad = true;
        }
        wr_token_kind kind = WR_TOKEN_AGENT;
        if (bad) {
            rc = wr_errorf(err, WR_E_INVALID, path,
                           "%s:%d: expected \"ID TOKEN [KIND] [" ELICIT_HUMAN_OPTION "PERSON]\"", path, lineno);
            break;
        }
        char *colon = strchr(id, ':');
        if (colon && !kind_name) {
            *colon = '\0';
            if (!token_kind_parse(id, &kind)) {
                rc = wr_errorf(err, WR_E_INVALID, path, "%s:%d: unknown token kind \"%.40s\"", path, lineno, id);
                break;
            }
            id = colon + 1;
        }
        if (kind_name && !token_kind_parse(kind_name, &kind)) {
            /* Not echoed: a line split in the wrong place puts a token here. */
            rc = wr_errorf(err, WR_E_INVALID, path,
                           "%s:%d: unknown token kind in the third column (agent, approver, metrics)", path, lineno);
            break;
        }
        if (strlen(tok) < WR_TOKEN_MIN_LEN || !identity_ok(id)) {
            rc = wr_errorf(err, WR_E_INVALID, path, "%s:%d: token shorter than %d characters or bad identity", path,
                           lineno, WR_TOKEN_MIN_LEN);
            break;
        }
        if (human && (kind != WR_TOKEN_AGENT || !identity_ok(human) || !strcmp(human, id))) {
            rc =
                wr_errorf(err, WR_E_INVALID, path,
                          "%s:%d: " ELICIT_HUMAN_OPTION " marks an agent token and names a person other than the agent",
                          path, lineno);
            break;
        }
        token_entry e = {.kind = kind};
        crypto_hash_sha256(e.digest, (const unsigned char *)tok, strlen(tok));
        e.identity = strdup(id);
        e.elicitation_human = human ? strdup(human) : NULL;
        token_entry *nv = NULL;
        if (!e.identity || (human && !e.elicitation_human))
            rc = wr_errorf(err, WR_E_NOMEM, path, "out of memory");
        else if ((rc = check_roles(t, &e, path, lineno, err)) == WR_OK &&
                 !(nv = realloc(t->v, (t->n + 1) * sizeof *nv)))
            rc = wr_errorf(err, WR_E_NOMEM, path, "out of memory");
        if (rc != WR_OK) {
            free(e.identity);
            free(e.elicitation_human);
            break;
        }
        t->v = nv;
        t->v[t->n++] = e;
    }
    sodium_memzero(buf, len);
    free(buf);
    if (rc == WR_OK && t->n == 0)
        rc = wr_errorf(err, WR_E_INVALID, path, "%s: no tokens", path);
    if (rc != WR_OK) {
        wr_tokens_free(t);
        return rc;
    }
    *out = t;
    return WR_OK;
}

const char *wr_tokens_identity(const wr_tokens *t, const char *token, size_t len, wr_token_kind kind)
{
    unsigned char d[32];
    crypto_hash_sha256(d, (const unsigned char *)token, len);
    const char *found = NULL;
    /* Compare digests of equal length against every entry: no early exit. */
    for (size_t i = 0; i < t->n; i++)
        if (sodium_memcmp(t->v[i].digest, d, 32) == 0 && t->v[i].kind == kind)
            found = t->v[i].identity;
    return found;
}

const char *wr_tokens_elicitation_human(const wr_tokens *t, const char *identity)
{
    for (size_t i = 0; t && identity && i < t->n; i++)
        if (t->v[i].identity == identity)
            return t->v[i].elicitation_human;
    return NULL;
}

bool wr_tokens_known(const wr_tokens *t, const char *token, size_t len)
{
    unsigned char d[32];
    crypto_hash_sha256(d, (const unsigned char *)token, len);
    bool found = false;
    for (size_t i = 0; i < t->n; i++)
        found |= sodium_memcmp(t->v[i].digest, d, 32) == 0;
    return found;
}

/* ---- Host / Origin ---------------------------------------------------------- */

bool wr_host_is_loopback(const char *host)
{
    return !strcasecmp(host, "localhost") || !strcmp(host, "::1") || !strcmp(host, "[::1]") ||
           !strncmp(host, "127.", 4);
}

/* "host:port" (or "[v6]:port") equal to name at port? */
static bool authority_is(const char *auth, const char *name, int port)
{
    char want[300];
    if (strchr(name, ':') && name[0] != '[')
        snprintf(want, sizeof want, "[%s]:%d", name, port);
    else
        snprintf(want, sizeof want, "%s:%d", name, port);
    return !strcasecmp(auth, want);
}

static bool authority_allowed(const char *auth, int port, const char *bind_host)
{
    static const char *const loop[] = {"127.0.0.1", "localhost", "::1", NULL};
    for (int i = 0; loop[i]; i++)
        if (authority_is(auth, loop[i], port))
            return true;
    return bind_host && !wr_host_is_loopback(bind_host) && authority_is(auth, bind_host, port);
}

bool wr_host_allowed(const char *host, int port, const char *bind_host, const wr_strv *extra)
{
    if (!host)
        return false;
    for (size_t i = 0; extra && i < extra->n; i++)
        if (!strcasecmp(host, extra->v[i]))
            return true;
    return authority_allowed(host, port, bind_host);
}

bool wr_origin_allowed(const char *origin, int port, const char *bind_host, const wr_strv *extra)
{
    if (!origin)
        return true; /* non-browser clients send none */
    if (extra && wr_strv_contains(extra, origin))
        return true;
    const char *rest = NULL;
    if (!strncasecmp(origin, "http://", 7))
        rest = origin + 7;
    else if (!strncasecmp(origin, "https://", 8))
        rest = origin + 8;
    if (!rest || strchr(rest, '/'))
        return false;
    return authority_allowed(rest, port, bind_host);
}
