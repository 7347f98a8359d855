/* The Kademlia DHT wire message (libp2p/specs kad-dht/README.md, "RPC
 * messages"): protobuf encode/decode and the uvarint length-prefixed
 * framing, sans-I/O.
 *
 *   message Record  { bytes key = 1; bytes value = 2; string timeReceived = 5; }
 *   message Message {
 *     MessageType type = 1;  bytes key = 2;  Record record = 3;
 *     repeated Peer closerPeers = 8;  repeated Peer providerPeers = 9;
 *     int32 clusterLevelRaw = 10;
 *     message Peer { bytes id = 1; repeated bytes addrs = 2; ConnectionType connection = 3; }
 *   }
 *
 * proto3 omits zero values, so a message without `type` is PUT_VALUE and a
 * peer without `connection` is NOT_CONNECTED. Record fields 3 and 4 (author,
 * signature) were removed from the spec; they are skipped when read, like
 * unknown fields and fields with an unexpected wire type.
 *
 * Decoding is zero-copy: every byte span in a decoded dn__kad_msg points
 * into the caller's input, which must outlive the message. Nothing is
 * allocated. Encoding reads the same struct, whose spans then point to the
 * caller's memory.
 *
 * Bounds (a peer's message costs a fixed amount whatever it holds):
 * - the message is at most DN_KAD_MSG_MAX bytes (4 MiB, the default
 *   maxDataLength of js's it-length-prefixed and go's msgio reader); a
 *   longer one is DN_ETOOBIG before anything is read;
 * - key at most DN_KAD_MAX_KEY bytes, record key likewise, record value at
 *   most DN_KAD_MAX_VALUE, timeReceived at most DN_KAD_MAX_TIME: longer is
 *   DN_ETOOBIG (the message is refused whole);
 * - at most DN_KAD_MAX_PEERS closerPeers and as many providerPeers, at most
 *   DN_KAD_MAX_ADDRS addresses per peer and DN_KAD_MAX_ADDRS_TOTAL in the
 *   message, each at most DN_MULTIADDR_MAX bytes: the rest are dropped and
 *   counted (dropped_peers, dropped_addrs), as is a peer whose id is not a
 *   valid peer id multihash (it could never be dialled or ranked) and an
 *   empty address. Addresses are not parsed here (the caller decides which
 *   to keep);
 * - a connection value above CANNOT_CONNECT reads as NOT_CONNECTED.
 * Errors: DN_ETOOBIG (sizes above), DN_EMALFORMED (bad protobuf, including
 * a negative clusterLevelRaw, which protobuf sends as a 10-byte varint our
 * reader refuses, and a `type` varint above 2^32), DN_ETRUNCATED (a field
 * runs past the end), DN_EUNSUPPORTED (a `type` above PING). */
#ifndef DN_KAD_KAD_MSG_H
#define DN_KAD_KAD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/peerid.h"

#define DN_KAD_MSG_MAX (4u * 1024u * 1024u)
#define DN_KAD_MAX_KEY 2048u
#define DN_KAD_MAX_VALUE (64u * 1024u)
#define DN_KAD_MAX_TIME 64u
#define DN_KAD_MAX_PEERS 40 /* per list: 2 k, a reply carries k */
#define DN_KAD_MAX_ADDRS 16 /* per peer */
#define DN_KAD_MAX_ADDRS_TOTAL 320
#define DN_KAD_MAX_ADDR_LEN DN_MULTIADDR_MAX

enum dn__kad_type {
    DN_KAD_PUT_VALUE = 0,
    DN_KAD_GET_VALUE = 1,
    DN_KAD_ADD_PROVIDER = 2,
    DN_KAD_GET_PROVIDERS = 3,
    DN_KAD_FIND_NODE = 4,
    DN_KAD_PING = 5, /* deprecated: answered, never sent */
};

enum dn__kad_conn {
    DN_KAD_NOT_CONNECTED = 0,
    DN_KAD_CONNECTED = 1,
    DN_KAD_CAN_CONNECT = 2,
    DN_KAD_CANNOT_CONNECT = 3,
};

typedef struct dn__kad_span {
    const uint8_t *p; /* NULL when len is 0 */
    size_t len;
} dn__kad_span;

