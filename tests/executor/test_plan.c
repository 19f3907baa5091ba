/* Unit tests of the sandbox plan, the seccomp filter and output capture:
 * no bwrap, no namespaces (the seccomp test loads the filter into a forked
 * child of the test itself). */
#include "exec_fixture.h"
#include "executor/executor_internal.h"
#include "executor/landlock.h"

#include <errno.h>
#include <pty.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>

#include <cmocka.h>

static const char *const ARGV_TRUE[] = {"/bin/true", NULL};

static json_object *plan_json(fx *f, size_t ci, wr_error *e)
{
    json_object *j = NULL;
    int rc = wr_exec_plan_json(&f->req, ci, &j, e);
    if (rc != WR_OK)
        print_error("plan: %s\n", e->message);
    return rc == WR_OK ? j : NULL;
}

/* Index of the op with this op name and dest, or -1. */
static int find_op(json_object *plan, const char *op, const char *dest)
{
    json_object *ops = json_object_object_get(plan, "ops");
    for (size_t i = 0; i < json_object_array_length(ops); i++) {
        json_object *o = json_object_array_get_idx(ops, i);
        json_object *d = json_object_object_get(o, "dest");
        if (!strcmp(json_object_get_string(json_object_object_get(o, "op")), op) &&
            (!dest || (d && !strcmp(json_object_get_string(d), dest))))
            return (int)i;
    }
    return -1;
}

static const char *op_field(json_object *plan, int idx, const char *k)
{
    json_object *o = json_object_array_get_idx(json_object_object_get(plan, "ops"), (size_t)idx);
    json_object *v = json_object_object_get(o, k);
    return v ? json_object_get_string(v) : NULL;
}

static void test_scope_order(void **state)
{
    (void)state;
    char *d = fx_tmpdir();
    char *r = fx_subdir(d, "src", false);
    char *w = fx_subdir(r, "out", true);  /* a write path inside a read path */
    char *rr = fx_subdir(w, "ro", false); /* and a read path inside it again */
    char glob[300];
    snprintf(glob, sizeof glob, "%s/**", r);
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = r, .reads = {glob, rr}, .writes = {w}}, {0}});
    wr_error e = {0};
    json_object *p = plan_json(&f, 0, &e);
    assert_non_null(p);
    int tmp = find_op(p, "tmpfs", "/tmp"), ro = find_op(p, "ro-bind", r), rw = find_op(p, "bind", w),
        ro2 = find_op(p, "ro-bind", rr);
    assert_true(tmp >= 0 && ro > tmp && rw > ro && ro2 > rw);
    /* the glob binds its root; cwd is covered by it: no extra bind */
    assert_string_equal(op_field(p, ro, "src"), r);
    assert_int_equal(find_op(p, "bind", NULL), rw); /* the only writable bind */
    assert_true(find_op(p, "ro-bind", "/usr") >= 0 && find_op(p, "proc", "/proc") >= 0 &&
                find_op(p, "dev", "/dev") >= 0);
    assert_true(find_op(p, "chdir", r) > ro2);
    /* nothing of the host beyond /usr, the /etc basics and the declared paths */
    json_object *ops = json_object_object_get(p, "ops");
    for (size_t i = 0; i < json_object_array_length(ops); i++) {
        const char *op = op_field(p, (int)i, "op"), *dest = op_field(p, (int)i, "dest");
        if (!strcmp(op, "ro-bind") || !strcmp(op, "bind") || !strcmp(op, "ro-bind-try"))
            assert_true(!strcmp(dest, "/usr") || !strncmp(dest, "/etc/", 5) || !strncmp(dest, d, strlen(d)) ||
                        !strncmp(dest, "/lib", 4) || !strcmp(dest, "/bin") || !strcmp(dest, "/sbin"));
    }
    assert_int_equal(find_op(p, "ro-bind-try", "/etc/resolv.conf"), -1); /* network denied */
    json_object *un = json_object_object_get(p, "unshare");
    assert_int_equal(json_object_array_length(un), 7);
    json_object_put(p);

    /* network full: bwrap joins the private namespace the executor made
     * (slirp4netns NAT), DNS files appear */
    f.cmds[0].network = WR_NET_FULL;
    p = plan_json(&f, 0, &e);
    assert_true(json_object_get_boolean(json_object_object_get(p, "share_net")));
    assert_int_equal(json_object_array_length(json_object_object_get(p, "unshare")), 7);
    assert_string_equal(json_object_get_string(json_object_object_get(p, "egress")), "slirp4netns");
    assert_true(find_op(p, "ro-bind-try", "/etc/resolv.conf") >= 0);
    json_object_put(p);
    fx_rmtree(d);
    free(d), free(r), free(w), free(rr);
}

