/* Helpers of the sandbox tests (test_sandbox.c, test_hostside.c): run a
 * fixture, read its captured output, look for processes on the host.
 * Include after <cmocka.h>. */
#ifndef WR_TEST_SANDBOX_UTIL_H
#define WR_TEST_SANDBOX_UTIL_H

#include "exec_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>

static char *g_dir;            /* per-run scratch directory, 0755 */
static bool g_unpriv;          /* this is the --unpriv re-run */
static wr_launch_pool *g_pool; /* the pool groups: every run takes a warm launcher */

#define TEST_POOL_SIZE 2

static int setup(void **s)
{
    (void)s;
    g_dir = fx_tmpdir();
    return g_dir ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    fx_rmtree(g_dir);
    free(g_dir);
    wr_launch_pool_free(g_pool);
    g_pool = NULL;
    return 0;
}

/* The same tests through a server's pool of warm launchers. */
static int setup_pool(void **s)
{
    wr_ctx ctx = wr_ctx_system();
    wr_error e = {0};
    if (wr_launch_pool_new(NULL, TEST_POOL_SIZE, true, &ctx, &g_pool, &e) != WR_OK) {
        fprintf(stderr, "launcher pool: %s\n", e.message);
        return -1;
    }
    return setup(s);
}

static inline wr_exec_result *run(fx *f)
{
    wr_exec_result *r = NULL;
    wr_error e = {0};
    if (!f->req.launchers)
        f->req.launchers = g_pool;
    int rc = wr_exec_run(&f->req, &r, &e);
    if (rc != WR_OK)
        print_error("wr_exec_run: %s\n", e.message);
    assert_int_equal(rc, WR_OK);
    return r;
}

/* NUL-terminated copies of the captured streams (owned by the result). */
static inline const char *out_of(wr_exec_result *r, wr_exec_stream *s)
{
    (void)r;
    unsigned char *b = realloc(s->captured, s->captured_len + 1);
    assert_non_null(b);
    b[s->captured_len] = 0;
    s->captured = b;
    return (const char *)b;
}
#define OUT(r) out_of((r), &(r)->out)
#define ERR(r) out_of((r), &(r)->err)

static inline void dump(wr_exec_result *r)
{
    print_message("status=%d exit=%d error=%s\nstdout: %s\nstderr: %s\n", r->status, r->exit_code,
                  r->error ? r->error : "-", OUT(r), ERR(r));
}

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        abort(); /* a test without memory has nothing to report */
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static inline bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* pids of the processes whose command line contains marker; only the
 * command's own (not the bwrap or warrant-init whose argv holds it too)
 * when own. */
static inline size_t pids_of(const char *marker, bool own, pid_t *out, size_t max)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t found = 0;
    while (d && (de = readdir(d)) != NULL && found < max) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char p[300], buf[512];
        snprintf(p, sizeof p, "/proc/%s/cmdline", de->d_name);
        int fd = open(p, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        for (ssize_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n > 0 ? n : 0] = 0;
        if (strstr(buf, marker) && !(own && (strstr(buf, "bwrap") || strstr(buf, "warrant-init"))))
            out[found++] = (pid_t)atoi(de->d_name);
    }
    if (d)
        closedir(d);
    return found;
}

/* Any process whose command line contains marker? */
static inline bool process_alive(const char *marker)
{
    pid_t pid;
    return pids_of(marker, false, &pid, 1) == 1;
}

/* A run on its own thread (races, runs in flight together). */
typedef struct async_run {
    fx_cmd_spec spec[2]; /* fx keeps pointers into its spec */
    fx f;
    wr_exec_result *r;
} async_run;

static inline void *async_run_main(void *arg)
{
    async_run *x = arg;
    wr_error e = {0};
    if (wr_exec_run(&x->f.req, &x->r, &e) != WR_OK)
        fprintf(stderr, "run: %s\n", e.message);
    return NULL;
}

static inline long user_processes(unsigned uid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    long n = 0;
    while (d && (de = readdir(d)) != NULL) {
        char p[300];
        struct stat st;
        snprintf(p, sizeof p, "/proc/%s", de->d_name);
        if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && stat(p, &st) == 0 && st.st_uid == uid)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* As root: re-runs this test binary with --unpriv as uid/gid 65534 (no
 * groups) and asserts that its subset passed. */
static void test_unprivileged(void **s)
{
    (void)s;
    if (geteuid() != 0 || g_unpriv)
        skip();
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = 0;
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", self, "--unpriv",
              (char *)NULL);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

#endif
