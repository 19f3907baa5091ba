/* capsules — running a capsule through the gate: a private, read-only,
 * content-addressed unpacked copy; a contract built from the manifest; the
 * provenance the receipt records; the comparison of a re-run's products. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capsules/capsules_internal.h"

#define DEFAULT_TIMEOUT_SEC 60
#define DEFAULT_AGENT       "warrant-capsule"
#define CONTRACT_RISK       "medium" /* someone else's code: never "low" */
#define ID_HEX              16       /* sha256 digits in ids: enough to tell capsules apart */

void wr_capsule_outcome_clear(wr_capsule_outcome *o)
{
    wr_run_outcome_clear(&o->run);
    wr_strv_free(&o->differences);
    memset(o, 0, sizeof *o);
}

/* ---- private directories ------------------------------------------------- */

/* The user the sandbox runs as, when we are root: it must be able to
 * write the output directory. -1 when unprivileged (it runs as us). */
static int sandbox_owner(wr_gate *g, uid_t *uid, gid_t *gid, wr_error *err)
{
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (geteuid() != 0)
        return WR_OK;
    const wr_policy *p = wr_gate_policy_acquire(g);
    const char *name = p->sandbox.run_as ? p->sandbox.run_as : "nobody";
    struct passwd *pw = getpwnam(name);
    int rc = WR_OK;
    if (!pw || pw->pw_uid == 0)
        rc = wr_errorf(err, WR_E_INVALID, "", "sandbox user %s is unknown or root", name);
    else {
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
    }
    wr_gate_policy_release(g, p);
    return rc;
}

/* $TMPDIR/warrant-capsules-UID holds the unpacked copies and the fresh
 * output directories, out of other users' reach: ours, not a symlink, 0700.
 * As root the sandbox user's group may traverse it (0710): bwrap, running
 * as that user, must reach the paths it binds. */
