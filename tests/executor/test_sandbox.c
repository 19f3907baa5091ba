/* Adversarial tests against the real sandbox (bwrap, seccomp, rlimits,
 * privilege drop): each case runs wr_exec_run and asserts the concrete
 * outcome — status, exit code, error text, output, files on the host.
 * CI runs this as root; the 'unprivileged' case re-runs a subset as uid
 * 65534 under setpriv. */
#include "exec_fixture.h"
#include "executor/landlock.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "sandbox_util.h"

extern char **environ;

/* ---- basics ------------------------------------------------------------- */

static void test_echo(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/echo", "hello", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_int_equal(r->exit_code, 0);
    assert_null(r->error);
    assert_string_equal(OUT(r), "hello\n");
    assert_int_equal(r->out.total_bytes, 6);
    char h[WR_SHA256_HEX_LEN];
    wr_sha256_hex("hello\n", 6, h);
    assert_string_equal(r->out.captured_sha256, h);
    assert_string_equal(r->out.stream_sha256, h);
    assert_int_equal(r->completed_command_ids.n, 1);
    assert_null(r->failed_command_id);
    assert_false(r->network_used);
    assert_int_equal(strncmp(r->sandbox_profile_id, "bwrap-default-", 14), 0);
    assert_int_equal(strncmp(r->sandbox_profile_id + 14, r->sandbox_profile_sha256, 16), 0);
    char again[WR_SHA256_HEX_LEN];
    wr_error e = {0};
    assert_int_equal(wr_canonical_sha256(r->sandbox_profile, false, again, &e), WR_OK);
    assert_string_equal(again, r->sandbox_profile_sha256);
    wr_exec_result_free(r);
}

/* Credentials, capabilities, no_new_privs, seccomp and rlimits as the
 * command sees them. */
static void test_identity(void **s)
{
    (void)s;
    const char *st[] = {"/bin/cat", "/proc/self/status", NULL};
    const char *lim[] = {"/bin/cat", "/proc/self/limits", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "status", .seg = {st}}, {.id = "limits", .seg = {lim}}, {0}});
    f.lim.max_open_files = 123;
    f.lim.cpu_sec = 17;
    wr_exec_result *r = run(&f);
    if (r->status != WR_EXEC_SUCCESS)
        dump(r);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    const char *o = OUT(r);
    char uidline[64];
    unsigned uid = geteuid() == 0 ? 65534 : geteuid();
    snprintf(uidline, sizeof uidline, "Uid:\t%u\t%u\t%u\t%u", uid, uid, uid, uid);
    assert_non_null(strstr(o, uidline));
    assert_non_null(strstr(o, "CapEff:\t0000000000000000"));
    assert_non_null(strstr(o, "CapPrm:\t0000000000000000"));
    assert_non_null(strstr(o, "CapBnd:\t0000000000000000"));
    assert_non_null(strstr(o, "CapAmb:\t0000000000000000"));
    assert_non_null(strstr(o, "NoNewPrivs:\t1"));
    assert_non_null(strstr(o, "Seccomp:\t2"));
    assert_non_null(strstr(o, "Max open files            123                  123"));
    assert_non_null(strstr(o, "Max cpu time              17                   17"));
    assert_non_null(strstr(o, "Max core file size        0                    0"));
    assert_int_equal(r->completed_command_ids.n, 2);
    wr_exec_result_free(r);
}

/* A program that does not exist is refused before anything runs; a
 * sandbox bwrap cannot set up and a file init cannot exec are failures in
 * words of ours. */
static void test_setup_failure(void **s)
{
    (void)s;
    const char *argv[] = {"/no/such/program", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_BLOCKED);
    assert_string_equal(r->error, "command c1: argv[0] /no/such/program: No such file or directory");
    wr_exec_result_free(r);

    /* the launch fails: too few descriptors for the sandbox's own fds */
    const char *t[] = {"/bin/true", NULL};
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {t}}, {0}});
    f.lim.max_open_files = 5;
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_string_equal(r->error, "command c1 could not start: sandbox setup failed (exit 127)");
    wr_exec_result_free(r);

    /* a file that is not executable: init reports exec's errno */
    char *d = fx_subdir(g_dir, "noexec", false), *file = path_in(d, "tool");
    fx_write(file, "#!/bin/sh\necho ran\n");
    chmod(file, 0644);
    const char *ne[] = {file, NULL};
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {ne}, .reads = {d}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_int_equal(r->exit_code, 127);
    char want[600];
    snprintf(want, sizeof want, "command c1 could not start: exec %s: Permission denied", file);
    assert_string_equal(r->error, want);
    wr_exec_result_free(r);
    free(file);
    free(d);
}

/* A host process that ignores SIGCHLD (children reaped by the kernel):
 * bwrap's status is lost, but init's report of the command's still counts. */
static void test_sigchld_ignored(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .timeout = 10}, {0}});
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGCHLD, &ign, &old);
    wr_exec_result *r = run(&f);
    sigaction(SIGCHLD, &old, NULL);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_false(r->timed_out);
    assert_string_equal(r->error, "command c1 exited with status 3");
    wr_exec_result_free(r);
}

/* ---- the outcome comes from bubblewrap and init, never from the command -- */

/* Issue 9: a command printing "bwrap: <secret>" and exiting 1 made the
 * receipt say the sandbox never started, with the raw secret in the error.
 * Now the error is ours, and nothing of the output reaches it. */
static void test_outcome_not_from_output(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/sh", "-c", "echo \"bwrap: $TOKEN\" >&2; echo 'bwrap: execvp x: nope' >&2; exit 1",
                          NULL};
    wr_secret sec[] = {{"TOKEN", "tok-5f1e0c9a-do-not-leak"}};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .secrets = {"TOKEN"}}, {0}});
    f.req.secrets = sec;
    f.req.nsecrets = 1;
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_int_equal(r->exit_code, 1);
    assert_string_equal(r->error, "command c1 exited with status 1");
    assert_null(strstr(ERR(r), "tok-5f1e0c9a")); /* redacted in the captured output too */
    assert_non_null(strstr(ERR(r), "bwrap: "));
    assert_null(strstr(wr_json_compact(r->sandbox_profile), "tok-5f1e0c9a"));
    wr_exec_result_free(r);
}

/* Issue 9: exit(137) was recorded as "killed by SIGKILL". A real signal
 * still is; a pipeline's upstream exit 141 is a failure, not a SIGPIPE. */
