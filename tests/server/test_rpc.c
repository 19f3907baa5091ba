/* Unit tests of the transport-independent JSON-RPC core: a session fed
 * bytes directly, answers captured by a test outlet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct capture {
    wr_outlet base;
    char *msgs[64];
    bool final[64];
    int n;
    bool streamed;
} capture;

static void cap_send(wr_outlet *o, const char *json, size_t len, bool final)
{
    capture *c = (capture *)o;
    assert_true(c->n < 64);
    c->msgs[c->n] = strndup(json, len);
    c->final[c->n] = final;
    c->n++;
}

static void cap_stream(wr_outlet *o)
{
    ((capture *)o)->streamed = true;
}

static void cap_reset(capture *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->msgs[i]);
    c->n = 0;
    c->streamed = false;
}

typedef struct fixture {
    char dir[64];
    wr_ctx ctx;
    wr_gate *gate;
    wr_server *srv;
    wr_session *ss;
    capture cap;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int wakes;
} fixture;

static void waker(void *ud)
{
    fixture *f = ud;
    pthread_mutex_lock(&f->mu);
    f->wakes++;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wr-rpc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->ctx = wr_ctx_system();
    f->ctx.log_level = WR_LOG_ERROR;
    wr_error err;
    wr_gate_config gc = {.state_dir = f->dir, .ctx = &f->ctx};
    assert_int_equal(wr_gate_open(&gc, &f->gate, &err), WR_OK);
    wr_server_config sc = {.max_message_bytes = 4096, .max_depth = 16, .progress_interval_ms = 1};
    assert_int_equal(wr_server_new(f->gate, &sc, &f->srv, &err), WR_OK);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    wr_server_set_waker(f->srv, waker, f);
    f->cap.base.send = cap_send;
    f->cap.base.begin_stream = cap_stream;
    f->ss = wr_session_new(f->srv, "tester", &f->cap.base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    wr_session_close(f->ss, true);
    while (wr_server_active_runs(f->srv) > 0) {
        wr_server_drain(f->srv);
        usleep(10000);
    }
    wr_server_drain(f->srv);
    cap_reset(&f->cap);
    wr_server_free(f->srv);
    wr_gate_close(f->gate);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return 0;
}

/* Sends text, returns the single reply (or NULL when none). */
static const char *send1(fixture *f, const char *text, wr_rpc_result *res)
{
    cap_reset(&f->cap);
    wr_rpc_result r;
    wr_session_handle(f->ss, text, strlen(text), &f->cap.base, res ? res : &r);
    assert_true(f->cap.n <= 1);
    return f->cap.n ? f->cap.msgs[0] : NULL;
}

static void init(fixture *f)
{
    wr_rpc_result res;
    const char *m = send1(f,
                          "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                          "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
                          &res);
    assert_non_null(m);
    assert_true(res.is_initialize);
    assert_non_null(strstr(m, "\"protocolVersion\":\"2025-06-18\""));
    assert_string_equal(wr_session_version(f->ss), "2025-06-18");
}

static void test_ping_before_initialize(void **state)
{
    fixture *f = *state;
    assert_string_equal(send1(f, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}", NULL),
                        "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}");
    const char *m = send1(f, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/list\"}", NULL);
    assert_non_null(strstr(m, "\"id\":\"x\""));
    assert_non_null(strstr(m, "-32600"));
    assert_non_null(strstr(m, "not initialized"));
}

