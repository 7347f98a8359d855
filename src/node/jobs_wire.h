/* node — publishJob's message layouts (docs/jobs.md), sans-I/O: JobRequest
 * (the data of a message on the jobs topic), Bid (a Messenger request to
 * the requester) and BidReply (its answer). Protobuf, with the project's
 * codec (core/pb.h). Decoders point into the input (no copies); unknown
 * fields are skipped, a known field of the wrong wire type or size is
 * DN_EMALFORMED. Fuzzed by tests/fuzz/fuzz_jobs.c. */
#ifndef DN_NODE_JOBS_WIRE_H
#define DN_NODE_JOBS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/jobs.h"
#include "dmsnet/peerid.h"

/* JobRequest {id 1 (16 bytes), requester 2 (peer id bytes), deadline_ms 3,
 * job 4, bid_type 5 (absent: DN_JOB_BID_TYPE)}. */
typedef struct dn__job_request {
    const uint8_t *id;
    dn_peerid requester;
    uint64_t deadline_ms; /* unix */
    const uint8_t *job;
    size_t len;
    const char *bid_type; /* a protocol id, not NUL-terminated */
    size_t bid_type_len;  /* 2..255 */
} dn__job_request;

int dn__job_request_encode(dn_buf *b, const uint8_t id[DN_JOB_ID_LEN], const dn_peerid *requester,
                           uint64_t deadline_ms, const void *job, size_t len, const char *bid_type);
/* Every field but bid_type is required (the job field may be empty). */
int dn__job_request_decode(const uint8_t *p, size_t len, dn__job_request *r);

/* Bid {request 1 (16 bytes), bid 2}. */
typedef struct dn__job_bid {
    const uint8_t *request;
    const uint8_t *bid; /* NULL when absent (an empty bid) */
    size_t len;
} dn__job_bid;
int dn__job_bid_encode(dn_buf *b, const uint8_t id[DN_JOB_ID_LEN], const void *bid, size_t len);
int dn__job_bid_decode(const uint8_t *p, size_t len, dn__job_bid *out);

/* BidReply {accepted 1, error 2}: error NULL encodes an acceptance. The
 * decoder sets *accepted, or writes the error escaped (printable, valid
 * UTF-8) into why; a reply that is neither is DN_EMALFORMED. */
int dn__job_reply_encode(dn_buf *b, const char *error);
int dn__job_reply_decode(const uint8_t *p, size_t len, bool *accepted, char *why, size_t whylen);

/* A protocol id: '/'-led printable ASCII of 2..255 bytes. */
bool dn__job_valid_type(const char *t, size_t n);

#endif
