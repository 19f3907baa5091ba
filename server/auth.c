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
    wr_token_info info;       /* strings owned */
    unsigned char digest[32]; /* sha256(token): compared in constant time */
} token_entry;

struct wr_tokens {
    token_entry *v;
    size_t n;
};

#define WR_TOKEN_MIN_LEN    16
#define WR_TOKENS_MAX_BYTES (1024u * 1024u)
#define APPROVER_PREFIX     "approver:"
#define ELICIT_HUMAN_OPTION "elicitation:human="

void wr_tokens_free(wr_tokens *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free((char *)t->v[i].info.identity);
        free((char *)t->v[i].info.elicitation_human);
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

/* One line's fields, split in place. */
static int parse_line(char *p, const char *path, int lineno, token_entry *e, wr_error *err)
{
    char *save = NULL;
    char *id = strtok_r(p, " \t", &save);
    char *tok = strtok_r(NULL, " \t", &save);
    char *opt = strtok_r(NULL, " \t", &save);
    char *extra = strtok_r(NULL, " \t", &save);
    if (!id || !tok || extra)
        return wr_errorf(err, WR_E_INVALID, path,
                         "%s:%d: expected \"AGENT_ID TOKEN [" ELICIT_HUMAN_OPTION "PERSON]\" or \"" APPROVER_PREFIX
                         "NAME TOKEN\"",
                         path, lineno);
    *e = (token_entry){.info.kind = WR_TOKEN_AGENT};
    if (!strncmp(id, APPROVER_PREFIX, strlen(APPROVER_PREFIX))) {
        e->info.kind = WR_TOKEN_APPROVER;
        id += strlen(APPROVER_PREFIX);
        if (opt)
            return wr_errorf(err, WR_E_INVALID, path, "%s:%d: an approver token takes no options", path, lineno);
    }
    const char *human = NULL;
    if (opt) {
        if (strncmp(opt, ELICIT_HUMAN_OPTION, strlen(ELICIT_HUMAN_OPTION)) != 0)
            return wr_errorf(err, WR_E_INVALID, path,
                             "%s:%d: unknown option \"%.40s\" (known: " ELICIT_HUMAN_OPTION "PERSON)", path, lineno,
                             opt);
        human = opt + strlen(ELICIT_HUMAN_OPTION);
        if (!identity_ok(human) || !strcmp(human, id))
            return wr_errorf(err, WR_E_INVALID, path,
                             "%s:%d: " ELICIT_HUMAN_OPTION " needs a person's name other than the agent's", path,
                             lineno);
    }
    if (strlen(tok) < WR_TOKEN_MIN_LEN || !identity_ok(id))
        return wr_errorf(err, WR_E_INVALID, path, "%s:%d: token shorter than %d characters or bad identity", path,
                         lineno, WR_TOKEN_MIN_LEN);
    crypto_hash_sha256(e->digest, (const unsigned char *)tok, strlen(tok));
    e->info.identity = strdup(id);
    e->info.elicitation_human = human ? strdup(human) : NULL;
    if (!e->info.identity || (human && !e->info.elicitation_human)) {
        free((char *)e->info.identity);
        free((char *)e->info.elicitation_human);
        return wr_errorf(err, WR_E_NOMEM, path, "out of memory");
    }
    return WR_OK;
}

/* An agent's name must never be one that approves: not an approver's, not
 * a marked token's person. Otherwise an agent could approve its own runs. */
static int check_roles(const wr_tokens *t, const token_entry *e, const char *path, int lineno, wr_error *err)
{
    for (size_t i = 0; i < t->n; i++) {
        const wr_token_info *o = &t->v[i].info;
        if (sodium_memcmp(t->v[i].digest, e->digest, 32) == 0)
            return wr_errorf(err, WR_E_INVALID, path, "%s:%d: the same token is listed twice", path, lineno);
        bool clash =
            (e->info.kind != o->kind && !strcmp(e->info.identity, o->identity)) ||
            (e->info.kind == WR_TOKEN_AGENT && o->elicitation_human &&
             !strcmp(e->info.identity, o->elicitation_human)) ||
            (o->kind == WR_TOKEN_AGENT && e->info.elicitation_human && !strcmp(o->identity, e->info.elicitation_human));
        if (clash)
            return wr_errorf(err, WR_E_INVALID, path,
                             "%s:%d: \"%s\" is both an agent and an approver (or a marked token's person): an agent "
                             "never approves",
                             path, lineno, e->info.identity);
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
        token_entry e;
        if ((rc = parse_line(p, path, lineno, &e, err)) != WR_OK)
            break;
        token_entry *nv =
            (rc = check_roles(t, &e, path, lineno, err)) == WR_OK ? realloc(t->v, (t->n + 1) * sizeof *nv) : NULL;
        if (!nv) {
            if (rc == WR_OK)
                rc = wr_errorf(err, WR_E_NOMEM, path, "out of memory");
            free((char *)e.info.identity);
            free((char *)e.info.elicitation_human);
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

const wr_token_info *wr_tokens_lookup(const wr_tokens *t, const char *token, size_t len)
{
    unsigned char d[32];
    crypto_hash_sha256(d, (const unsigned char *)token, len);
    const wr_token_info *found = NULL;
    /* Compare digests of equal length against every entry: no early exit. */
    for (size_t i = 0; i < t->n; i++)
        if (sodium_memcmp(t->v[i].digest, d, 32) == 0)
            found = &t->v[i].info;
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
