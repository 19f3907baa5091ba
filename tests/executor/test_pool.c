/* Attacks on the way a command is started ahead of its run: the warm
 * launchers (executor/pool.c, launcher.c) — a launcher must never carry
 * anything from one run to the next, limits must hold from a command's
 * first instruction though its cgroup was made long before, a killed
 * launcher must not cost a run, and nothing of the pool may outlive its
 * process — and the caller's pre-exec commit overlapping bwrap's set-up
 * (before_run): nothing of the command runs before it succeeded, nothing at
 * all when it fails. Real bwrap, real cgroups (v1 here), and a real cgroup2
 * for CLONE_INTO_CGROUP. CI runs it as root. */
#include "exec_fixture.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "executor/executor_internal.h"
#include "executor/launch_proto.h"
#include "cgroup_util.h"
#include "sandbox_util.h"

#define SETTLE_MS 5000

static bool have_cgroup(void)
{
    wr_cg_plan cg;
    wr_error e = {0};
    assert_int_equal(wr_cg_probe(NULL, NULL, &cg, &e), WR_OK);
    bool have = cg.mode != WR_CG_NONE;
    wr_cg_plan_free(&cg);
    return have;
}

/* Waits until the pool holds n launchers again (its worker refills it). */
static void settle(wr_launch_pool *p, size_t n, pid_t *pids)
{
    pid_t tmp[WR_LAUNCH_POOL_MAX];
    for (int i = 0; i < SETTLE_MS / 10 && wr_launch_pool_pids(p, tmp, WR_LAUNCH_POOL_MAX) < n; i++)
        usleep(10000);
    assert_int_equal(wr_launch_pool_pids(p, pids ? pids : tmp, WR_LAUNCH_POOL_MAX), n);
}

/* A process's cgroup in the v1 memory hierarchy ("" when none). */
static void memory_cgroup(pid_t pid, char *out, size_t len)
{
    char p[64], buf[2048];
    snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
    out[0] = 0;
    FILE *f = fopen(p, "r");
    while (f && fgets(buf, sizeof buf, f))
        if (strstr(buf, ":memory:"))
            snprintf(out, len, "%s", strchr(strstr(buf, ":memory:") + 1, ':') + 1);
    if (f)
        fclose(f);
}

/* Gone, or a zombie waiting for us (wr_exec_run makes this process a
 * subreaper: orphans come back to it), which is reaped here. */
static bool gone(pid_t pid)
{
    char p[64], buf[256];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    const char *rp = strrchr(buf, ')');
    if (rp && rp[1] == ' ' && rp[2] == 'Z') {
        waitpid(pid, NULL, WNOHANG);
        return true;
    }
    return false;
}

static bool all_gone(const pid_t *pids, size_t n)
{
    for (int round = 0; round < SETTLE_MS / 10; round++) {
        bool any = false;
        for (size_t i = 0; i < n; i++)
            any = any || !gone(pids[i]);
        if (!any)
            return true;
        usleep(10000);
    }
    return false;
}

/* Two runs in flight at once, each pinning 160 MiB (memfd pages, which
 * only the memory cgroup counts) under a 200 MiB limit, then waiting: had
 * they shared a cgroup, or a launcher kept the first one's, one would die.
 * Seen from the host, their processes are in two different run cgroups,
 * neither of them a launcher's still waiting in the pool, each with its
 * own limit written before it started. */
