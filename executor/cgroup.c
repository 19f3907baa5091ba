/* Per-command cgroups: one cgroup per command, created before its first
 * process starts and removed after its last one is gone, holding every
 * process of the sandbox (bwrap included) so that memory (shmem, memfd and
 * tmpfs pages too, which RLIMIT_AS never sees) and the process count are
 * bounded for the whole sandbox, and so that one write kills all of it.
 *
 * cgroup v2 where a parent with the memory and pids controllers enabled for
 * its children is available (a delegated subtree); otherwise the cgroup v1
 * memory, pids, freezer (and cpu) hierarchies of a hybrid host; otherwise
 * nothing, and the plan says so (the rlimits stay the only bound). */
#include "executor/executor_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_DEFAULT_BASE "/sys/fs/cgroup"
#define CG_SUBDIR       "warrant"
#define CG_RUN_PREFIX   "run-"
#define CPU_PERIOD_US   100000
#define FREEZE_POLLS    200 /* x 1 ms: a frozen cgroup normally settles in well under that */
#define KILL_ROUNDS     100 /* without a freezer: kill, re-read, until empty */
#define RMDIR_POLLS     500 /* x 1 ms: killed tasks leave the cgroup shortly after */
#define CG_FILE_MAX     4096

/* v1 hierarchies, by index; v2 uses index 0 for its single directory. */
static const char *const v1_ctrl[WR_CG_NCTRL] = {"memory", "pids", "freezer", "cpu"};

const char *wr_cg_mode_name(wr_cg_mode m)
{
    return m == WR_CG_V2 ? "v2" : m == WR_CG_V1 ? "v1" : "none";
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool file_exists(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && stat(p, &st) == 0;
}

static ssize_t read_file(const char *dir, const char *name, char *buf, size_t len)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
        return -1;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

static int write_file(const char *dir, const char *name, const char *val)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
        return -ENAMETOOLONG;
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, val, strlen(val));
    int e = n < 0 ? errno : 0;
    close(fd);
    return -e;
}

/* Whether the space-separated list holds word. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *s = list; (s = strstr(s, word)) != NULL; s += n)
        if ((s == list || s[-1] == ' ' || s[-1] == ',') && (s[n] == 0 || s[n] == ' ' || s[n] == '\n' || s[n] == ','))
            return true;
    return false;
}

/* Our own cgroup path in the hierarchy of ctrl (v1), or the unified one
 * (ctrl NULL), from self: /proc/self/cgroup's text, read once per probe
 * ("ID:controllers:/path" lines). */
static bool own_path(const char *self, const char *ctrl, char *out, size_t len)
{
    char buf[CG_FILE_MAX];
    snprintf(buf, sizeof buf, "%s", self);
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        bool match = ctrl ? has_word(c1 + 1, ctrl) : c1[1] == 0;
        if (match)
            return snprintf(out, len, "%s", c2 + 1) < (int)len;
    }
    return false;
}

static bool dir_writable(const char *dir)
{
    return access(dir, W_OK | X_OK) == 0;
}

/* A v2 parent we may use: writable by us (root, or a delegated subtree),
 * memory and pids available to it and, unless it already enables them for
 * its children, no process of its own (the kernel's no-internal-process
 * rule: wr_cgroup_make enables them then). */
static bool v2_parent_ok(const char *dir)
{
    char ctl[CG_FILE_MAX], procs[64];
    if (!dir_writable(dir) || read_file(dir, "cgroup.controllers", ctl, sizeof ctl) < 0 || !has_word(ctl, "memory") ||
        !has_word(ctl, "pids"))
        return false;
    if (read_file(dir, "cgroup.subtree_control", ctl, sizeof ctl) >= 0 && has_word(ctl, "memory") &&
        has_word(ctl, "pids"))
        return true;
    return read_file(dir, "cgroup.procs", procs, sizeof procs) == 0;
}

static int set_parent(wr_cg_plan *cg, int i, const char *path, wr_error *err)
{
    cg->parent[i] = strdup(path);
    return cg->parent[i] ? WR_OK : wr_errorf(err, WR_E_NOMEM, "", "out of memory");
}

