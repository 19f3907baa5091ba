/* Attacks on the host side of the sandbox (real bwrap, real cgroups where
 * this host has them): memory pinned outside RLIMIT_AS, process counts,
 * kills that must reach every task, run cgroups left by a crash, the
 * fallback when no cgroup is writable. CI runs it as root; the
 * 'unprivileged' case re-runs a subset as uid 65534 under setpriv. */
#include "exec_fixture.h"

#include <errno.h>
#include <pwd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "executor/executor_internal.h"
#include "cgroup_util.h"
#include "sandbox_util.h"

/* The cgroup mode the plan of f's first command records. */
static const char *plan_cgroup_mode(fx *f, char *fallback, size_t len)
{
    json_object *plan = NULL, *cg = NULL, *v = NULL;
    wr_error e = {0};
    assert_int_equal(wr_exec_plan_json(&f->req, 0, &plan, &e), WR_OK);
    assert_true(json_object_object_get_ex(plan, "cgroup", &cg));
    assert_true(json_object_object_get_ex(cg, "mode", &v));
    static char mode[8];
    snprintf(mode, sizeof mode, "%s", json_object_get_string(v));
    if (fallback)
        snprintf(fallback, len, "%s", json_object_object_get_ex(cg, "fallback", &v) ? json_object_get_string(v) : "");
    json_object_put(plan);
    return mode;
}

static bool have_cgroup(void)
{
    fx f;
    const char *argv[] = {"/bin/true", NULL};
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    return strcmp(plan_cgroup_mode(&f, NULL, 0), "none") != 0;
}

/* ---- memory that RLIMIT_AS does not see ----------------------------------- */

/* A 128 MiB sandbox pins 384 MiB of host RAM through pages no address-space
 * limit counts: a memfd written (not mapped), tmpfs files (/tmp sized far
 * above memory_mb, and bwrap's unsized /dev), SysV shm attached one segment
 * at a time. The cgroup charges all of them: the command dies at its limit
 * and never reports "pinned". */
static void test_memory_pinning(void **s)
{
    (void)s;
    if (!have_cgroup()) {
        /* no writable cgroup (unprivileged, no delegation): the fallback
         * must say so rather than pretend */
        char why[256];
        fx f;
        const char *argv[] = {"/bin/true", NULL};
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
        assert_string_equal(plan_cgroup_mode(&f, why, sizeof why), "none");
        assert_non_null(strstr(why, "rlimits only"));
        skip();
    }
    const char *memfd[] = {"/usr/bin/python3", "-c",
                           "import os\nfd = os.memfd_create('x')\nb = bytes(1 << 20)\n"
                           "for i in range(384): os.write(fd, b)\nprint('pinned', flush=True)\n",
                           NULL};
    const char *tmp[] = {"/bin/sh", "-c", "head -c 384M /dev/zero > /tmp/big && echo pinned", NULL};
    const char *dev[] = {"/bin/sh", "-c", "head -c 384M /dev/zero > /dev/big && echo pinned", NULL};
    const char *shm[] = {"/usr/bin/python3", "-c",
                         "import ctypes\nl = ctypes.CDLL(None)\nl.shmat.restype = ctypes.c_void_p\n"
                         "for i in range(4):\n"
                         "    i = l.shmget(0, 96 << 20, 0o1600)\n"
                         "    a = l.shmat(i, None, 0)\n"
                         "    ctypes.memset(a, 1, 96 << 20)\n"
                         "    l.shmdt(ctypes.c_void_p(a))\n"
                         "print('pinned', flush=True)\n",
                         NULL};
    const char *const *cases[] = {memfd, tmp, dev, shm};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {cases[i]}, .timeout = 30}, {0}});
        f.lim.memory_mb = 128;
        f.lim.tmp_mb = 1024;
        wr_exec_result *r = run(&f);
        if (strstr(OUT(r), "pinned"))
            dump(r);
        assert_null(strstr(OUT(r), "pinned"));
        assert_int_equal(r->status, WR_EXEC_FAILED);
        wr_exec_result_free(r);
    }
}