static void test_runs_isolated(void **s)
{
    (void)s;
    if (!have_cgroup())
        skip();
    settle(g_pool, TEST_POOL_SIZE, NULL);
    const char *argv[] = {"/usr/bin/python3", "-c",
                          "import os, time\nfd = os.memfd_create('x')\nb = bytes(1 << 20)\n"
                          "for i in range(160): os.write(fd, b)\nprint('pinned', flush=True)\ntime.sleep(1.5)\n"
                          "#pool-isolated",
                          NULL};
    async_run x[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        memset(&x[i], 0, sizeof x[i]);
        x[i].spec[0] = (fx_cmd_spec){.id = "c1", .seg = {argv}, .timeout = 30};
        fx_init(&x[i].f, x[i].spec);
        x[i].f.lim.memory_mb = 200;
        x[i].f.req.launchers = g_pool;
        assert_int_equal(pthread_create(&t[i], NULL, async_run_main, &x[i]), 0);
    }
    pid_t pids[8];
    size_t n = 0;
    for (int i = 0; i < 300 && (n = pids_of("#pool-isolated", true, pids, 8)) < 2; i++)
        usleep(10000);
    assert_int_equal(n, 2);
    char cg[2][1024];
    memory_cgroup(pids[0], cg[0], sizeof cg[0]);
    memory_cgroup(pids[1], cg[1], sizeof cg[1]);
    assert_non_null(strstr(cg[0], "/warrant/run-"));
    assert_non_null(strstr(cg[1], "/warrant/run-"));
    assert_string_not_equal(cg[0], cg[1]);
    pid_t waiting[WR_LAUNCH_POOL_MAX];
    size_t nw = wr_launch_pool_pids(g_pool, waiting, WR_LAUNCH_POOL_MAX);
    for (size_t i = 0; i < nw; i++) {
        char lc[1024];
        memory_cgroup(waiting[i], lc, sizeof lc);
        assert_string_not_equal(lc, cg[0]);
        assert_string_not_equal(lc, cg[1]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_non_null(x[i].r);
        if (x[i].r->status != WR_EXEC_SUCCESS)
            dump(x[i].r);
        assert_int_equal(x[i].r->status, WR_EXEC_SUCCESS);
        assert_string_equal(OUT(x[i].r), "pinned\n");
        wr_exec_result_free(x[i].r);
    }
}

/* One limit of the cgroup that pid is in, read from the host. */
static long long cgroup_value(pid_t pid, const char *ctrl, const char *file)
{
    char p[64], buf[2048], key[32], path[2300], v[64] = "";
    snprintf(p, sizeof p, "/proc/%d/cgroup", (int)pid);
    snprintf(key, sizeof key, ":%s:", ctrl);
    FILE *f = fopen(p, "r");
    path[0] = 0;
    while (f && fgets(buf, sizeof buf, f))
        if (strstr(buf, key)) {
            buf[strcspn(buf, "\n")] = 0;
            snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/%s", ctrl, strstr(buf, key) + strlen(key), file);
        }
    if (f)
        fclose(f);
    if (path[0] && (f = fopen(path, "r"))) {
        if (!fgets(v, sizeof v, f))
            v[0] = 0;
        fclose(f);
    }
    return v[0] ? atoll(v) : -1;
}

/* Runs argv (its cmdline holds marker) under these limits through the
 * pool and reads from the host, once `want` of its processes run, the
 * memory limit and pids.max of the last one's cgroups; x->r is the
 * result. */
static void run_limited(async_run *x, const char *const *argv, const char *marker, size_t want, int64_t memory_mb,
                        int64_t pids, long long *mem, long long *pmax)
{
    memset(x, 0, sizeof *x);
    x->spec[0] = (fx_cmd_spec){.id = "c1", .seg = {argv}, .timeout = 30};
    fx_init(&x->f, x->spec);
    x->f.lim.memory_mb = memory_mb;
    x->f.lim.max_processes = pids;
    x->f.req.launchers = g_pool;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, async_run_main, x), 0);
    pid_t found[64];
    size_t n = 0;
    for (int i = 0; i < 300 && (n = pids_of(marker, true, found, 64)) < want; i++)
        usleep(10000);
    assert_true(n >= want);
    *mem = cgroup_value(found[n - 1], "memory", "memory.limit_in_bytes");
    *pmax = cgroup_value(found[n - 1], "pids", "pids.max");
    pthread_join(t, NULL);
    assert_non_null(x->r);
}

/* A launcher waits long in its unlimited cgroups; the run that takes it
 * forks at once, then pins memory. pids.max and the memory limit are in
 * its cgroups while it runs (read from the host) and felt by it. */
