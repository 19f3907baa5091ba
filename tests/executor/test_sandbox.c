/* Adversarial tests against the real sandbox (bwrap, seccomp, rlimits,
 * privilege drop): each case runs wr_exec_run and asserts the concrete
 * outcome — status, exit code, error text, output, files on the host.
 * CI runs this as root; the 'unprivileged' case re-runs a subset as uid
 * 65534 under setpriv. */
#include "exec_fixture.h"

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

/* A program that does not exist: bwrap's own error, reported as such. */
static void test_setup_failure(void **s)
{
    (void)s;
    const char *argv[] = {"/no/such/program", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}}, {0}});
    wr_exec_result *r = run(&f);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_int_equal(r->exit_code, 1);
    assert_string_equal(
        r->error,
        "command c1 could not start: sandbox setup failed: execvp /no/such/program: No such file or directory");
    wr_exec_result_free(r);
}

/* A host process that ignores SIGCHLD (children reaped by the kernel):
 * the run ends, with a clear error rather than a hang or a false success. */
static void test_sigchld_ignored(void **s)
{
    (void)s;
    const char *argv[] = {"/bin/true", NULL};
    fx f;
    fx_init(&f, (fx_cmd_spec[]){{.id = "c1", .seg = {argv}, .timeout = 10}, {0}});
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGCHLD, &ign, &old);
    wr_exec_result *r = run(&f);
    sigaction(SIGCHLD, &old, NULL);
    assert_int_equal(r->status, WR_EXEC_FAILED);
    assert_false(r->timed_out);
    assert_non_null(strstr(r->error, "unknown status (SIGCHLD is ignored"));
    wr_exec_result_free(r);
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
    assert_string_equal(OUT(r), "tcp: ConnectionRefusedError 111\ndns: gaierror\n");
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
    };
    if (g_unpriv)
        return cmocka_run_group_tests_name("sandbox_unprivileged", unpriv, setup, teardown);
    return cmocka_run_group_tests_name("sandbox", all, setup, teardown);
}