static void test_exit_code_is_not_a_signal(void **s)
{
    (void)s;
    const char *e137[] = {"/bin/sh", "-c", "exit 137", NULL};
    const char *kill9[] = {"/bin/sh", "-c", "kill -KILL $$", NULL};
    const char *e141[] = {"/bin/sh", "-c", "exit 141", NULL};
    const char *cat[] = {"/bin/cat", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {e137}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->exit_code, 137);
    assert_string_equal(r->error, "command c1 exited with status 137");
    wr_exec_result_free(r);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {kill9}}, {0}});
    r = run(&f);
    assert_int_equal(r->exit_code, 137);
    assert_string_equal(r->error, "command c1 killed by signal SIGKILL (exit 137)");
    wr_exec_result_free(r);
    fx_init(&f, (fx_cmd_spec[]){{.id = "p", .seg = {e141, cat}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_string_equal(r->error, "command p: pipeline segment 1 (/bin/sh) exited with status 141");
    wr_exec_result_free(r);
}

/* Our children, and whether any of them is a zombie. */
static int zombie_children(int *nchildren)
{
    char path[320], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    *nchildren = 0;
    int zombies = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/children", de->d_name);
        int fd = open(path, O_RDONLY);
        ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof buf - 1);
        if (fd >= 0)
            close(fd);
        buf[n > 0 ? n : 0] = 0;
        for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
            char st[64], line[256];
            snprintf(st, sizeof st, "/proc/%s/stat", tok);
            FILE *fp = fopen(st, "r");
            (*nchildren)++;
            if (fp && fgets(line, sizeof line, fp) && strstr(line, ") Z "))
                zombies++;
            if (fp)
                fclose(fp);
        }
    }
    if (d)
        closedir(d);
    return zombies;
}

/* Issue 9: the sandbox's pid 1 was left a zombie for init to reap. As a
 * subreaper (what a container's pid 1 is for us), nothing of a run may be
 * left among our children: a normal run leaving a background process, a
 * timeout and a cancel during start-up. */
static void test_no_zombie_pid1(void **s)
{
    (void)s;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    const char *bg[] = {"/bin/sh", "-c", "sleep 5 & exit 0", NULL};
    const char *slow[] = {"/bin/sleep", "34.517", NULL};
    fx f;
    for (int round = 0; round < 3; round++) {
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {round == 0 ? bg : slow}, .timeout = 1}, {0}});
        int p[2] = {-1, -1};
        if (round == 2) { /* cancelled while bwrap is still setting up */
            assert_int_equal(pipe(p), 0);
            assert_int_equal(write(p[1], "x", 1), 1);
            f.req.cancel_fd = p[0];
        }
        wr_exec_result *r = run(&f);
        wr_exec_result_free(r);
        if (p[0] >= 0)
            close(p[0]), close(p[1]);
        int nchildren, zombies = zombie_children(&nchildren);
        if (nchildren)
            print_message("round %d: %d children left, %d zombies\n", round, nchildren, zombies);
        assert_int_equal(nchildren, 0);
        assert_false(process_alive("sleep 34.517")); /* in bwrap's argv until it execs */
    }
}

/* Issue 9: a process of the same uid on the host read released secrets in
 * /proc/PID/environ of bwrap. Neither bwrap nor init carries them in its
 * environ or cmdline; the command still gets them (built inside). */
typedef struct env_scan {
    int seen;  /* bwrap and init processes looked at */
    int leaks; /* of them, carrying the secret */
} env_scan;

static bool file_has(const char *path, const char *needle)
{
    char buf[65536];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = '\n';
    buf[n > 0 ? n : 0] = 0;
    return strstr(buf, needle) != NULL;
}

static void scan_env(void *ud, const char *cid, int stream, const unsigned char *d, size_t n)
{
    (void)cid, (void)stream, (void)d, (void)n;
    env_scan *sc = ud;
    if (sc->seen)
        return;
    DIR *dir = opendir("/proc");
    struct dirent *de;
    while (dir && (de = readdir(dir)) != NULL) {
        char p[300];
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(p, sizeof p, "/proc/%s/cmdline", de->d_name);
        if (!file_has(p, "env-scan-7d3") || !(file_has(p, "/usr/bin/bwrap") || file_has(p, "/.warrant-init")))
            continue;
        sc->seen++;
        bool leak = file_has(p, "sec-9a7e2b");
        snprintf(p, sizeof p, "/proc/%s/environ", de->d_name);
        leak = leak || file_has(p, "sec-9a7e2b");
        if (leak)
            print_message("secret in the environ or cmdline of %s\n", p);
        sc->leaks += leak;
    }
    if (dir)
        closedir(dir);
}

static void test_secrets_not_in_host_environ(void **s)
{
    (void)s;
    const char *argv[] = {
        "/bin/sh", "-c",
        "echo up; test \"$API\" = \"$(printf sec-%s 9a7e2b)\" && echo got-it; sleep 0.5 # env-scan-7d3", NULL};
    wr_secret sec[] = {{"API", "sec-9a7e2b"}};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .secrets = {"API"}}, {0}});
    f.req.secrets = sec;
    f.req.nsecrets = 1;
    env_scan sc = {0};
    f.req.on_output = scan_env;
    f.req.ud = &sc;
    wr_exec_result *r = run(&f);
    if (r->status != WR_EXEC_SUCCESS || !sc.seen)
        dump(r);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_non_null(strstr(OUT(r), "got-it"));
    assert_true(sc.seen >= 2); /* bwrap (outer and pid 1 before exec) and init */
    assert_int_equal(sc.leaks, 0);
    wr_exec_result_free(r);
}

/* The probe program next to this test binary (tests/executor/probe.c). */
static void probe_path(char *out, size_t len, char *dir, size_t dlen)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = 0;
    *strrchr(self, '/') = 0;
    snprintf(dir, dlen, "%s", self);
    snprintf(out, len, "%s/wr_probe", self);
}

static json_object *plan_of(wr_exec_result *r)
{
    json_object *c = json_object_array_get_idx(json_object_object_get(r->sandbox_profile, "commands"), 0);
    return json_object_object_get(c, "plan");
}

/* ---- Landlock ---------------------------------------------------------------- */

/* bwrap shows an undeclared cwd (read-only, so chdir works); Landlock
 * refuses reading it. Without Landlock (off, or an old kernel) the plan
 * says so and only bwrap's layer is left. */
