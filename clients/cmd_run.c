/* warrant run — a contract through the gate locally: policy, approvals,
 * sandbox, signed receipt on stdout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/cli.h"
#include "gate/gate.h"

#define MAX_APPROVAL_FILES 16

extern char **environ;

/* A person at a terminal sees the command's output as it happens; stdout
 * stays reserved for the receipt so scripts can parse it. */
static void echo_output(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len)
{
    (void)ud;
    (void)command_id;
    (void)stream;
    fwrite(data, 1, len, stderr);
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},   {"state-dir", required_argument, NULL, 's'},
        {"approval", required_argument, NULL, 'a'}, {"wait", required_argument, NULL, 'w'},
        {"quiet", no_argument, NULL, 'q'},          {0, 0, 0, 0},
    };
    const char *policy = NULL, *state_dir = NULL, *approval_files[MAX_APPROVAL_FILES];
    size_t napproval_files = 0;
    long wait_sec = 0;
    bool quiet = !isatty(STDERR_FILENO);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            policy = optarg;
            break;
        case 's':
            state_dir = optarg;
            break;
        case 'a':
            if (napproval_files == MAX_APPROVAL_FILES)
                return cli_fail("run: at most %d --approval files", MAX_APPROVAL_FILES);
            approval_files[napproval_files++] = optarg;
            break;
        case 'w': {
            char *end;
            wait_sec = strtol(optarg, &end, 10);
            if (*end || wait_sec < 0 || wait_sec > 86400)
                return cli_fail("run: --wait takes seconds (0..86400)");
            break;
        }
        case 'q':
            quiet = true;
            break;
        default:
            return cli_fail("usage: warrant run [--policy POLICY] [--state-dir DIR] [--approval FILE]... CONTRACT");
        }
    }
    if (optind != argc - 1)
        return cli_fail("usage: warrant run [--policy POLICY] [--state-dir DIR] [--approval FILE]... CONTRACT");
    const char *contract_path = argv[optind];

    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_gate *g = NULL;
    wr_contract *ct = NULL;
    json_object *approvals[MAX_APPROVAL_FILES] = {0};
    int status = CLI_USAGE;

    char state_buf[CLI_PATH_MAX];
    wr_gate_config cfg = {
        .state_dir = cli_state_dir(state_dir, state_buf), .policy_path = policy, .ctx = &ctx, .host_env = environ};
    if (!cfg.state_dir)
        return CLI_USAGE;
    if (wr_gate_open(&cfg, &g, &err) != WR_OK) {
        cli_fail_err(CLI_USAGE, policy ? policy : cfg.state_dir, &err);
        goto out;
    }
    char *buf = NULL;
    size_t len = 0;
    if (wr_read_file(contract_path, WR_CONTRACT_MAX_BYTES, &buf, &len, &err) != WR_OK ||
        wr_contract_parse(wr_gate_contracts(g), buf, len, &ct, &err) != WR_OK) {
        free(buf);
        cli_fail_err(CLI_USAGE, contract_path, &err);
        goto out;
    }
    free(buf);
    for (size_t i = 0; i < napproval_files; i++) {
        if (!(approvals[i] = wr_json_read_file(approval_files[i], NULL, &err))) {
            cli_fail_err(CLI_USAGE, approval_files[i], &err);
            goto out;
        }
    }
    wr_run_request req = {
        .contract = ct,
        .approvals = approvals,
        .napprovals = napproval_files,
        .wait_for_approval_ms = wait_sec * 1000,
        .on_output = quiet ? NULL : echo_output,
        .cancel_fd = -1,
    };
    wr_run_outcome out;
    if (wr_gate_run(g, &req, &out, &err) != WR_OK) {
        cli_fail_err(CLI_USAGE, contract_path, &err);
        goto out;
    }
    puts(wr_json_compact(out.receipt));
    status = strcmp(out.status, "success") == 0 ? CLI_OK : CLI_REJECTED;
    if (status != CLI_OK) {
        fprintf(stderr, "warrant: run %s: %s\n", out.status, out.error ? out.error : "");
    }
    wr_run_outcome_clear(&out);
out:
    for (size_t i = 0; i < napproval_files; i++)
        json_object_put(approvals[i]);
    wr_contract_free(ct);
    wr_gate_close(g);
    return status;
}