/* Whether the rendered bwrap argv binds a checked fd over dest. */
static bool binds_fd_at(const wr_strv *argv, const char *dest)
{
    for (size_t i = 0; i + 2 < argv->n; i++)
        if (!strcmp(argv->v[i], "--ro-bind-fd") && !strcmp(argv->v[i + 2], dest))
            return true;
    return false;
}

/* argv[0]'s checked file is bound over its path unless only root can
 * change that path: a system binary is exec'd where the system bind shows
 * it (no mount per run), a program in a directory anyone else may write
 * (here under /tmp, or the test user's own) is still pinned by its fd. */
static void test_exe_bind_when_swappable(void **state)
{
    (void)state;
    char *d = fx_tmpdir();
    char tool[4096], sys[4096];
    snprintf(tool, sizeof tool, "%s/tool", d);
    fx_write(tool, "#!/bin/sh\n");
    assert_int_equal(chmod(tool, 0755), 0);
    assert_non_null(realpath("/bin/true", sys));
    char real_tool[4096];
    assert_non_null(realpath(tool, real_tool));
    const char *const argv_tool[] = {tool, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}}, {.id = "c2", .seg = {argv_tool}, .reads = {d}}, {0}});
    wr_error e = {0};
    for (size_t c = 0; c < 2; c++) {
        wr_plan p;
        wr_strv argv;
        assert_int_equal(wr_plan_build(&f.req, c, true, &p, &e), WR_OK);
        assert_int_equal(wr_plan_render(&p, WR_RENDER_FDS | WR_RENDER_INIT, 0, f.cmds[c].segments[0].v, &argv, &e),
                         WR_OK);
        const char *exe = c == 0 ? sys : real_tool;
        assert_true(wr_strv_contains(&argv, exe)); /* what init execs */
        assert_int_equal(binds_fd_at(&argv, exe), c == 1);
        json_object *j = wr_plan_to_json(&p);
        int i = find_op(j, "exe", exe);
        assert_true(i >= 0);
        assert_int_equal(op_field(j, i, "root_only_path") != NULL, c == 0);
        json_object_put(j);
        wr_strv_free(&argv);
        wr_plan_free(&p);
    }
    fx_rmtree(d);
    free(d);
}

/* The layers added for issue 9, as recorded in the plan: the cwd bind in
 * the depth order, /dev frozen after /dev/shm, argv[0]'s checked file,
 * warrant-init, the Landlock ABI; and init's config: environment and one
 * Landlock rule per bind, cwd granted nothing. */
