/* node — reachability (AutoNAT v2) and the NAT type (observed addresses).
 *
 * Interim: the AutoNAT v2 service (src/proto/autonat.c) and the observed-
 * address manager (src/node/natobs.c) are being built on their own
 * branches; until they are wired in here, reachability and the NAT type
 * stay "unknown" and no observed address is confirmed. */
#include "node/network_int.h"

int dn__node_attach_nat(dn_network *n, char *err, size_t errlen)
{
    (void)n, (void)err, (void)errlen;
    return 0;
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

void dn__node_nat_free(dn_network *n) { (void)n; }
