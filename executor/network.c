/* The network of one command, by its mode (see egress/):
 *   deny         bwrap's own empty namespace; nothing here.
 *   allowlisted  a namespace of ours whose only way out is the egress proxy
 *                listening inside it at 127.0.0.1:WR_EGRESS_PROXY_PORT.
 *   full         a namespace of ours with slirp4netns NAT.
 * The namespace is built before anything runs (a run that cannot have it is
 * refused, never given the host's network instead); the proxy or NAT runs
 * only while its command does. */
#include "executor/executor_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int wr_run_net_prepare(const wr_plan *p, wr_run_net *n, wr_error *err)
{
    memset(n, 0, sizeof *n);
    n->ns = (wr_netns){.userns_fd = -1, .netns_fd = -1, .listen_fd = -1, .snmp_fd = -1};
    n->slirp = (wr_slirp){.pid = -1, .exit_fd = -1};
    n->mode = p->network;
    if (p->network == WR_NET_DENY)
        return WR_OK;
    /* /dev/net/tun: Debian makes it 0666; where it is root's only (or
     * absent, as under systemd's PrivateDevices) slirp4netns cannot make
     * its tap device. */
    const char *missing = p->network != WR_NET_FULL                 ? NULL
                          : access(WR_SLIRP4NETNS, X_OK) != 0       ? WR_SLIRP4NETNS " (Debian package slirp4netns)"
                          : access(WR_TUN_DEVICE, R_OK | W_OK) != 0 ? WR_TUN_DEVICE " usable by warrant's user"
                                                                    : NULL;
    if (missing)
        return wr_errorf(err, WR_E_DENIED, "network",
                         "network: full needs %s (uid %u); refused rather than sharing the host's network", missing,
                         (unsigned)getuid());
    int rc = wr_netns_create(p->network == WR_NET_ALLOWLISTED, &n->ns, err);
    if (rc == WR_OK)
        n->active = true;
    return rc;
}

int wr_run_net_start(wr_run_net *n, const wr_exec_request *req, wr_error *err)
{
    if (!n->active)
        return WR_OK;
    if (n->mode == WR_NET_FULL)
        return wr_slirp_start(&n->ns, &n->slirp, err);
    wr_egress_proxy_config cfg = {.allowed = req->allowed_egress_hosts, .test_hosts_file = req->egress_test_hosts};
    int rc = wr_egress_proxy_start(n->ns.listen_fd, &cfg, &n->proxy, err);
    n->ns.listen_fd = -1; /* the proxy owns it now, even on failure */
    return rc;
}

/* Appends the items of src[key] to dst[key]. */
static void append_items(json_object *dst, json_object *src, const char *key)
{
    json_object *to = NULL, *from = NULL;
    json_object_object_get_ex(dst, key, &to);
    json_object_object_get_ex(src, key, &from);
    for (size_t i = 0; to && from && i < json_object_array_length(from); i++)
        json_object_array_add(to, json_object_get(json_object_array_get_idx(from, i)));
}

void wr_run_net_finish(wr_run_net *n, wr_exec_result *r)
{
    if (!n->active)
        return;
    uint64_t bytes = 0;
    if (n->proxy) {
        json_object *rec = wr_egress_proxy_stop(n->proxy, &bytes);
        n->proxy = NULL;
        if (rec && !r->network) {
            r->network = rec;
        } else if (rec) {
            append_items(r->network, rec, "hosts");
            append_items(r->network, rec, "refused");
            json_object *a = NULL, *b = NULL;
            json_object_object_get_ex(r->network, "refused_total", &a);
            json_object_object_get_ex(rec, "refused_total", &b);
            json_object_set_int64(a, json_object_get_int64(a) + json_object_get_int64(b));
            json_object_put(rec);
        }
    }
    if (n->slirp.pid > 0) {
        /* No proxy sees the bytes: what left the namespace is counted by
         * its own TCP/UDP counters (the namespace's loopback is included). */
        bytes = wr_netns_packets_out(&n->ns);
        wr_slirp_stop(&n->slirp);
    }
    r->network_used |= bytes > 0;
    wr_netns_close(&n->ns);
    n->active = false;
}

void wr_run_net_free(wr_run_net *n)
{
    if (n->proxy) {
        uint64_t bytes;
        json_object_put(wr_egress_proxy_stop(n->proxy, &bytes));
        n->proxy = NULL;
    }
    wr_slirp_stop(&n->slirp);
    wr_netns_close(&n->ns);
}
