/* Landlock, the sandbox's second file-system layer: the host probes the
 * ABI (recorded in the plan), warrant-init applies the rules inside the
 * sandbox. Compiled into both, so the rights each kind of path gets have
 * one home. Constants newer than the build host's <linux/landlock.h> are
 * spelled out here (they are kernel ABI and never change). */
#ifndef WR_LANDLOCK_H
#define WR_LANDLOCK_H

#include "executor/init_proto.h"

#include <stdbool.h>
#include <stdint.h>

#define WR_LANDLOCK_ABI_MAX 7 /* the newest ABI warrant knows the rights of */

typedef enum wr_ll_kind {
    WR_LL_READ,    /* system binds, declared read paths: read, list, execute */
    WR_LL_WRITE,   /* declared write paths, private /tmp and /dev/shm: everything */
    WR_LL_DEVICES, /* /dev: read, write and ioctl of device files; no execute */
    WR_LL_PROC,    /* /proc: read and list only */
} wr_ll_kind;

/* The best ABI the running kernel offers, capped at WR_LANDLOCK_ABI_MAX; 0
 * when Landlock is absent or disabled (*why then says which). */
int wr_landlock_abi(const char **why);

typedef struct wr_ll_rule {
    wr_ll_kind kind;
    const char *path;
} wr_ll_rule;

/* TCP under Landlock ABI >= 4: any bind and connect, none, or (a port
 * number) connect to that one port only, as an allowlisted run's egress
 * proxy: even inside its own network namespace it reaches nothing else. */
#define WR_LL_TCP_ANY  (-1)
#define WR_LL_TCP_NONE 0

/* The kind of an init configuration record's tag (init_proto.h); false:
 * the tag is not a Landlock rule. */
static inline bool wr_ll_kind_of(char tag, wr_ll_kind *kind)
{
    switch (tag) {
    case WR_CFG_READ:
        return *kind = WR_LL_READ, true;
    case WR_CFG_WRITE:
        return *kind = WR_LL_WRITE, true;
    case WR_CFG_DEVICES:
        return *kind = WR_LL_DEVICES, true;
    case WR_CFG_PROC:
        return *kind = WR_LL_PROC, true;
    default:
        return false;
    }
}

/* Restricts the calling thread (and what it execs) to the rules, with the
 * given ABI (1..WR_LANDLOCK_ABI_MAX) and TCP as tcp says (above; ABI >= 4);
 * ABI >= 6 also scopes abstract unix sockets and signals to the sandbox. A
 * rule path that does not exist is skipped (an absent optional system
 * file). Returns 0, or -1 with errno set and *stage naming the failing
 * step. Needs no_new_privs. */
int wr_landlock_apply(int abi, const wr_ll_rule *rules, int nrules, int tcp, const char **stage);

#endif
