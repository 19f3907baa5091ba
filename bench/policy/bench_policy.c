/* Policy decisions per CPU second under the bundled default pack, for a few
 * argv (the tool's grammar parses each), and the cost of loading a pack
 * (parsed and checked; its examples ran at build time, its grammars are
 * built on the first argv naming their tool). CPU time of this process, so that other
 * load on a shared machine does not count; the MCP figure (bench/mcp) adds
 * JSON-RPC, schema validation and I/O around each decision.
 * usage: bench_policy [ITERATIONS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policies/policies.h"

static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static wr_contract *contract(const wr_contracts *cs, const char *argv_json)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"version\":\"csc.v0.1\",\"contract_id\":\"bench-policy-1\",\"intent\":\"bench\","
             "\"actor\":{\"agent_id\":\"a\",\"session_id\":\"s\",\"initiating_user\":\"u\",\"delegation_scope\":\"d\"},"
             "\"commands\":[{\"id\":\"cmd_1\",\"exec\":{\"argv\":%s},\"cwd\":\"/workspace\","
             "\"read_paths\":[\"/workspace/**\"],\"write_paths\":[],\"network\":\"deny\",\"env_allow\":[],"
             "\"secret_refs\":[],\"timeout_sec\":10,\"proposed_effect_type\":\"observe\"}],"
             "\"risk_class\":\"low\",\"approval_mode\":\"policy_only\",\"justification\":\"j\"}",
             argv_json);
    wr_error err = {0};
    wr_contract *ct = NULL;
    if (wr_contract_parse(cs, text, strlen(text), &ct, &err)) {
        fprintf(stderr, "bench_policy: %s: %s\n", argv_json, err.message);
        exit(1);
    }
    return ct;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    static const char *const cases[] = {
        "[\"cat\",\"hello.txt\"]",
        "[\"git\",\"log\",\"--oneline\",\"-5\",\"--\",\"src\"]",
        "[\"python3\",\"tools/report.py\",\"-c\",\"cfg.yml\"]",
        "[\"find\",\".\",\"-name\",\"*.c\",\"-type\",\"f\"]",
        "[\"sort\",\"--compress-prog=sh\",\"f\"]",
    };
    wr_error err = {0};
    wr_policy *p = NULL;
    int loads = n / 1000 > 20 ? n / 1000 : 20;
    double t0 = cpu_ms();
    for (int i = 0; i < loads; i++) {
        wr_policy_free(p);
        if (wr_policy_load_bundled("default", &p, &err)) {
            fprintf(stderr, "bench_policy: %s\n", err.message);
            return 1;
        }
    }
    printf("load the default pack                          %8.3f ms\n", (cpu_ms() - t0) / loads);
    wr_contracts *cs = wr_contracts_new(&err);
    wr_ctx ctx = wr_ctx_system();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        wr_contract *ct = contract(cs, cases[c]);
        double t = cpu_ms();
        const char *kind = "";
        for (int i = 0; i < n; i++) {
            wr_decision *d = NULL;
            if (wr_policy_evaluate(p, ct, &ctx, &d, &err))
                return 1;
            kind = wr_decision_kind_name(d->kind);
            wr_decision_free(d);
        }
        double ms = cpu_ms() - t;
        printf("%-40s %-6s %8.0f decisions/s\n", cases[c], kind, n / (ms / 1e3));
        wr_contract_free(ct);
    }
    wr_contracts_free(cs);
    wr_policy_free(p);
    return 0;
}
