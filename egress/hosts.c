/* allowed_egress_hosts: parsing entries and matching requested hosts and
 * resolved addresses. One home for the rule, shared by the policy loader
 * (validation) and the proxy (enforcement). */
#include "egress/egress.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <idn2.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WR_EGRESS_LABEL_MAX 63

static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || n > WR_EGRESS_LABEL_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

/* An IP literal (v6 possibly in brackets) in canonical text form. */
static bool parse_ip(const char *s, char out[WR_EGRESS_NAME_MAX + 1], int *family, unsigned char addr[16])
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1)
        *family = AF_INET;
    else if (inet_pton(AF_INET6, buf, addr) == 1)
        *family = AF_INET6;
    else
        return false;
    inet_ntop(*family, addr, out, WR_EGRESS_NAME_MAX + 1);
    return true;
}

int wr_egress_host_normalize(const char *host, char out[WR_EGRESS_NAME_MAX + 1], int *family, unsigned char addr[16],
                             wr_error *err)
{
    *family = 0;
    if (parse_ip(host, out, family, addr))
        return WR_OK;
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--; /* "example.com." is "example.com" */
    if (n == 0 || n > WR_EGRESS_NAME_MAX)
        return wr_errorf(err, WR_E_INVALID, "", "'%s' is not a host name", host);
    char *name = strndup(host, n), *ascii = NULL;
    if (!name)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    /* UTS #46 non-transitional mapping: lowercases and turns U-labels into
     * A-labels, so "BÜCHER.example" and "xn--bcher-kva.example" agree. */
    int rc = idn2_lookup_u8((const uint8_t *)name, (uint8_t **)&ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    free(name);
    if (rc != IDN2_OK)
        return wr_errorf(err, WR_E_INVALID, "", "'%s' is not a valid host name: %s", host, idn2_strerror(rc));
    size_t an = strlen(ascii);
    rc = WR_OK;
    if (an > WR_EGRESS_NAME_MAX)
        rc = wr_errorf(err, WR_E_INVALID, "", "'%s' is longer than %d characters", host, WR_EGRESS_NAME_MAX);
    for (const char *l = ascii; rc == WR_OK && l <= ascii + an; l += strcspn(l, ".") + 1)
        if (!label_ok(l, strcspn(l, ".")))
            rc = wr_errorf(err, WR_E_INVALID, "", "'%s' is not a valid host name (label '%.*s')", host,
                           (int)strcspn(l, "."), l);
    if (rc == WR_OK) {
        for (size_t i = 0; i <= an; i++)
            out[i] = (char)tolower((unsigned char)ascii[i]);
    }
    idn2_free(ascii);
    return rc;
}

static int parse_port(const char *s, const char *entry, int *port, wr_error *err)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || !isdigit((unsigned char)*s) || v < 1 || v > WR_EGRESS_PORT_MAX)
        return wr_errorf(err, WR_E_INVALID, "", "'%s': port '%s' is not a number in 1..%d", entry, s,
                         WR_EGRESS_PORT_MAX);
    *port = (int)v;
    return WR_OK;
}

int wr_egress_rule_parse(const char *entry, wr_egress_rule *r, wr_error *err)
{
    memset(r, 0, sizeof *r);
    if (!*entry)
        return wr_errorf(err, WR_E_INVALID, "", "an empty entry is not a host");
    if (strpbrk(entry, "/@?# \t"))
        return wr_errorf(err, WR_E_INVALID, "", "'%s' is not a host or host:port (no scheme, user, path or spaces)",
                         entry);
    if (!strcmp(entry, "*") || !strncmp(entry, "*:", 2))
        return wr_errorf(err, WR_E_INVALID, "", "'%s': a bare '*' would allow every host", entry);
    /* A bare IPv6 address has several colons and no port. */
    if (parse_ip(entry, r->host, &r->family, r->addr))
        return WR_OK;
    char host[WR_EGRESS_NAME_MAX + 8];
    const char *colon = NULL;
    if (entry[0] == '[') {
        const char *close = strchr(entry, ']');
        if (!close || (close[1] && close[1] != ':'))
            return wr_errorf(err, WR_E_INVALID, "", "'%s' is not [IPv6] or [IPv6]:port", entry);
        colon = close[1] ? close + 1 : NULL;
    } else {
        colon = strchr(entry, ':');
    }
    size_t hn = colon ? (size_t)(colon - entry) : strlen(entry);
    if (hn >= sizeof host)
        return wr_errorf(err, WR_E_INVALID, "", "'%.40s...' is longer than %d characters", entry, WR_EGRESS_NAME_MAX);
    memcpy(host, entry, hn);
    host[hn] = '\0';
    if (colon && parse_port(colon + 1, entry, &r->port, err) != WR_OK)
        return err ? err->code : WR_E_INVALID;
    const char *name = host;
    if (!strncmp(host, "*.", 2)) {
        r->wildcard = true;
        name = host + 2;
    }
    if (strchr(name, '*'))
        return wr_errorf(err, WR_E_INVALID, "", "'%s': a wildcard is allowed only as a leading '*.'", entry);
    int rc = wr_egress_host_normalize(name, r->host, &r->family, r->addr, err);
    if (rc != WR_OK) {
        wr_error_prefix(err, "allowed egress host");
        return rc;
    }
    if (r->wildcard && r->family)
        return wr_errorf(err, WR_E_INVALID, "", "'%s': a wildcard cannot cover an IP address", entry);
    if (r->wildcard && !strchr(r->host, '.'))
        return wr_errorf(err, WR_E_INVALID, "", "'%s': a wildcard over a top-level domain allows too much", entry);
    return WR_OK;
}