static void test_init_layers(void **state)
{
    (void)state;
    char *d = fx_tmpdir();
    char *w = fx_subdir(d, "w", false);
    char *out = fx_subdir(w, "out", true);
    wr_secret sec[] = {{"API_KEY", "s3cr3t-value"}};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1",
                                 .seg = {(const char *const[]){"sh", "-c", "true", NULL}},
                                 .cwd = w,
                                 .writes = {out},
                                 .secrets = {"API_KEY"}},
                                {0}});
    f.req.secrets = sec;
    f.req.nsecrets = 1;
    wr_error e = {0};
    json_object *p = plan_json(&f, 0, &e);
    assert_non_null(p);
    int cwd = find_op(p, "ro-bind", w), wb = find_op(p, "bind", out);
    assert_true(cwd >= 0 && wb > cwd); /* the write path is mounted over the cwd bind */
    assert_true(find_op(p, "remount-ro", "/dev") > find_op(p, "tmpfs", "/dev/shm"));
    int exe = find_op(p, "exe", NULL);
    assert_true(exe > wb);
    char sh[4096];
    assert_non_null(realpath("/bin/sh", sh));
    assert_string_equal(op_field(p, exe, "src"), sh);
    assert_true(find_op(p, "init", WR_INIT_SANDBOX_PATH) > exe);
    const char *why;
    assert_int_equal(json_object_get_int(json_object_object_get(p, "landlock_abi")), wr_landlock_abi(&why));
    assert_string_equal(json_object_get_string(json_object_object_get(p, "pid1")), WR_INIT_NAME);
    json_object_put(p);

    wr_plan pl;
    assert_int_equal(wr_plan_build(&f.req, 0, false, &pl, &e), WR_OK);
    char *cfg;
    size_t len;
    assert_int_equal(wr_plan_config(&pl, &cfg, &len, &e), WR_OK);
    wr_strv recs = {0};
    for (size_t at = 0; at < len; at += strlen(cfg + at) + 1)
        assert_int_equal(wr_strv_push(&recs, cfg + at), WR_OK);
    assert_true(wr_strv_contains(&recs, "eAPI_KEY=s3cr3t-value"));
    assert_true(wr_strv_contains(&recs, "t0"));
    char rule[4200];
    if (pl.landlock_abi > 0) {
        snprintf(rule, sizeof rule, "w%s", out);
        assert_true(wr_strv_contains(&recs, rule));
        assert_true(wr_strv_contains(&recs, "r/usr") && wr_strv_contains(&recs, "w/tmp") &&
                    wr_strv_contains(&recs, "d/dev") && wr_strv_contains(&recs, "p/proc"));
        snprintf(rule, sizeof rule, "r%s", w);
        assert_false(wr_strv_contains(&recs, rule)); /* cwd: chdir only */
    }
    wr_strv_free(&recs);
    free(cfg);
    /* the secret reaches neither bwrap's argv nor its environment */
    wr_strv argv;
    assert_int_equal(
        wr_plan_render(&pl, WR_RENDER_FDS | WR_RENDER_SECCOMP | WR_RENDER_INIT, 0, f.cmds[0].segments[0].v, &argv, &e),
        WR_OK);
    for (size_t i = 0; i < argv.n; i++)
        assert_null(strstr(argv.v[i], "s3cr3t"));
    wr_strv_free(&argv);
    wr_plan_free(&pl);

    /* argv[0] outside what the sandbox shows is refused */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {(const char *const[]){"/etc/hostname", NULL}}}, {0}});
    assert_int_equal(wr_plan_build(&f.req, 0, false, &pl, &e), WR_E_DENIED);
    assert_non_null(strstr(e.message, "outside the system and declared read or write paths"));
    fx_rmtree(d);
    free(d), free(w), free(out);
}

static void test_cwd_readonly_and_hash(void **state)
{
    (void)state;
    char *d = fx_tmpdir();
    char *c = fx_subdir(d, "cwd", false);
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = c}, {0}});
    wr_error e = {0};
    json_object *p = plan_json(&f, 0, &e);
    int i = find_op(p, "ro-bind", c);
    assert_true(i >= 0);
    assert_string_equal(op_field(p, i, "origin"), "cwd");
    char h1[WR_SHA256_HEX_LEN], h2[WR_SHA256_HEX_LEN];
    assert_int_equal(wr_canonical_sha256(p, false, h1, &e), WR_OK);
    json_object *p2 = plan_json(&f, 0, &e);
    assert_int_equal(wr_canonical_sha256(p2, false, h2, &e), WR_OK);
    assert_string_equal(h1, h2); /* the plan is deterministic: its hash names the profile */
    json_object_put(p2);
    f.lim.seccomp_strict = true;
    p2 = plan_json(&f, 0, &e);
    json_object *sc = json_object_object_get(p2, "seccomp");
    assert_string_equal(json_object_get_string(json_object_object_get(sc, "profile")), WR_SECCOMP_STRICT_ID);
    assert_string_equal(json_object_get_string(json_object_object_get(sc, "socket_families")), "unix");
    assert_int_equal(wr_canonical_sha256(p2, false, h2, &e), WR_OK);
    assert_string_not_equal(h1, h2);
    json_object_put(p2);
    json_object_put(p);
    /* cwd "/" is the sandbox's own read-only root: nothing of the host's / is bound */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = "/"}, {0}});
    p = plan_json(&f, 0, &e);
    assert_non_null(p);
    assert_int_equal(find_op(p, "ro-bind", "/"), -1);
    assert_true(find_op(p, "chdir", "/") > find_op(p, "remount-ro", "/"));
    json_object_put(p);
    fx_rmtree(d);
    free(d), free(c);
}