static int probe_v2(wr_cg_plan *cg, const char *self, const char *base, bool explicit_root, wr_error *err)
{
    char dir[PATH_MAX], own[PATH_MAX], ctl[CG_FILE_MAX];
    if (explicit_root) {
        snprintf(dir, sizeof dir, "%s", base);
    } else {
        char unified[PATH_MAX];
        snprintf(unified, sizeof unified, "%s%s", base, file_exists(base, "cgroup.controllers") ? "" : "/unified");
        if (!own_path(self, NULL, own, sizeof own) ||
            snprintf(dir, sizeof dir, "%s%s", unified, strcmp(own, "/") ? own : "") >= (int)sizeof dir)
            return WR_OK;
    }
    if (!v2_parent_ok(dir)) {
        /* systemd's Delegate=yes with DelegateSubgroup= runs us in a leaf
         * of the delegated cgroup: runs go beside it */
        char *slash = explicit_root ? NULL : strrchr(dir, '/');
        if (!slash || slash == dir)
            return WR_OK;
        *slash = 0;
        if (!v2_parent_ok(dir))
            return WR_OK;
    }
    cg->mode = WR_CG_V2;
    cg->swap_limited = true; /* memory.swap.max is set to 0 when present, else there is no swap accounting */
    cg->cpu = read_file(dir, "cgroup.controllers", ctl, sizeof ctl) >= 0 && has_word(ctl, "cpu");
    return set_parent(cg, 0, dir, err);
}

/* v1: the memory, pids and freezer hierarchies must all be ours to write;
 * cpu is used when present. Runs go under our own cgroup in each. */
static int probe_v1(wr_cg_plan *cg, const char *self, const char *base, wr_error *err)
{
    char dir[WR_CG_NCTRL][PATH_MAX];
    bool ok[WR_CG_NCTRL] = {0};
    for (int i = 0; i < WR_CG_NCTRL; i++) {
        char own[PATH_MAX], top[PATH_MAX];
        snprintf(top, sizeof top, "%s/%s", base, v1_ctrl[i]);
        if (!file_exists(top, "cgroup.procs") || !own_path(self, v1_ctrl[i], own, sizeof own))
            continue;
        if (snprintf(dir[i], sizeof dir[i], "%s%s", top, strcmp(own, "/") ? own : "") >= (int)sizeof dir[i])
            continue;
        ok[i] = dir_writable(dir[i]);
    }
    if (!ok[WR_CG_MEMORY] || !ok[WR_CG_PIDS] || !ok[WR_CG_FREEZER])
        return WR_OK;
    cg->mode = WR_CG_V1;
    cg->swap_limited = file_exists(dir[WR_CG_MEMORY], "memory.memsw.limit_in_bytes");
    cg->cpu = ok[WR_CG_CPU] && file_exists(dir[WR_CG_CPU], "cpu.cfs_quota_us");
    int rc = WR_OK;
    for (int i = 0; rc == WR_OK && i < WR_CG_NCTRL; i++)
        if (ok[i] && (i != WR_CG_CPU || cg->cpu))
            rc = set_parent(cg, i, dir[i], err);
    return rc;
}

int wr_cg_layout(const char *root, wr_cg_plan *cg, wr_error *err)
{
    memset(cg, 0, sizeof *cg);
    const char *base = root && *root ? root : CG_DEFAULT_BASE;
    char self[CG_FILE_MAX];
    if (read_file("/proc/self", "cgroup", self, sizeof self) < 0)
        self[0] = 0; /* no cgroup of ours is known: none is usable, said below */
    /* An operator's root is either a v2 parent itself or a v1 mount base. */
    int rc = probe_v2(cg, self, base, root && *root && file_exists(base, "cgroup.subtree_control"), err);
    if (rc == WR_OK && cg->mode == WR_CG_NONE)
        rc = probe_v1(cg, self, base, err);
    if (rc != WR_OK) {
        wr_cg_plan_free(cg);
        return rc;
    }
    if (cg->mode == WR_CG_NONE)
        snprintf(cg->fallback, sizeof cg->fallback,
                 "no writable cgroup under %s (v2 parent with memory+pids delegated, or v1 memory, pids and "
                 "freezer): rlimits only",
                 base);
    return WR_OK;
}