static void test_limits_before_start(void **s)
{
    (void)s;
    if (!have_cgroup())
        skip();
    settle(g_pool, TEST_POOL_SIZE, NULL);
    usleep(200 * 1000);
    const char *argv[] = {"/usr/bin/python3", "-c",
                          "import os, time\nn = 0\ntry:\n"
                          "    while n < 40:\n"
                          "        if os.fork() == 0:\n"
                          "            time.sleep(2)\n"
                          "            os._exit(0)\n"
                          "        n += 1\n"
                          "except OSError:\n"
                          "    pass\n"
                          "print('forked', n, flush=True)\n"
                          "fd = os.memfd_create('x')\nb = bytes(1 << 20)\n"
                          "for i in range(256): os.write(fd, b)\nprint('pinned', flush=True)\n"
                          "#pool-limits",
                          NULL};
    async_run x;
    long long mem, pmax;
    run_limited(&x, argv, "#pool-limits", 2, 64, 16, &mem, &pmax);
    assert_int_equal(mem, 64LL * 1024 * 1024);
    assert_int_equal(pmax, 16);
    const char *out = OUT(x.r), *o = strstr(out, "forked ");
    if (!o || strstr(out, "pinned"))
        dump(x.r);
    assert_non_null(o);
    assert_true(atoi(o + 7) <= 16 - 3);
    assert_null(strstr(out, "pinned"));
    assert_int_equal(x.r->status, WR_EXEC_FAILED);
    wr_exec_result_free(x.r);
}

/* Launchers killed while they wait (an operator, the OOM killer): the run
 * that comes next does not notice, they are replaced by new ones, and
 * their cgroups are gone. */
