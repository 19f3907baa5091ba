/* allowed_egress_hosts entries: what the policy loader refuses and what
 * the proxy lets through, including the suffix and encoding tricks an
 * attacker would try. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "egress/egress.h"
#include "policies/policies.h"

static void refused(const char *entry, const char *why)
{
    wr_egress_rule r;
    wr_error e = {0};
    if (wr_egress_rule_parse(entry, &r, &e) == WR_OK)
        fail_msg("'%s' was accepted", entry);
    if (!strstr(e.message, why))
        fail_msg("'%s': message '%s' lacks '%s'", entry, e.message, why);
}

static void test_invalid_entries(void **state)
{
    (void)state;
    refused("*", "bare '*'");
    refused("*:443", "bare '*'");
    refused("", "empty");
    refused("api.*.example.com", "leading '*.'");
    refused("*example.com", "leading '*.'");
    refused("**.example.com", "leading '*.'");
    refused("*.com", "top-level domain");
    refused("https://example.com", "no scheme");
    refused("example.com/path", "no scheme");
    refused("user@example.com", "no scheme");
    refused("example.com:0", "port '0'");
    refused("example.com:65536", "port '65536'");
    refused("example.com:http", "port 'http'");
    refused("example.com:", "port ''");
    refused("exa mple.com", "spaces");
    refused("-bad.example.com", "not a valid host name");
    refused("a..example.com", "not a valid host name");
    refused("[::1", "[IPv6]");
    refused("*.127.0.0.1", "wildcard");
}

static wr_egress_allow allow_of(const char *const *entries, size_t n)
{
    wr_strv sv = {(char **)entries, n};
    wr_egress_allow a;
    wr_error e = {0};
    if (wr_egress_allow_init(&sv, &a, &e) != WR_OK)
        fail_msg("allowlist refused: %s", e.message);
    return a;
}

static bool allowed(const wr_egress_allow *a, const char *raw, int port)
{
    char host[WR_EGRESS_NAME_MAX + 1];
    int family;
    unsigned char addr[16];
    wr_error e = {0};
    return wr_egress_host_normalize(raw, host, &family, addr, &e) == WR_OK && wr_egress_allowed(a, host, port);
}

static void test_name_matching(void **state)
{
    (void)state;
    static const char *const entries[] = {"api.example.com", "*.pkg.example.org", "git.example.net:443",
                                          "BÜCHER.example", "trailing.example.com."};
    wr_egress_allow a = allow_of(entries, 5);
    assert_true(allowed(&a, "api.example.com", 443));
    assert_true(allowed(&a, "API.Example.COM.", 80)); /* case, trailing dot */
    assert_false(allowed(&a, "api.example.com.evil.net", 443));
    assert_false(allowed(&a, "evilapi.example.com", 443));
    assert_false(allowed(&a, "example.com", 443));
    assert_true(allowed(&a, "a.pkg.example.org", 443));
    assert_true(allowed(&a, "a.b.pkg.example.org", 443));
    assert_false(allowed(&a, "pkg.example.org", 443)); /* the wildcard needs a label */
    assert_false(allowed(&a, "evilpkg.example.org", 443));
    assert_false(allowed(&a, "a.pkg.example.org.evil.net", 443));
    assert_true(allowed(&a, "git.example.net", 443));
    assert_false(allowed(&a, "git.example.net", 22));       /* the entry names a port */
    assert_true(allowed(&a, "xn--bcher-kva.example", 443)); /* IDNA: the same name */
    assert_true(allowed(&a, "bücher.example", 443));
    assert_true(allowed(&a, "trailing.example.com", 443));
    wr_egress_allow_free(&a);
}

static struct sockaddr_storage sa(const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return ss;
}

