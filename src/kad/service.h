/* The DHT service's internals, shared by its files: service.c (attach,
 * modes, the inbound handler, table admission, upkeep, persistence),
 * rpc.c (one outbound request on a new stream) and lookup.c (lookups run
 * on the host with query.h, and the API built on them). */
#ifndef DN_KAD_SERVICE_H
#define DN_KAD_SERVICE_H

#include <uv.h>

#include "crypto/verify_cache.h"
#include "dmsnet/kad.h"
#include "kad/kad_msg.h"
#include "kad/query.h"
#include "kad/records.h"
#include "kad/routing.h"

#define DN_KAD_PROTO_MAX 256
#define DN_KAD_MAX_INBOUND 256          /* inbound kad streams at once */
#define DN_KAD_REQUESTS_PER_STREAM 1024 /* then the stream is reset */
#define DN_KAD_STREAM_IDLE_MS 60000     /* an inbound stream with no request for this long */
#define DN_KAD_MAX_ADMITS 64            /* admission pings at once */
#define DN_KAD_MAX_CANDIDATES 256       /* restored peers not yet admitted */
#define DN_KAD_MAX_WAITING 1024         /* lookups queued behind max_queries */
#define DN_KAD_ADDRS_PER_PEER 8         /* addresses sent per peer in a reply */
#define DN_KAD_QUORUM 16                /* GET_VALUE answers wanted (js) */

typedef struct kad_in kad_in;
typedef struct kad_rpc kad_rpc;
typedef struct kad_admit kad_admit;
typedef struct kad_lookup kad_lookup;

struct dn_kad {
    dn_host *h;
    dn_kad_config cfg;
    char prefix[DN_KAD_PROTO_MAX];
    char proto[DN_KAD_PROTO_MAX];
    bool serving, reachable, freed, routing;
    dn__kad_rt rt;
    dn__kad_store store;
    dn_verify_cache vc;
    uv_timer_t tick;  /* 1 s upkeep */
    uv_timer_t defer; /* starts queued lookups, never from inside an API call */
    int handles;      /* uv handles not yet closed (the struct goes when 0) */
    uint64_t last_refresh_ms, last_expire_ms;
    bool table_dirty;
    uint64_t last_seq;
    kad_in *ins;
    unsigned nins;
    kad_rpc *rpcs;
    unsigned nrpcs;
    kad_admit *admits;
    unsigned nadmits;
    dn_peerid cand[DN_KAD_MAX_CANDIDATES];
    size_t ncand;
    kad_lookup *running, *wait_head, *wait_tail;
    unsigned nrunning, nwaiting;
    dn_kad_stats st;
};

uint64_t dn__kad_unix_ms(void);
uint64_t dn__kad_loop_ms(const dn_kad *k);

/* service.c */
/* A peer answered one of our kad requests (or identify and a ping proved
 * it speaks kad): into the routing table, pinging the bucket's least
 * recently seen peer when it is full. */
void dn__kad_peer_seen(dn_kad *k, const dn_peerid *peer);
/* A request to peer failed (dial, timeout, refused protocol): stale. */
void dn__kad_peer_failed(dn_kad *k, const dn_peerid *peer);
/* Store the sane addresses of a reply's peer (when we know none of ours
 * for it and are not connected to it). */
void dn__kad_learn_addrs(dn_kad *k, const dn__kad_msg *m, const dn__kad_peer *p);
/* Whether we could dial peer without asking a router: connected, or
 * addresses known. */
bool dn__kad_dialable(dn_kad *k, const dn_peerid *peer);
void dn__kad_table_changed(dn_kad *k);
/* Ask the upkeep to run the queued lookups on the next loop turn. */
void dn__kad_kick(dn_kad *k);

/* rpc.c: send the request frame to peer on a new stream; cb once with the
 * decoded reply (valid during the call) or an error, never from inside
 * this call. want_reply false (ADD_PROVIDER): done when the peer ends the
 * stream, or at the timeout, with 0 once the frame went out. Returns 0 or
 * an error (then cb is not called): DN_ENOTFOUND when the peer cannot be
 * dialled without a router. */
typedef void (*dn__kad_rpc_cb)(dn_kad *k, void *arg, const dn_peerid *peer, int status,
                               const dn__kad_msg *reply);
int dn__kad_rpc(dn_kad *k, const dn_peerid *peer, const dn_buf *frame, bool want_reply,
                dn__kad_rpc_cb cb, void *arg);

/* End every request (the host is being freed). */
void dn__kad_rpcs_close(dn_kad *k);

/* lookup.c */
void dn__kad_run_queued(dn_kad *k);
/* The host is gone: end every queued lookup with DN_ECLOSED. */
void dn__kad_lookups_close(dn_kad *k);
/* Refresh lookups (for buckets not touched within the interval). */
void dn__kad_refresh(dn_kad *k);
/* The router for dn_host_dial_peer. */
void dn__kad_router(void *arg, dn_host *h, const dn_peerid *peer, dn_peer_found_fn found,
                    void *ctx);

#endif