typedef struct dn__kad_peer {
    dn_peerid id;
    uint8_t connection;  /* enum dn__kad_conn */
    uint16_t addr_first; /* index into dn__kad_msg.addrs */
    uint16_t naddrs;
} dn__kad_peer;

typedef struct dn__kad_msg {
    uint8_t type; /* enum dn__kad_type */
    int32_t cluster_level;
    dn__kad_span key;

    bool has_record;
    dn__kad_span record_key;
    dn__kad_span record_value;
    dn__kad_span record_time; /* RFC 3339 text, set by the receiver */

    dn__kad_peer closer[DN_KAD_MAX_PEERS];
    size_t ncloser;
    dn__kad_peer providers[DN_KAD_MAX_PEERS];
    size_t nproviders;
    dn__kad_span addrs[DN_KAD_MAX_ADDRS_TOTAL]; /* shared by both lists */
    size_t naddrs;

    size_t dropped_peers; /* over DN_KAD_MAX_PEERS, or an invalid id */
    size_t dropped_addrs; /* over a bound, or empty */
} dn__kad_msg;

/* An empty message (PUT_VALUE, nothing set). */
void dn__kad_msg_init(dn__kad_msg *m);

/* Decode one message (without its length prefix) from p[0..len). Returns 0
 * or an error listed above; on error *m is left empty (dn__kad_msg_init). */
int dn__kad_msg_decode(const uint8_t *p, size_t len, dn__kad_msg *m);

/* Append the protobuf encoding of m to out (fields in number order, zero
 * values omitted). Returns 0, DN_EINVAL (a count or addr index out of its
 * bounds, a type above PING), DN_ETOOBIG (a span over its bound, or the
 * whole above DN_KAD_MSG_MAX) or DN_ENOMEM. out is unchanged on error. */
int dn__kad_msg_encode(const dn__kad_msg *m, dn_buf *out);

/* The same, prefixed with its uvarint length: what goes on the stream. */
int dn__kad_msg_encode_frame(const dn__kad_msg *m, dn_buf *out);

/* Append a peer to the closer (providers false) or provider list of m,
 * with its addresses (spans copied, bytes not). Returns 0, DN_ELIMIT when a
 * bound would be passed, DN_EINVAL for a NULL id. For building replies. */
int dn__kad_msg_add_peer(dn__kad_msg *m, bool providers, const dn_peerid *id, uint8_t connection,
                         const dn__kad_span *addrs, size_t naddrs);

/* The sans-I/O frame reader: feed it stream bytes, take whole messages.
 * It holds at most one frame (<= max bytes): feed takes bytes only up to
 * the end of the current frame and takes nothing while a whole frame waits
 * to be taken, so memory is bounded by the frame, and it grows with the
 * bytes that arrived, not with the length a peer announced. */
typedef struct dn__kad_reader {
    dn_buf buf;
    size_t max;
    size_t need; /* frame length once the prefix is read */
    uint8_t hdr[10];
    uint8_t nhdr;
    bool have_len;
    bool ready; /* a whole frame waits in buf */
    int err;    /* sticky error, 0 when fine */
} dn__kad_reader;

/* max 0 or above DN_KAD_MSG_MAX means DN_KAD_MSG_MAX. */
void dn__kad_reader_init(dn__kad_reader *r, size_t max);
void dn__kad_reader_free(dn__kad_reader *r);

/* Take bytes from p[0..n). Returns how many were taken (0..n; the caller
 * offers the rest again after taking the frame), or a sticky error:
 * DN_ETOOBIG (announced length above max), DN_EMALFORMED (a length prefix
 * that is not a minimal uvarint), DN_ENOMEM. */
int dn__kad_reader_feed(dn__kad_reader *r, const uint8_t *p, size_t n);

/* Take the waiting frame: returns 1 and sets *msg and *len (valid until the
 * next feed or free; len may be 0, an empty message), 0 when no whole frame
 * is there yet, or the sticky error. */
int dn__kad_reader_next(dn__kad_reader *r, const uint8_t **msg, size_t *len);

/* True when bytes of an unfinished frame are buffered (a stream that ends
 * now ended mid-message: DN_ETRUNCATED for the caller). */
bool dn__kad_reader_partial(const dn__kad_reader *r);

#endif