static void test_killed_launcher_replaced(void **s)
{
    (void)s;
    pid_t old[WR_LAUNCH_POOL_MAX], now[WR_LAUNCH_POOL_MAX];
    settle(g_pool, TEST_POOL_SIZE, old);
    for (size_t i = 0; i < TEST_POOL_SIZE; i++)
        assert_int_equal(kill(old[i], SIGKILL), 0);
    for (int i = 0; i < 100; i++) { /* dead, not yet reaped by the pool */
        char p[64], st[256] = "";
        snprintf(p, sizeof p, "/proc/%d/stat", (int)old[0]);
        FILE *f = fopen(p, "r");
        if (f && fgets(st, sizeof st, f) && strstr(st, ") Z"))
            i = 100;
        if (f)
            fclose(f);
        usleep(5000);
    }
    const char *argv[] = {"/bin/echo", "after the kill", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_string_equal(OUT(r), "after the kill\n");
    wr_exec_result_free(r);
    settle(g_pool, TEST_POOL_SIZE, now);
    for (size_t i = 0; i < TEST_POOL_SIZE; i++)
        for (size_t k = 0; k < TEST_POOL_SIZE; k++)
            assert_int_not_equal(now[i], old[k]);
    assert_true(all_gone(old, TEST_POOL_SIZE));
    if (!have_cgroup())
        return;
    /* the run's cgroups are removed by the pool's worker, off the run's path */
    for (int i = 0; i < SETTLE_MS / 10 && run_cgroups_of(getpid()) != TEST_POOL_SIZE; i++)
        usleep(10000);
    assert_int_equal(run_cgroups_of(getpid()), TEST_POOL_SIZE);
}

/* A process with a full pool ends: cleanly (the pool freed) or killed
 * (SIGKILL, no clean-up). Either way no launcher survives it; the clean
 * end leaves no cgroup, the crash's are reaped at the next start. */
static void test_exit_leaves_nothing(void **s)
{
    (void)s;
    for (int crash = 0; crash < 2; crash++) {
        int pp[2];
        assert_int_equal(pipe(pp), 0);
        pid_t child = fork();
        if (child == 0) {
            wr_launch_pool *p = NULL;
            wr_ctx ctx = wr_ctx_system();
            wr_error e = {0};
            pid_t pids[WR_LAUNCH_POOL_MAX];
            if (wr_launch_pool_new(NULL, 3, true, &ctx, &p, &e) != WR_OK)
                _exit(1);
            for (int i = 0; i < SETTLE_MS / 10 && wr_launch_pool_pids(p, pids, 3) < 3; i++)
                usleep(10000);
            size_t n = wr_launch_pool_pids(p, pids, 3);
            if (write(pp[1], pids, n * sizeof *pids) < 0)
                _exit(1);
            if (crash)
                raise(SIGKILL);
            wr_launch_pool_free(p);
            _exit(0);
        }
        close(pp[1]);
        pid_t pids[3];
        ssize_t got = read(pp[0], pids, sizeof pids);
        close(pp[0]);
        int st;
        assert_int_equal(waitpid(child, &st, 0), child);
        assert_int_equal(got, (ssize_t)sizeof pids);
        assert_true(all_gone(pids, 3));
        if (!have_cgroup())
            continue;
        if (crash) {
            wr_cg_plan cg;
            wr_error e = {0};
            size_t reaped = 0;
            assert_int_equal(wr_cg_probe(NULL, NULL, &cg, &e), WR_OK);
            assert_int_equal(wr_cg_reap_orphans(&cg, &reaped), WR_OK);
            assert_true(reaped >= 3);
            wr_cg_plan_free(&cg);
        }
        assert_int_equal(run_cgroups_of(child), 0);
    }
}

/* On cgroup v2 the launcher is born in its cgroup (clone3
 * CLONE_INTO_CGROUP): it never writes cgroup.procs (told to join 0
 * cgroups), yet it and what it becomes are in the run cgroup. This host's
 * cgroup2 (/sys/fs/cgroup/unified) has no controllers, so the plan here
 * limits nothing; the clone is real. */
static void test_clone_into_cgroup(void **s)
{
    (void)s;
    const char *unified = "/sys/fs/cgroup/unified";
    char top[256];
    snprintf(top, sizeof top, "%s/wr-test-%d", unified, (int)getpid());
    if (access(unified, W_OK) != 0 || mkdir(top, 0755) != 0)
        skip(); /* no writable cgroup2 here */
    wr_cg_plan cg = {.mode = WR_CG_V2};
    cg.parent[0] = top;
    wr_ctx ctx = wr_ctx_system();
    wr_error e = {0};
    wr_launcher l;
    assert_int_equal(wr_launcher_start(&cg, &ctx, &l, &e), WR_OK);
    assert_int_equal(wr_launcher_ready(&l, &e), WR_OK);
    char p[64], cmd[256] = "", self[1024] = "";
    snprintf(p, sizeof p, "/proc/%d/cmdline", (int)l.pid);
    int fd = open(p, O_RDONLY);
    ssize_t n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    assert_true(n > 0);
    const char *a2 = cmd + strlen(cmd) + 1;
    a2 += strlen(a2) + 1;
    assert_string_equal(a2, "0"); /* no cgroup.procs to write: born inside */
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int slots[3] = {null, out[1], null};
    char *argv[] = {"/bin/cat", "/proc/self/cgroup", NULL};
    wr_launch_spec spec = {.argv = argv, .slots = slots, .nslots = 3, .umask = 022};
    pid_t pid;
    assert_int_equal(wr_launcher_launch(&l, &spec, false, &pid, &e), WR_OK);
    close(out[1]);
    n = read(out[0], self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    close(out[0]);
    close(null);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    char want[1024];
    snprintf(want, sizeof want, "0::%s\n", l.cg.dir[0] + strlen(unified));
    assert_non_null(strstr(self, want));
    wr_launcher_discard(&l, true);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/warrant", top);
    rmdir(sub);
    assert_int_equal(rmdir(top), 0);
}

/* ---- the pre-exec commit overlapping the sandbox's set-up ------------------ */

typedef struct commit_probe {
    const char *marker; /* the command creates it */
    int calls;
    bool marker_seen;
    bool fail;
} commit_probe;

/* Plays the gate's durable commit: a slow fsync, during which the command
 * must not have run; or a conflict (an approval already used). */
static int slow_commit(void *ud, wr_error *err)
{
    commit_probe *c = ud;
    c->calls++;
    usleep(300 * 1000);
    c->marker_seen = exists(c->marker);
    return c->fail ? wr_errorf(err, WR_E_CONFLICT, "", "approval already used (test)") : WR_OK;
}

/* spec: the caller's (fx keeps pointers into it). */
static void commit_fixture(fx *f, fx_cmd_spec spec[2], const char *const *argv, const char *dir, commit_probe *c)
{
    memset(spec, 0, 2 * sizeof *spec);
    spec[0] = (fx_cmd_spec){.id = "c1", .seg = {argv}, .cwd = dir, .writes = {dir}};
    fx_init(f, spec);
    f->req.before_run = slow_commit;
    f->req.before_run_ud = c;
    f->req.launchers = g_pool;
}

/* The command is held until the commit returns: its side effect is not
 * there while the commit runs, and is there after. */
static void test_commit_before_command(void **s)
{
    (void)s;
    char *dir = fx_subdir(g_dir, "commit-ok", true), *marker = path_in(dir, "ran");
    const char *argv[] = {"/usr/bin/touch", marker, NULL};
    commit_probe c = {.marker = marker};
    fx f;
    fx_cmd_spec spec[2];
    commit_fixture(&f, spec, argv, dir, &c);
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_int_equal(c.calls, 1);
    assert_false(c.marker_seen);
    assert_true(exists(marker));
    wr_exec_result_free(r);
    free(marker);
    free(dir);
}

/* The commit fails while bwrap is already setting up: the run is that
 * failure, the command never ran, nothing of the sandbox is left. */
static void test_commit_fails(void **s)
{
    (void)s;
    char *dir = fx_subdir(g_dir, "commit-fail", true), *marker = path_in(dir, "ran");
    const char *argv[] = {"/bin/sh", "-c", "touch ran; exec sleep 37.913", NULL};
    commit_probe c = {.marker = marker, .fail = true};
    fx f;
    fx_cmd_spec spec[2];
    commit_fixture(&f, spec, argv, dir, &c);
    wr_exec_result *r = NULL;
    wr_error e = {0};
    assert_int_equal(wr_exec_run(&f.req, &r, &e), WR_E_CONFLICT);
    assert_null(r);
    assert_non_null(strstr(e.message, "approval already used"));
    assert_int_equal(c.calls, 1);
    usleep(200 * 1000);
    assert_false(exists(marker));
    assert_false(process_alive("sleep 37.913"));
    free(marker);
    free(dir);
}

/* Blocked before anything starts (argv[0] missing): the commit still
 * happens, once; when it fails, its failure is the outcome. */
static void test_commit_when_blocked(void **s)
{
    (void)s;
    char *dir = fx_subdir(g_dir, "commit-blocked", true), *marker = path_in(dir, "ran");
    const char *argv[] = {"/nonexistent/warrant-test-tool", NULL};
    for (int fail = 0; fail < 2; fail++) {
        commit_probe c = {.marker = marker, .fail = fail};
        fx f;
        fx_cmd_spec spec[2];
        commit_fixture(&f, spec, argv, dir, &c);
        wr_exec_result *r = NULL;
        wr_error e = {0};
        int rc = wr_exec_run(&f.req, &r, &e);
        assert_int_equal(c.calls, 1);
        if (fail) {
            assert_int_equal(rc, WR_E_CONFLICT);
            assert_null(r);
            continue;
        }
        assert_int_equal(rc, WR_OK);
        assert_int_equal(r->status, WR_EXEC_BLOCKED);
        wr_exec_result_free(r);
    }
    free(marker);
    free(dir);
}

/* warrant-init itself never runs a command from a configuration without
 * its end record (a pipe closed unwritten, or cut short): it reports a
 * set-up failure instead. */
static void test_init_needs_complete_config(void **s)
{
    (void)s;
    char init[4096];
    wr_error e = {0};
    assert_int_equal(wr_exec_helper_path(WR_INIT_NAME, init, sizeof init, &e), WR_OK);
    char *marker = path_in(g_dir, "init-ran");
    const char *cases[] = {"", "a0\0t0\0", "a0\0t0\0z\0"};
    const size_t lens[] = {0, 6, 8};
    for (int i = 0; i < 3; i++) {
        int cp[2], sp[2];
        assert_int_equal(pipe(cp), 0);
        assert_int_equal(pipe(sp), 0);
        assert_int_equal(write(cp[1], cases[i], lens[i]), (ssize_t)lens[i]);
        close(cp[1]);
        pid_t pid = fork();
        if (pid == 0) {
            char sfd[16], cfd[16];
            snprintf(sfd, sizeof sfd, "%d", sp[1]);
            snprintf(cfd, sizeof cfd, "%d", cp[0]);
            execl(init, init, sfd, cfd, "/usr/bin/touch", "touch", marker, (char *)NULL);
            _exit(126);
        }
        close(cp[0]);
        close(sp[1]);
        char status[512] = "";
        ssize_t n = 0, k;
        while ((k = read(sp[0], status + n, sizeof status - 1 - (size_t)n)) > 0)
            n += k;
        status[n] = 0;
        close(sp[0]);
        waitpid(pid, NULL, 0);
        if (i < 2) {
            assert_non_null(strstr(status, "\"setup-failed\", \"stage\": \"config\""));
            assert_false(exists(marker));
        } else {
            assert_non_null(strstr(status, "\"started\""));
            assert_true(exists(marker));
        }
    }
    unlink(marker);
    free(marker);
}

/* The memory limit and pids.max in force around one run of a command
 * that waits a moment, read from the host while it runs. */
static void limits_seen(int64_t memory_mb, int64_t pids, long long *mem, long long *pmax)
{
    const char *argv[] = {"/bin/sh", "-c", "sleep 1 #pool-ahead", NULL};
    async_run x;
    run_limited(&x, argv, "#pool-ahead", 1, memory_mb, pids, mem, pmax);
    if (x.r->status != WR_EXEC_SUCCESS)
        dump(x.r);
    assert_int_equal(x.r->status, WR_EXEC_SUCCESS);
    wr_exec_result_free(x.r);
}

/* The pool writes the last run's limits into its new launchers' cgroups
 * ahead (the same policy's next run then writes nothing). A run with other
 * limits, higher or lower, or with none, must never inherit them: its
 * cgroups hold exactly its plan's, as the receipt records. */
static void test_limits_written_ahead(void **s)
{
    (void)s;
    if (!have_cgroup())
        skip();
    long long mem, pmax, unlimited_mem, unlimited_pids;
    limits_seen(96, 32, &mem, &pmax);
    assert_int_equal(mem, 96LL << 20);
    assert_int_equal(pmax, 32);
    pid_t waiting[WR_LAUNCH_POOL_MAX];
    settle(g_pool, TEST_POOL_SIZE, waiting);
    assert_int_equal(cgroup_value(waiting[TEST_POOL_SIZE - 1], "memory", "memory.limit_in_bytes"), 96LL << 20);
    limits_seen(96, 32, &mem, &pmax); /* written ahead, found in place */
    assert_int_equal(mem, 96LL << 20);
    assert_int_equal(pmax, 32);
    settle(g_pool, TEST_POOL_SIZE, NULL);
    limits_seen(128, 24, &mem, &pmax); /* raised over 96 MiB written ahead */
    assert_int_equal(mem, 128LL << 20);
    assert_int_equal(pmax, 24);
    settle(g_pool, TEST_POOL_SIZE, NULL);
    limits_seen(64, 16, &mem, &pmax); /* lowered under 128 MiB */
    assert_int_equal(mem, 64LL << 20);
    assert_int_equal(pmax, 16);
    settle(g_pool, TEST_POOL_SIZE, NULL);
    limits_seen(0, 0, &unlimited_mem, &unlimited_pids); /* the plan limits nothing: nothing may be left */
    assert_true(unlimited_mem > 1LL << 40);
    assert_int_equal(unlimited_pids, 0); /* the file says "max" */
}

/* The cgroup mode of command 0's plan, as the run would record it. */
static const char *plan_cgroup_mode(fx *f, char *out, size_t len)
{
    json_object *j = NULL, *cg = NULL, *mode = NULL;
    wr_error e = {0};
    assert_int_equal(wr_exec_plan_json(&f->req, 0, &j, &e), WR_OK);
    assert_true(json_object_object_get_ex(j, "cgroup", &cg) && json_object_object_get_ex(cg, "mode", &mode));
    snprintf(out, len, "%s", json_object_get_string(mode));
    json_object_put(j);
    return out;
}

/* A pool keeps the host facts every plan needs (cgroup layout, Landlock
 * ABI, the root's /bin links, warrant-init): a plan built with them is the
 * plan built without a pool, and a pool made for another cgroup root never
 * lends its layout, which would leave the run without its cgroups (or put
 * it in the wrong ones) while the receipt said otherwise. */
static void test_pool_host_facts(void **s)
{
    (void)s;
    static const char *const argv[] = {"/bin/true", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    json_object *with = NULL, *without = NULL;
    wr_error e = {0};
    f.req.launchers = g_pool;
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &with, &e), WR_OK);
    f.req.launchers = NULL;
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &without, &e), WR_OK);
    assert_string_equal(json_object_to_json_string(with), json_object_to_json_string(without));
    json_object_put(with);
    json_object_put(without);

    const char *elsewhere = "/nonexistent-warrant-test-root";
    wr_launch_pool *other = NULL;
    wr_ctx ctx = wr_ctx_system();
    assert_int_equal(wr_launch_pool_new(elsewhere, 1, false, &ctx, &other, &e), WR_OK);
    char host[16], got[16];
    snprintf(host, sizeof host, "%s", have_cgroup() ? "v" : "none");
    f.req.launchers = other; /* the run's root is the default one */
    plan_cgroup_mode(&f, got, sizeof got);
    assert_int_equal(strncmp(got, host, strlen(host)), 0);
    f.req.launchers = g_pool;
    f.req.cgroup_root = elsewhere; /* and the other way round */
    assert_string_equal(plan_cgroup_mode(&f, got, sizeof got), "none");
    wr_launch_pool_free(other);
}