static void test_landlock(void **s)
{
    (void)s;
    const char *why = NULL;
    int abi = wr_landlock_abi(&why);
    if (abi == 0)
        skip();
    char probe[4200], pdir[4096];
    probe_path(probe, sizeof probe, pdir, sizeof pdir);
    /* Not under /tmp: Landlock's rule for the private /tmp covers every
     * bind below it (docs/sandbox.md). */
    char tmpl[] = "/var/tmp/wr-exec-ll-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    chmod(tmpl, 0755);
    char *cwd = strdup(tmpl), *secret = path_in(cwd, "secret.txt");
    fx_write(secret, "undeclared");
    const char *rd[] = {probe, "read", secret, NULL};
    const char *ls[] = {probe, "list", ".", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "r", .seg = {rd}, .cwd = cwd, .reads = {pdir}},
                                {.id = "l", .seg = {ls}, .cwd = cwd, .reads = {pdir}},
                                {0}});
    wr_exec_result *r = run(&f);
    assert_string_equal(OUT(r), "read: errno 13\nlist: errno 13\n");
    assert_int_equal(json_object_get_int(json_object_object_get(plan_of(r), "landlock_abi")), abi);
    wr_exec_result_free(r);

    f.req.landlock = -1;
    r = run(&f);
    assert_string_equal(OUT(r), "read: ok\nlist: ok\n");
    json_object *pl = plan_of(r);
    assert_int_equal(json_object_get_int(json_object_object_get(pl, "landlock_abi")), 0);
    assert_string_equal(json_object_get_string(json_object_object_get(pl, "landlock_note")),
                        "Landlock switched off by the caller");
    wr_exec_result_free(r);

    /* an older ABI is used as it is, and recorded */
    f.req.landlock = 1;
    r = run(&f);
    assert_string_equal(OUT(r), "read: errno 13\nlist: errno 13\n");
    assert_int_equal(json_object_get_int(json_object_object_get(plan_of(r), "landlock_abi")), 1);
    wr_exec_result_free(r);
    unlink(secret);
    rmdir(cwd);
    free(secret);
    free(cwd);
}

/* Landlock's TCP rules (ABI >= 4): an allowlisted run may connect to its
 * egress proxy's port only, so even inside its own network namespace a
 * listener of its own making or any other port is out of reach; and it binds
 * nothing. seccomp lets AF_INET through in this mode, so this is Landlock's
 * own refusal (EACCES), not the socket's (EAFNOSUPPORT) nor a missing peer
 * (ECONNREFUSED, as with Landlock switched off). */
static void test_landlock_tcp(void **s)
{
    (void)s;
    const char *why = NULL;
    if (wr_landlock_abi(&why) < 4)
        skip();
    static const char py[] = "import errno, socket\n"
                             "def attempt(f):\n"
                             "    try:\n"
                             "        f(); return 'ok'\n"
                             "    except OSError as e:\n"
                             "        return errno.errorcode.get(e.errno, str(e.errno))\n"
                             "def conn(port):\n"
                             "    return lambda: socket.create_connection(('127.0.0.1', port), timeout=3).close()\n"
                             "def bind():\n"
                             "    s = socket.socket(); s.bind(('127.0.0.1', 8080)); s.listen(); s.close()\n"
                             "print(attempt(conn(9)), attempt(bind), attempt(conn(3128)))\n";
    const char *argv[] = {"python3", "-c", py, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "t", .seg = {argv}, .net = WR_NET_ALLOWLISTED}, {0}});
    wr_exec_result *r = run(&f);
    assert_string_equal(OUT(r), "EACCES EACCES ok\n");
    wr_exec_result_free(r);

    f.req.landlock = -1; /* the same run without Landlock: the port is merely closed */
    r = run(&f);
    assert_string_equal(OUT(r), "ECONNREFUSED ok ok\n");
    wr_exec_result_free(r);
}

/* ---- seccomp: io_uring and socket families -------------------------------- */

/* Issue 9: IORING_OP_SOCKET made AF_INET and AF_VSOCK sockets under strict
 * with network denied, and default let AF_VSOCK through socket(). */
static void test_io_uring_and_sockets(void **s)
{
    (void)s;
    char probe[4200], pdir[4096], fam[16], proto[16];
    probe_path(probe, sizeof probe, pdir, sizeof pdir);
    const char *ur[] = {probe, "uring", NULL};
    /* allowlisted: a mode with network that unprivileged users can build too
     * (full needs /dev/net/tun) */
    fx f;
    for (int strict = 0; strict < 2; strict++) {
        fx_init(&f, (fx_cmd_spec[]){{.id = "u", .seg = {ur}, .reads = {pdir}, .net = WR_NET_ALLOWLISTED}, {0}});
        f.lim.seccomp_strict = strict;
        wr_exec_result *r = run(&f);
        assert_string_equal(OUT(r), "io_uring_setup: errno 38\n");
        wr_exec_result_free(r);
    }
    static const struct {
        int family, proto;
        wr_network_mode net;
        bool strict;
        const char *want;
    } cases[] = {
        {AF_VSOCK, 0, WR_NET_ALLOWLISTED, false, "socket: errno 97\n"},
        {AF_PACKET, 0, WR_NET_ALLOWLISTED, false, "socket: errno 97\n"},
        {AF_INET, 0, WR_NET_DENY, false, "socket: errno 97\n"},
        {AF_INET6, 0, WR_NET_DENY, false, "socket: errno 97\n"},
        {AF_NETLINK, 0, WR_NET_DENY, false, "socket: errno 97\n"},
        {AF_UNIX, 0, WR_NET_DENY, true, "socket: ok\n"},
        {AF_INET, 0, WR_NET_ALLOWLISTED, true, "socket: ok\n"},
        {AF_NETLINK, 0, WR_NET_ALLOWLISTED, true, "socket: errno 97\n"},
        {AF_NETLINK, 0, WR_NET_ALLOWLISTED, false, "socket: ok\n"},       /* NETLINK_ROUTE for getaddrinfo */
        {AF_NETLINK, 9, WR_NET_ALLOWLISTED, false, "socket: errno 97\n"}, /* NETLINK_AUDIT */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(fam, sizeof fam, "%d", cases[i].family);
        snprintf(proto, sizeof proto, "%d", cases[i].proto);
        const char *so[] = {probe, "socket", fam, proto, NULL};
        fx_init(&f, (fx_cmd_spec[]){{.id = "s", .seg = {so}, .reads = {pdir}, .net = cases[i].net}, {0}});
        f.lim.seccomp_strict = cases[i].strict;
        wr_exec_result *r = run(&f);
        if (strcmp(OUT(r), cases[i].want) != 0)
            print_message("case %zu: family %d\n", i, cases[i].family);
        assert_string_equal(OUT(r), cases[i].want);
        wr_exec_result_free(r);
    }
}

/* ---- mounts ------------------------------------------------------------------ */

/* Issue 9: cwd /w, read_paths [], write_paths [/w/out]: the cwd bind
 * shadowed the write bind. Every write bind lands after its parents,
 * whatever the contract's order. */