static int work_dir(wr_gate *g, char out[PATH_MAX], wr_error *err)
{
    char dir[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/warrant-capsules-%u", tmp && tmp[0] == '/' ? tmp : "/tmp", (unsigned)geteuid());
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return wr_errorf(err, WR_E_IO, "", "cannot create %s: %s", dir, strerror(errno));
    uid_t uid;
    gid_t gid;
    int rc = sandbox_owner(g, &uid, &gid, err);
    if (rc != WR_OK)
        return rc;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != geteuid())
        rc = wr_errorf(err, WR_E_DENIED, "", "%s is not a directory of uid %u (or is a symlink)", dir,
                       (unsigned)geteuid());
    else if (gid != (gid_t)-1 ? fchown(fd, (uid_t)-1, gid) != 0 || fchmod(fd, 0710) != 0 : fchmod(fd, 0700) != 0)
        rc = wr_errorf(err, WR_E_IO, "", "cannot make %s private: %s", dir, strerror(errno));
    else if (!realpath(dir, out))
        rc = wr_errorf(err, WR_E_IO, "", "cannot resolve %s: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    bool empty = d != NULL;
    while (empty && (e = readdir(d)) != NULL)
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return empty;
}

/* An output directory starts empty, so that the products are exactly what
 * the run wrote. A missing one is created; a fresh one is private. */
static int prepare_out(wr_gate *g, const char *given, const char *work, char out[PATH_MAX], wr_error *err)
{
    char path[PATH_MAX];
    if (given)
        snprintf(path, sizeof path, "%s", given);
    else if (snprintf(path, sizeof path, "%s/out-XXXXXX", work) >= (int)sizeof path || !mkdtemp(path))
        return wr_errorf(err, WR_E_IO, "", "cannot create an output directory in %s: %s", work, strerror(errno));
    bool created = !given;
    if (given && mkdir(path, 0755) == 0)
        created = true;
    else if (given && errno != EEXIST)
        return wr_errorf(err, WR_E_IO, "", "cannot create %s: %s", path, strerror(errno));
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return wr_errorf(err, WR_E_INVALID, "", "output %s is not a directory (or is a symlink)", path);
    if (!created && !dir_empty(path))
        return wr_errorf(err, WR_E_INVALID, "", "output %s is not empty: products must be what the run wrote", path);
    uid_t uid;
    gid_t gid;
    int rc = sandbox_owner(g, &uid, &gid, err);
    if (rc == WR_OK && created && uid != (uid_t)-1 && (chown(path, uid, gid) != 0 || chmod(path, 0755) != 0))
        rc = wr_errorf(err, WR_E_IO, "", "cannot hand %s to the sandbox user: %s", path, strerror(errno));
    if (rc == WR_OK && !realpath(path, out))
        rc = wr_errorf(err, WR_E_IO, "", "cannot resolve %s: %s", path, strerror(errno));
    return rc;
}

/* A cached copy must hold exactly the manifest's files: it is only ours
 * (0700 work dir), but checking costs one hash pass and rules out a copy
 * half-removed or altered by hand. */
static int check_copy(const char *dir, const wr_capsule *c, wr_error *err)
{
    wr_capsule_file *files = NULL;
    size_t n = 0;
    int rc = wr__capsule_scan(dir, &files, &n, err);
    for (size_t i = 0; rc == WR_OK && i < c->nfiles; i++)
        if (i >= n || strcmp(files[i].path, c->files[i].path) != 0 || strcmp(files[i].sha256, c->files[i].sha256) ||
            files[i].executable != c->files[i].executable)
            rc = wr_errorf(err, WR_E_CONFLICT, "", "the unpacked copy %s differs from the capsule at %s; remove it",
                           dir, c->files[i].path);
    if (rc == WR_OK && n != c->nfiles)
        rc = wr_errorf(err, WR_E_CONFLICT, "", "the unpacked copy %s holds extra files; remove it", dir);
    wr__capsule_files_free(files, n);
    return rc;
}

static void make_read_only(const char *dir)
{
    char *paths[] = {(char *)dir, NULL};
    FTS *f = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
    FTSENT *ent;
    while (f && (ent = fts_read(f)) != NULL)
        if (ent->fts_info == FTS_DP)
            chmod(ent->fts_accpath, 0555);
    if (f)
        fts_close(f);
}

/* Verifies while unpacking into a scratch directory, then moves the copy to
 * WORK/SHA256 (content-addressed: the same capsule gives the same contract,
 * so an approval given for it applies to the next run too). */
static int unpack(const wr_capsule_run_opts *o, const char *work, wr_capsule **c, char dir[PATH_MAX], wr_error *err)
{
    char scratch[PATH_MAX], tree[PATH_MAX];
    if (snprintf(scratch, sizeof scratch, "%s/.unpack-XXXXXX", work) >= (int)sizeof scratch || !mkdtemp(scratch))
        return wr_errorf(err, WR_E_IO, "", "cannot create a directory in %s: %s", work, strerror(errno));
    if (snprintf(tree, sizeof tree, "%s/capsule", scratch) >= (int)sizeof tree ||
        snprintf(dir, PATH_MAX, "%s/", work) + WR_SHA256_HEX_LEN >= PATH_MAX) {
        wr__capsule_remove_tree(scratch);
        return wr_errorf(err, WR_E_LIMIT, "", "work directory path %s is too long", work);
    }
    int rc = wr_capsule_open(o->capsule_path, o->trusted_pk, tree, c, err);
    if (rc == WR_OK) {
        strcat(dir, (*c)->sha256);
        /* Read-only after the move: moving a directory to another parent
         * needs write permission on it. */
        if (rename(tree, dir) == 0)
            make_read_only(dir);
        else if (errno == EEXIST || errno == ENOTEMPTY)
            rc = check_copy(dir, *c, err);
        else
            rc = wr_errorf(err, WR_E_IO, "", "cannot create %s: %s", dir, strerror(errno));
    }
    wr__capsule_remove_tree(scratch);
    return rc;
}

/* ---- the contract ---------------------------------------------------------- */

/* {capsule} and {out} in an argument stand for the two directories. No
 * cap here: the contract's own limit on argument length applies after. */
static json_object *expand_argv(json_object *argv, const char *capsule, const char *out)
{
    static const char k_capsule[] = "{capsule}", k_out[] = "{out}";
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(argv); i++) {
        const char *a = json_object_get_string(json_object_array_get_idx(argv, i));
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        while (f && *a) {
            if (!strncmp(a, k_capsule, sizeof k_capsule - 1)) {
                fputs(capsule, f);
                a += sizeof k_capsule - 1;
            } else if (!strncmp(a, k_out, sizeof k_out - 1)) {
                fputs(out, f);
                a += sizeof k_out - 1;
            } else {
                fputc(*a++, f);
            }
        }
        if (f)
            fclose(f);
        json_object_array_add(arr, json_object_new_string(buf ? buf : ""));
        free(buf);
    }
    return arr;
}

