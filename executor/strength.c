/* Isolation strength: a 0-100 score of one command's sandbox, computed
 * from its recorded plan (the JSON whose hash is the receipt's
 * sandbox_profile_sha256), so an auditor can recompute it from the
 * profile alone. The rubric is docs/isolation.md; each factor below is one
 * row of it. A run scores as its weakest command. */
#include "executor/executor_internal.h"

#include <string.h>

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v = get(o, key);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

static int64_t get_int(json_object *o, const char *key)
{
    json_object *v = get(o, key);
    return json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
}

static bool has_string(json_object *arr, const char *s)
{
    for (size_t i = 0; json_object_is_type(arr, json_type_array) && i < json_object_array_length(arr); i++)
        if (!strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), s))
            return true;
    return false;
}

/* Each rubric row: name, maximum, and the points this plan earns. */
typedef struct factor {
    const char *name;
    int max;
    int (*points)(json_object *plan);
} factor;

static int f_namespaces(json_object *plan)
{
    static const struct {
        const char *ns;
        int pts;
    } w[] = {{"user", 3}, {"mount", 3}, {"pid", 3}, {"ipc", 2}, {"uts", 2}, {"cgroup", 2}};
    json_object *u = get(plan, "unshare");
    int p = 0;
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        p += has_string(u, w[i].ns) ? w[i].pts : 0;
    return p;
}

#define UID_DEDICATED 15 /* a uid of its own: dynamic, or a dedicated run_as */
#define UID_SHARED    8  /* nobody: shared with whatever daemons run as it */
#define UID_CALLER    5  /* unprivileged: the caller's own uid and its files */

static int f_uid(json_object *plan)
{
    json_object *u = get(plan, "user");
    if (get_int(u, "uid") == 0)
        return 0;
    if (get(u, "dynamic") && json_object_get_boolean(get(u, "dynamic")))
        return UID_DEDICATED;
    if (!json_object_get_boolean(get(u, "dropped_from_root")))
        return UID_CALLER;
    return strcmp(get_str(u, "name"), "nobody") ? UID_DEDICATED : UID_SHARED;
}

static int f_privileges(json_object *plan)
{
    json_object *caps = get(plan, "capability_bounding_set");
    return json_object_get_boolean(get(plan, "no_new_privs")) && json_object_is_type(caps, json_type_array) &&
                   json_object_array_length(caps) == 0
               ? 5
               : 0;
}

static int f_seccomp(json_object *plan)
{
    json_object *sc = get(plan, "seccomp");
    const char *profile = get_str(sc, "profile");
    int p = !strcmp(profile, WR_SECCOMP_STRICT_ID) ? 12 : *profile ? 8 : 0;
    return p + (!strcmp(get_str(sc, "io_uring"), "ENOSYS") ? 3 : 0);
}

static int f_cgroup(json_object *plan)
{
    json_object *cg = get(plan, "cgroup");
    if (!strcmp(get_str(cg, "mode"), "none") || !*get_str(cg, "mode"))
        return 0;
    return (get_int(cg, "memory_bytes") > 0 ? 6 : 0) + (get_int(cg, "pids_max") > 0 ? 6 : 0) +
           (*get_str(cg, "kill") ? 3 : 0);
}

#define LANDLOCK_NET_ABI 4 /* TCP bind/connect rules */

static int f_landlock(json_object *plan)
{
    int64_t abi = get_int(plan, "landlock_abi");
    return abi >= LANDLOCK_NET_ABI ? 10 : abi > 0 ? 7 : 0;
}

static int f_network(json_object *plan)
{
    const char *n = get_str(plan, "network");
    return !strcmp(n, "deny") ? 10 : !strcmp(n, "allowlisted") ? 4 : 0;
}

static int f_readonly_system(json_object *plan)
{
    json_object *ops = get(plan, "ops");
    bool frozen = false, system_rw = false;
    for (size_t i = 0; json_object_is_type(ops, json_type_array) && i < json_object_array_length(ops); i++) {
        json_object *op = json_object_array_get_idx(ops, i);
        const char *kind = get_str(op, "op");
        if (!strcmp(kind, "remount-ro") && !strcmp(get_str(op, "dest"), "/"))
            frozen = true;
        if (!strcmp(kind, "bind") && !strcmp(get_str(op, "origin"), "system"))
            system_rw = true;
    }
    return (frozen ? 3 : 0) + (system_rw ? 0 : 2);
}

static int f_write_paths(json_object *plan)
{
    json_object *ops = get(plan, "ops");
    size_t n = 0;
    for (size_t i = 0; json_object_is_type(ops, json_type_array) && i < json_object_array_length(ops); i++)
        n += !strcmp(get_str(json_object_array_get_idx(ops, i), "op"), "bind");
    return n == 0 ? 10 : n == 1 ? 7 : n <= 3 ? 5 : 3;
}