static void test_symlink_escape(void **state)
{
    (void)state;
    char *d = fx_tmpdir();
    char *w = fx_subdir(d, "w", true);
    char *real = fx_subdir(d, "real", true);
    char link_out[300], link_in[300], via[400];
    snprintf(link_out, sizeof link_out, "%s/out", d);
    snprintf(link_in, sizeof link_in, "%s/in", d);
    assert_int_equal(symlink("/etc", link_out), 0);
    assert_int_equal(symlink(real, link_in), 0);
    fx f;
    wr_error e = {0};
    json_object *p;

    /* a declared write path that is a symlink out of scope */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .writes = {w, link_out}}, {0}});
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &p, &e), WR_E_DENIED);
    assert_non_null(strstr(e.message, "symlink resolving to /etc"));

    /* a parent in the chain is the symlink */
    snprintf(via, sizeof via, "%s/ssl", link_out);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {via}}, {0}});
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &p, &e), WR_E_DENIED);
    assert_non_null(strstr(e.message, "outside the declared paths"));

    /* a symlink whose target is itself declared is fine, bound from the target */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .writes = {w, link_in, real}}, {0}});
    p = plan_json(&f, 0, &e);
    assert_non_null(p);
    int i = find_op(p, "bind", link_in);
    assert_true(i >= 0);
    assert_string_equal(op_field(p, i, "src"), real);
    json_object_put(p);

    /* hostile declared paths */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {"/proc/1"}}, {0}});
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &p, &e), WR_E_DENIED);
    assert_non_null(strstr(e.message, "/proc"));
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {"/"}}, {0}});
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &p, &e), WR_E_DENIED);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {"/x/../etc"}}, {0}});
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &p, &e), WR_E_DENIED);
    fx_rmtree(d);
    free(d), free(w), free(real);
}

/* A CSC glob read path shows exactly the entries it matches, found without
 * following symlinks: not the whole root, not a symlinked file or directory,
 * not a dotfile for "*". */
static void test_glob_read_paths(void **state)
{
    (void)state;
    char *d = fx_tmpdir();
    char *w = fx_subdir(d, "w", true), *sub = fx_subdir(w, "sub", false);
    char path[600], glob[600];
    static const char *const files[] = {"a.py", "b.txt", ".hidden.py", "sub/c.py", "sub/d.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", w, files[i]);
        fx_write(path, "x\n");
    }
    snprintf(path, sizeof path, "%s/link.py", w);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    snprintf(path, sizeof path, "%s/etc", w);
    assert_int_equal(symlink("/etc", path), 0);
    fx f;
    wr_error e = {0};

    snprintf(glob, sizeof glob, "%s/**/*.py", w);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {glob}}, {0}});
    json_object *p = plan_json(&f, 0, &e);
    assert_non_null(p);
    static const struct {
        const char *rel;
        bool bound;
    } want[] = {{"a.py", true},     {"sub/c.py", true}, {"b.txt", false}, {".hidden.py", false},
                {"link.py", false}, {"sub", false},     {"etc", false},   {"sub/d.txt", false}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", w, want[i].rel);
        if ((find_op(p, "ro-bind", path) >= 0) != want[i].bound)
            fail_msg("%s: bound %d, want %d", want[i].rel, !want[i].bound, want[i].bound);
    }
    assert_int_equal(find_op(p, "ro-bind", w), -1); /* not the whole root */
    json_object_put(p);

    /* "*" one level: files and the real directory, no symlinks, no dotfiles */
    snprintf(glob, sizeof glob, "%s/*", w);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {glob}}, {0}});
    p = plan_json(&f, 0, &e);
    assert_non_null(p);
    snprintf(path, sizeof path, "%s/sub", w);
    assert_true(find_op(p, "ro-bind", path) >= 0);
    snprintf(path, sizeof path, "%s/b.txt", w);
    assert_true(find_op(p, "ro-bind", path) >= 0);
    snprintf(path, sizeof path, "%s/etc", w);
    assert_int_equal(find_op(p, "ro-bind", path), -1);
    snprintf(path, sizeof path, "%s/.hidden.py", w);
    assert_int_equal(find_op(p, "ro-bind", path), -1);
    json_object_put(p);

    /* a literal root that is itself a symlink shows nothing */
    snprintf(glob, sizeof glob, "%s/etc/*", w);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {glob}}, {0}});
    p = plan_json(&f, 0, &e);
    assert_non_null(p);
    assert_int_equal(find_op(p, "ro-bind", "/etc/passwd"), -1);
    snprintf(path, sizeof path, "%s/etc/passwd", w);
    assert_int_equal(find_op(p, "ro-bind", path), -1);
    json_object_put(p);
    fx_rmtree(d);
    free(d), free(w), free(sub);
}

