/* node — reachability (AutoNAT v2, src/proto/autonat.c) and the NAT type
 * with the observed addresses peers confirm (natobs.c).
 *
 * AutoNAT reports its verdict through a callback; the node turns a change
 * into LOCAL_REACHABILITY_CHANGED. natobs is fed each connection's observed
 * address (from identify) and told when the connection closes and what we
 * listen on; after each call its change bits say whether to fire
 * NAT_DEVICE_TYPE_CHANGED and LOCAL_ADDRESSES_UPDATED. */
#include <stdlib.h>

#include "core/io.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "node/natobs.h"
#include "node/network_int.h"

struct dn__nat {
    dn_autonat *autonat;
    dn__natobs *obs;
};

/* Fire the events natobs' last call calls for. */
static void take_changes(dn_network *n)
{
    unsigned ch = dn__natobs_take_changes(n->nat->obs);
    if (ch & DN__NATOBS_NAT_CHANGED) {
        dn_nat_type t = dn__natobs_nat_type(n->nat->obs);
        if (t != n->nat_type) {
            n->nat_type = t;
            DN_INFO("node", "NAT type: %s", dn_nat_type_name(t));
            dn_network_event ev = {.type = DN_NET_EV_NAT_TYPE_CHANGED, .nat_type = t};
            dn__node_emit(n, &ev);
        }
    }
    if (ch & DN__NATOBS_ADDRS_CHANGED)
        dn__node_refresh_local_addrs(n);
}

void dn__node_nat_listen_changed(dn_network *n)
{
    dn_multiaddr addrs[DN__NATOBS_MAX_LISTEN];
    size_t k = dn_host_listen_addrs(n->host, addrs, DN__NATOBS_MAX_LISTEN);
    dn__natobs_set_listen(n->nat->obs, addrs, k < DN__NATOBS_MAX_LISTEN ? k : DN__NATOBS_MAX_LISTEN,
                          uv_now(n->loop));
    take_changes(n);
}

static void on_reachability(void *arg, dn_reachability r)
{
    dn_network *n = arg;
    if (r == n->reachability || n->stopping)
        return;
    n->reachability = r;
    DN_INFO("node", "reachability: %s", dn_reachability_name(r));
    dn_network_event ev = {.type = DN_NET_EV_REACHABILITY_CHANGED, .reachability = r};
    dn__node_emit(n, &ev);
}

int dn__node_attach_nat(dn_network *n, char *err, size_t errlen)
{
    dn__nat *nat = calloc(1, sizeof *nat);
    if (!nat) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    n->nat = nat;
    if (!(nat->obs = dn__natobs_new(NULL))) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    const dn__node_config *c = &n->cfg.c;
    dn_autonat_config ac = DN_AUTONAT_CONFIG_INIT;
    ac.server = c->autonat.server;
    ac.allow_private = c->autonat.allow_private;
    ac.confidence = c->autonat.confidence;
    ac.on_reachability = on_reachability;
    ac.arg = n;
    int rc = dn_autonat_attach(n->host, &ac, &nat->autonat);
    if (rc)
        dn__set_err(err, errlen, "cannot start AutoNAT: %s", dn_strerror(rc));
    return rc;
}

void dn__node_nat_observed(dn_network *n, dn_conn *c, const dn_peer_info *p)
{
    dn_multiaddr observed;
    if (dn_peer_info_observed(p, &observed))
        return; /* the peer did not say */
    /* A refused report (loopback, not on a listen port, table full) is
     * expected and changes nothing. */
    (void)dn__natobs_record(n->nat->obs, dn_conn_id(c), dn_conn_remote_addr(c),
                            dn_conn_local_addr(c), &observed, dn_conn_is_outbound(c),
                            uv_now(n->loop));
    take_changes(n);
}

void dn__node_nat_forget(dn_network *n, dn_conn *c)
{
    dn__natobs_forget(n->nat->obs, dn_conn_id(c), uv_now(n->loop));
    take_changes(n);
}

void dn__node_nat_tick(dn_network *n)
{
    dn__natobs_tick(n->nat->obs, uv_now(n->loop));
    take_changes(n);
}

size_t dn__node_nat_confirmed(dn_network *n, dn_multiaddr *out, size_t max)
{
    size_t total = dn__natobs_confirmed(n->nat->obs, out, max);
    return total < max ? total : max;
}

void dn__node_nat_free(dn_network *n)
{
    /* The AutoNAT service is freed with the host. */
    if (n->nat)
        dn__natobs_free(n->nat->obs);
    free(n->nat);
    n->nat = NULL;
}