static void test_write_under_cwd_or_read(void **s)
{
    (void)s;
    char *base = fx_subdir(g_dir, "mo", false);
    char *w = fx_subdir(base, "w", false);
    char *out = fx_subdir(w, "out", true);
    char *deep = fx_subdir(out, "deep", true);
    char *file = path_in(out, "f"), *dfile = path_in(deep, "g");
    const char *touch[] = {"/usr/bin/touch", file, NULL};
    const char *touch2[] = {"/usr/bin/touch", dfile, NULL};
    fx f;
    /* cwd /w with nothing declared but the write path */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c", .seg = {touch}, .cwd = w, .writes = {out}}, {0}});
    wr_exec_result *r = run(&f);
    if (r->status != WR_EXEC_SUCCESS)
        dump(r);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_true(exists(file));
    wr_exec_result_free(r);
    unlink(file);
    /* read /w and write /w/out, cwd at /w or deeper; and a read path
     * below a write path stays read-only */
    const char *cwds[] = {w, out};
    for (int c = 0; c < 2; c++) {
        fx_init(&f, (fx_cmd_spec[]){{.id = "c", .seg = {touch}, .cwd = cwds[c], .reads = {w}, .writes = {out}}, {0}});
        r = run(&f);
        if (r->status != WR_EXEC_SUCCESS)
            dump(r);
        assert_int_equal(r->status, WR_EXEC_SUCCESS);
        assert_true(exists(file));
        unlink(file);
        wr_exec_result_free(r);
    }
    fx_init(&f, (fx_cmd_spec[]){{.id = "c", .seg = {touch2}, .cwd = w, .reads = {deep}, .writes = {out}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_false(exists(dfile));
    wr_exec_result_free(r);
    /* write paths at two depths listed deepest first */
    fx_init(&f, (fx_cmd_spec[]){{.id = "c", .seg = {touch2}, .cwd = w, .writes = {deep, out}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_true(exists(dfile));
    wr_exec_result_free(r);
    free(file);
    free(dfile);
    free(deep);
    free(out);
    free(w);
    free(base);
}

/* Issue 9: /dev was a writable tmpfs without a size (RAM outside
 * RLIMIT_AS). Now read-only; /dev/null and the sized /dev/shm still work. */
static void test_dev_not_writable(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/sh", "-c",
                          "dd if=/dev/zero of=/dev/big bs=1M count=64 2>/dev/null && echo big-written; "
                          "echo x > /dev/null && echo null-ok; echo x > /dev/shm/s && echo shm-ok",
                          NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c", .seg = {argv}}, {0}});
    wr_exec_result *r = run(&f);
    assert_string_equal(OUT(r), "null-ok\nshm-ok\n");
    wr_exec_result_free(r);
}

/* Issue 9: argv[0] through a symlinked directory could be swapped between
 * the check and bwrap's exec. The plan records the checked file; what runs
 * must be it, while another process flips the link as fast as it can. */
typedef struct flipper {
    const char *link, *tmp, *a, *b;
    volatile bool stop;
} flipper;

static void *flip(void *arg)
{
    flipper *fl = arg;
    for (unsigned i = 0; !fl->stop; i++) {
        unlink(fl->tmp);
        if (symlink(i % 2 ? fl->a : fl->b, fl->tmp) == 0)
            rename(fl->tmp, fl->link);
    }
    return NULL;
}

static void test_argv0_swap_race(void **s)
{
    (void)s;
    char *base = fx_subdir(g_dir, "a0", false);
    char *w = fx_subdir(base, "w", true);
    char *evil = fx_subdir(w, "evil", false);
    char *fake = path_in(evil, "true");
    fx_write(fake, "#!/bin/sh\nexit 42\n");
    chmod(fake, 0755);
    char *link = path_in(w, "bin"), *tmp = path_in(w, "bin.tmp"), *a0 = path_in(link, "true");
    flipper fl = {link, tmp, "/usr/bin", evil, false};
    assert_int_equal(symlink("/usr/bin", link), 0);
    pthread_t t;
    pthread_create(&t, NULL, flip, &fl);
    int ran_real = 0, ran_fake = 0;
    const char *argv[] = {a0, NULL};
    for (int i = 0; i < 30; i++) {
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c", .seg = {argv}, .writes = {w}}, {0}});
        wr_exec_result *r = run(&f);
        if (r->status == WR_EXEC_BLOCKED) { /* the link was mid-swap: refused */
            wr_exec_result_free(r);
            continue;
        }
        json_object *ops = json_object_object_get(plan_of(r), "ops");
        const char *checked = NULL;
        for (size_t k = 0; k < json_object_array_length(ops); k++) {
            json_object *op = json_object_array_get_idx(ops, k);
            if (!strcmp(json_object_get_string(json_object_object_get(op, "op")), "exe"))
                checked = json_object_get_string(json_object_object_get(op, "src"));
        }
        assert_non_null(checked);
        bool real = !strcmp(checked, "/usr/bin/true");
        if (r->exit_code != (real ? 0 : 42))
            print_message("run %d: checked %s but exit %d\n", i, checked, r->exit_code);
        assert_int_equal(r->exit_code, real ? 0 : 42);
        real ? ran_real++ : ran_fake++;
        wr_exec_result_free(r);
    }
    fl.stop = true;
    pthread_join(t, NULL);
    print_message("argv[0] race: %d runs of the real file, %d of the other, each as checked\n", ran_real, ran_fake);
    free(a0);
    free(tmp);
    free(link);
    free(fake);
    free(evil);
    free(w);
    free(base);
}

/* ---- reading what is not declared ---------------------------------------- */

static void test_host_files_invisible(void **s)
{
    (void)s;
    char *state = fx_subdir(g_dir, "state", false);
    char *key = path_in(state, "server.key");
    fx_write(key, "PRIVATE KEY MATERIAL");
    chmod(key, 0600);
    const char *targets[] = {"/etc/shadow", "/root/.bashrc", key, "/home", "/var/lib", NULL};
    for (size_t i = 0; targets[i]; i++) {
        const char *argv[] = {"/bin/cat", targets[i], NULL};
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
        wr_exec_result *r = run(&f);
        assert_int_equal(r->status, WR_EXEC_FAILED);
        assert_int_equal(r->exit_code, 1);
        assert_non_null(strstr(ERR(r), "No such file or directory"));
        assert_null(strstr(OUT(r), "PRIVATE"));
        assert_string_equal(r->failed_command_id, "c1");
        assert_string_equal(r->error, "command c1 exited with status 1");
        wr_exec_result_free(r);
    }
    free(key);
    free(state);
}

static void test_environment(void **s)
{
    (void)s;
    setenv("WARRANT_TEST_MARKER", "host-marker-7f3a", 1);
    setenv("GITHUB_TOKEN", "ghp_hostsecret", 1);
    setenv("TZ", "UTC", 1);
    const char *env[] = {"/usr/bin/env", NULL};
    const char *pe[] = {"/usr/bin/python3", "-c",
                        "import os\n"
                        "for p in os.listdir('/proc'):\n"
                        "  try: print(open('/proc/%s/environ' % p,'rb').read())\n"
                        "  except Exception as e: pass\n",
                        NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){
                    {.id = "env", .seg = {env}, .env = {"TZ", "NOT_SET_ANYWHERE"}}, {.id = "procs", .seg = {pe}}, {0}});
    f.req.host_env = environ;
    wr_exec_result *r = run(&f);
    if (r->status != WR_EXEC_SUCCESS)
        dump(r);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    const char *o = OUT(r);
    /* exactly the fixed variables plus the allowed one, in the first command */
    const char *want = "PATH=/usr/local/bin:/usr/bin:/bin\nHOME=/tmp\nLANG=C.UTF-8\nTZ=UTC\n";
    assert_int_equal(strncmp(o, want, strlen(want)), 0);
    assert_null(strstr(o, "WARRANT_"));
    assert_null(strstr(o, "host-marker"));
    assert_null(strstr(o, "ghp_hostsecret"));
    assert_null(strstr(o, "HOME=/root"));
    assert_non_null(strstr(o, "b'PATH=")); /* the probe did read environs: only sandbox ones */
    wr_exec_result_free(r);
}

/* ---- writing outside the write paths ------------------------------------- */

static void test_write_containment(void **s)
{
    (void)s;
    char *base = fx_subdir(g_dir, "wc", false);
    char *w = fx_subdir(base, "w", true);
    char *rd = fx_subdir(base, "r", false);
    char *rfile = path_in(rd, "f");
    fx_write(rfile, "read only data");
    char *outside = path_in(base, "outside.txt");
    fx_write(outside, "original");
    char *link = path_in(w, "link");
    assert_int_equal(symlink(outside, link), 0);
    char *escape = path_in(base, "escape");
    char *hard = path_in(w, "hard");
    char *made = path_in(w, "made");
    char *rnew = path_in(rd, "new");
    char *dotdot = path_in(w, "../escape");
    char sh_dotdot[512], sh_link[512], sh_made[512];
    snprintf(sh_dotdot, sizeof sh_dotdot, "echo pwned > %s", dotdot);
    snprintf(sh_link, sizeof sh_link, "echo pwned > %s", link);
    snprintf(sh_made, sizeof sh_made, "echo ok > %s", made);
    struct {
        const char *argv[5];
        const char *err; /* expected stderr text, NULL: any */
    } cases[] = {
        {{"/usr/bin/touch", "/usr/evil", NULL}, "Read-only file system"},
        {{"/usr/bin/touch", "/etc/evil", NULL}, "Read-only file system"},
        {{"/usr/bin/touch", rnew, NULL}, "Read-only file system"},
        {{"/bin/ln", rfile, hard, NULL}, "Invalid cross-device link"},
        {{"/usr/bin/touch", "/newdir-at-root", NULL}, "Read-only file system"},
        {{"/bin/sh", "-c", sh_dotdot, NULL}, NULL},
        {{"/bin/sh", "-c", sh_link, NULL}, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {cases[i].argv}, .cwd = w, .reads = {rd}, .writes = {w}}, {0}});
        wr_exec_result *r = run(&f);
        if (cases[i].err) {
            if (!strstr(ERR(r), cases[i].err))
                print_message("case %zu:\n", i), dump(r);
            assert_int_equal(r->status, WR_EXEC_FAILED);
            assert_non_null(strstr(ERR(r), cases[i].err));
        }
        assert_int_equal(r->nartifacts, 0);
        wr_exec_result_free(r);
    }
    assert_false(exists("/usr/evil"));
    assert_false(exists("/etc/evil"));
    assert_false(exists(rnew));
    assert_false(exists(hard));
    assert_false(exists(escape)); /* ".." landed in the sandbox's own /tmp */
    char buf[64] = {0};
    FILE *fp = fopen(outside, "r");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof buf, fp));
    fclose(fp);
    assert_string_equal(buf, "original"); /* the planted symlink led nowhere on the host */

    /* and the declared write path does work, recorded as an artifact */
    const char *mk[] = {"/bin/sh", "-c", sh_made, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {mk}, .cwd = w, .writes = {w}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_int_equal(r->nartifacts, 1);
    assert_string_equal(r->artifacts[0].path, made);
    char h[WR_SHA256_HEX_LEN];
    wr_sha256_hex("ok\n", 3, h);
    assert_string_equal(r->artifacts[0].sha256, h);
    struct stat st;
    assert_int_equal(stat(made, &st), 0);
    if (geteuid() == 0)
        assert_int_equal(st.st_uid, 65534); /* written by the run_as user */
    wr_exec_result_free(r);
    free(base), free(w), free(rd), free(rfile), free(outside), free(link), free(escape), free(hard), free(made),
        free(rnew), free(dotdot);
}

/* A declared write path that is a symlink out of scope: blocked, nothing runs. */
static void test_symlink_root_blocked(void **s)
{
    (void)s;
    char *base = fx_subdir(g_dir, "sl", false);
    char *w = fx_subdir(base, "w", true);
    char *evil = path_in(base, "evil");
    assert_int_equal(symlink("/etc", evil), 0);
    char *marker = path_in(w, "marker");
    const char *argv[] = {"/usr/bin/touch", marker, NULL};
    const char *argv2[] = {"/bin/true", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .cwd = w, .writes = {w}},
                                {.id = "c2", .seg = {argv2}, .cwd = w, .writes = {evil}},
                                {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_BLOCKED);
    assert_non_null(strstr(r->error, "command c2: write path"));
    assert_non_null(strstr(r->error, "symlink resolving to /etc, outside the declared paths"));
    assert_int_equal(r->completed_command_ids.n, 0);
    assert_false(exists(marker)); /* not even the first command ran */
    wr_exec_result_free(r);
    free(base), free(w), free(evil), free(marker);
}

/* A write path that does not exist yet is created inside its declared
 * write root, for the sandbox user. */
static void test_created_write_path(void **s)
{
    (void)s;
    char *w = fx_subdir(g_dir, "created", true);
    char *sub = path_in(w, "new/deeper");
    char *file = path_in(sub, "f");
    const char *argv[] = {"/usr/bin/touch", file, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .cwd = w, .writes = {w, sub}}, {0}});
    wr_exec_result *r = run(&f);
    if (r->status != WR_EXEC_SUCCESS)
        dump(r);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    if (geteuid() == 0)
        assert_int_equal(st.st_uid, 65534);
    assert_int_equal(r->nartifacts, 1);
    assert_string_equal(r->artifacts[0].path, file);
    wr_exec_result_free(r);
    free(w), free(sub), free(file);
}