/* A pool of no launchers, or of more than the bound: refused in one line,
 * no pool and nothing started. */
static void test_pool_size_bounds(void **s)
{
    (void)s;
    const size_t bad[] = {0, WR_LAUNCH_POOL_MAX + 1, SIZE_MAX};
    wr_ctx ctx = wr_ctx_system();
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        wr_launch_pool *p = (wr_launch_pool *)&ctx;
        wr_error e = {0};
        char want[96];
        assert_int_equal(wr_launch_pool_new(NULL, bad[i], true, &ctx, &p, &e), WR_E_INVALID);
        assert_null(p);
        snprintf(want, sizeof want, "launcher pool size %zu: 1..%d", bad[i], WR_LAUNCH_POOL_MAX);
        assert_string_equal(e.message, want);
    }
}

/* warrant-launch started by hand, READY read: *sock is our end of its
 * control socket, *errr its stderr. */
static pid_t launch_by_hand(int *sock, int *errr)
{
    char path[PATH_MAX], parent[24];
    wr_error e = {0};
    assert_int_equal(wr_exec_helper_path(WR_LAUNCH_NAME, path, sizeof path, &e), WR_OK);
    int sp[2], ep[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(pipe2(ep, O_CLOEXEC), 0);
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int high = fcntl(sp[1], F_DUPFD, WR_LAUNCH_CG_FD + 1); /* dup2 below clears its close-on-exec */
        if (high < 0 || dup2(high, WR_LAUNCH_SOCK_FD) < 0 || dup2(ep[1], 2) < 0)
            _exit(126);
        char *argv[] = {path, parent, "0", NULL};
        execv(path, argv);
        _exit(126);
    }
    close(sp[1]);
    close(ep[1]);
    unsigned char ready = 1;
    assert_int_equal(read(sp[0], &ready, 1), 1);
    assert_int_equal(ready, 0);
    *sock = sp[0];
    *errr = ep[0];
    return pid;
}