int wr_cg_plan_for(const wr_cg_plan *layout, const wr_sandbox_limits *lim, wr_cg_plan *cg, wr_error *err)
{
    *cg = *layout;
    for (int i = 0; i < WR_CG_NCTRL; i++)
        if (layout->parent[i] && !(cg->parent[i] = strdup(layout->parent[i]))) {
            while (i-- > 0)
                free(cg->parent[i]);
            memset(cg, 0, sizeof *cg);
            return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
        }
    if (cg->mode == WR_CG_NONE)
        return WR_OK;
    if (lim) {
        cg->memory_bytes = lim->memory_mb > 0 ? lim->memory_mb * 1024 * 1024 : 0;
        cg->pids_max = lim->max_processes;
        cg->cpu_percent = cg->cpu ? lim->cpu_percent : 0;
    }
    if (!cg->memory_bytes)
        cg->swap_limited = false;
    /* Joining a v1 hierarchy costs the child an attach (the first one
     * waits for an RCU grace period): cpu only when it limits something. */
    if (cg->mode == WR_CG_V1 && !cg->cpu_percent) {
        free(cg->parent[WR_CG_CPU]);
        cg->parent[WR_CG_CPU] = NULL;
    }
    return WR_OK;
}

int wr_cg_probe(const char *root, const wr_sandbox_limits *lim, wr_cg_plan *cg, wr_error *err)
{
    wr_cg_plan layout;
    int rc = wr_cg_layout(root, &layout, err);
    if (rc == WR_OK)
        rc = wr_cg_plan_for(&layout, lim, cg, err);
    wr_cg_plan_free(&layout);
    return rc;
}

void wr_cg_plan_free(wr_cg_plan *cg)
{
    for (int i = 0; i < WR_CG_NCTRL; i++)
        free(cg->parent[i]);
    memset(cg, 0, sizeof *cg);
}

json_object *wr_cg_plan_json(const wr_cg_plan *cg)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "mode", json_object_new_string(wr_cg_mode_name(cg->mode)));
    if (cg->mode == WR_CG_NONE) {
        json_object_object_add(o, "fallback", json_object_new_string(cg->fallback));
        return o;
    }
    json_object_object_add(o, "memory_bytes", json_object_new_int64(cg->memory_bytes));
    json_object_object_add(o, "swap_limited", json_object_new_boolean(cg->swap_limited));
    json_object_object_add(o, "pids_max", json_object_new_int64(cg->pids_max));
    json_object_object_add(o, "cpu_percent", json_object_new_int64(cg->cpu_percent));
    json_object_object_add(o, "kill", json_object_new_string(cg->mode == WR_CG_V2 ? "cgroup.kill" : "freezer"));
    return o;
}

/* ---- one command's cgroup ------------------------------------------------ */

void wr_cgroup_init(wr_cgroup *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < WR_CG_NCTRL; i++)
        c->procs_fd[i] = -1;
}

static int set_value(const char *dir, const char *file, const char *val, wr_error *err)
{
    int e = write_file(dir, file, val);
    return e ? wr_errorf(err, WR_E_IO, file, "cgroup %s/%s: %s", dir, file, strerror(-e)) : WR_OK;
}

static int limit(const char *dir, const char *file, int64_t v, wr_error *err)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)v);
    return set_value(dir, file, num, err);
}

static int apply_v1(wr_cgroup *c, const wr_cg_plan *cg, wr_error *err)
{
    int rc = WR_OK;
    if (cg->memory_bytes) {
        /* memsw bounds memory+swap; it may never be below the memory limit,
         * so the memory limit goes first. */
        rc = limit(c->dir[WR_CG_MEMORY], "memory.limit_in_bytes", cg->memory_bytes, err);
        if (rc == WR_OK && cg->swap_limited)
            rc = limit(c->dir[WR_CG_MEMORY], "memory.memsw.limit_in_bytes", cg->memory_bytes, err);
    }
    if (rc == WR_OK && cg->pids_max > 0)
        rc = limit(c->dir[WR_CG_PIDS], "pids.max", cg->pids_max, err);
    if (rc == WR_OK && cg->cpu_percent > 0) {
        rc = limit(c->dir[WR_CG_CPU], "cpu.cfs_period_us", CPU_PERIOD_US, err);
        if (rc == WR_OK)
            rc = limit(c->dir[WR_CG_CPU], "cpu.cfs_quota_us", cg->cpu_percent * CPU_PERIOD_US / 100, err);
    }
    return rc;
}