/* ---- network --------------------------------------------------------------- */

static void test_network_denied(void **s)
{
    (void)s;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 4), 0);
    getsockname(l, (struct sockaddr *)&a, &al);
    char code[600];
    snprintf(code, sizeof code,
             "import socket\n"
             "try:\n"
             "  s = socket.create_connection(('127.0.0.1', %d), timeout=3); print('tcp: connected')\n"
             "except OSError as e: print('tcp:', type(e).__name__, e.errno)\n"
             "try:\n"
             "  socket.getaddrinfo('example.com', 80); print('dns: resolved')\n"
             "except OSError as e: print('dns:', type(e).__name__)\n",
             ntohs(a.sin_port));
    const char *argv[] = {"/usr/bin/python3", "-c", code, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    wr_exec_result *r = run(&f);
    if (r->status != WR_EXEC_SUCCESS)
        dump(r);
    assert_string_equal(OUT(r), "tcp: OSError 97\ndns: gaierror\n");
    assert_int_equal(accept(l, NULL, NULL), -1); /* nothing reached the host listener */
    assert_int_equal(errno, EAGAIN);
    wr_exec_result_free(r);

    /* strict profile: no socket family but AF_UNIX */
    const char *strict[] = {"/usr/bin/python3", "-c",
                            "import socket\n"
                            "try: socket.socket(socket.AF_INET); print('inet: ok')\n"
                            "except OSError as e: print('inet:', e.errno)\n"
                            "try: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW); print('netlink: ok')\n"
                            "except OSError as e: print('netlink:', e.errno)\n"
                            "socket.socket(socket.AF_UNIX); print('unix: ok')\n",
                            NULL};
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {strict}}, {0}});
    f.lim.seccomp_strict = true;
    r = run(&f);
    assert_string_equal(OUT(r), "inet: 97\nnetlink: 97\nunix: ok\n");
    assert_int_equal(strncmp(r->sandbox_profile_id, "bwrap-strict-", 13), 0);
    wr_exec_result_free(r);
    close(l);
}