/* Sends a header (cut to hlen), argv bytes and at most one fd, then
 * closes our end; returns the launcher's wait status and its stderr. */
static int launch_message(const wr_launch_msg *m, size_t hlen, const char *args, size_t alen, int fd, char *errbuf,
                          size_t errlen)
{
    int sock, errr;
    pid_t pid = launch_by_hand(&sock, &errr);
    char buf[sizeof *m + 256];
    assert_true(alen <= sizeof buf - hlen);
    memcpy(buf, m, hlen);
    memcpy(buf + hlen, args, alen);
    struct iovec iov = {buf, hlen + alen};
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof ctl.b;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)(hlen + alen));
    close(sock);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    ssize_t n = read(errr, errbuf, errlen - 1);
    errbuf[n > 0 ? n : 0] = 0;
    close(errr);
    return st;
}

/* The launcher's own input, pushed past every bound its reader checks:
 * each malformed message is refused in one line (exit 127), nothing is
 * exec'd; a well-formed one runs, and EOF before a header is a clean exit. */
static void test_launcher_refuses_malformed(void **s)
{
    (void)s;
    static const char ok_args[] = "/bin/sh\0-c\0exit 7";
    wr_launch_msg ok;
    memset(&ok, 0, sizeof ok);
    ok.magic = WR_LAUNCH_MAGIC;
    ok.userns = ok.netns = -1;
    ok.umask = 022;
    ok.argc = 3;
    ok.argv_bytes = sizeof ok_args;
    char err[512];
    int st = launch_message(&ok, sizeof ok, ok_args, sizeof ok_args, -1, err, sizeof err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7);
    st = launch_message(&ok, 0, "", 0, -1, err, sizeof err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    enum {
        MAGIC,
        SLOTS_NO_FD,
        FD_NO_SLOT,
        NS_IN_SLOTS,
        NO_ARGS,
        TOO_MANY_ARGS,
        ARGV_TOO_LONG,
        ARGC_ABOVE_STRINGS,
        ARGV_CUT,
        RLIMITS,
        GROUPS,
        HEADER_CUT,
        NCASES
    };
    for (int c = 0; c < NCASES; c++) {
        wr_launch_msg m = ok;
        size_t hlen = sizeof m, alen = sizeof ok_args;
        int fd = -1;
        switch (c) {
        case MAGIC:
            m.magic ^= 1;
            break;
        case SLOTS_NO_FD:
            m.nslots = 1;
            break;
        case FD_NO_SLOT:
            fd = 0;
            break;
        case NS_IN_SLOTS:
            m.nslots = 1, m.netns = 0, fd = 0;
            break;
        case NO_ARGS:
            m.argc = 0;
            break;
        case TOO_MANY_ARGS:
            m.argc = WR_LAUNCH_MAX_ARGS + 1;
            break;
        case ARGV_TOO_LONG:
            m.argv_bytes = WR_LAUNCH_MAX_ARGV_BYTES + 1;
            break;
        case ARGC_ABOVE_STRINGS:
            m.argc = 4;
            break;
        case ARGV_CUT:
            m.argv_bytes = sizeof ok_args + 1;
            break;
        case RLIMITS:
            m.nrl = WR_LAUNCH_MAX_RL + 1;
            break;
        case GROUPS:
            m.ngroups = 2;
            break;
        case HEADER_CUT:
            hlen = sizeof m / 2, alen = 0;
            break;
        }
        st = launch_message(&m, hlen, ok_args, alen, fd, err, sizeof err);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 127 || !strstr(err, "malformed launch message"))
            fail_msg("case %d: status %d, stderr %s", c, st, err);
    }
}