static void test_envelope_errors(void **state)
{
    fixture *f = *state;
    init(f);
    struct {
        const char *in;
        const char *want;
        int fault;
    } cases[] = {
        {"{", "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700", WR_RPC_FAULT_BAD_MESSAGE},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", "\"code\":-32700", WR_RPC_FAULT_BAD_MESSAGE},
        {"[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]", "\"code\":-32600", WR_RPC_FAULT_BAD_MESSAGE},
        {"[]", "\"code\":-32600", WR_RPC_FAULT_BAD_MESSAGE},
        {"7", "\"code\":-32600", WR_RPC_FAULT_BAD_MESSAGE},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600",
         WR_RPC_FAULT_BAD_MESSAGE},
        {"{\"jsonrpc\":\"2.0\",\"id\":2.5,\"method\":\"ping\"}", "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600",
         WR_RPC_FAULT_BAD_MESSAGE},
        {"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"nope\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32601", WR_RPC_FAULT_NONE},
        {"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\",\"params\":[]}", "\"id\":4,\"error\":{\"code\":-32602",
         WR_RPC_FAULT_NONE},
        {"{\"id\":5,\"method\":\"ping\"}", "\"id\":5,\"error\":{\"code\":-32600", WR_RPC_FAULT_BAD_MESSAGE},
        {"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\"}}",
         "\"id\":6,\"error\":{\"code\":-32600", WR_RPC_FAULT_BAD_MESSAGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wr_rpc_result res;
        const char *m = send1(f, cases[i].in, &res);
        assert_non_null(m);
        if (!strstr(m, cases[i].want))
            fail_msg("case %zu: %s does not contain %s", i, m, cases[i].want);
        assert_int_equal(res.kind, WR_RPC_REPLIED);
        assert_int_equal(res.fault, cases[i].fault);
    }
    /* over the 4096-byte cap */
    char *big = malloc(5000);
    memset(big, ' ', 4999);
    big[4999] = '\0';
    wr_rpc_result res;
    assert_non_null(strstr(send1(f, big, &res), "exceeds the limit of 4096 bytes"));
    assert_int_equal(res.fault, WR_RPC_FAULT_TOO_LARGE);
    free(big);
}