/* ---- resource exhaustion ------------------------------------------------- */

static void test_fork_bomb(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/sh", "-c", "i=0; while [ $i -lt 400 ]; do sleep 3 & i=$((i+1)); done; wait", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .timeout = 30}, {0}});
    /* RLIMIT_NPROC counts every process of the sandbox user on the host:
     * leave room for those that exist already (other sandboxes). */
    f.lim.max_processes = 48 + user_processes(geteuid() == 0 ? 65534 : geteuid());
    int64_t t0 = now_ms();
    wr_exec_result *r = run(&f);
    if (geteuid() == 0 || g_unpriv) {
        if (!strstr(ERR(r), "fork"))
            dump(r);
        assert_int_equal(r->status, WR_EXEC_FAILED);
        assert_non_null(strstr(ERR(r), "Cannot fork"));
        assert_false(r->timed_out);
    }
    assert_true(now_ms() - t0 < 20000);
    wr_exec_result_free(r);
}

/* Memory and /tmp size limits: a clear failure inside, nothing outside. */
static void test_memory_and_tmp_limits(void **s)
{
    (void)s;
    const char *bomb[] = {"/usr/bin/python3", "-c", "b = bytearray(2 * 1024**3)", NULL};
    const char *fill[] = {"/bin/sh", "-c", "echo x > /tmp/wr-private-probe && head -c 20M /dev/zero > /tmp/big", NULL};
    const char *fill_shm[] = {"/bin/sh", "-c", "head -c 20M /dev/zero > /dev/shm/big", NULL};
    struct {
        const char *const *argv;
        int64_t memory_mb, tmp_mb;
        const char *err;
    } cases[] = {
        {bomb, 256, 64, "MemoryError"},
        {fill, 1024, 4, "No space left on device"},
        {fill_shm, 1024, 4, "No space left on device"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {cases[i].argv}}, {0}});
        f.lim.memory_mb = cases[i].memory_mb;
        f.lim.tmp_mb = cases[i].tmp_mb;
        wr_exec_result *r = run(&f);
        assert_int_equal(r->status, WR_EXEC_FAILED);
        assert_int_equal(r->exit_code, 1);
        assert_non_null(strstr(ERR(r), cases[i].err));
        wr_exec_result_free(r);
    }
    assert_false(exists("/tmp/wr-private-probe")); /* the sandbox's /tmp is its own */
}

typedef struct counter {
    uint64_t bytes;
    EVP_MD_CTX *md;
} counter;

static void count_cb(void *ud, const char *cid, int stream, const unsigned char *d, size_t n)
{
    (void)cid;
    counter *c = ud;
    if (stream == WR_STDOUT)
        c->bytes += n;
    (void)d;
}

static void sha_zeros(uint64_t n, char out[WR_SHA256_HEX_LEN])
{
    static unsigned char z[1 << 16];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (uint64_t left = n; left; left -= left < sizeof z ? left : sizeof z)
        EVP_DigestUpdate(md, z, left < sizeof z ? left : sizeof z);
    unsigned char d[32];
    unsigned dl;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A flood is hashed in full but costs no memory beyond the cap. */
static void test_output_flood(void **s)
{
    (void)s;
    const uint64_t total = 1ull << 30;
    const char *argv[] = {"/usr/bin/head", "-c", "1G", "/dev/zero", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .timeout = 120}, {0}});
    counter c = {0};
    f.req.on_output = count_cb;
    f.req.ud = &c;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    wr_exec_result *r = run(&f);
    getrusage(RUSAGE_SELF, &ru1);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_int_equal(r->out.total_bytes, total);
    assert_int_equal(c.bytes, total);
    assert_int_equal(r->out.captured_len, 1024 * 1024);
    assert_true(r->out.truncated);
    char h[WR_SHA256_HEX_LEN];
    sha_zeros(total, h);
    assert_string_equal(r->out.stream_sha256, h);
    sha_zeros(1024 * 1024, h);
    assert_string_equal(r->out.captured_sha256, h);
    print_message("flood: max RSS grew by %ld KiB\n", ru1.ru_maxrss - ru0.ru_maxrss);
    assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 64 * 1024);
    wr_exec_result_free(r);
}

