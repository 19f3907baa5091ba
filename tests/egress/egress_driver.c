/* Runs one command in a real sandbox for the egress tests and prints the
 * result as JSON:
 *
 *   egress_driver deny|allowlisted|full [--allow ENTRY]... [--hosts FILE]
 *                 [--read PATH]... [--write PATH]... [--cwd DIR] [--timeout SEC]
 *                 -- ARGV... [--pipe ARGV...]
 *
 * "--pipe" starts the next pipeline segment (up to FX_MAX_SEGS).
 * --hosts is the egress proxy's test resolver (wr_exec_request's
 * egress_test_hosts, which only tests set). Output: {"status","exit_code",
 * "error","stdout","stderr","network_used","network","plan","cpu_ms"};
 * cpu_ms is this process's CPU time, all threads (the executor's
 * supervision and the egress proxy), not the sandbox's (bench/egress). */
#include "../executor/exec_fixture.h"

#include <sys/resource.h>

#define MAX_ARGS 32

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: egress_driver MODE [options] -- ARGV...\n");
        return 2;
    }
    const char *allow[MAX_ARGS] = {0}, *reads[FX_MAX_LIST] = {0}, *writes[FX_MAX_LIST] = {0};
    const char *hosts = NULL, *cwd = "/usr";
    int64_t timeout = 0;
    size_t nallow = 0, nreads = 0, nwrites = 0;
    int i = 2;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (i + 1 >= argc)
            return 2;
        if (!strcmp(argv[i], "--allow") && nallow < MAX_ARGS)
            allow[nallow++] = argv[++i];
        else if (!strcmp(argv[i], "--hosts"))
            hosts = argv[++i];
        else if (!strcmp(argv[i], "--read") && nreads + 1 < FX_MAX_LIST)
            reads[nreads++] = argv[++i];
        else if (!strcmp(argv[i], "--write") && nwrites + 1 < FX_MAX_LIST)
            writes[nwrites++] = argv[++i];
        else if (!strcmp(argv[i], "--cwd"))
            cwd = argv[++i];
        else if (!strcmp(argv[i], "--timeout"))
            timeout = strtoll(argv[++i], NULL, 10);
        else
            return 2;
    }
    if (i + 1 >= argc)
        return 2;
    wr_network_mode mode = !strcmp(argv[1], "full")          ? WR_NET_FULL
                           : !strcmp(argv[1], "allowlisted") ? WR_NET_ALLOWLISTED
                                                             : WR_NET_DENY;
    fx_cmd_spec spec[2] = {
        {.id = "c1", .seg = {(const char *const *)&argv[i + 1]}, .cwd = cwd, .net = mode, .timeout = timeout}};
    for (int k = i + 1, s = 1; k < argc && s < FX_MAX_SEGS; k++)
        if (!strcmp(argv[k], "--pipe")) {
            argv[k] = NULL; /* ends the previous segment's argv */
            spec[0].seg[s++] = (const char *const *)&argv[k + 1];
        }
    memcpy(spec[0].reads, reads, sizeof reads);
    memcpy(spec[0].writes, writes, sizeof writes);
    fx f;
    fx_init(&f, spec);
    wr_strv allowed = {(char **)allow, nallow};
    f.req.allowed_egress_hosts = &allowed;
    f.req.egress_test_hosts = hosts;

    wr_error err = {0};
    wr_exec_result *r = NULL;
    json_object *plan = NULL;
    if (wr_exec_plan_json(&f.req, 0, &plan, &err) != WR_OK || wr_exec_run(&f.req, &r, &err) != WR_OK) {
        fprintf(stderr, "egress_driver: %s\n", err.message);
        return 1;
    }
    static const char *const status[] = {"success", "failed", "blocked"};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string(status[r->status]));
    json_object_object_add(o, "exit_code", json_object_new_int(r->exit_code));
    json_object_object_add(o, "error", r->error ? json_object_new_string(r->error) : NULL);
    json_object_object_add(o, "stdout",
                           json_object_new_string_len((const char *)r->out.captured, (int)r->out.captured_len));
    json_object_object_add(o, "stderr",
                           json_object_new_string_len((const char *)r->err.captured, (int)r->err.captured_len));
    json_object_object_add(o, "network_used", json_object_new_boolean(r->network_used));
    json_object_object_add(o, "network", json_object_get(r->network));
    json_object_object_add(o, "plan", plan);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    json_object_object_add(o, "cpu_ms",
                           json_object_new_int64((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                                                 (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    wr_exec_result_free(r);
    return 0;
}
