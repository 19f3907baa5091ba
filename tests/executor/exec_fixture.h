/* Test fixture: contracts built directly as wr_contract structs (the
 * executor's input; parsing is tested in tests/policy), temporary
 * directories the sandbox user can use, default limits. */
#ifndef WR_TEST_EXEC_FIXTURE_H
#define WR_TEST_EXEC_FIXTURE_H

#include "executor/executor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FX_MAX_CMDS 4
#define FX_MAX_SEGS 3
#define FX_MAX_LIST 8

typedef struct fx_cmd_spec {
    const char *id;
    const char *const *seg[FX_MAX_SEGS]; /* NULL-terminated argvs */
    const char *cwd;
    const char *reads[FX_MAX_LIST];
    const char *writes[FX_MAX_LIST];
    const char *env[FX_MAX_LIST];
    const char *secrets[FX_MAX_LIST];
    wr_network_mode net;
    int64_t timeout;
} fx_cmd_spec;

typedef struct fx {
    wr_contract ct;
    wr_command cmds[FX_MAX_CMDS];
    wr_strv segs[FX_MAX_CMDS][FX_MAX_SEGS];
    wr_sandbox_limits lim;
    wr_ctx ctx;
    wr_exec_request req;
} fx;

static inline wr_strv fx_strv(const char *const *list)
{
    wr_strv s = {(char **)list, 0};
    while (list && list[s.n])
        s.n++;
    return s;
}

static inline size_t fx_count(const char *const *a, size_t max)
{
    size_t n = 0;
    while (n < max && a[n])
        n++;
    return n;
}

/* Builds f from up to FX_MAX_CMDS specs (terminated by an id of NULL). */
static inline void fx_init(fx *f, const fx_cmd_spec *specs)
{
    memset(f, 0, sizeof *f);
    f->lim = (wr_sandbox_limits){.run_as = "nobody",
                                 .cpu_sec = 30,
                                 .memory_mb = 1024,
                                 .max_processes = 256,
                                 .max_file_mb = 512,
                                 .max_open_files = 256,
                                 .tmp_mb = 64,
                                 .output_cap_bytes = 1024 * 1024};
    f->ctx = wr_ctx_system();
    size_t n = 0;
    for (; n < FX_MAX_CMDS && specs[n].id; n++) {
        const fx_cmd_spec *s = &specs[n];
        wr_command *c = &f->cmds[n];
        c->id = (char *)s->id;
        size_t ns = 0;
        while (ns < FX_MAX_SEGS && s->seg[ns]) {
            f->segs[n][ns] = fx_strv((const char *const *)s->seg[ns]);
            ns++;
        }
        c->segments = f->segs[n];
        c->nsegments = ns;
        c->is_pipeline = ns > 1;
        c->cwd = (char *)(s->cwd ? s->cwd : "/usr");
        c->read_paths = (wr_strv){(char **)s->reads, fx_count(s->reads, FX_MAX_LIST)};
        c->write_paths = (wr_strv){(char **)s->writes, fx_count(s->writes, FX_MAX_LIST)};
        c->env_allow = (wr_strv){(char **)s->env, fx_count(s->env, FX_MAX_LIST)};
        c->secret_refs = (wr_strv){(char **)s->secrets, fx_count(s->secrets, FX_MAX_LIST)};
        c->network = s->net;
        c->timeout_sec = s->timeout ? s->timeout : 30;
    }
    f->ct.contract_id = "ct_test";
    f->ct.commands = f->cmds;
    f->ct.ncommands = n;
    f->req = (wr_exec_request){.contract = &f->ct, .limits = &f->lim, .cancel_fd = -1, .ctx = &f->ctx};
}

/* A fresh directory under /tmp that the sandbox user may enter (0755). */
static inline char *fx_tmpdir(void)
{
    char tmpl[] = "/tmp/wr-exec-XXXXXX";
    if (!mkdtemp(tmpl))
        return NULL;
    chmod(tmpl, 0755);
    return strdup(tmpl);
}

/* A directory the sandbox user may write: as root it belongs to nobody,
 * because commands run as the policy's run_as user. */
static inline char *fx_subdir(const char *parent, const char *name, bool writable)
{
    size_t n = strlen(parent) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        abort(); /* a test without memory has nothing to report */
    snprintf(p, n, "%s/%s", parent, name);
    mkdir(p, 0755);
    if (writable && geteuid() == 0 && chown(p, 65534, 65534) != 0)
        perror("chown");
    return p;
}

static inline void fx_write(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs(content, fp);
        fclose(fp);
    }
}

static inline void fx_rmtree(const char *dir)
{
    if (!dir || strncmp(dir, "/tmp/wr-exec-", 13) != 0)
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

#endif