static void test_missing_write_paths(void **state)
{
    (void)state;
    char *d = fx_tmpdir();
    char *w = fx_subdir(d, "w", true);
    char sub[300], stray[300];
    snprintf(sub, sizeof sub, "%s/new/deeper", w);
    snprintf(stray, sizeof stray, "%s/nope/x", d);
    fx f;
    wr_error e = {0};
    json_object *p;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .writes = {w, sub}}, {0}});
    p = plan_json(&f, 0, &e);
    assert_non_null(p);
    int i = find_op(p, "bind", sub);
    assert_true(i >= 0);
    assert_true(json_object_get_boolean(
        json_object_object_get(json_object_array_get_idx(json_object_object_get(p, "ops"), (size_t)i), "created")));
    json_object_put(p);
    struct stat st;
    assert_int_not_equal(stat(sub, &st), 0); /* inspecting the plan creates nothing */

    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .writes = {stray}}, {0}});
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &p, &e), WR_E_DENIED);
    assert_non_null(strstr(e.message, "does not exist and is not under an existing declared write root"));

    /* a missing read path is recorded but not mounted */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .cwd = w, .reads = {stray}}, {0}});
    p = plan_json(&f, 0, &e);
    i = find_op(p, "ro-bind", stray);
    assert_true(i >= 0);
    assert_null(op_field(p, i, "src"));
    json_object_put(p);
    fx_rmtree(d);
    free(d), free(w);
}

static void test_env_and_user(void **state)
{
    (void)state;
    char *env[] = {"WARRANT_TOKEN=host-secret", "TZ=Europe/Paris", "HOME=/root", "GIT_TOKEN=abc", NULL};
    wr_secret sec[] = {{"API_KEY", "s3cr3t-value"}};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){
                    {.id = "c1", .seg = {ARGV_TRUE}, .env = {"TZ", "HOME", "MISSING"}, .secrets = {"API_KEY"}}, {0}});
    f.req.host_env = env;
    f.req.secrets = sec;
    f.req.nsecrets = 1;
    wr_plan p;
    wr_error e = {0};
    assert_int_equal(wr_plan_build(&f.req, 0, false, &p, &e), WR_OK);
    wr_strv envp;
    assert_int_equal(wr_plan_envp(&p, &envp, &e), WR_OK);
    assert_int_equal(envp.n, 5);
    assert_true(wr_strv_contains(&envp, "PATH=" WR_EXEC_PATH));
    assert_true(wr_strv_contains(&envp, "HOME=/tmp")); /* fixed HOME wins over the host's */
    assert_true(wr_strv_contains(&envp, "LANG=C.UTF-8"));
    assert_true(wr_strv_contains(&envp, "TZ=Europe/Paris"));
    assert_true(wr_strv_contains(&envp, "API_KEY=s3cr3t-value"));
    wr_strv_free(&envp);
    /* values from the host and secrets never reach the recorded plan or argv */
    json_object *j = wr_plan_to_json(&p);
    const char *s = wr_json_compact(j);
    assert_null(strstr(s, "s3cr3t-value"));
    assert_null(strstr(s, "Europe/Paris"));
    assert_non_null(strstr(s, "\"API_KEY\""));
    wr_strv argv;
    assert_int_equal(
        wr_plan_render(&p, WR_RENDER_FDS | WR_RENDER_SECCOMP | WR_RENDER_INIT, 0, (char *const *)ARGV_TRUE, &argv, &e),
        WR_OK);
    for (size_t i = 0; i < argv.n; i++)
        assert_null(strstr(argv.v[i], "s3cr3t"));
    /* init is pid 1 and execs the checked file; argv[0] stays as written */
    assert_string_equal(argv.v[argv.n - 1], "/bin/true");
    assert_string_equal(argv.v[argv.n - 2], "/usr/bin/true");
    assert_string_equal(argv.v[argv.n - 5], WR_INIT_SANDBOX_PATH);
    assert_string_equal(argv.v[argv.n - 6], "--");
    assert_true(wr_strv_contains(&argv, "--as-pid-1"));
    assert_true(wr_strv_contains(&argv, "--unshare-all") && wr_strv_contains(&argv, "--die-with-parent") &&
                wr_strv_contains(&argv, "--new-session") && !wr_strv_contains(&argv, "--share-net"));
    wr_strv_free(&argv);
    json_object *u = json_object_object_get(j, "user");
    if (geteuid() == 0) {
        assert_int_equal(json_object_get_int(json_object_object_get(u, "uid")), 65534);
        assert_true(json_object_get_boolean(json_object_object_get(u, "dropped_from_root")));
    }
    json_object_put(j);
    wr_plan_free(&p);

    /* a missing secret or a bad env name refuses the plan */
    f.req.nsecrets = 0;
    assert_int_equal(wr_plan_build(&f.req, 0, false, &p, &e), WR_E_DENIED);
    assert_non_null(strstr(e.message, "secret API_KEY was not provided"));
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}, .env = {"A=B"}}, {0}});
    assert_int_equal(wr_plan_build(&f.req, 0, false, &p, &e), WR_E_DENIED);
    if (geteuid() == 0) {
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}}, {0}});
        f.lim.run_as = "root";
        assert_int_equal(wr_plan_build(&f.req, 0, false, &p, &e), WR_E_DENIED);
        assert_non_null(strstr(e.message, "never run as root"));
        f.lim.run_as = "no-such-user-xyz";
        assert_int_equal(wr_plan_build(&f.req, 0, false, &p, &e), WR_E_DENIED);
    }
}