static void test_addresses(void **state)
{
    (void)state;
    static const char *const special[] = {"127.0.0.1",
                                          "127.9.9.9",
                                          "10.1.2.3",
                                          "172.16.0.1",
                                          "172.31.255.255",
                                          "192.168.1.1",
                                          "169.254.169.254",
                                          "224.0.0.1",
                                          "0.0.0.0",
                                          "100.64.0.1",
                                          "255.255.255.255",
                                          "::1",
                                          "::",
                                          "fe80::1",
                                          "fd00::1",
                                          "ff02::1",
                                          "::ffff:127.0.0.1",
                                          "::ffff:10.0.0.1",
                                          "192.0.2.1",
                                          "203.0.113.9"};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
        struct sockaddr_storage ss = sa(special[i], 443);
        if (!wr_egress_address_refusal((struct sockaddr *)&ss))
            fail_msg("%s was not refused", special[i]);
    }
    struct sockaddr_storage pub = sa("93.184.216.34", 443), pub6 = sa("2606:2800:220:1::1", 443);
    assert_null(wr_egress_address_refusal((struct sockaddr *)&pub));
    assert_null(wr_egress_address_refusal((struct sockaddr *)&pub6));
    struct sockaddr_storage edge = sa("172.32.0.1", 443);
    assert_null(wr_egress_address_refusal((struct sockaddr *)&edge));

    static const char *const entries[] = {"127.0.0.1:8080", "[::1]:9090", "10.0.0.5"};
    wr_egress_allow a = allow_of(entries, 3);
    struct sockaddr_storage ok = sa("127.0.0.1", 8080), other = sa("127.0.0.1", 8081), v6 = sa("::1", 9090),
                            mapped = sa("::ffff:127.0.0.1", 8080), noport = sa("10.0.0.5", 80);
    assert_true(wr_egress_literal_listed(&a, (struct sockaddr *)&ok));
    assert_true(wr_egress_literal_listed(&a, (struct sockaddr *)&mapped));
    assert_true(wr_egress_literal_listed(&a, (struct sockaddr *)&v6));
    assert_false(wr_egress_literal_listed(&a, (struct sockaddr *)&other));
    /* only a literal IP:port opens a special address, not a bare IP */
    assert_false(wr_egress_literal_listed(&a, (struct sockaddr *)&noport));
    assert_true(allowed(&a, "127.0.0.1", 8080));
    assert_false(allowed(&a, "127.0.0.1", 8081));
    assert_true(allowed(&a, "[::1]", 9090));
    assert_true(allowed(&a, "10.0.0.5", 1234));
    wr_egress_allow_free(&a);
}

/* The policy loader refuses a bad entry with the entry's JSON pointer and
 * a reason, and accepts the bundled packs' and a full set of good ones. */
static void test_policy_validation(void **state)
{
    (void)state;
    static const char head[] = "policy_schema_version: csc.policy.v0.1\nname: egress\nallow_commands: [curl]\n"
                               "allowed_effect_types: [observe]\nallowed_risk_classes: [low]\nmax_timeout_sec: 30\n"
                               "network: allowlisted\nallow_secret_refs: false\nallowed_cwd_prefixes: [/w]\n"
                               "allowed_read_prefixes: [/w]\nallowed_egress_hosts: ";
    static const struct {
        const char *list, *why;
    } bad[] = {
        {"[ok.example.com, '*']", "bare '*'"},
        {"[ok.example.com, 'api.*.example.com']", "leading '*.'"},
        {"['https://example.com/x']", "no scheme"},
        {"['example.com:99999']", "port"},
    };
    char yaml[1024];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(yaml, sizeof yaml, "%s%s\n", head, bad[i].list);
        wr_policy *p = NULL;
        wr_error e = {0};
        assert_int_not_equal(wr_policy_load_yaml(yaml, strlen(yaml), &p, &e), WR_OK);
        if (!strstr(e.message, bad[i].why) || !strstr(e.message, "allowed_egress_hosts") ||
            strncmp(e.path, "/allowed_egress_hosts/", 22))
            fail_msg("%s: path '%s' message '%s'", bad[i].list, e.path, e.message);
    }
    snprintf(yaml, sizeof yaml, "%s%s\n", head,
             "[api.example.com, '*.pkg.example.org:443', '127.0.0.1:8080', '[::1]:80', 'bücher.example.']");
    wr_policy *p = NULL;
    wr_error e = {0};
    if (wr_policy_load_yaml(yaml, strlen(yaml), &p, &e) != WR_OK)
        fail_msg("good entries refused: %s", e.message);
    /* describe_policy tells agents what each mode reaches */
    json_object *d = wr_policy_describe(p), *modes = NULL;
    assert_true(json_object_object_get_ex(d, "network_modes", &modes));
    static const char *const names[] = {"deny", "allowlisted", "full"};
    for (size_t i = 0; i < 3; i++)
        assert_non_null(json_object_object_get(modes, names[i]));
    assert_non_null(strstr(json_object_get_string(json_object_object_get(modes, "allowlisted")), "127.0.0.1:3128"));
    json_object_put(d);
    wr_policy_free(p);
    for (const char *const *n = wr_policy_bundled_names(); *n; n++) {
        assert_int_equal(wr_policy_load_bundled(*n, &p, &e), WR_OK);
        wr_policy_free(p);
    }
}

/* An address on one of this host's interfaces is refused even when it is
 * not special: in a network namespace of the test's own (root only), the
 * loopback interface also gets an ordinary public address. Nothing is sent. */
static void test_own_address(void **state)
{
    (void)state;
    if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0)
        skip();
    assert_int_equal(system("ip addr add 1.2.3.4/32 dev lo && ip link set lo up"), 0);
    struct sockaddr_storage own = sa("1.2.3.4", 443), other = sa("1.2.3.5", 443);
    const char *why = wr_egress_address_refusal((struct sockaddr *)&own);
    assert_non_null(why);
    assert_string_equal(why, "one of this host's own");
    assert_null(wr_egress_address_refusal((struct sockaddr *)&other));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_entries), cmocka_unit_test(test_name_matching),
        cmocka_unit_test(test_addresses),       cmocka_unit_test(test_policy_validation),
        cmocka_unit_test(test_own_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