static void test_notifications_never_answered(void **state)
{
    fixture *f = *state;
    wr_rpc_result res;
    assert_null(send1(f, "{\"jsonrpc\":\"2.0\",\"method\":\"unknown/thing\"}", &res));
    assert_int_equal(res.kind, WR_RPC_NONE);
    assert_null(send1(f, "{\"jsonrpc\":\"1.0\",\"method\":\"bad\"}", &res));
    assert_null(send1(f, "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":3}", &res));
    assert_null(send1(f, "{\"jsonrpc\":\"2.0\",\"id\":\"wr-elicit-none\",\"result\":{}}", &res));
    assert_int_equal(res.kind, WR_RPC_NONE);
}

static void test_version_negotiation(void **state)
{
    fixture *f = *state;
    const char *m = send1(f,
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                          "\"2030-01-01\",\"capabilities\":{\"elicitation\":{}}}}",
                          NULL);
    assert_non_null(strstr(m, "\"protocolVersion\":\"" WR_MCP_LATEST "\""));
    assert_non_null(strstr(m, "\"tools\":{\"listChanged\":false}"));
    assert_true(wr_mcp_version_known("2025-03-26"));
    assert_false(wr_mcp_version_known("2024-11-05"));
}

static void test_tools_call_errors(void **state)
{
    fixture *f = *state;
    init(f);
    const char *m =
        send1(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"zap\"}}", NULL);
    assert_non_null(strstr(m, "\"code\":-32602"));
    assert_non_null(strstr(m, "unknown tool: zap"));
    m = send1(
        f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"run\",\"arguments\":\"x\"}}",
        NULL);
    assert_non_null(strstr(m, "\"code\":-32602"));
    /* schema violations are results the model can fix */
    m = send1(f,
              "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"get_receipt\","
              "\"arguments\":{\"execution_id\":5}}}",
              NULL);
    assert_non_null(strstr(m, "\"isError\":true"));
    assert_non_null(strstr(m, "(at /execution_id)"));
    assert_null(strstr(m, "structuredContent")); /* it would not match the outputSchema */
    m = send1(f,
              "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"run\","
              "\"arguments\":{\"contract_id\":\"nope-nope\"}}}",
              NULL);
    assert_non_null(strstr(m, "\"isError\":true"));
    assert_non_null(strstr(m, "no stored contract"));
}

static void test_run_streams_and_completes(void **state)
{
    fixture *f = *state;
    init(f);
    char req[2048];
    snprintf(req, sizeof req,
             "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"run\",\"_meta\":"
             "{\"progressToken\":\"pt\"},\"arguments\":{\"contract\":{\"version\":\"csc.v0.1\",\"contract_id\":"
             "\"unit-run-0001\",\"intent\":\"t\",\"actor\":{\"agent_id\":\"tester\",\"session_id\":\"s\","
             "\"initiating_user\":\"u\",\"delegation_scope\":\"d\"},\"commands\":[{\"id\":\"c1\",\"exec\":{\"argv\":"
             "[\"echo\",\"hello\"]},\"cwd\":\"/workspace\",\"read_paths\":[\"/workspace\"],\"write_paths\":[],"
             "\"network\":\"deny\",\"env_allow\":[],\"secret_refs\":[],\"timeout_sec\":10,\"proposed_effect_type\":"
             "\"observe\"}],\"risk_class\":\"low\",\"approval_mode\":\"policy_only\",\"justification\":\"t\"}}}}");
    wr_rpc_result res;
    cap_reset(&f->cap);
    wr_session_handle(f->ss, req, strlen(req), &f->cap.base, &res);
    assert_int_equal(res.kind, WR_RPC_ASYNC);
    assert_true(f->cap.streamed);
    /* wait for the worker's final message through the waker */
    bool final = false;
    for (int i = 0; i < 600 && !final; i++) {
        pthread_mutex_lock(&f->mu);
        if (!f->wakes) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        }
        f->wakes = 0;
        pthread_mutex_unlock(&f->mu);
        wr_server_drain(f->srv);
        wr_server_tick(f->srv);
        for (int k = 0; k < f->cap.n; k++)
            final |= f->cap.final[k];
    }
    assert_true(final);
    const char *last = f->cap.msgs[f->cap.n - 1];
    assert_non_null(strstr(last, "\"id\":9"));
    /* /workspace does not exist here: the run is refused or fails, but it
     * is always a tool result with a sealed receipt, never a JSON-RPC error */
    assert_non_null(strstr(last, "\"receipt\":{"));
    assert_int_equal(wr_server_active_runs(f->srv), 0);
}

