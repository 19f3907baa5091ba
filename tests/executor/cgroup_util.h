/* Run cgroups seen from the host, for the tests that include
 * executor_internal.h (test_hostside.c, test_pool.c). */
#ifndef WR_TEST_CGROUP_UTIL_H
#define WR_TEST_CGROUP_UTIL_H

#include "executor/executor_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

/* The run cgroups named for warrant process pid (other tests' servers run
 * beside this one), in the freezer hierarchy or the v2 parent: every run
 * has one there. */
static inline size_t run_cgroups_of(pid_t pid)
{
    wr_cg_plan cg;
    wr_error e = {0};
    if (wr_cg_probe(NULL, NULL, &cg, &e) != WR_OK || cg.mode == WR_CG_NONE) {
        wr_cg_plan_free(&cg);
        return 0;
    }
    char sub[4200], mine[32];
    snprintf(sub, sizeof sub, "%s/warrant", cg.parent[cg.mode == WR_CG_V2 ? 0 : WR_CG_FREEZER]);
    snprintf(mine, sizeof mine, "run-%d-", (int)pid);
    size_t n = 0;
    DIR *d = opendir(sub);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += strncmp(de->d_name, mine, strlen(mine)) == 0;
    if (d)
        closedir(d);
    wr_cg_plan_free(&cg);
    return n;
}

#endif