static void test_output_kill_cap(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/cat", "/dev/zero", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .timeout = 60}, {0}});
    f.lim.output_kill_bytes = 8 * 1024 * 1024;
    int64_t t0 = now_ms();
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_true(r->output_killed);
    assert_int_equal(r->exit_code, 137);
    assert_string_equal(r->error, "stdout exceeded the output limit of 8388608 bytes: command killed");
    assert_true(r->out.total_bytes > 8u * 1024 * 1024 && r->out.total_bytes < 256u * 1024 * 1024);
    assert_true(now_ms() - t0 < 10000);
    wr_exec_result_free(r);
}

/* ---- time limits and cancellation ---------------------------------------- */

static void test_timeout_kills_everything(void **s)
{
    (void)s;
    /* a grandchild in its own session that ignores SIGTERM, and a parent
     * that ignores it too */
    const char *argv[] = {"/bin/sh", "-c",
                          "setsid sh -c 'trap \"\" TERM; exec sleep 31.517' & trap '' TERM; sleep 32.517; echo never",
                          NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .timeout = 1}, {0}});
    int64_t t0 = now_ms();
    wr_exec_result *r = run(&f);
    int64_t took = now_ms() - t0;
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_int_equal(r->exit_code, 124);
    assert_true(r->timed_out);
    assert_string_equal(r->error, "timeout after 1s: command c1 killed");
    assert_string_equal(r->failed_command_id, "c1");
    assert_true(took >= 1000 && took < 6000);
    assert_null(strstr(OUT(r), "never"));
    assert_false(process_alive("sleep 31.517"));
    assert_false(process_alive("sleep 32.517"));
    wr_exec_result_free(r);
}

static void *cancel_later(void *arg)
{
    int fd = *(int *)arg;
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (write(fd, "x", 1) != 1)
        perror("write");
    return NULL;
}

static void test_cancel(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/sleep", "33.517", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    int p[2];
    assert_int_equal(pipe(p), 0);
    f.req.cancel_fd = p[0];
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &p[1]);
    int64_t t0 = now_ms();
    wr_exec_result *r = run(&f);
    pthread_join(t, NULL);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_true(r->cancelled);
    assert_string_equal(r->error, "cancelled");
    assert_true(now_ms() - t0 < 5000);
    assert_false(process_alive("sleep 33.517"));
    wr_exec_result_free(r);
    close(p[0]);
    close(p[1]);
}

/* ---- privilege and kernel attack surface --------------------------------- */

static void test_setuid_binary(void **s)
{
    (void)s;
    if (geteuid() != 0)
        skip();
    char *dir = fx_subdir(g_dir, "suid", false);
    char *bin = path_in(dir, "id");
    char cp[600];
    snprintf(cp, sizeof cp, "cp /usr/bin/id %s && chown 0:0 %s && chmod 4755 %s", bin, bin, bin);
    assert_int_equal(system(cp), 0);
    const char *argv[] = {bin, "-u", NULL};
    const char *argv2[] = {"/usr/bin/passwd", "-S", "root", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .reads = {dir}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_string_equal(OUT(r), "65534\n"); /* the setuid bit gave nothing */
    wr_exec_result_free(r);
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv2}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED); /* setuid-root passwd cannot read /etc/shadow */
    wr_exec_result_free(r);
    free(dir), free(bin);
}

static void test_kernel_surface(void **s)
{
    (void)s;
    const char *ptrace_probe[] = {"/usr/bin/python3", "-c",
                                  "import ctypes, os, time\n"
                                  "libc = ctypes.CDLL(None, use_errno=True)\n"
                                  "pid = os.fork()\n"
                                  "if pid == 0:\n"
                                  "  time.sleep(5); os._exit(0)\n"
                                  "rc = libc.ptrace(16, pid, 0, 0)\n"
                                  "print('attach', rc, ctypes.get_errno())\n"
                                  "print('readv', libc.process_vm_readv(pid, 0, 0, 0, 0, 0), ctypes.get_errno())\n"
                                  "os.kill(pid, 9)\n",
                                  NULL};
    const char *tiocsti[] = {"/usr/bin/python3", "-c",
                             "import os, fcntl, termios\n"
                             "m, s = os.openpty()\n"
                             "try: fcntl.ioctl(s, termios.TIOCSTI, b'x'); print('injected')\n"
                             "except OSError as e: print('TIOCSTI', e.errno)\n",
                             NULL};
    const char *unsh[] = {"/usr/bin/unshare", "-r", "/bin/true", NULL};
    const char *pers[] = {"/usr/bin/setarch", "-R", "/bin/true", NULL};
    struct {
        const char *const *argv;
        wr_exec_status status;
        const char *out, *err;
    } cases[] = {
        {ptrace_probe, WR_EXEC_SUCCESS, "attach -1 1\nreadv -1 1\n", NULL},
        {tiocsti, WR_EXEC_SUCCESS, "TIOCSTI 1\n", NULL},
        {unsh, WR_EXEC_FAILED, "", "unshare failed: Operation not permitted"},
        {pers, WR_EXEC_FAILED, "", "Operation not permitted"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx f;
        fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {(const char *const *)cases[i].argv}}, {0}});
        wr_exec_result *r = run(&f);
        if (r->status != cases[i].status || strcmp(OUT(r), cases[i].out))
            dump(r);
        assert_int_equal(r->status, cases[i].status);
        assert_string_equal(OUT(r), cases[i].out);
        if (cases[i].err)
            assert_non_null(strstr(ERR(r), cases[i].err));
        wr_exec_result_free(r);
    }
}

/* ---- argv, pipelines, sequences, secrets --------------------------------- */

