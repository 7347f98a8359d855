/* The iterative Kademlia lookup (libp2p/specs kad-dht/README.md, "Peer
 * routing"), sans-I/O: the caller sends the requests and feeds back what
 * came of them; time comes in as now_ms.
 *
 * Candidates are kept sorted by XOR distance to the target. A candidate is
 * HEARD (known, not asked), WAITING (asked, no answer yet), SUCCEEDED or
 * FAILED (error or timeout). next() hands out HEARD peers, closest first,
 * while fewer than alpha are WAITING, but only peers among the k closest
 * candidates that have not failed: a farther peer is asked only once a
 * closer one failed. The lookup is done when the k closest non-failed
 * candidates have all SUCCEEDED, or when nothing is HEARD or WAITING any
 * more (fewer than k answered: the network is small or unreachable). The
 * results are the k closest that answered. A lookup can be done while
 * requests to peers that closer newcomers pushed out of the window are
 * still in flight: the caller may abandon them, or feed their replies,
 * which may name closer peers and so make the lookup not done again.
 *
 * Bounds: at most max_peers candidates (a fixed array, allocated at init:
 * max_peers * sizeof(dn__kad_qpeer), about 22 KiB at the default 200). When
 * full, a closer newcomer pushes out the farthest candidate (a reply from a
 * pushed-out WAITING peer is then DN_ENOTFOUND), so the closest max_peers
 * ever heard are kept; farther newcomers are dropped. */
#ifndef DN_KAD_QUERY_H
#define DN_KAD_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/peerid.h"
#include "kad/routing.h"

#define DN_KAD_ALPHA 10
#define DN_KAD_QUERY_TIMEOUT_MS 10000 /* js READ_MESSAGE_TIMEOUT */
#define DN_KAD_QUERY_PEERS 200
#define DN_KAD_QUERY_PEERS_MAX 4096

enum dn__kad_qstate {
    DN_KAD_Q_HEARD = 0,
    DN_KAD_Q_WAITING = 1,
    DN_KAD_Q_SUCCEEDED = 2,
    DN_KAD_Q_FAILED = 3,
};

typedef struct dn__kad_qpeer {
    dn__kad_key key;
    dn_peerid id;
    uint8_t state; /* enum dn__kad_qstate */
    uint64_t sent_ms;
} dn__kad_qpeer;

typedef struct dn__kad_query_opts {
    unsigned k;          /* 0: DN_KAD_K (at most DN_KAD_K_MAX) */
    unsigned alpha;      /* 0: DN_KAD_ALPHA */
    uint64_t timeout_ms; /* per request; 0: DN_KAD_QUERY_TIMEOUT_MS */
    size_t max_peers;    /* 0: DN_KAD_QUERY_PEERS; at least k + alpha */
} dn__kad_query_opts;

typedef struct dn__kad_query {
    dn__kad_key target;
    bool has_self;
    dn_peerid self; /* never a candidate */
    unsigned k, alpha;
    uint64_t timeout_ms;
    dn__kad_qpeer *peers; /* sorted by distance, n of cap */
    size_t n, cap;
    unsigned inflight;
    /* counters, for logs and tests */
    size_t asked, answered, failed, timed_out, dropped;
} dn__kad_query;

/* Start a lookup of target. self (may be NULL) is never queried nor
 * returned. opts may be NULL. Returns 0, DN_EINVAL (a bound out of range)
 * or DN_ENOMEM. */
int dn__kad_query_init(dn__kad_query *q, const dn__kad_key *target, const dn_peerid *self,
                       const dn__kad_query_opts *opts);
void dn__kad_query_close(dn__kad_query *q);

/* Add candidates (the seeds from the routing table, or a reply's
 * closerPeers). Duplicates, self and empty ids are ignored. Returns how many
 * became new candidates, or DN_ECRYPTO. */
int dn__kad_query_add(dn__kad_query *q, const dn_peerid *ids, size_t n);

/* Expire WAITING requests older than the timeout, then pick the next peer
 * to ask: returns 1 and sets *out (now WAITING, sent at now_ms), or 0 when
 * none may be asked now (alpha in flight, nothing eligible, or done). */
int dn__kad_query_next(dn__kad_query *q, uint64_t now_ms, dn_peerid *out);

/* A WAITING peer answered with closer peers ids[0..n). Returns how many of
 * them became new candidates, DN_ENOTFOUND when the peer is not a
 * candidate (any more), DN_ESTATE when it was not WAITING (a late reply
 * after its timeout, a second reply). */
int dn__kad_query_success(dn__kad_query *q, const dn_peerid *peer, const dn_peerid *ids, size_t n);
/* A WAITING peer's request failed. 0, DN_ENOTFOUND or DN_ESTATE. */
int dn__kad_query_failure(dn__kad_query *q, const dn_peerid *peer);

/* When the next request times out (for a timer), UINT64_MAX if none. */
uint64_t dn__kad_query_deadline(const dn__kad_query *q);

/* True when the lookup has finished (see above). */
bool dn__kad_query_done(const dn__kad_query *q);

/* The up to max (<= k) closest peers that answered, closest first. */
size_t dn__kad_query_results(const dn__kad_query *q, dn_peerid *out, size_t max);

#endif