/* ---- processes --------------------------------------------------------------- */

/* pids.max is exact and per sandbox: 24 tasks in all (outer bwrap, its
 * pid 1, python, children), whatever else the sandbox user runs on the
 * host. RLIMIT_NPROC, counted per host uid, let this run fork 100. */
static void test_pids_exact(void **s)
{
    (void)s;
    if (!have_cgroup())
        skip();
    const char *argv[] = {"/usr/bin/python3", "-c",
                          "import os, time\nn = 0\ntry:\n"
                          "    while n < 100:\n"
                          "        if os.fork() == 0:\n"
                          "            time.sleep(5)\n"
                          "            os._exit(0)\n"
                          "        n += 1\n"
                          "except OSError:\n"
                          "    pass\n"
                          "print('forked', n, flush=True)\n",
                          NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .timeout = 20}, {0}});
    f.lim.max_processes = 24;
    wr_exec_result *r = run(&f);
    const char *o = strstr(OUT(r), "forked ");
    if (!o)
        dump(r);
    assert_non_null(o);
    int n = atoi(o + 7);
    assert_true(n <= 24 - 3);
    assert_true(n >= 24 - 6);
    wr_exec_result_free(r);
}

/* Cancelled while bwrap is still setting up: nothing of the sandbox may
 * outlive the run (bwrap's pid 1 used to), and its cgroup is gone. */
static void test_cancel_during_setup(void **s)
{
    (void)s;
    int cp[2];
    assert_int_equal(pipe(cp), 0);
    assert_int_equal(write(cp[1], "x", 1), 1); /* cancelled before it starts */
    for (int round = 0; round < 5; round++) {
        const char *argv[] = {"/bin/sleep", "29.731", NULL};
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
        f.req.cancel_fd = cp[0];
        wr_exec_result *r = run(&f);
        assert_true(r->cancelled);
        wr_exec_result_free(r);
        assert_false(process_alive("sleep 29.731")); /* in bwrap's argv too */
    }
    close(cp[0]);
    close(cp[1]);
}

/* ---- cgroups themselves ------------------------------------------------------ */

/* Each command gets its own cgroup holding the limits, and it is removed
 * at the end, whatever the outcome (success, timeout with stragglers). */
static void test_cgroup_lifecycle(void **s)
{
    (void)s;
    if (!have_cgroup())
        skip();
    size_t before = run_cgroups_of(getpid());
    const char *show[] = {"/bin/sh", "-c", "cat /proc/self/cgroup", NULL};
    /* a sleep length no other test on this host uses: found by it */
    const char *stuck[] = {"/bin/sh", "-c", "setsid sleep 39.713 & trap '' TERM; sleep 39.713", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {show}}, {.id = "c2", .seg = {stuck}, .timeout = 1}, {0}});
    wr_exec_result *r = run(&f);
    assert_true(r->timed_out);
    /* bwrap unshares the cgroup namespace: inside, the run cgroup is "/" */
    assert_non_null(strstr(OUT(r), ":memory:/\n"));
    wr_exec_result_free(r);
    assert_int_equal(run_cgroups_of(getpid()), before);
    assert_false(process_alive("sleep 39.713"));
}

/* The cgroups of a warrant that died (SIGKILL: no clean-up ran) are found
 * at the next start, their processes killed and the cgroups removed. */
