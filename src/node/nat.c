/* node — reachability (AutoNAT v2, src/proto/autonat.c) and the NAT type
 * with the observed addresses peers confirm (natobs.c).
 *
 * AutoNAT reports its verdict through a callback; the node turns a change
 * into LOCAL_REACHABILITY_CHANGED. */
#include <stdlib.h>

#include "core/io.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "node/network_int.h"

struct dn__nat {
    dn_autonat *autonat;
};

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
    (void)n, (void)c, (void)p;
}

void dn__node_nat_forget(dn_network *n, dn_conn *c) { (void)n, (void)c; }
void dn__node_nat_tick(dn_network *n) { (void)n; }

size_t dn__node_nat_confirmed(dn_network *n, dn_multiaddr *out, size_t max)
{
    (void)n, (void)out, (void)max;
    return 0;
}

void dn__node_nat_free(dn_network *n)
{
    /* The AutoNAT service is freed with the host. */
    free(n->nat);
    n->nat = NULL;
}
