/* warrant run — a contract through the gate locally: policy, approvals,
 * sandbox, signed receipt on stdout. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clients/cli.h"
#include "gate/gate.h"

#define MAX_APPROVAL_FILES 16

extern char **environ;

/* A UTF-8 sequence cut between two chunks of one stream waits here. */
#define UTF8_MAX      4
#define STREAM_STDERR 2 /* wr_gate_output_fn's stream numbers: 1 stdout, 2 stderr */
typedef struct echo_state {
    bool raw;
    unsigned char carry[2][UTF8_MAX];
    size_t ncarry[2];
} echo_state;

/* A person at a terminal sees the command's output as it happens; stdout
 * stays reserved for the receipt so scripts can parse it. The output is
 * the command's, so hostile: its escape sequences (clipboard writes,
 * titles, cursor moves) and bidi controls are shown escaped unless --raw. */
static void echo_output(void *ud, const char *command_id, int stream, const unsigned char *data, size_t len)
{
    (void)command_id;
    echo_state *es = ud;
    if (es->raw) {
        fwrite(data, 1, len, stderr);
        return;
    }
    int k = stream == STREAM_STDERR;
    while (len && es->ncarry[k]) { /* complete the held sequence first */
        es->carry[k][es->ncarry[k]++] = *data++;
        len--;
        size_t used = cli_put_safe(stderr, es->carry[k], es->ncarry[k], "\n\t", es->ncarry[k] == UTF8_MAX);
        if (used == es->ncarry[k])
            es->ncarry[k] = 0;
    }
    size_t used = cli_put_safe(stderr, data, len, "\n\t", false);
    memcpy(es->carry[k], data + used, len - used);
    es->ncarry[k] = len - used;
}

/* SIGINT and SIGTERM cancel the run (a receipt is still sealed): they are
 * blocked and read through a signalfd that serves as the run's cancel fd. */
static int cancel_on_signals(sigset_t *old)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &stop, old) != 0)
        return -1;
    return signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"state-dir", required_argument, NULL, 's'},
        {"approval", required_argument, NULL, 'a'},
        {"wait", required_argument, NULL, 'w'},
        {"quiet", no_argument, NULL, 'q'},
        {"raw", no_argument, NULL, 'r'},
        {0, 0, 0, 0},
    };
    const char *policy = NULL, *state_dir = NULL, *approval_files[MAX_APPROVAL_FILES];
    size_t napproval_files = 0;
    long wait_sec = 0;
    bool quiet = !isatty(STDERR_FILENO);
    echo_state echo = {0};
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
        case 'r':
            echo.raw = true;
            break;
        default:
            return cli_fail(
                "usage: warrant run [--policy POLICY] [--state-dir DIR] [--approval FILE]... [--raw] CONTRACT");
        }
    }
    if (optind != argc - 1)
        return cli_fail("usage: warrant run [--policy POLICY] [--state-dir DIR] [--approval FILE]... [--raw] CONTRACT");
    const char *contract_path = argv[optind];

    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_gate *g = NULL;
    wr_contract *ct = NULL;
    json_object *approvals[MAX_APPROVAL_FILES] = {0};
    int status = CLI_USAGE, sigfd = -1;
    sigset_t oldmask;
    sigprocmask(SIG_SETMASK, NULL, &oldmask);

    char state_buf[CLI_PATH_MAX];
    wr_gate_config cfg = {
        .state_dir = cli_state_dir(state_dir, state_buf), .policy_path = policy, .ctx = &ctx, .host_env = environ};
    cfg.launchers = 1; /* warm: its cgroup attach overlaps the start-up below */
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
        .ud = &echo,
        .cancel_fd = cancel_on_signals(&oldmask),
    };
    wr_run_outcome out;
    sigfd = req.cancel_fd;
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
    if (sigfd >= 0) { /* the signal that cancelled the run is handled: consume it */
        struct signalfd_siginfo si;
        while (read(sigfd, &si, sizeof si) == sizeof si)
            ;
        close(sigfd);
    }
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    for (size_t i = 0; i < napproval_files; i++)
        json_object_put(approvals[i]);
    wr_contract_free(ct);
    wr_gate_close(g);
    return status;
}
