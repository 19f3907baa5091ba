/* Shares of the server per client identity, so that one token holder can
 * never take what everybody needs: connections, HTTP sessions and request
 * body bytes in flight are capped per identity and in total, and the cap
 * per identity is at most half the total (wr_limit_per_client). Runs are
 * capped the same way in calls.c. Loop thread only.
 *
 * The HTTP session table lives here too: sessions expire after an idle
 * time (not while a run is in flight or a GET stream is open), and an
 * identity at its cap gives up its least recently used idle session for a
 * new one (clients that never DELETE keep working; nobody else pays). */
#include "server/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct net_client {
    net_client *next;
    char identity[256];
    int conns, sessions;
    size_t body_bytes;
};

struct hsess {
    struct hsess *next;
    char id[WR_ID_MAX];
    net_client *cl;
    wr_session *ss;
    int64_t last_used_ms;
};

static net_client *client_get(net *n, const char *identity)
{
    for (net_client *cl = n->clients; cl; cl = cl->next)
        if (!strcmp(cl->identity, identity))
            return cl;
    net_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    snprintf(cl->identity, sizeof cl->identity, "%s", identity);
    cl->next = n->clients;
    n->clients = cl;
    return cl;
}

/* An identity with nothing left in use is forgotten. */
static void client_put(net *n, net_client *cl)
{
    if (cl->conns || cl->sessions || cl->body_bytes)
        return;
    for (net_client **pp = &n->clients; *pp; pp = &(*pp)->next)
        if (*pp == cl) {
            *pp = cl->next;
            free(cl);
            return;
        }
}

const char *net_client_identity(const net_client *cl)
{
    return cl->identity;
}

net_client *net_client_acquire_conn(net *n, const char *identity, const char **why)
{
    net_client *cl = client_get(n, identity);
    if (!cl) {
        *why = "out of memory";
        return NULL;
    }
    if (cl->conns >= n->o->max_connections_per_client) {
        *why = "too many connections for this client";
        client_put(n, cl);
        return NULL;
    }
    cl->conns++;
    return cl;
}

bool net_client_has_room(net *n, const char *identity)
{
    for (net_client *cl = n->clients; cl; cl = cl->next)
        if (!strcmp(cl->identity, identity))
            return cl->conns < n->o->max_connections_per_client;
    return true;
}

void net_client_release_conn(net *n, net_client *cl)
{
    cl->conns--;
    client_put(n, cl);
}

bool net_body_reserve(net *n, net_client *cl, size_t bytes, const char **why)
{
    if (cl->body_bytes + bytes > n->o->max_body_bytes_per_client) {
        *why = "too many request bytes in flight for this client";
        return false;
    }
    if (n->body_bytes + bytes > n->o->max_body_bytes) {
        *why = "too many request bytes in flight";
        return false;
    }
    cl->body_bytes += bytes;
    n->body_bytes += bytes;
    return true;
}

void net_body_release(net *n, net_client *cl, size_t bytes)
{
    cl->body_bytes -= bytes;
    n->body_bytes -= bytes;
}

/* ---- HTTP sessions ------------------------------------------------------- */

hsess *hsess_find(net *n, const char *id, const char *identity)
{
    for (hsess *h = n->hsessions; h; h = h->next)
        if (!strcmp(h->id, id))
            /* a session id never authenticates: it must belong to this identity */
            return strcmp(h->cl->identity, identity) ? NULL : h;
    return NULL;
}

wr_session *hsess_session(hsess *h)
{
    return h->ss;
}

void hsess_touch(net *n, hsess *h)
{
    h->last_used_ms = net_now_ms(n);
}

void hsess_drop(net *n, hsess *h)
{
    hsess **pp = &n->hsessions;
    while (*pp && *pp != h)
        pp = &(*pp)->next;
    if (*pp)
        *pp = h->next;
    n->nhsessions--;
    h->cl->sessions--;
    client_put(n, h->cl);
    wr_session_close(h->ss, true);
    free(h);
}

static bool hsess_idle(const hsess *h)
{
    return !wr_session_busy(h->ss) && !wr_session_default_outlet(h->ss);
}

hsess *hsess_create(net *n, wr_session *ss, const char **why)
{
    net_client *cl = client_get(n, wr_session_identity(ss));
    if (!cl) {
        *why = "out of memory";
        return NULL;
    }
    if (cl->sessions >= n->o->max_sessions_per_client) {
        hsess *lru = NULL; /* the list is newest first: ties go to the oldest */
        for (hsess *h = n->hsessions; h; h = h->next)
            if (h->cl == cl && hsess_idle(h) && (!lru || h->last_used_ms <= lru->last_used_ms))
                lru = h;
        if (lru) {
            wr_log(n->ctx, WR_LOG_INFO, "server", "http: agent \"%s\" at %d sessions: the least recently used ends",
                   cl->identity, cl->sessions);
            hsess_drop(n, lru);
        }
    }
    if (cl->sessions >= n->o->max_sessions_per_client || n->nhsessions >= n->o->max_http_sessions) {
        *why = cl->sessions >= n->o->max_sessions_per_client ? "too many busy MCP sessions for this client"
                                                             : "too many MCP sessions";
        client_put(n, cl);
        return NULL;
    }
    hsess *h = calloc(1, sizeof *h);
    if (!h) {
        *why = "out of memory";
        client_put(n, cl);
        return NULL;
    }
    /* crypto-random, visible ASCII; bound to the token identity */
    wr_random_id(n->ctx, "mcp-", h->id, sizeof h->id);
    h->cl = cl;
    h->ss = ss;
    h->last_used_ms = net_now_ms(n);
    h->next = n->hsessions;
    n->hsessions = h;
    n->nhsessions++;
    cl->sessions++;
    return h;
}

const char *hsess_id(const hsess *h)
{
    return h->id;
}

void hsess_expire(net *n)
{
    int64_t now = net_now_ms(n);
    for (hsess *h = n->hsessions, *next; h; h = next) {
        next = h->next;
        if (now - h->last_used_ms > n->o->session_idle_ms && hsess_idle(h)) {
            wr_log(n->ctx, WR_LOG_INFO, "server", "http: idle MCP session of agent \"%s\" expired", h->cl->identity);
            hsess_drop(n, h);
        }
    }
}

void hsess_drop_all(net *n)
{
    while (n->hsessions)
        hsess_drop(n, n->hsessions);
}