static void test_reap_orphans(void **s)
{
    (void)s;
    if (!have_cgroup())
        skip();
    wr_cg_plan cg;
    wr_error e = {0};
    assert_int_equal(wr_cg_probe(NULL, NULL, &cg, &e), WR_OK);
    pid_t victim = fork(); /* plays the dead warrant: its pid names the cgroup */
    if (victim == 0)
        _exit(0);
    waitpid(victim, NULL, 0);
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i < WR_CG_NCTRL; i++)
            if (cg.parent[i]) {
                char dir[4200], procs[4300];
                snprintf(dir, sizeof dir, "%s/warrant", cg.parent[i]);
                mkdir(dir, 0755);
                snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/run-%d-0123456789abcdef", (int)victim);
                mkdir(dir, 0755);
                snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
                FILE *fp = fopen(procs, "w");
                if (fp)
                    fprintf(fp, "0\n"), fclose(fp);
            }
        execl("/bin/sleep", "sleep", "41.5", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !process_alive("sleep 41.5"); i++)
        usleep(10000);
    size_t reaped = 0;
    assert_int_equal(wr_cg_reap_orphans(&cg, &reaped), WR_OK);
    assert_true(reaped >= 1); /* others' too: servers killed by other tests leave theirs */
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    wr_cg_plan_free(&cg);
}

/* An operator's (or a test's) cgroup root with nothing usable under it:
 * the run still happens under rlimits, and the plan says exactly that. */