static json_object *command_json(const char *id, json_object *argv, const char *capsule, const char *out,
                                 json_object *m)
{
    json_object *net = json_object_object_get(m, "network");
    const char *mode = net ? json_object_get_string(json_object_object_get(net, "mode")) : "deny";
    json_object *t = json_object_object_get(m, "timeout_sec");
    char read_root[PATH_MAX + 3];
    snprintf(read_root, sizeof read_root, "%s/**", capsule);
    json_object *cmd = json_object_new_object(), *exec = json_object_new_object();
    json_object *reads = json_object_new_array(), *writes = json_object_new_array();
    json_object_object_add(cmd, "id", json_object_new_string(id));
    json_object_object_add(exec, "argv", expand_argv(argv, capsule, out));
    json_object_object_add(cmd, "exec", exec);
    json_object_object_add(cmd, "cwd", json_object_new_string(capsule));
    json_object_array_add(reads, json_object_new_string(read_root));
    json_object_array_add(writes, json_object_new_string(out));
    json_object_object_add(cmd, "read_paths", reads);
    json_object_object_add(cmd, "write_paths", writes);
    json_object_object_add(cmd, "network", json_object_new_string(mode));
    json_object_object_add(cmd, "env_allow", json_object_new_array());
    json_object_object_add(cmd, "secret_refs", json_object_new_array());
    json_object_object_add(cmd, "timeout_sec",
                           json_object_new_int64(t ? json_object_get_int64(t) : DEFAULT_TIMEOUT_SEC));
    json_object_object_add(cmd, "proposed_effect_type",
                           json_object_new_string(strcmp(mode, "deny") ? "fetch_external" : "transform_local"));
    return cmd;
}

/* Everything in it follows from the capsule, the two directories and who
 * runs it: the same run asked twice is the same contract (same sha256). */
static json_object *contract_json(const wr_capsule *c, const char *capsule, const char *out, const char *agent)
{
    json_object *m = c->manifest, *steps = json_object_object_get(m, "steps");
    json_object *ct = json_object_new_object(), *actor = json_object_new_object(), *cmds = json_object_new_array();
    char id[128], text[512];
    snprintf(id, sizeof id, "capsule-%s-%.*s", c->name, ID_HEX, c->sha256);
    json_object_object_add(ct, "version", json_object_new_string("csc.v0.1"));
    json_object_object_add(ct, "contract_id", json_object_new_string(id));
    snprintf(text, sizeof text, "run capsule %s %s (sha256 %s)", c->name, c->version, c->sha256);
    json_object_object_add(ct, "intent", json_object_new_string(text));
    struct passwd *pw = getpwuid(geteuid());
    json_object_object_add(actor, "agent_id", json_object_new_string(agent ? agent : DEFAULT_AGENT));
    json_object_object_add(actor, "session_id", json_object_new_string(id));
    json_object_object_add(actor, "initiating_user", json_object_new_string(pw ? pw->pw_name : "unknown"));
    json_object_object_add(actor, "delegation_scope", json_object_new_string("capsule"));
    json_object_object_add(ct, "actor", actor);
    json_object_array_add(
        cmds, command_json(WR_CAPSULE_ENTRYPOINT_ID, json_object_object_get(m, "entrypoint"), capsule, out, m));
    for (size_t i = 0; steps && i < json_object_array_length(steps); i++) {
        json_object *s = json_object_array_get_idx(steps, i);
        json_object_array_add(cmds, command_json(json_object_get_string(json_object_object_get(s, "id")),
                                                 json_object_object_get(s, "argv"), capsule, out, m));
    }
    json_object_object_add(ct, "commands", cmds);
    json_object_object_add(ct, "risk_class", json_object_new_string(CONTRACT_RISK));
    json_object_object_add(ct, "approval_mode", json_object_new_string("policy_only"));
    json_object_object_add(ct, "justification", json_object_new_string(text));
    return ct;
}