static void test_utf8_helpers(void **state)
{
    (void)state;
    char *s = wr_utf8_sanitize((const unsigned char *)"a\xff"
                                                      "b\xc3\xa9\xed\xa0\x80",
                               8);
    assert_string_equal(s, "a\xef\xbf\xbd"
                           "b\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
    assert_int_equal(wr_utf8_cut((const unsigned char *)"ab\xc3", 3), 2);
    assert_int_equal(wr_utf8_cut((const unsigned char *)"ab\xc3\xa9", 4), 4);
    assert_int_equal(wr_utf8_cut((const unsigned char *)"\xe2\x82", 2), 0);
    assert_int_equal(wr_utf8_cut((const unsigned char *)"abc", 3), 3);
}

static void test_envelopes(void **state)
{
    (void)state;
    char *m = wr_rpc_result_msg("\"1\"", "{}");
    assert_string_equal(m, "{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":{}}");
    free(m);
    m = wr_rpc_error_msg(NULL, -32700, "bad \xff", NULL);
    assert_string_equal(m, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"bad \xef\xbf\xbd\"}}");
    free(m);
}

/* Loads text as a token file; returns the load's code (t set on WR_OK). */
static int load_tokens_text(const char *text, wr_tokens **t, wr_error *err)
{
    char path[] = "/tmp/wr-tokens-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    int rc = wr_tokens_load(path, t, err);
    unlink(path);
    return rc;
}

/* Issue 11: agent and approver tokens, and the elicitation:human mark. */
static void test_token_kinds(void **state)
{
    (void)state;
    wr_tokens *t = NULL;
    wr_error err;
    assert_int_equal(load_tokens_text("agent-1 aaaaaaaaaaaaaaaa\n"
                                      "approver:alice bbbbbbbbbbbbbbbb\n"
                                      "agent-2 cccccccccccccccc elicitation:human=carol@example.com\n",
                                      &t, &err),
                     WR_OK);
    const char *a = wr_tokens_identity(t, "aaaaaaaaaaaaaaaa", 16, WR_TOKEN_AGENT);
    assert_string_equal(a, "agent-1");
    assert_null(wr_tokens_elicitation_human(t, a));
    assert_null(wr_tokens_identity(t, "aaaaaaaaaaaaaaaa", 16, WR_TOKEN_APPROVER));
    assert_string_equal(wr_tokens_identity(t, "bbbbbbbbbbbbbbbb", 16, WR_TOKEN_APPROVER), "alice");
    assert_null(wr_tokens_identity(t, "bbbbbbbbbbbbbbbb", 16, WR_TOKEN_AGENT));
    const char *c = wr_tokens_identity(t, "cccccccccccccccc", 16, WR_TOKEN_AGENT);
    assert_string_equal(c, "agent-2");
    assert_string_equal(wr_tokens_elicitation_human(t, c), "carol@example.com");
    /* the kind column and the mark in either order */
    wr_tokens_free(t);
    assert_int_equal(load_tokens_text("agent-2 cccccccccccccccc agent elicitation:human=carol\n"
                                      "agent-3 dddddddddddddddd elicitation:human=carol agent\n",
                                      &t, &err),
                     WR_OK);
    wr_tokens_free(t);

    /* Each of these would let an agent approve its own requests, or is malformed. */
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"alice aaaaaaaaaaaaaaaa\napprover:alice bbbbbbbbbbbbbbbb\n", "both an agent and an approver"},
        {"approver:alice bbbbbbbbbbbbbbbb\nalice aaaaaaaaaaaaaaaa\n", "both an agent and an approver"},
        {"agent-1 aaaaaaaaaaaaaaaa elicitation:human=agent-2\nagent-2 cccccccccccccccc\n", "both an agent"},
        {"agent-2 cccccccccccccccc\nagent-1 aaaaaaaaaaaaaaaa elicitation:human=agent-2\n", "both an agent"},
        {"agent-1 aaaaaaaaaaaaaaaa elicitation:human=agent-1\n", "other than the agent"},
        {"agent-1 aaaaaaaaaaaaaaaa elicitation:human=\n", "other than the agent"},
        {"approver:alice bbbbbbbbbbbbbbbb elicitation:human=carol\n", "marks an agent token"},
        {"agent-1 aaaaaaaaaaaaaaaa elicitation:machine\n", "unknown token kind"},
        {"agent-1 aaaaaaaaaaaaaaaa metrics elicitation:human=carol\n", "marks an agent token"},
        {"approver: bbbbbbbbbbbbbbbb\n", "bad identity"},
        {"agent-1 aaaaaaaaaaaaaaaa\napprover:alice aaaaaaaaaaaaaaaa\n", "listed twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = NULL;
        assert_int_equal(load_tokens_text(bad[i].text, &t, &err), WR_E_INVALID);
        assert_null(t);
        if (!strstr(err.message, bad[i].says))
            fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].text, err.message, bad[i].says);
    }
    /* An identity with a space pushes the token into the kind column: the
     * refusal must not print it (it reaches the server's log). */
    t = NULL;
    assert_int_equal(load_tokens_text("metrics:prom etheus tok-secret-0123456789\n", &t, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "unknown token kind"));
    assert_null(strstr(err.message, "tok-secret-0123456789"));
}