static void test_fallback(void **s)
{
    (void)s;
    char *root = fx_subdir(g_dir, "nocg", false);
    const char *argv[] = {"/bin/sh", "-c", "echo ok", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    f.req.cgroup_root = root;
    char why[256];
    assert_string_equal(plan_cgroup_mode(&f, why, sizeof why), "none");
    assert_non_null(strstr(why, root));
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_string_equal(OUT(r), "ok\n");
    json_object *cmds = NULL, *c0, *plan, *rl, *nproc;
    assert_true(json_object_object_get_ex(r->sandbox_profile, "commands", &cmds));
    c0 = json_object_array_get_idx(cmds, 0);
    assert_true(json_object_object_get_ex(c0, "plan", &plan));
    assert_true(json_object_object_get_ex(plan, "rlimits", &rl));
    assert_true(json_object_object_get_ex(rl, "nproc", &nproc));
    assert_int_equal(json_object_get_int64(nproc), f.lim.max_processes); /* RLIMIT_NPROC back in force */
    wr_exec_result_free(r);
    free(root);
}

/* This host has no v2 controllers to test with: a directory that looks
 * like a delegated v2 parent checks the probe's reading of one, and that a
 * cgroup that then cannot be made fails the run rather than running it
 * without (never fail open). */
static void test_v2_parent_fails_closed(void **s)
{
    (void)s;
    char *fake = fx_subdir(g_dir, "fake-v2", false);
    char *f1 = path_in(fake, "cgroup.controllers"), *f2 = path_in(fake, "cgroup.subtree_control"),
         *f3 = path_in(fake, "cgroup.procs");
    fx_write(f1, "cpu memory pids\n");
    fx_write(f2, "memory pids\n");
    fx_write(f3, "");
    const char *argv[] = {"/bin/true", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    f.req.cgroup_root = fake;
    assert_string_equal(plan_cgroup_mode(&f, NULL, 0), "v2");
    wr_exec_result *r = NULL;
    wr_error e = {0};
    assert_int_not_equal(wr_exec_run(&f.req, &r, &e), WR_OK);
    assert_null(r);
    assert_non_null(strstr(e.message, "cgroup"));
    free(f1), free(f2), free(f3), free(fake);
}

/* ---- dynamic uids ------------------------------------------------------------ */

typedef struct dyn_run {
    fx_cmd_spec spec[2]; /* fx keeps pointers into its spec */
    fx f;
    char out[64];
} dyn_run;

static void *run_dyn(void *arg)
{
    dyn_run *d = arg;
    wr_exec_result *r = NULL;
    wr_error e = {0};
    if (wr_exec_run(&d->f.req, &r, &e) == WR_OK && r->out.captured_len < sizeof d->out)
        memcpy(d->out, r->out.captured, r->out.captured_len);
    wr_exec_result_free(r);
    return NULL;
}

static void dyn_init(dyn_run *d, const char *const *argv, const char *w)
{
    memset(d, 0, sizeof *d);
    d->spec[0] = (fx_cmd_spec){.id = "c1", .seg = {argv}, .writes = {w}};
    fx_init(&d->f, d->spec);
    d->f.lim.dynamic_uid = true;
    /* three uids for three concurrent runs: each must get its own */
    d->f.lim.uid_min = WR_DYNAMIC_UID_MIN;
    d->f.lim.uid_max = WR_DYNAMIC_UID_MIN + 2;
}

/* sandbox.uid: dynamic — each run its own uid from the range, never two
 * runs alike at once, in one process or two; what a run leaves in its
 * write paths (files, directories, symlinks: none followed) belongs to
 * run_as afterwards, and a later run can still edit it. */
static void test_dynamic_uid(void **s)
{
    (void)s;
    if (geteuid() != 0)
        skip();
    char *w = fx_subdir(g_dir, "dyn", true);
    chmod(w, 0775); /* run_as's group may write: the dynamic run has it */
    char sh[1024];
    snprintf(sh, sizeof sh,
             "id -u; echo hi > %s/f && mkdir %s/d && echo x > %s/d/g && ln -s /etc/passwd %s/l && sleep 1", w, w, w, w);
    const char *argv[] = {"/bin/sh", "-c", sh, NULL};
    const char *idle[] = {"/bin/sh", "-c", "id -u; sleep 1", NULL};
    dyn_run a, b, c;
    dyn_init(&a, argv, w);
    dyn_init(&b, idle, w);
    dyn_init(&c, idle, w);
    int pp[2];
    assert_int_equal(pipe(pp), 0);
    pid_t other = fork(); /* another warrant process at the same time */
    if (other == 0) {
        run_dyn(&c);
        _exit(write(pp[1], c.out, strlen(c.out)) > 0 ? 0 : 1);
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_dyn, &b), 0);
    run_dyn(&a);
    pthread_join(t, NULL);
    int st;
    assert_int_equal(waitpid(other, &st, 0), other);
    char cout[64] = {0};
    assert_true(read(pp[0], cout, sizeof cout - 1) > 0);
    close(pp[0]), close(pp[1]);
    long ua = atol(a.out), ub = atol(b.out), uc = atol(cout);
    print_message("dynamic uids: %ld %ld %ld\n", ua, ub, uc);
    for (long u = 0, *v[] = {&ua, &ub, &uc}; u < 3; u++)
        assert_true(*v[u] >= WR_DYNAMIC_UID_MIN && *v[u] <= WR_DYNAMIC_UID_MIN + 2);
    assert_true(ua != ub && ub != uc && ua != uc);
    const char *names[] = {"f", "d", "d/g", "l"};
    for (size_t i = 0; i < 4; i++) {
        char *p = path_in(w, names[i]);
        struct stat sb;
        assert_int_equal(lstat(p, &sb), 0);
        assert_int_equal(sb.st_uid, 65534); /* handed back to run_as */
        free(p);
    }
    struct stat pw;
    assert_int_equal(stat("/etc/passwd", &pw), 0);
    assert_int_equal(pw.st_uid, 0); /* the symlink was not followed */
    char edit[512];
    snprintf(edit, sizeof edit, "echo again >> %s/f && echo y > %s/d/g", w, w);
    const char *again[] = {"/bin/sh", "-c", edit, NULL};
    dyn_run e;
    dyn_init(&e, again, w);
    wr_exec_result *r = run(&e.f);
    if (r->status != WR_EXEC_SUCCESS)
        dump(r);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    wr_exec_result_free(r);
    free(w);
}

/* ---- host walks of agent-writable trees ------------------------------------- */

/* Two runs share a write path. One swaps a directory with a symlink to
 * the protected state dir (renameat2 RENAME_EXCHANGE, in a loop) while the
 * other writes a file and has its artifacts listed. A path-based walk (fts
 * as root) followed the symlink at some point and the honest run's signed
 * receipt listed and hashed the state dir's files. */
static void test_artifact_walk_race(void **s)
{
    (void)s;
    char *base = fx_subdir(g_dir, "race", false);
    char *shared = fx_subdir(base, "shared", true);
    char *d = fx_subdir(shared, "d", true);
    char *state = fx_subdir(base, "state", false);
    char *key = path_in(state, "signing.key"), *x = path_in(d, "x"), *l = path_in(shared, "l");
    fx_write(key, "not for receipts\n");
    chmod(key, 0644); /* readable by anyone: only the walk itself may protect it */
    fx_write(x, "x\n");
    assert_int_equal(symlink(state, l), 0);

    char loop[1024];
    snprintf(loop, sizeof loop,
             "import ctypes, time\nc = ctypes.CDLL(None)\nend = time.time() + 4\n"
             "while time.time() < end:\n"
             "    c.renameat2(-100, b'%s', -100, b'%s', 2)\n",
             d, l);
    const char *swap[] = {"/usr/bin/python3", "-c", loop, NULL};
    async_run sw;
    fx_init(&sw.f, (fx_cmd_spec[]){{.id = "swap", .seg = {swap}, .writes = {shared}}, {0}});
    sw.r = NULL;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, async_run_main, &sw), 0);

    int runs = 0, leaks = 0;
    int64_t end = now_ms() + 3500;
    while (now_ms() < end) {
        char sh[512];
        snprintf(sh, sizeof sh, "echo %d > %s/a", runs, shared);
        const char *argv[] = {"/bin/sh", "-c", sh, NULL};
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .writes = {shared}}, {0}});
        wr_exec_result *r = run(&f);
        for (size_t i = 0; i < r->nartifacts; i++)
            if (strstr(r->artifacts[i].path, "signing.key") || strncmp(r->artifacts[i].path, shared, strlen(shared))) {
                print_message("leaked into the receipt: %s\n", r->artifacts[i].path);
                leaks++;
            }
        wr_exec_result_free(r);
        runs++;
    }
    pthread_join(t, NULL);
    assert_non_null(sw.r);
    assert_int_equal(sw.r->status, WR_EXEC_SUCCESS);
    wr_exec_result_free(sw.r);
    print_message("%d runs raced the swapper\n", runs);
    assert_true(runs >= 3);
    assert_int_equal(leaks, 0);
    free(key), free(x), free(l), free(d), free(state), free(shared), free(base);
}

