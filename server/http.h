/* What http.c (requests and responses) offers the route handlers of
 * http_routes.c, and the routes table it dispatches on. */
#ifndef WR_SERVER_HTTP_H
#define WR_SERVER_HTTP_H

#include "server/net.h"

typedef struct http_route {
    const char *path;
    bool subtree;                            /* also every path below it ("/console/...") */
    int (*handle)(conn *c, const char *uri); /* LWS_CALLBACK_HTTP for this path: returns the callback's result */
} http_route;
extern const http_route http_routes[];
extern const size_t http_nroutes;

/* A JSON-RPC error body (code 0: none) with an HTTP status. */
void http_refuse(conn *c, int status, int code, const char *message);
/* The same for a POST whose body is still on its way: a body of reasonable
 * size is read and discarded first, so the client sees the status. */
void http_refuse_body(conn *c, long long announced, int status, int code, const char *message);
/* Reads a body of announced bytes (grown as it arrives, under the body
 * deadline), then calls on_body with it in c->body. */
void http_expect_body(conn *c, size_t announced, void (*on_body)(conn *c));
/* Answers with an SSE stream (the outlet's begin_stream). */
void http_begin_stream(wr_outlet *o);
/* Asks for a WRITEABLE callback (every write of a response goes through
 * it): resumes reading first if a GET stream had it stopped. */
void http_wake(conn *c);
/* Links c into the open transactions the tick looks at. */
void http_open_link(conn *c);

#endif