/* Loads the filter into a forked child and probes the refused calls; as
 * root, every one of them would succeed without the filter. */
static int seccomp_child(wr_sock_families fam)
{
    wr_error e = {0};
    scmp_filter_ctx ctx = wr_seccomp_filter(fam, &e);
    if (!ctx || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || seccomp_load(ctx))
        return 10;
    seccomp_release(ctx);
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) != -1 || errno != EPERM)
        return 11;
    if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
        return 12;
    if (syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0) != -1 || errno != EPERM)
        return 13;
    if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
        return 14;
    if (personality(ADDR_NO_RANDOMIZE) != -1 || errno != EPERM)
        return 15;
    if (personality(PER_LINUX) == -1)
        return 16; /* the plain Linux persona stays allowed */
    int m, s;
    if (openpty(&m, &s, NULL, NULL, NULL) == 0) {
        char c = 'x';
        if (ioctl(s, TIOCSTI, &c) != -1 || errno != EPERM)
            return 17;
    }
    if (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
        return 18;
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (fam == WR_SOCK_UNIX && (sock != -1 || errno != EAFNOSUPPORT))
        return 19;
    if (fam != WR_SOCK_UNIX && sock < 0)
        return 20;
    if (socket(AF_UNIX, SOCK_STREAM, 0) < 0)
        return 21;
    /* never: vsock, packet; netlink only NETLINK_ROUTE in the default profile with network */
    if (socket(AF_VSOCK, SOCK_STREAM, 0) != -1 || errno != EAFNOSUPPORT)
        return 23;
    if (socket(AF_PACKET, SOCK_RAW, 0) != -1 || errno != EAFNOSUPPORT)
        return 24;
    int nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    if ((fam == WR_SOCK_INET_ROUTE) != (nl >= 0))
        return 25;
    if (socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT) != -1 || errno != EAFNOSUPPORT)
        return 26;
    if (syscall(SYS_socket, 0x100000000ULL | AF_VSOCK, SOCK_STREAM, 0) != -1 || errno != EAFNOSUPPORT)
        return 27; /* high bits the kernel ignores do not slip a family past the filter */
    if (syscall(SYS_io_uring_setup, 4, NULL) != -1 || errno != ENOSYS)
        return 28;
    pid_t p = fork(); /* plain fork (clone without namespace flags) still works */
    if (p == 0)
        _exit(0);
    if (p < 0)
        return 22;
    waitpid(p, NULL, 0);
    return 0;
}

/* Runs child(profile) in a forked child for each socket-family profile;
 * each must exit 0 (else its code says which probe failed). */
