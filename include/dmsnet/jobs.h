/* dmsnet — publishJob: a job's request for bids, published to the network
 * on the node's jobs topic (config jobs.topic, default /dmsnet/jobs/1.0.0;
 * /nunet/deployment for NuNet DMS), and the bids nodes send back to the
 * requester as Messenger requests of type DN_JOB_BID_TYPE, collected until
 * the request's deadline. Message layouts: docs/jobs.md.
 *
 * Every node subscribes to the jobs topic; it learns of requests through
 * its API (GET /v0/job/requests) and answers with dn_network_job_bid (or
 * POST /v0/job/bid, or automatically with config jobs.auto_bid). A node
 * never bids on its own request. Runs on the node's loop thread. */
#ifndef DMSNET_JOBS_H
#define DMSNET_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/network.h"
#include "dmsnet/peerid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DN_JOB_BID_TYPE "/dmsnet/job/bid/1.0.0"
#define DN_JOB_ID_LEN 16 /* random request id */
/* Job description bytes (the request fits one pubsub message) and bid
 * bytes (the bid fits one Messenger message). */
#define DN_JOB_MAX ((1u << 20) - 1024)
#define DN_JOB_BID_MAX ((1u << 20) - 64)
#define DN_JOB_MAX_WAIT_MS (3600u * 1000)
#define DN_JOB_MAX_OPEN 64   /* our requests collecting bids at once */
#define DN_JOB_MAX_BIDS 1024 /* bids one request takes (one per bidder) */

/* One call per accepted bid, then a last one with done set. Pointers are
 * valid during the call. */
typedef struct dn_job_event {
    const uint8_t *request; /* the request id, DN_JOB_ID_LEN bytes */
    bool done;              /* last call: status 0 at the deadline, DN_ECLOSED at stop */
    int status;
    size_t nbids;          /* bids accepted so far (done: all of them) */
    const dn_peerid *from; /* a bid: the bidder */
    const uint8_t *bid;
    size_t len;
    uint64_t time_ms; /* unix time the bid (or the end) came */
} dn_job_event;
typedef void (*dn_job_bid_cb)(void *arg, const dn_job_event *ev);

/* Publish a request for bids on job (1..DN_JOB_MAX bytes) and collect bids
 * for wait_ms (1..DN_JOB_MAX_WAIT_MS). Returns 0 and calls cb for each bid
 * and once at the end (never from inside this call), or fails at once
 * without calling it: DN_EINVAL, DN_ETOOBIG, DN_ELIMIT (DN_JOB_MAX_OPEN
 * requests open), DN_ESTATE (the node is not started or stopping), or the
 * pubsub service's error. Bids for a request that is closed or unknown are
 * refused, and the bidder told why. */
int dn_network_publish_job(dn_network *n, const void *job, size_t len, uint32_t wait_ms,
                           dn_job_bid_cb cb, void *arg);

/* Bid on a request this node received: the bid (0..DN_JOB_BID_MAX bytes)
 * goes to the requester, which answers. done: status 0 when it accepted
 * the bid; otherwise why not, with the requester's reason in why (a closed
 * or unknown request, a second bid) or NULL for a network error. Returns 0
 * and calls done once (never from inside the call), or DN_ENOTFOUND (no
 * such request received), DN_EINVAL (our own request), DN_ETOOBIG. */
typedef void (*dn_job_bid_done_cb)(void *arg, int status, const char *why);
int dn_network_job_bid(dn_network *n, const uint8_t id[DN_JOB_ID_LEN], const void *bid, size_t len,
                       dn_job_bid_done_cb done, void *arg);

#ifdef __cplusplus
}
#endif
#endif
