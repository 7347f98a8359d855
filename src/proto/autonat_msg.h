/* AutoNAT v2 messages (libp2p/specs autonat/autonat-v2.md, "RPC Messages"),
 * sans-I/O: decode from a byte span, encode into a dn_buf. No host, no
 * allocation while decoding (addresses and dial data point into the input).
 *
 *   message Message { oneof msg { DialRequest dialRequest = 1;
 *       DialResponse dialResponse = 2; DialDataRequest dialDataRequest = 3;
 *       DialDataResponse dialDataResponse = 4; } }
 *   message DialRequest { repeated bytes addrs = 1; fixed64 nonce = 2; }
 *   message DialDataRequest { uint32 addrIdx = 1; uint64 numBytes = 2; }
 *   message DialResponse { ResponseStatus status = 1; uint32 addrIdx = 2;
 *       DialStatus dialStatus = 3; }
 *   message DialDataResponse { bytes data = 1; }
 *   message DialBack { fixed64 nonce = 1; }
 *   message DialBackResponse { DialBackStatus status = 1; }
 *
 * Framing: every message on both streams is an unsigned varint length
 * followed by that many bytes (the spec's "RPC Messages" section).
 * dn__autonat_frame splits a buffer into messages and bounds the length.
 *
 * Strictness (what a peer can make us hold or do is bounded):
 * - a framed message is at most DN_AUTONAT_MSG_MAX bytes (DN_ETOOBIG);
 * - a DialRequest lists at most DN_AUTONAT_MAX_ADDRS addresses (DN_ETOOBIG)
 *   and each is at most DN_MULTIADDR_MAX bytes (DN_ETOOBIG); the bytes are
 *   not parsed here: the server skips addresses that are not multiaddrs it
 *   can dial, as it skips any address it will not dial;
 * - a Message carries exactly one of the oneof fields: none, or two of
 *   them (or one twice), is DN_EMALFORMED (proto3 would keep the last, a
 *   streaming reader the first: we accept neither reading);
 * - nonce must be wire type fixed64 (as the spec defines it) and the
 *   varint fields varints; a known field with another wire type is
 *   DN_EMALFORMED; unknown fields are skipped;
 * - uint32 fields above 2^32-1 are DN_EMALFORMED;
 * - enum values we do not know are kept as numbers: the caller discards
 *   responses it does not understand (spec, "Requirements for
 *   ResponseStatus"). */
#ifndef DN_PROTO_AUTONAT_MSG_H
#define DN_PROTO_AUTONAT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/multiaddr.h"

#define DN_AUTONAT_DIAL_REQUEST_PROTOCOL "/libp2p/autonat/2/dial-request"
#define DN_AUTONAT_DIAL_BACK_PROTOCOL "/libp2p/autonat/2/dial-back"

#define DN_AUTONAT_MSG_MAX (64u * 1024u)
#define DN_AUTONAT_MAX_ADDRS 32
/* The spec limits each DialDataResponse's data to 4096 bytes. */
#define DN_AUTONAT_DIAL_DATA_CHUNK 4096
/* Servers SHOULD ask for 30k to 100k bytes (spec, "Amplification Attack
 * Prevention"). */
#define DN_AUTONAT_DIAL_DATA_MIN 30000
#define DN_AUTONAT_DIAL_DATA_MAX 100000

typedef enum dn__autonat_type {
    DN_AUTONAT_NONE = 0,
    DN_AUTONAT_DIAL_REQUEST = 1,
    DN_AUTONAT_DIAL_RESPONSE = 2,
    DN_AUTONAT_DIAL_DATA_REQUEST = 3,
    DN_AUTONAT_DIAL_DATA_RESPONSE = 4,
} dn__autonat_type;

/* DialResponse.ResponseStatus */
enum {
    DN_AUTONAT_RS_INTERNAL_ERROR = 0,
    DN_AUTONAT_RS_REQUEST_REJECTED = 100,
    DN_AUTONAT_RS_DIAL_REFUSED = 101,
    DN_AUTONAT_RS_OK = 200,
};
/* DialStatus */
enum {
    DN_AUTONAT_DS_UNUSED = 0,
    DN_AUTONAT_DS_E_DIAL_ERROR = 100,
    DN_AUTONAT_DS_E_DIAL_BACK_ERROR = 101,
    DN_AUTONAT_DS_OK = 200,
};
/* DialBackResponse.DialBackStatus */
enum { DN_AUTONAT_DBS_OK = 0 };

typedef struct dn__autonat_msg {
    dn__autonat_type type;
    union {
        struct {
            size_t naddrs;
            const uint8_t *addrs[DN_AUTONAT_MAX_ADDRS]; /* into the input */
            size_t addr_lens[DN_AUTONAT_MAX_ADDRS];
            uint64_t nonce;
        } dial_request;
        struct {
            uint32_t status, addr_idx, dial_status;
        } dial_response;
        struct {
            uint32_t addr_idx;
            uint64_t num_bytes;
        } dial_data_request;
        struct {
            const uint8_t *data; /* into the input */
            size_t len;
        } dial_data_response;
    } u;
} dn__autonat_msg;

/* The first message of buf: returns the bytes it takes (prefix included,
 * > 0) with *body / *body_len set, 0 when buf holds only part of it, or
 * DN_ETOOBIG (declared length over max) / DN_EMALFORMED (bad varint). */
int dn__autonat_frame(const uint8_t *buf, size_t len, size_t max, const uint8_t **body,
                      size_t *body_len);

/* Decode one Message (no length prefix). Returns 0 or a negative error
 * (see the strictness rules above); *out is valid only on success. */
int dn__autonat_decode(const uint8_t *p, size_t len, dn__autonat_msg *out);
/* DialBack: *nonce. A missing nonce is DN_EMALFORMED (it is the point). */
int dn__autonat_decode_dial_back(const uint8_t *p, size_t len, uint64_t *nonce);
/* DialBackResponse: *status. */
int dn__autonat_decode_dial_back_response(const uint8_t *p, size_t len, uint32_t *status);

/* Append one framed message (length prefix + Message) to out. Returns 0,
 * DN_ENOMEM, or DN_EINVAL for a message outside the bounds above (so what
 * we encode, we decode). */
int dn__autonat_encode(const dn__autonat_msg *m, dn_buf *out);
int dn__autonat_encode_dial_back(uint64_t nonce, dn_buf *out);
int dn__autonat_encode_dial_back_response(uint32_t status, dn_buf *out);

#endif