/* ---- isolation strength ------------------------------------------------------ */

static int score_of(wr_exec_result *r)
{
    json_object *v = NULL;
    assert_non_null(r->isolation);
    assert_true(json_object_object_get_ex(r->isolation, "score", &v));
    assert_int_equal(json_object_get_int(v), r->isolation_score);
    return r->isolation_score;
}

/* The score follows the plan: losing the cgroup (an operator root with
 * nothing under it) costs its 15 points, a write path and network cost
 * theirs; a policy's min_strength above what this host reaches blocks the
 * run before anything runs, with the reason. */
static void test_strength(void **s)
{
    (void)s;
    char *w = fx_subdir(g_dir, "strength", true);
    char *nocg = fx_subdir(g_dir, "strength-nocg", false);
    char *marker = path_in(w, "ran");
    char sh[512];
    snprintf(sh, sizeof sh, "touch %s", marker);
    const char *argv[] = {"/bin/sh", "-c", sh, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .writes = {w}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    int full = score_of(r);
    json_object *breakdown = NULL, *cmds, *plan;
    assert_true(json_object_object_get_ex(r->sandbox_profile, "commands", &cmds));
    assert_true(json_object_object_get_ex(json_object_array_get_idx(cmds, 0), "plan", &plan));
    assert_int_equal(wr_exec_strength(plan, &breakdown), full);
    print_message("score %d: %s\n", full, json_object_to_json_string(breakdown));
    json_object_put(breakdown);
    wr_exec_result_free(r);
    unlink(marker);

    f.req.cgroup_root = nocg;
    r = run(&f);
    int weaker = score_of(r);
    json_object *cg = NULL;
    assert_true(json_object_object_get_ex(r->isolation, "cgroup", &cg));
    assert_string_equal(json_object_get_string(cg), "none");
    assert_int_equal(weaker, have_cgroup() ? full - 15 : full);
    wr_exec_result_free(r);
    unlink(marker);

    f.lim.min_strength = weaker + 1;
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_BLOCKED);
    assert_non_null(strstr(r->error, "below the policy's min_strength"));
    assert_non_null(strstr(r->error, "cgroup none"));
    assert_false(exists(marker)); /* never run weaker */
    wr_exec_result_free(r);
    free(marker), free(nocg), free(w);
}

