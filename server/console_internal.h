/* The web approval console (issue 11): static assets embedded in warrantd
 * and a small JSON API for approvers, independent of the transport. The
 * transport authenticates (approver tokens only, same Origin/Host checks as
 * /mcp), reads bodies and writes replies; routing, files and the event
 * stream's contents are here, the work is the gate's (gate/approver.c).
 * Loop thread only. */
#ifndef WR_CONSOLE_INTERNAL_H
#define WR_CONSOLE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "gate/gate.h"

/* Every console reply carries these: nothing but our own files may load or
 * run, and the page may not be framed (agent-written text is shown there). */
#define WR_CONSOLE_CSP                                                                                                 \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "                    \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#define WR_CONSOLE_PREFIX     "/console"
#define WR_CONSOLE_API_PREFIX "/console/api/"
#define WR_CONSOLE_EVENTS     "/console/api/events"
/* The largest body the console accepts (a signed artifact, a reason). */
#define WR_CONSOLE_MAX_BODY (64u * 1024u)
/* How often an open event stream looks at the queue. */
#define WR_CONSOLE_EVENT_CHECK_MS 500

typedef struct wr_console wr_console;
wr_console *wr_console_new(wr_gate *g);
void wr_console_free(wr_console *c);

/* Whether uri (a path under WR_CONSOLE_PREFIX) is the API (approver token
 * required) rather than a static file. */
bool wr_console_is_api(const char *uri);

typedef struct wr_console_reply {
    int status;
    const char *content_type;
    char *body; /* malloc'd; or the embedded asset in static_body */
    const char *static_body;
    size_t len;
} wr_console_reply;

/* One request. method: "GET" | "POST"; approver: the authenticated
 * approver's identity (API paths only). */
void wr_console_handle(wr_console *c, const char *method, const char *uri, const char *approver, const char *body,
                       size_t len, wr_console_reply *out);
void wr_console_reply_clear(wr_console_reply *r);
/* A JSON {"error": message} reply (refusals decided by the transport). */
void wr_console_error(wr_console_reply *out, int status, const char *message);

/* What an open event stream has been told (zeros at first). */
typedef struct wr_console_seen {
    unsigned char requests[32]; /* sha256 of the last "requests" data */
    int64_t receipt_seq;        /* the chain head last announced */
} wr_console_seen;
/* For an open event stream: SSE text (malloc'd) with a "requests" event
 * (the actionable queue) if it changed and a "receipts" event (the new
 * chain head) if receipts were sealed since *seen; NULL when nothing
 * changed. Polls the store, so approvals given with the CLI in another
 * process show up too. */
char *wr_console_next_event(wr_console *c, wr_console_seen *seen);

#endif