/* ---- provenance -------------------------------------------------------------- */

typedef struct provenance_ctx {
    const char *out_dir;
    wr_gate_digest *products; /* paths point into the exec result's artifacts */
    size_t nproducts;
    json_object *expected; /* the original's products, or NULL */
    wr_capsule_outcome *outcome;
    bool collected;
    int rc;
} provenance_ctx;

static const char *expected_at(json_object *arr, size_t i, const char *key)
{
    return json_object_get_string(json_object_object_get(json_object_array_get_idx(arr, i), key));
}

/* The run chose its file names: shown escaped, so a name holding a newline
 * cannot forge a line such as "reproduced". */
static int add_difference(wr_strv *d, const char *what, const char *path)
{
    char line[WR__SHOWN_MAX + 16], shown[WR__SHOWN_MAX];
    snprintf(line, sizeof line, "%s %s", what, wr__capsule_shown(path, shown));
    return wr_strv_push(d, line);
}

/* Both lists are sorted by path: one merge pass names every difference. */
static int compare_products(provenance_ctx *pc)
{
    json_object *exp = pc->expected;
    size_t ne = json_object_array_length(exp), i = 0, j = 0;
    wr_strv *d = &pc->outcome->differences;
    int rc = WR_OK;
    while (rc == WR_OK && (i < ne || j < pc->nproducts)) {
        int c = i == ne ? 1 : j == pc->nproducts ? -1 : strcmp(expected_at(exp, i, "path"), pc->products[j].path);
        if (c < 0)
            rc = add_difference(d, "missing", expected_at(exp, i++, "path"));
        else if (c > 0)
            rc = add_difference(d, "extra", pc->products[j++].path);
        else {
            if (strcmp(expected_at(exp, i, "sha256"), pc->products[j].sha256) != 0)
                rc = add_difference(d, "differs", pc->products[j].path);
            i++, j++;
        }
    }
    return rc;
}

static int cmp_product(const void *a, const void *b)
{
    return strcmp(((const wr_gate_digest *)a)->path, ((const wr_gate_digest *)b)->path);
}

/* The files the run wrote under the output directory, relative to it. The
 * directory started empty, so "created or modified" is "everything". */
static void collect_products(void *ud, const wr_gate_digest *written, size_t n, bool incomplete, wr_gate_provenance *p)
{
    provenance_ctx *pc = ud;
    size_t root = strlen(pc->out_dir);
    pc->products = calloc(n + 1, sizeof *pc->products);
    if (!pc->products) {
        pc->rc = WR_E_NOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *a = written[i].path;
        if (!strncmp(a, pc->out_dir, root) && a[root] == '/')
            pc->products[pc->nproducts++] = (wr_gate_digest){a + root + 1, written[i].sha256};
    }
    qsort(pc->products, pc->nproducts, sizeof *pc->products, cmp_product);
    p->products = pc->products;
    p->nproducts = pc->nproducts;
    pc->collected = true;
    if (incomplete)
        pc->rc = wr_strv_push(&pc->outcome->differences, "incomplete: more output files than can be recorded");
    if (pc->expected && pc->rc == WR_OK)
        pc->rc = compare_products(pc);
    p->reproduced = pc->rc == WR_OK && pc->outcome->differences.n == 0;
}