static void each_profile(int (*child)(wr_sock_families))
{
    for (int fam = WR_SOCK_UNIX; fam <= WR_SOCK_INET_ROUTE; fam++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child((wr_sock_families)fam));
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st))
            print_error("profile %d: probe %d failed\n", fam, WEXITSTATUS(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
}

static void test_seccomp_filter(void **state)
{
    (void)state;
    each_profile(seccomp_child);
    unsigned char *a, *b;
    size_t la, lb;
    wr_error e = {0};
    assert_int_equal(wr_seccomp_bpf(WR_SOCK_INET, &a, &la, &e), WR_OK);
    assert_int_equal(wr_seccomp_bpf(WR_SOCK_INET_ROUTE, &b, &lb, &e), WR_OK);
    assert_true(la > 0 && lb > la);
    free(a);
    free(b);
    /* The programs exported at build time are what libseccomp makes here now. */
    for (wr_sock_families fam = WR_SOCK_UNIX; fam <= WR_SOCK_INET_ROUTE; fam++) {
        assert_int_equal(wr_seccomp_bpf(fam, &a, &la, &e), WR_OK);
        assert_int_equal(wr_seccomp_export(fam, &b, &lb, &e), WR_OK);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
    }
    assert_int_equal(wr_seccomp_bpf(WR_SOCK_INET_ROUTE + 1, &a, &la, &e), WR_E_INTERNAL);
}

/* The socket families each profile lets through, decided by the filter
 * itself (not by what this kernel supports): a witness filter under the
 * profile refuses every socket() with EDOM, so a call the profile allows
 * ends in EDOM and one it refuses in its EAFNOSUPPORT (the most recently
 * attached filter's errno wins among equal actions). */
#define WITNESS_ERRNO EDOM
#define FAMILIES_PAST 70 /* every family the kernel knows (AF_MAX), and past it */

static int family_child(wr_sock_families fam)
{
    scmp_filter_ctx w = seccomp_init(SCMP_ACT_ALLOW);
    unsigned char *bpf;
    size_t len;
    wr_error e = {0};
    if (!w || seccomp_rule_add(w, SCMP_ACT_ERRNO(WITNESS_ERRNO), SCMP_SYS(socket), 0) || seccomp_load(w) ||
        wr_seccomp_bpf(fam, &bpf, &len, &e) != WR_OK)
        return 100;
    seccomp_release(w);
    struct sock_fprog prog = {.len = (unsigned short)(len / sizeof(struct sock_filter)), .filter = (void *)bpf};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return 101;
    for (unsigned long long af = 0; af < FAMILIES_PAST; af++) {
        bool allowed = af == AF_UNIX || (fam != WR_SOCK_UNIX && (af == AF_INET || af == AF_INET6)) ||
                       (fam == WR_SOCK_INET_ROUTE && af == AF_NETLINK);
        int proto = af == AF_NETLINK ? NETLINK_ROUTE : 0;
        if (syscall(SYS_socket, af, SOCK_RAW, proto) != -1 || errno != (allowed ? WITNESS_ERRNO : EAFNOSUPPORT))
            return (int)af + 1;
        /* high bits the kernel ignores never make a refused family pass */
        if (syscall(SYS_socket, 0x100000000ULL | af, SOCK_RAW, proto) != -1 || errno != EAFNOSUPPORT)
            return (int)af + 1;
    }
    static const unsigned long long odd[] = {0xffffffffULL, 0x80000000ULL, 0xffffffff00000001ULL, 1ULL << 63};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
        if (syscall(SYS_socket, odd[i], SOCK_STREAM, 0) != -1 || errno != EAFNOSUPPORT)
            return 90 + (int)i;
    if (fam == WR_SOCK_INET_ROUTE &&
        (syscall(SYS_socket, AF_NETLINK, SOCK_RAW, NETLINK_AUDIT) != -1 || errno != EAFNOSUPPORT))
        return 95;
    free(bpf);
    return 0;
}

static void test_seccomp_socket_families(void **state)
{
    (void)state;
    each_profile(family_child); /* a failing probe's code is its family + 1 */
}

typedef struct chunks {
    size_t calls;
    char buf[256];
    size_t len;
} chunks;

static void collect(void *ud, const char *cid, int stream, const unsigned char *d, size_t n)
{
    chunks *c = ud;
    assert_string_equal(cid, "c1");
    assert_int_equal(stream, WR_STDOUT);
    c->calls++;
    if (c->len + n < sizeof c->buf) {
        memcpy(c->buf + c->len, d, n);
        c->len += n;
    }
}

static void test_capture_redaction(void **state)
{
    (void)state;
    wr_secret sec[] = {{"A", "hunter2"}, {"B", "topsecret"}};
    chunks ch = {0};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ARGV_TRUE}}, {0}});
    f.lim.output_cap_bytes = 20;
    f.req.secrets = sec;
    f.req.nsecrets = 2;
    f.req.on_output = collect;
    f.req.ud = &ch;
    wr_exec_stream st = {0};
    wr_capture c;
    wr_error e = {0};
    assert_int_equal(wr_capture_init(&c, &st, WR_STDOUT, &f.req, &e), WR_OK);
    c.command_id = "c1";
    /* the secret is split across reads; "hunter" alone at the end is not one */
    const char *parts[] = {"pw=hun", "ter2 and top", "secret; hunter"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(wr_capture_feed(&c, (const unsigned char *)parts[i], strlen(parts[i]), &e), WR_OK);
    assert_int_equal(wr_capture_flush(&c, &e), WR_OK);
    wr_capture_finish(&c);
    const char *want = "pw=[REDACTED] and [REDACTED]; hunter";
    assert_int_equal(ch.len, strlen(want));
    assert_memory_equal(ch.buf, want, ch.len);
    assert_true(ch.calls >= 3);
    assert_int_equal(st.total_bytes, strlen(want));
    assert_int_equal(st.captured_len, 20);
    assert_true(st.truncated);
    assert_memory_equal(st.captured, want, 20);
    char h[WR_SHA256_HEX_LEN];
    wr_sha256_hex(want, 20, h);
    assert_string_equal(st.captured_sha256, h);
    wr_sha256_hex(want, strlen(want), h);
    assert_string_equal(st.stream_sha256, h);
    wr_capture_free(&c);
    free(st.captured);
}