static const factor rubric[] = {
    {"namespaces", 15, f_namespaces},   {"uid", 15, f_uid},
    {"privileges", 5, f_privileges},    {"seccomp", 15, f_seccomp},
    {"cgroup", 15, f_cgroup},           {"landlock", 10, f_landlock},
    {"network", 10, f_network},         {"read_only_system", 5, f_readonly_system},
    {"write_paths", 10, f_write_paths},
};

int wr_exec_strength(json_object *plan, json_object **breakdown)
{
    int total = 0;
    json_object *b = breakdown ? json_object_new_object() : NULL;
    for (size_t i = 0; i < sizeof rubric / sizeof *rubric; i++) {
        int p = rubric[i].points(plan);
        total += p;
        if (b) {
            json_object *row = json_object_new_object();
            json_object_object_add(row, "points", json_object_new_int(p));
            json_object_object_add(row, "max", json_object_new_int(rubric[i].max));
            json_object_object_add(b, rubric[i].name, row);
        }
    }
    if (breakdown)
        *breakdown = b;
    return total;
}

json_object *wr_exec_isolation(json_object *profile, int *score_out)
{
    json_object *cmds = get(profile, "commands"), *weakest = NULL;
    int score = 100;
    for (size_t i = 0; json_object_is_type(cmds, json_type_array) && i < json_object_array_length(cmds); i++) {
        json_object *plan = get(json_object_array_get_idx(cmds, i), "plan");
        int s = wr_exec_strength(plan, NULL);
        if (!weakest || s < score) {
            score = s;
            weakest = plan;
        }
    }
    if (!weakest)
        score = 0;
    json_object *o = json_object_new_object(), *cg = get(weakest, "cgroup");
    json_object_object_add(o, "score", json_object_new_int(score));
    json_object_object_add(o, "cgroup", json_object_new_string(*get_str(cg, "mode") ? get_str(cg, "mode") : "none"));
    json_object *lim = json_object_new_object();
    if (cg && strcmp(get_str(cg, "mode"), "none")) {
        json_object_object_add(lim, "memory_bytes", json_object_new_int64(get_int(cg, "memory_bytes")));
        json_object_object_add(lim, "swap_limited",
                               json_object_new_boolean(json_object_get_boolean(get(cg, "swap_limited"))));
        json_object_object_add(lim, "pids_max", json_object_new_int64(get_int(cg, "pids_max")));
        json_object_object_add(lim, "cpu_percent", json_object_new_int64(get_int(cg, "cpu_percent")));
    } else {
        /* the fallback: only per-process rlimits hold */
        json_object *rl = get(weakest, "rlimits");
        json_object_object_add(lim, "as_bytes", json_object_new_int64(get_int(rl, "as_bytes")));
        json_object_object_add(lim, "nproc", json_object_new_int64(get_int(rl, "nproc")));
    }
    json_object_object_add(o, "limits", lim);
    json_object_object_add(o, "landlock_abi", json_object_new_int64(get_int(weakest, "landlock_abi")));
    if (score_out)
        *score_out = score;
    return o;
}

/* The best a contract can get under these limits on this host: one
 * command, no declared paths, no network. */
json_object *wr_exec_host_isolation(const wr_sandbox_limits *lim, const char *cgroup_root, const wr_ctx *ctx,
                                    size_t *reaped, wr_error *err)
{
    char *argv[] = {"/bin/true", NULL};
    wr_strv seg = {argv, 1};
    wr_command cmd = {.id = "probe", .segments = &seg, .nsegments = 1, .cwd = "/usr", .network = WR_NET_DENY};
    wr_contract ct = {.contract_id = "probe", .commands = &cmd, .ncommands = 1};
    wr_exec_request req = {.contract = &ct, .limits = lim, .cancel_fd = -1, .cgroup_root = cgroup_root, .ctx = ctx};
    wr_plan p;
    int rc = wr_plan_build(&req, 0, false, &p, err);
    if (rc != WR_OK)
        return NULL;
    json_object *plan = wr_plan_to_json(&p), *o = json_object_new_object();
    if (reaped)
        wr_cg_reap_orphans(&p.cg, reaped);
    wr_plan_free(&p);
    json_object *breakdown = NULL, *cg = NULL, *abi = NULL;
    json_object_object_add(o, "best_score", json_object_new_int(wr_exec_strength(plan, &breakdown)));
    json_object_object_add(o, "breakdown", breakdown);
    json_object_object_get_ex(plan, "cgroup", &cg);
    json_object_object_get_ex(plan, "landlock_abi", &abi);
    json_object_object_add(o, "cgroup", json_object_get(cg));
    json_object_object_add(o, "landlock_abi", json_object_get(abi));
    json_object_object_add(o, "min_strength", json_object_new_int64(lim ? lim->min_strength : 0));
    json_object_object_add(o, "rubric", json_object_new_string("docs/isolation.md"));
    json_object_put(plan);
    return o;
}