static void test_argv_bytes(void **s)
{
    (void)s;
    const char *argv[] = {"/usr/bin/printf", "%s|", "a\nb", "c d", "", "$(id)", "'; rm -rf /", "\xc3\xa9", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_string_equal(OUT(r), "a\nb|c d||$(id)|'; rm -rf /|\xc3\xa9|"); /* no shell ever saw them */
    wr_exec_result_free(r);
}

static void test_pipelines(void **s)
{
    (void)s;
    const char *yes[] = {"/usr/bin/yes", NULL};
    const char *head[] = {"/usr/bin/head", "-c", "1000", NULL};
    const char *fls[] = {"/bin/false", NULL};
    const char *cat[] = {"/bin/cat", NULL};
    const char *e1[] = {"/bin/sh", "-c", "echo e1 >&2; echo data", NULL};
    const char *e2[] = {"/bin/sh", "-c", "tr a-z A-Z; echo e2 >&2", NULL};
    const char *segv[] = {"/bin/sh", "-c", "kill -SEGV $$", NULL};

    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "p", .seg = {yes, head}}, {0}});
    wr_exec_result *r = run(&f);
    if (r->status != WR_EXEC_SUCCESS)
        dump(r);
    assert_int_equal(r->status, WR_EXEC_SUCCESS); /* yes died of SIGPIPE: not a failure */
    assert_int_equal(r->out.total_bytes, 1000);
    assert_int_equal(strncmp(OUT(r), "y\ny\n", 4), 0);
    wr_exec_result_free(r);

    fx_init(&f, (fx_cmd_spec[]){{.id = "p", .seg = {e1, e2}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_string_equal(OUT(r), "DATA\n");
    assert_non_null(strstr(ERR(r), "e1\n"));
    assert_non_null(strstr(ERR(r), "e2\n"));
    wr_exec_result_free(r);

    fx_init(&f, (fx_cmd_spec[]){{.id = "p", .seg = {fls, cat}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_int_equal(r->exit_code, 1);
    assert_string_equal(r->error, "command p: pipeline segment 1 (/bin/false) exited with status 1");
    wr_exec_result_free(r);

    fx_init(&f, (fx_cmd_spec[]){{.id = "p", .seg = {cat, segv}}, {0}});
    r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_int_equal(r->exit_code, 139);
    assert_string_equal(r->error, "command p: pipeline segment 2 (/bin/sh) killed by signal SIGSEGV (exit 139)");
    wr_exec_result_free(r);
}

static void test_sequence_stops(void **s)
{
    (void)s;
    char *w = fx_subdir(g_dir, "seq", true);
    char *never = path_in(w, "never");
    const char *t[] = {"/bin/true", NULL};
    const char *fl[] = {"/bin/sh", "-c", "echo failing >&2; exit 3", NULL};
    const char *tc[] = {"/usr/bin/touch", never, NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "a", .seg = {t}},
                                {.id = "b", .seg = {fl}},
                                {.id = "c", .seg = {tc}, .cwd = w, .writes = {w}},
                                {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_int_equal(r->exit_code, 3);
    assert_int_equal(r->completed_command_ids.n, 1);
    assert_string_equal(r->completed_command_ids.v[0], "a");
    assert_string_equal(r->failed_command_id, "b");
    assert_string_equal(r->error, "command b exited with status 3");
    assert_string_equal(ERR(r), "failing\n");
    assert_false(exists(never));
    wr_exec_result_free(r);
    free(w), free(never);
}

static void test_secret_redaction(void **s)
{
    (void)s;
    wr_secret sec[] = {{"API_KEY", "zz-secret-4242"}};
    const char *argv[] = {"/bin/sh", "-c", "echo \"key=$API_KEY\"; echo \"$API_KEY\" >&2", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .secrets = {"API_KEY"}}, {0}});
    f.req.secrets = sec;
    f.req.nsecrets = 1;
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_SUCCESS);
    assert_string_equal(OUT(r), "key=[REDACTED]\n");
    assert_string_equal(ERR(r), "[REDACTED]\n");
    assert_int_equal(r->secrets_used, 1);
    assert_null(strstr(wr_json_compact(r->sandbox_profile), "zz-secret"));
    wr_exec_result_free(r);
}

int main(int argc, char **argv)
{
    g_unpriv = argc > 1 && !strcmp(argv[1], "--unpriv");
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_setup_failure),
        cmocka_unit_test(test_sigchld_ignored),
        cmocka_unit_test(test_host_files_invisible),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_write_containment),
        cmocka_unit_test(test_symlink_root_blocked),
        cmocka_unit_test(test_created_write_path),
        cmocka_unit_test(test_network_denied),
        cmocka_unit_test(test_fork_bomb),
        cmocka_unit_test(test_memory_and_tmp_limits),
        cmocka_unit_test(test_output_flood),
        cmocka_unit_test(test_output_kill_cap),
        cmocka_unit_test(test_timeout_kills_everything),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_setuid_binary),
        cmocka_unit_test(test_kernel_surface),
        cmocka_unit_test(test_argv_bytes),
        cmocka_unit_test(test_pipelines),
        cmocka_unit_test(test_sequence_stops),
        cmocka_unit_test(test_secret_redaction),
        cmocka_unit_test(test_outcome_not_from_output),
        cmocka_unit_test(test_exit_code_is_not_a_signal),
        cmocka_unit_test(test_no_zombie_pid1),
        cmocka_unit_test(test_secrets_not_in_host_environ),
        cmocka_unit_test(test_landlock),
        cmocka_unit_test(test_landlock_tcp),
        cmocka_unit_test(test_io_uring_and_sockets),
        cmocka_unit_test(test_write_under_cwd_or_read),
        cmocka_unit_test(test_dev_not_writable),
        cmocka_unit_test(test_argv0_swap_race),
        cmocka_unit_test(test_unprivileged),
    };
    /* As uid 65534 (no privilege to drop): the same sandbox, a subset. */
    const struct CMUnitTest unpriv[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_write_containment),
        cmocka_unit_test(test_kernel_surface),
        cmocka_unit_test(test_timeout_kills_everything),
        cmocka_unit_test(test_pipelines),
        cmocka_unit_test(test_setup_failure),
        cmocka_unit_test(test_outcome_not_from_output),
        cmocka_unit_test(test_exit_code_is_not_a_signal),
        cmocka_unit_test(test_no_zombie_pid1),
        cmocka_unit_test(test_secrets_not_in_host_environ),
        cmocka_unit_test(test_landlock),
        cmocka_unit_test(test_landlock_tcp),
        cmocka_unit_test(test_io_uring_and_sockets),
        cmocka_unit_test(test_write_under_cwd_or_read),
        cmocka_unit_test(test_dev_not_writable),
        cmocka_unit_test(test_argv0_swap_race),
    };
    /* Limits, kills and pipelines again through warm launchers (each
     * pipeline segment but the last forked by the command's launcher). */
    const struct CMUnitTest pooled[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_fork_bomb),
        cmocka_unit_test(test_memory_and_tmp_limits),
        cmocka_unit_test(test_timeout_kills_everything),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_pipelines),
        cmocka_unit_test(test_setup_failure),
        cmocka_unit_test(test_network_denied),
    };
    if (g_unpriv)
        return cmocka_run_group_tests_name("sandbox_unprivileged", unpriv, setup, teardown) |
               cmocka_run_group_tests_name("sandbox_unprivileged_pool", pooled, setup_pool, teardown);
    return cmocka_run_group_tests_name("sandbox", all, setup, teardown) |
           cmocka_run_group_tests_name("sandbox_pool", pooled, setup_pool, teardown);
}