int wr_egress_allow_init(const wr_strv *entries, wr_egress_allow *a, wr_error *err)
{
    memset(a, 0, sizeof *a);
    size_t n = entries ? entries->n : 0;
    if (!n)
        return WR_OK;
    a->rules = calloc(n, sizeof *a->rules);
    if (!a->rules)
        return wr_errorf(err, WR_E_NOMEM, "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = wr_egress_rule_parse(entries->v[i], &a->rules[i], err);
        if (rc != WR_OK) {
            wr_egress_allow_free(a);
            return rc;
        }
    }
    a->n = n;
    return WR_OK;
}

void wr_egress_allow_free(wr_egress_allow *a)
{
    free(a->rules);
    memset(a, 0, sizeof *a);
}

/* A name matches "*.x" when it ends in ".x" with at least one label before
 * it: a whole-label suffix, so "evilx" and "x.evil.net" do not match. */
static bool name_matches(const wr_egress_rule *r, const char *host)
{
    if (!r->wildcard)
        return !strcmp(r->host, host);
    size_t hn = strlen(host), rn = strlen(r->host);
    return hn > rn + 1 && host[hn - rn - 1] == '.' && !strcmp(host + hn - rn, r->host);
}

bool wr_egress_allowed(const wr_egress_allow *a, const char *host, int port)
{
    int family;
    unsigned char addr[16];
    char canon[WR_EGRESS_NAME_MAX + 1];
    bool is_ip = parse_ip(host, canon, &family, addr);
    for (size_t i = 0; i < a->n; i++) {
        const wr_egress_rule *r = &a->rules[i];
        if (r->port && port != WR_EGRESS_ANY_PORT && r->port != port)
            continue;
        if (is_ip ? (r->family == family && !strcmp(r->host, canon)) : (!r->family && name_matches(r, host)))
            return true;
    }
    return false;
}

static void sockaddr_ip(const struct sockaddr *sa, int *family, unsigned char addr[16], int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        *family = AF_INET;
        memcpy(addr, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        *family = AF_INET6;
        memcpy(addr, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) { /* ::ffff:a.b.c.d is a.b.c.d */
            *family = AF_INET;
            memmove(addr, addr + 12, 4);
        }
    }
}

bool wr_egress_literal_listed(const wr_egress_allow *a, const struct sockaddr *sa)
{
    int family, port;
    unsigned char addr[16];
    sockaddr_ip(sa, &family, addr, &port);
    for (size_t i = 0; i < a->n; i++) {
        const wr_egress_rule *r = &a->rules[i];
        if (r->family == family && r->port == port && !memcmp(r->addr, addr, family == AF_INET ? 4 : 16))
            return true;
    }
    return false;
}

typedef struct net_range {
    unsigned char prefix[16];
    unsigned bits;
    const char *what;
} net_range;

static bool in_range(const unsigned char *addr, const net_range *r)
{
    unsigned full = r->bits / 8, rest = r->bits % 8;
    if (memcmp(addr, r->prefix, full))
        return false;
    return !rest || ((addr[full] ^ r->prefix[full]) & (0xff << (8 - rest))) == 0;
}

/* Addresses that reach this machine or its local networks rather than the
 * internet (RFC 6890 special-purpose blocks). */
static const net_range v4_special[] = {
    {{0}, 8, "an unspecified (0.0.0.0/8)"},
    {{10}, 8, "a private (10.0.0.0/8)"},
    {{100, 64}, 10, "a shared (100.64.0.0/10)"},
    {{127}, 8, "a loopback"},
    {{169, 254}, 16, "a link-local"},
    {{172, 16}, 12, "a private (172.16.0.0/12)"},
    {{192, 0, 0}, 24, "a reserved (192.0.0.0/24)"},
    {{192, 0, 2}, 24, "a documentation (192.0.2.0/24)"},
    {{192, 168}, 16, "a private (192.168.0.0/16)"},
    {{198, 18}, 15, "a benchmarking (198.18.0.0/15)"},
    {{198, 51, 100}, 24, "a documentation (198.51.100.0/24)"},
    {{203, 0, 113}, 24, "a documentation (203.0.113.0/24)"},
    {{224}, 4, "a multicast"},
    {{240}, 4, "a reserved (240.0.0.0/4)"},
};
static const net_range v6_special[] = {
    {{0}, 128, "an unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "a loopback"},
    {{0xfc}, 7, "a unique-local (private)"},
    {{0xfe, 0x80}, 10, "a link-local"},
    {{0xfe, 0xc0}, 10, "a site-local"},
    {{0xff}, 8, "a multicast"},
    {{0x00, 0x64, 0xff, 0x9b}, 96, "a NAT64"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "a documentation"},
};

static bool own_address(int family, const unsigned char *addr)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return true; /* cannot tell: refuse rather than guess */
    bool own = false;
    for (struct ifaddrs *i = ifa; i && !own; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        int f, port;
        unsigned char a[16];
        sockaddr_ip(i->ifa_addr, &f, a, &port);
        own = f == family && !memcmp(a, addr, family == AF_INET ? 4 : 16);
    }
    freeifaddrs(ifa);
    return own;
}

const char *wr_egress_address_refusal(const struct sockaddr *sa)
{
    int family, port;
    unsigned char addr[16];
    sockaddr_ip(sa, &family, addr, &port);
    const net_range *t = family == AF_INET ? v4_special : v6_special;
    size_t n = family == AF_INET ? sizeof v4_special / sizeof *t : sizeof v6_special / sizeof *t;
    for (size_t i = 0; i < n; i++)
        if (in_range(addr, &t[i]))
            return t[i].what;
    if (family == AF_INET && !memcmp(addr, "\xff\xff\xff\xff", 4))
        return "a broadcast";
    return own_address(family, addr) ? "one of this host's own" : NULL;
}
