/* node — observed addresses and the NAT type (issue 9), sans-I/O.
 *
 * Identify tells us, on each connection, the address the remote saw us
 * come from (identify spec, observedAddr). One report is worth little: a
 * peer may lie, and a NAT may give each destination its own mapping. This
 * module collects the reports and derives two things, as go-libp2p's
 * observed-address manager does:
 *
 *  - confirmed addresses: an external address counts once enough distinct
 *    observers reported it (activation_thresh, 4 in go-libp2p). Observers
 *    are grouped by network, the IPv4 /16 or the IPv6 /56 of the remote
 *    address (both configurable), so one network with many hosts or
 *    addresses votes once.
 *  - the NAT type: for one local address, an endpoint-independent mapping
 *    ("cone") shows every destination the same external address; an
 *    endpoint-dependent one ("symmetric") shows each a new port. With the
 *    reports on outbound connections of each local address sorted by how
 *    many observers they have, the mapping is cone when the top
 *    max_per_local of them cover at least half of all, else symmetric; and
 *    nothing is said before nat_min_observations reports.
 *
 * Reports are grouped by "thin waist" (ip4|ip6 + tcp|udp): the local address
 * of the connection and the first two components of the observed one. Only
 * connections whose local address is one we listen on count (the host dials
 * from its listen port when it can, see dn_host_config.no_port_reuse); an
 * ephemeral source port says nothing about the address peers can reach.
 * Only outbound connections tell the NAT type: on an inbound one the peer
 * saw the address it dialed, which a port forward maps whatever the NAT's
 * mapping behaviour.
 *
 * Each connection holds at most one report (a new one replaces it, e.g. an
 * identify push). When the connection closes the report lingers for ttl_ms
 * and then expires (short-lived connections, such as a CLI's identify, still
 * count for a while). Memory is fixed at creation: at most max_observations
 * reports and at most max_per_group of them from one observer network, so
 * a hostile peer (or many of its connections from one network) cannot grow
 * it or crowd out the others. Nothing here reads a clock or a socket: the
 * caller passes the time (ms, any monotonic origin). */
#ifndef DN_NODE_NATOBS_H
#define DN_NODE_NATOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/multiaddr.h"
#include "dmsnet/network.h"

typedef struct dn__natobs dn__natobs;

/* Zero fields take the defaults below. */
typedef struct dn__natobs_params {
    uint32_t activation_thresh;    /* observer groups to confirm an address: 4 */
    uint32_t max_per_local;        /* confirmed external addresses per local one: 3 */
    uint32_t nat_min_observations; /* outbound reports before a NAT verdict: 3 * max_per_local */
    uint32_t v4_group_bits;        /* observers in one IPv4 prefix are one: 16 (1..32) */
    uint32_t v6_group_bits;        /* likewise IPv6: 56 (1..128) */
    uint64_t ttl_ms;               /* a report outlives its connection by: 30 min */
    uint32_t max_observations;     /* reports held: 512 */
    uint32_t max_per_group;        /* reports held from one observer group: 16 */
} dn__natobs_params;

/* At most this many listen addresses are matched, and confirmed addresses
 * kept. */
#define DN__NATOBS_MAX_LISTEN 16
#define DN__NATOBS_MAX_CONFIRMED 32

/* Bits of dn__natobs_take_changes. */
#define DN__NATOBS_ADDRS_CHANGED 1u /* the confirmed set changed */
#define DN__NATOBS_NAT_CHANGED 2u   /* dn__natobs_nat_type changed */

void dn__natobs_params_init(dn__natobs_params *p);
/* p may be NULL (all defaults). NULL when out of memory. */
dn__natobs *dn__natobs_new(const dn__natobs_params *p);
void dn__natobs_free(dn__natobs *o);

/* Our listen addresses (bound ports; an unspecified IP matches any local IP
 * of its family). Only ip4|ip6/tcp|udp ones are kept, at most
 * DN__NATOBS_MAX_LISTEN. Reports on local addresses no longer listed are
 * dropped. */
void dn__natobs_set_listen(dn__natobs *o, const dn_multiaddr *addrs, size_t n, uint64_t now_ms);

/* A report on connection conn_id: observer is the remote address of the
 * connection, local its local address (dn_conn_local_addr), observed what
 * the peer says it saw. Returns 0 when taken (also when it repeats the
 * connection's report), or why not: DN_EUNSUPPORTED (not ip/tcp|udp, or a
 * relayed address), DN_EINVAL (loopback, unspecified, link-local,
 * multicast, NAT64 or port 0 observed; its transport differs from the local
 * address's), DN_ENOTFOUND (local is not a listen address), DN_ELIMIT (full:
 * no expired or closed report could make room, or its observer group holds
 * max_per_group already). */
int dn__natobs_record(dn__natobs *o, uint64_t conn_id, const dn_multiaddr *observer,
                      const dn_multiaddr *local, const dn_multiaddr *observed, bool outbound,
                      uint64_t now_ms);
/* Connection conn_id closed: its report expires ttl_ms from now. */
void dn__natobs_forget(dn__natobs *o, uint64_t conn_id, uint64_t now_ms);
/* Drop expired reports (record and forget do it too). */
void dn__natobs_tick(dn__natobs *o, uint64_t now_ms);

/* The confirmed external addresses (/ip4|ip6/<addr>/tcp|udp/<port>), sorted
 * by their bytes. Copies up to max and returns how many there are. */
size_t dn__natobs_confirmed(const dn__natobs *o, dn_multiaddr *out, size_t max);
dn_nat_type dn__natobs_nat_type(const dn__natobs *o);
/* DN__NATOBS_* bits of what changed since the last call (0: nothing), so
 * the node fires LOCAL_ADDRS_UPDATED / NAT_TYPE_CHANGED only on change. */
unsigned dn__natobs_take_changes(dn__natobs *o);
/* Reports held (open and lingering). */
size_t dn__natobs_count(const dn__natobs *o);

#endif