static int apply_v2(wr_cgroup *c, const wr_cg_plan *cg, wr_error *err)
{
    const char *d = c->dir[0];
    int rc = WR_OK;
    if (cg->memory_bytes) {
        rc = limit(d, "memory.max", cg->memory_bytes, err);
        if (rc == WR_OK && file_exists(d, "memory.swap.max"))
            rc = limit(d, "memory.swap.max", 0, err);
    }
    if (rc == WR_OK && cg->pids_max > 0)
        rc = limit(d, "pids.max", cg->pids_max, err);
    if (rc == WR_OK && cg->cpu_percent > 0) {
        char v[64];
        snprintf(v, sizeof v, "%lld %d", (long long)(cg->cpu_percent * CPU_PERIOD_US / 100), CPU_PERIOD_US);
        rc = set_value(d, "cpu.max", v, err);
    }
    return rc;
}

/* Lifts every limit written into c, for a plan without them: on v1 memsw
 * before memory, so that memsw >= memory holds throughout. */
static int lift(const wr_cgroup *c, wr_error *err)
{
    int rc = WR_OK;
    const char *d = c->dir[c->mode == WR_CG_V1 ? WR_CG_MEMORY : 0];
    if (c->mode == WR_CG_V1) {
        if (c->written.memory_bytes && c->written.swap_limited)
            rc = limit(d, "memory.memsw.limit_in_bytes", -1, err);
        if (rc == WR_OK && c->written.memory_bytes)
            rc = limit(d, "memory.limit_in_bytes", -1, err);
        if (rc == WR_OK && c->written.pids_max > 0)
            rc = set_value(c->dir[WR_CG_PIDS], "pids.max", "max", err);
        if (rc == WR_OK && c->written.cpu_percent > 0)
            rc = limit(c->dir[WR_CG_CPU], "cpu.cfs_quota_us", -1, err);
        return rc;
    }
    if (c->written.memory_bytes) {
        rc = set_value(d, "memory.max", "max", err);
        if (rc == WR_OK && file_exists(d, "memory.swap.max"))
            rc = set_value(d, "memory.swap.max", "max", err);
    }
    if (rc == WR_OK && c->written.pids_max > 0)
        rc = set_value(d, "pids.max", "max", err);
    if (rc == WR_OK && c->written.cpu_percent > 0)
        rc = set_value(d, "cpu.max", "max", err);
    return rc;
}

/* The v2 controllers to pass on to the run cgroups ("+memory +pids"):
 * those the plan may limit that the parent offers (the probe made sure
 * memory and pids are there; a plain cgroup2 with none gives ""). */
static void v2_controllers(const wr_cg_plan *cg, const char *parent, char *out, size_t len)
{
    char ctl[CG_FILE_MAX];
    const char *want[] = {"memory", "pids", cg->cpu ? "cpu" : NULL};
    size_t n = 0;
    out[0] = 0;
    if (read_file(parent, "cgroup.controllers", ctl, sizeof ctl) < 0)
        return;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (want[i] && has_word(ctl, want[i]) && n < len)
            n += (size_t)snprintf(out + n, len - n, "%s+%s", n ? " " : "", want[i]);
}

/* Whether dir's cgroup.subtree_control enables every "+name" of want. */
static bool enables(const char *dir, const char *want)
{
    char ctl[CG_FILE_MAX], w[64];
    if (read_file(dir, "cgroup.subtree_control", ctl, sizeof ctl) < 0)
        return false;
    snprintf(w, sizeof w, "%s", want);
    char *save = NULL;
    for (char *t = strtok_r(w, " ", &save); t; t = strtok_r(NULL, " ", &save))
        if (!has_word(ctl, t + 1))
            return false;
    return true;
}

/* The parent's "warrant" directory, passing the controllers on (v2). */
static int make_sub(const wr_cg_plan *cg, const char *parent, const char *sub, wr_error *err)
{
    char want[64] = "";
    if (cg->mode == WR_CG_V2)
        v2_controllers(cg, parent, want, sizeof want);
    int e = want[0] && !enables(parent, want) ? write_file(parent, "cgroup.subtree_control", want) : 0;
    if (e)
        return wr_errorf(err, WR_E_IO, "", "cgroup %s: enabling controllers: %s", parent, strerror(-e));
    if (mkdir(sub, 0755) != 0)
        return errno == EEXIST ? WR_OK : wr_errorf(err, WR_E_IO, "", "cgroup %s: %s", sub, strerror(errno));
    if (want[0] && (e = write_file(sub, "cgroup.subtree_control", want)) != 0)
        return wr_errorf(err, WR_E_IO, "", "cgroup %s: enabling controllers: %s", sub, strerror(-e));
    return WR_OK;
}