/* More declared paths than one launch message has descriptors for: the
 * run is refused in one line and its command never runs. */
static void test_too_many_paths(void **s)
{
    (void)s;
    enum {
        NPATHS = WR_LAUNCH_MAX_FDS + 1
    };
    char *dir = fx_subdir(g_dir, "many-paths", true), *marker = path_in(dir, "ran");
    char *paths[NPATHS];
    for (int i = 0; i < NPATHS; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        paths[i] = path_in(dir, name);
        FILE *f = fopen(paths[i], "w");
        assert_non_null(f);
        fclose(f);
    }
    const char *argv[] = {"/usr/bin/touch", marker, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .writes = {dir}}, {0}});
    f.cmds[0].read_paths = (wr_strv){paths, NPATHS};
    f.req.launchers = g_pool;
    wr_exec_result *r = NULL;
    wr_error e = {0};
    assert_int_equal(wr_exec_run(&f.req, &r, &e), WR_E_LIMIT);
    assert_null(r);
    assert_string_equal(e.message, "too many declared paths for one sandbox");
    assert_false(exists(marker));
    for (int i = 0; i < NPATHS; i++)
        free(paths[i]);
    free(marker);
    free(dir);
}

int main(int argc, char **argv)
{
    g_unpriv = argc > 1 && !strcmp(argv[1], "--unpriv");
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_runs_isolated),
        cmocka_unit_test(test_limits_before_start),
        cmocka_unit_test(test_killed_launcher_replaced),
        cmocka_unit_test(test_exit_leaves_nothing),
        cmocka_unit_test(test_clone_into_cgroup),
        cmocka_unit_test(test_commit_before_command),
        cmocka_unit_test(test_commit_fails),
        cmocka_unit_test(test_commit_when_blocked),
        cmocka_unit_test(test_init_needs_complete_config),
        cmocka_unit_test(test_unprivileged),
        cmocka_unit_test(test_pool_host_facts),
        cmocka_unit_test(test_limits_written_ahead),
        cmocka_unit_test(test_pool_size_bounds),
        cmocka_unit_test(test_launcher_refuses_malformed),
        cmocka_unit_test(test_too_many_paths),
    };
    /* As uid 65534 without delegation: no cgroup; the pool still works. */
    const struct CMUnitTest unpriv[] = {
        cmocka_unit_test(test_killed_launcher_replaced),   cmocka_unit_test(test_exit_leaves_nothing),
        cmocka_unit_test(test_commit_before_command),      cmocka_unit_test(test_commit_fails),
        cmocka_unit_test(test_init_needs_complete_config), cmocka_unit_test(test_pool_host_facts),
    };
    if (g_unpriv)
        return cmocka_run_group_tests_name("pool_unprivileged", unpriv, setup_pool, teardown);
    return cmocka_run_group_tests_name("pool", all, setup_pool, teardown);
}