static void test_tokens_and_origins(void **state)
{
    (void)state;
    char path[] = "/tmp/wr-tokens-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# c\nalice aaaaaaaaaaaaaaaaaaaa\n\nbob   bbbbbbbbbbbbbbbbbbbb\r\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    wr_tokens *t = NULL;
    wr_error err;
    chmod(path, 0644);
    assert_int_equal(wr_tokens_load(path, &t, &err), WR_E_DENIED);
    assert_non_null(strstr(err.message, "group or world"));
    chmod(path, 0600);
    assert_int_equal(wr_tokens_load(path, &t, &err), WR_OK);
    assert_string_equal(wr_tokens_identity(t, "bbbbbbbbbbbbbbbbbbbb", 20, WR_TOKEN_AGENT), "bob");
    assert_null(wr_tokens_identity(t, "bbbbbbbbbbbbbbbbbbbc", 20, WR_TOKEN_AGENT));
    assert_null(wr_tokens_identity(t, "", 0, WR_TOKEN_AGENT));
    wr_tokens_free(t);
    FILE *fp = fopen(path, "w");
    fputs("alice short\n", fp);
    fclose(fp);
    assert_int_equal(wr_tokens_load(path, &t, &err), WR_E_INVALID);
    /* the kind column: explicit agent accepted, an unknown kind refused */
    fp = fopen(path, "w");
    fputs("carol cccccccccccccccccccc agent\n", fp);
    fclose(fp);
    assert_int_equal(wr_tokens_load(path, &t, &err), WR_OK);
    assert_string_equal(wr_tokens_identity(t, "cccccccccccccccccccc", 20, WR_TOKEN_AGENT), "carol");
    wr_tokens_free(t);
    fp = fopen(path, "w");
    fputs("carol cccccccccccccccccccc root\n", fp);
    fclose(fp);
    assert_int_equal(wr_tokens_load(path, &t, &err), WR_E_INVALID);
    assert_non_null(strstr(err.message, "unknown token kind"));
    unlink(path);

    assert_true(wr_host_allowed("127.0.0.1:8080", 8080, "127.0.0.1", NULL));
    assert_true(wr_host_allowed("localhost:8080", 8080, "127.0.0.1", NULL));
    assert_true(wr_host_allowed("[::1]:8080", 8080, "127.0.0.1", NULL));
    assert_false(wr_host_allowed("127.0.0.1:8081", 8080, "127.0.0.1", NULL));
    assert_false(wr_host_allowed("evil.example:8080", 8080, "127.0.0.1", NULL));
    assert_false(wr_host_allowed(NULL, 8080, "127.0.0.1", NULL));
    assert_true(wr_host_allowed("10.0.0.5:8080", 8080, "10.0.0.5", NULL));
    wr_strv hosts = {0};
    wr_strv_push(&hosts, "box.example:8443");
    assert_true(wr_host_allowed("box.example:8443", 8080, "0.0.0.0", &hosts));
    assert_false(wr_host_allowed("box.example:8080", 8080, "0.0.0.0", &hosts));
    wr_strv_free(&hosts);
    assert_true(wr_origin_allowed(NULL, 8080, "127.0.0.1", NULL));
    assert_true(wr_origin_allowed("http://localhost:8080", 8080, "127.0.0.1", NULL));
    assert_false(wr_origin_allowed("http://localhost:8080/x", 8080, "127.0.0.1", NULL));
    assert_false(wr_origin_allowed("http://evil.example", 8080, "127.0.0.1", NULL));
    assert_false(wr_origin_allowed("null", 8080, "127.0.0.1", NULL));
    wr_strv extra = {0};
    wr_strv_push(&extra, "https://app.example");
    assert_true(wr_origin_allowed("https://app.example", 8080, "127.0.0.1", &extra));
    wr_strv_free(&extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping_before_initialize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelope_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifications_never_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_negotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_call_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_streams_and_completes, setup, teardown),
        cmocka_unit_test(test_utf8_helpers),
        cmocka_unit_test(test_envelopes),
        cmocka_unit_test(test_tokens_and_origins),
        cmocka_unit_test(test_token_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