int wr_cgroup_make(const wr_cg_plan *cg, const wr_ctx *ctx, wr_cgroup *c, wr_error *err)
{
    wr_cgroup_init(c);
    c->mode = cg->mode;
    if (cg->mode == WR_CG_NONE)
        return WR_OK;
    /* run-<our pid>-<random>: the pid lets a later start find the cgroups
     * of a warrant that died (wr_cg_reap_orphans). */
    char name[WR_ID_MAX + 32], rnd[WR_ID_MAX];
    wr_random_id(ctx, "", rnd, sizeof rnd);
    snprintf(name, sizeof name, CG_RUN_PREFIX "%d-%.16s", (int)getpid(), rnd);
    int rc = WR_OK;
    for (int i = 0; rc == WR_OK && i < WR_CG_NCTRL; i++) {
        if (!cg->parent[i])
            continue;
        char sub[PATH_MAX], dir[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/" CG_SUBDIR, cg->parent[i]);
        if (snprintf(dir, sizeof dir, "%s/%s", sub, name) >= (int)sizeof dir) {
            rc = wr_errorf(err, WR_E_IO, "", "cgroup path too long under %s", sub);
            break;
        }
        rc = make_sub(cg, cg->parent[i], sub, err);
        if (rc == WR_OK && mkdir(dir, 0755) != 0)
            rc = wr_errorf(err, WR_E_IO, "", "cgroup %s: %s", dir, strerror(errno));
        if (rc != WR_OK)
            break;
        c->dir[i] = strdup(dir);
        if (!c->dir[i]) {
            rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
            break;
        }
        /* v1: the launcher joins through this file; v2: it is cloned into
         * the directory (CLONE_INTO_CGROUP), which this fd names. */
        int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        c->procs_fd[i] = dfd < 0 || cg->mode == WR_CG_V2 ? dfd : openat(dfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (c->procs_fd[i] < 0)
            rc = wr_errorf(err, WR_E_IO, "", "cgroup %s/cgroup.procs: %s", dir, strerror(errno));
        if (dfd >= 0 && dfd != c->procs_fd[i])
            close(dfd);
    }
    if (rc != WR_OK)
        wr_cgroup_destroy(c);
    return rc;
}

bool wr_cgroup_under(const wr_cgroup *c, const wr_cg_plan *cg)
{
    if (c->mode != cg->mode)
        return false;
    for (int i = 0; i < WR_CG_NCTRL; i++) {
        if (!cg->parent[i])
            continue;
        size_t n = strlen(cg->parent[i]);
        if (!c->dir[i] || strncmp(c->dir[i], cg->parent[i], n) != 0 ||
            strncmp(c->dir[i] + n, "/" CG_SUBDIR "/", 2 + strlen(CG_SUBDIR)) != 0)
            return false;
    }
    return true;
}

static bool same_limits(const wr_cgroup *c, const wr_cg_plan *cg)
{
    return c->written.memory_bytes == cg->memory_bytes && c->written.swap_limited == cg->swap_limited &&
           c->written.pids_max == cg->pids_max && c->written.cpu_percent == cg->cpu_percent;
}

int wr_cgroup_limit(wr_cgroup *c, const wr_cg_plan *cg, wr_error *err)
{
    if (cg->mode == WR_CG_NONE || (c->limited && same_limits(c, cg)))
        return WR_OK;
    /* Written ahead for another run's limits (pool.c): lifted first, so
     * that no limit this plan lacks stays, stricter than it records. */
    int rc = c->limited ? lift(c, err) : WR_OK;
    if (rc == WR_OK)
        rc = cg->mode == WR_CG_V2 ? apply_v2(c, cg, err) : apply_v1(c, cg, err);
    c->limited = rc == WR_OK;
    c->written.memory_bytes = cg->memory_bytes;
    c->written.swap_limited = cg->swap_limited;
    c->written.pids_max = cg->pids_max;
    c->written.cpu_percent = cg->cpu_percent;
    return rc;
}

/* SIGKILLs each pid of a cgroup.procs listing. */
static void kill_pids(const char *list)
{
    for (const char *s = list; *s;) {
        char *end;
        long pid = strtol(s, &end, 10);
        if (end == s)
            break;
        if (pid > 0)
            kill((pid_t)pid, SIGKILL);
        s = end;
    }
}

/* Kills every task listed in dir/cgroup.procs until none is left; with
 * the cgroup frozen, none can fork meanwhile. */
static bool kill_listed(const char *dir)
{
    char buf[CG_FILE_MAX * 4];
    for (int round = 0; round < KILL_ROUNDS; round++) {
        if (read_file(dir, "cgroup.procs", buf, sizeof buf) < 0)
            return false;
        if (!buf[0])
            return true;
        kill_pids(buf);
        sleep_ms(1);
    }
    return false;
}

void wr_cgroup_kill(const wr_cgroup *c)
{
    if (c->mode == WR_CG_V2 && c->dir[0]) {
        if (write_file(c->dir[0], "cgroup.kill", "1") != 0) /* before Linux 5.14 */
            kill_listed(c->dir[0]);
        return;
    }
    if (c->mode != WR_CG_V1)
        return;
    const char *fz = c->dir[WR_CG_FREEZER];
    char st[64] = "";
    if (fz && write_file(fz, "freezer.state", "FROZEN") == 0)
        for (int i = 0; i < FREEZE_POLLS && strncmp(st, "FROZEN", 6) != 0; i++) {
            read_file(fz, "freezer.state", st, sizeof st);
            if (strncmp(st, "FROZEN", 6) != 0)
                sleep_ms(1);
        }
    /* SIGKILL is delivered on thaw: list, kill, thaw, then wait until the
     * list is empty. */
    const char *d = fz ? fz : c->dir[WR_CG_PIDS];
    if (d) {
        char buf[CG_FILE_MAX * 4];
        if (read_file(d, "cgroup.procs", buf, sizeof buf) > 0)
            kill_pids(buf);
    }
    if (fz)
        write_file(fz, "freezer.state", "THAWED");
    if (d)
        kill_listed(d);
}

bool wr_cgroup_empty(const wr_cgroup *c)
{
    char buf[64];
    for (int i = 0; i < WR_CG_NCTRL; i++)
        if (c->dir[i] && read_file(c->dir[i], "cgroup.procs", buf, sizeof buf) > 0)
            return false;
    return true;
}

void wr_cgroup_destroy(wr_cgroup *c)
{
    if (c->mode != WR_CG_NONE && !wr_cgroup_empty(c))
        wr_cgroup_kill(c);
    for (int i = 0; i < WR_CG_NCTRL; i++) {
        if (c->procs_fd[i] >= 0)
            close(c->procs_fd[i]);
        if (!c->dir[i])
            continue;
        /* A killed task leaves the cgroup a moment after it is reaped. */
        for (int k = 0; k < RMDIR_POLLS && rmdir(c->dir[i]) != 0 && errno == EBUSY; k++)
            sleep_ms(1);
        free(c->dir[i]);
    }
    wr_cgroup_init(c);
}

/* ---- after a crash ------------------------------------------------------- */

int wr_cg_reap_orphans(const wr_cg_plan *cg, size_t *reaped)
{
    *reaped = 0;
    if (cg->mode == WR_CG_NONE)
        return WR_OK;
    /* The freezer (v1) or the single v2 directory lists every run. */
    int lead = cg->mode == WR_CG_V2 ? 0 : WR_CG_FREEZER;
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/" CG_SUBDIR, cg->parent[lead]);
    DIR *d = opendir(sub);
    if (!d)
        return WR_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int pid = 0;
        if (strncmp(de->d_name, CG_RUN_PREFIX, strlen(CG_RUN_PREFIX)) != 0 ||
            sscanf(de->d_name + strlen(CG_RUN_PREFIX), "%d-", &pid) != 1 || pid <= 0)
            continue;
        if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
            continue; /* its warrant is alive (or not ours to judge) */
        wr_cgroup c;
        wr_cgroup_init(&c);
        c.mode = cg->mode;
        for (int i = 0; i < WR_CG_NCTRL; i++)
            if (cg->parent[i]) {
                char dir[PATH_MAX];
                if (snprintf(dir, sizeof dir, "%s/" CG_SUBDIR "/%s", cg->parent[i], de->d_name) < (int)sizeof dir)
                    c.dir[i] = strdup(dir);
            }
        wr_cgroup_destroy(&c);
        (*reaped)++;
    }
    closedir(d);
    return WR_OK;
}