/* ---- the sandbox user -------------------------------------------------------- */

/* The default run_as is the dedicated warrant-run; where it was not
 * created the run falls back to nobody and the plan says so; a missing
 * user the policy names explicitly blocks the run. */
static void test_run_as_default(void **s)
{
    (void)s;
    if (geteuid() != 0)
        skip();
    const char *argv[] = {"/usr/bin/id", "-un", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    f.lim.run_as = WR_DEFAULT_RUN_AS;
    json_object *plan = NULL, *u, *name, *note = NULL;
    wr_error e = {0};
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &plan, &e), WR_OK);
    assert_true(json_object_object_get_ex(plan, "user", &u));
    assert_true(json_object_object_get_ex(u, "name", &name));
    bool exists_user = getpwnam(WR_DEFAULT_RUN_AS) != NULL;
    assert_string_equal(json_object_get_string(name), exists_user ? WR_DEFAULT_RUN_AS : WR_FALLBACK_RUN_AS);
    assert_true(json_object_object_get_ex(u, "note", &note) == !exists_user);
    json_object_put(plan);
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_string_equal(OUT(r), exists_user ? WR_DEFAULT_RUN_AS "\n" : "nobody\n");
    wr_exec_result_free(r);
    f.lim.run_as = "warrant-no-such-user";
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_BLOCKED);
    assert_non_null(strstr(r->error, "run_as user warrant-no-such-user does not exist"));
    wr_exec_result_free(r);
}

int main(int argc, char **argv)
{
    g_unpriv = argc > 1 && !strcmp(argv[1], "--unpriv");
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_memory_pinning),      cmocka_unit_test(test_pids_exact),
        cmocka_unit_test(test_cancel_during_setup), cmocka_unit_test(test_cgroup_lifecycle),
        cmocka_unit_test(test_reap_orphans),        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_artifact_walk_race),  cmocka_unit_test(test_strength),
        cmocka_unit_test(test_run_as_default),      cmocka_unit_test(test_v2_parent_fails_closed),
        cmocka_unit_test(test_dynamic_uid),         cmocka_unit_test(test_unprivileged),
    };
    /* As uid 65534 without delegation: no cgroup, the same walks. */
    const struct CMUnitTest unpriv[] = {
        cmocka_unit_test(test_memory_pinning), cmocka_unit_test(test_cancel_during_setup),
        cmocka_unit_test(test_fallback),       cmocka_unit_test(test_artifact_walk_race),
        cmocka_unit_test(test_strength),
    };
    /* The cgroup tests again through warm launchers. */
    const struct CMUnitTest pooled[] = {
        cmocka_unit_test(test_memory_pinning),
        cmocka_unit_test(test_pids_exact),
        cmocka_unit_test(test_cancel_during_setup),
        cmocka_unit_test(test_fallback),
    };
    if (g_unpriv)
        return cmocka_run_group_tests_name("hostside_unprivileged", unpriv, setup, teardown) |
               cmocka_run_group_tests_name("hostside_unprivileged_pool", pooled, setup_pool, teardown);
    return cmocka_run_group_tests_name("hostside", all, setup, teardown) |
           cmocka_run_group_tests_name("hostside_pool", pooled, setup_pool, teardown);
}