static int original_products(json_object *original, const wr_capsule *c, json_object **out, wr_error *err)
{
    json_object *cap = json_object_object_get(original, "capsule");
    const char *sha = cap ? json_object_get_string(json_object_object_get(cap, "sha256")) : NULL;
    if (!sha)
        return wr_errorf(err, WR_E_INVALID, "", "the receipt is not of a capsule run");
    if (strcmp(sha, c->sha256) != 0)
        return wr_errorf(err, WR_E_INVALID, "", "the receipt is of capsule %.64s, not of this one (%s)", sha,
                         c->sha256);
    if (!json_object_object_get_ex(original, "products", out))
        return wr_errorf(err, WR_E_INVALID, "",
                         "the original run recorded no products (it never ran): nothing to compare");
    return WR_OK;
}

int wr_capsule_run(wr_gate *g, const wr_capsule_run_opts *o, wr_capsule_outcome *out, wr_error *err)
{
    memset(out, 0, sizeof *out);
    char work[PATH_MAX], dir[PATH_MAX];
    wr_capsule *c = NULL;
    wr_contract *ct = NULL;
    json_object *expected = NULL;
    wr_gate_digest *materials = NULL;
    provenance_ctx pc = {.outcome = out};
    int rc = work_dir(g, work, err);
    if (rc == WR_OK)
        rc = unpack(o, work, &c, dir, err);
    if (rc == WR_OK && o->original)
        rc = original_products(o->original, c, &expected, err);
    if (rc == WR_OK)
        rc = prepare_out(g, o->out_dir, work, out->out_dir, err);
    if (rc == WR_OK) {
        json_object *cj = contract_json(c, dir, out->out_dir, o->agent_id);
        rc = wr_contract_from_json(wr_gate_contracts(g), cj, &ct, err);
        json_object_put(cj);
        if (rc != WR_OK)
            wr_error_prefix(err, "the contract built from the manifest");
    }
    if (rc == WR_OK && !(materials = calloc(c->nfiles ? c->nfiles : 1, sizeof *materials)))
        rc = wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    if (rc == WR_OK) {
        for (size_t i = 0; i < c->nfiles; i++)
            materials[i] = (wr_gate_digest){c->files[i].path, c->files[i].sha256};
        wr_gate_provenance prov = {
            .capsule_name = c->name,
            .capsule_version = c->version,
            .capsule_sha256 = c->sha256,
            .signer_key_id = c->is_signed ? c->signer_key_id : NULL,
            .materials = materials,
            .nmaterials = c->nfiles,
            .reproduces =
                o->original ? json_object_get_string(json_object_object_get(o->original, "execution_id")) : NULL,
        };
        json_object *mem = json_object_object_get(c->manifest, "memory_mb");
        pc.out_dir = out->out_dir;
        pc.expected = expected;
        wr_run_request req = {
            .contract = ct,
            .client_identity = o->client_identity,
            .approvals = o->approvals,
            .napprovals = o->napprovals,
            .wait_for_approval_ms = o->wait_for_approval_ms,
            .on_output = o->on_output,
            .ud = o->ud,
            .cancel_fd = o->cancel_fd,
            .memory_mb = mem ? json_object_get_int64(mem) : 0,
            .provenance = &prov,
            .collect_products = collect_products,
            .provenance_ud = &pc,
        };
        rc = wr_gate_run(g, &req, &out->run, err);
    }
    if (rc == WR_OK && pc.rc != WR_OK)
        rc = wr_errorf(err, pc.rc, "", "out of memory while recording products");
    if (rc == WR_OK && o->original && !pc.collected) {
        char line[128];
        snprintf(line, sizeof line, "not run: the re-run was %s", out->run.status);
        rc = wr_strv_push(&out->differences, line);
    }
    if (rc == WR_OK)
        out->reproduced = o->original && pc.collected && out->differences.n == 0;
    /* A fresh directory for a run that never started would only be litter. */
    if (!o->out_dir && out->out_dir[0] && !pc.collected && rmdir(out->out_dir) == 0)
        out->out_dir[0] = 0;
    free(pc.products);
    free(materials);
    wr_contract_free(ct);
    wr_capsule_free(c);
    return rc;
}
