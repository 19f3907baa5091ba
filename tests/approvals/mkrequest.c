/* Test helper: queues an approval request in a state dir the way the gate
 * does for a needs_approval proposal, and prints the request id, so that the
 * CLI tests do not depend on the server or the sandbox.
 * usage: mkrequest STATE_DIR POLICY.yaml CONTRACT.json */
#include <stdio.h>
#include <stdlib.h>

#include "approvals/approvals.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mkrequest STATE_DIR POLICY CONTRACT\n");
        return 2;
    }
    wr_ctx ctx = wr_ctx_system();
    wr_error err = {0};
    wr_store *st = NULL;
    wr_policy *p = NULL;
    wr_contracts *cs = NULL;
    wr_contract *ct = NULL;
    wr_decision *d = NULL;
    char *text = NULL;
    size_t len = 0;
    char rid[WR_ID_MAX];
    int rc = 1;
    if (wr_store_open(argv[1], &st, &err) || wr_policy_load_file(argv[2], &p, &err) || !(cs = wr_contracts_new(&err)) ||
        wr_read_file(argv[3], WR_CONTRACT_MAX_BYTES, &text, &len, &err) ||
        wr_contract_parse(cs, text, len, &ct, &err) || wr_policy_evaluate(p, ct, &ctx, &d, &err))
        fprintf(stderr, "mkrequest: %s %s\n", err.path, err.message);
    else if (d->kind != WR_NEEDS_APPROVAL)
        fprintf(stderr, "mkrequest: decision is %s, not needs_approval\n", wr_decision_kind_name(d->kind));
    else if (wr_approval_request_open(st, ct, d, p, &ctx, rid, &err))
        fprintf(stderr, "mkrequest: %s\n", err.message);
    else
        printf("%s %s\n", rid, ct->sha256), rc = 0;
    free(text);
    wr_decision_free(d);
    wr_contract_free(ct);
    wr_contracts_free(cs);
    wr_policy_free(p);
    wr_store_close(st);
    return rc;
}