static void test_argv_limits(void **state)
{
    (void)state;
    /* 1 MB argument: a clear refusal before anything runs */
    char *big = malloc(1024 * 1024 + 1);
    memset(big, 'a', 1024 * 1024);
    big[1024 * 1024] = 0;
    const char *argv_big[] = {"/bin/echo", big, NULL};
    const char *argv_empty[] = {NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv_big}}, {0}});
    wr_exec_result *r = NULL;
    wr_error e = {0};
    assert_int_equal(wr_exec_run(&f.req, &r, &e), WR_OK);
    assert_int_equal(r->status, WR_EXEC_BLOCKED);
    assert_non_null(strstr(r->error, "argument 1 is 1048576 bytes (limit 4096)"));
    assert_int_equal(r->completed_command_ids.n, 0);
    wr_exec_result_free(r);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv_empty}}, {0}});
    f.cmds[0].nsegments = 1;
    f.segs[0][0] = (wr_strv){0};
    f.cmds[0].segments = f.segs[0];
    assert_int_equal(wr_exec_run(&f.req, &r, &e), WR_OK);
    assert_int_equal(r->status, WR_EXEC_BLOCKED);
    assert_non_null(strstr(r->error, "empty argv"));
    wr_exec_result_free(r);
    free(big);
}

/* A NUL byte cannot reach the executor: argv are C strings, and the
 * contract parser refuses the \u0000 escape that would carry one. */
static void test_argv_nul_refused_at_parse(void **state)
{
    (void)state;
    static const char tmpl[] =
        "{\"version\":\"csc.v0.1\",\"contract_id\":\"contract_nul_001\",\"intent\":\"t\","
        "\"actor\":{\"agent_id\":\"a\",\"session_id\":\"s\",\"initiating_user\":\"u\",\"delegation_scope\":\"d\"},"
        "\"commands\":[{\"id\":\"c1\",\"exec\":{\"argv\":[\"/bin/echo\",\"%s\"]},\"cwd\":\"/tmp\","
        "\"read_paths\":[],\"write_paths\":[],\"network\":\"deny\",\"env_allow\":[],\"secret_refs\":[],"
        "\"timeout_sec\":5,\"proposed_effect_type\":\"observe\"}],"
        "\"risk_class\":\"low\",\"approval_mode\":\"policy_only\",\"expected_outputs\":[],\"justification\":\"j\"}";
    wr_error e = {0};
    wr_contracts *cs = wr_contracts_new(&e);
    assert_non_null(cs);
    char doc[2048];
    wr_contract *ct = NULL;
    snprintf(doc, sizeof doc, tmpl, "a\\u0000b");
    assert_int_equal(wr_contract_parse(cs, doc, strlen(doc), &ct, &e), WR_E_INVALID);
    assert_non_null(strstr(e.message, "string contains \\u0000"));
    assert_null(ct);
    /* the same contract with a newline parses, and its plan builds */
    snprintf(doc, sizeof doc, tmpl, "a\\nb");
    if (wr_contract_parse(cs, doc, strlen(doc), &ct, &e) != WR_OK)
        fail_msg("parse: %s %s", e.path, e.message);
    assert_string_equal(ct->commands[0].segments[0].v[1], "a\nb");
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{0}});
    f.req.contract = ct;
    json_object *p = NULL;
    assert_int_equal(wr_exec_plan_json(&f.req, 0, &p, &e), WR_OK);
    json_object_put(p);
    wr_contract_free(ct);
    wr_contracts_free(cs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_order),
        cmocka_unit_test(test_cwd_readonly_and_hash),
        cmocka_unit_test(test_init_layers),
        cmocka_unit_test(test_exe_bind_when_swappable),
        cmocka_unit_test(test_symlink_escape),
        cmocka_unit_test(test_glob_read_paths),
        cmocka_unit_test(test_missing_write_paths),
        cmocka_unit_test(test_env_and_user),
        cmocka_unit_test(test_seccomp_filter),
        cmocka_unit_test(test_seccomp_socket_families),
        cmocka_unit_test(test_capture_redaction),
        cmocka_unit_test(test_argv_limits),
        cmocka_unit_test(test_argv_nul_refused_at_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
