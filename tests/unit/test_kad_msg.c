/* Unit tests: the Kademlia message codec and frame reader (src/kad/kad_msg.c)
 * against bytes assembled by hand from the field numbers of libp2p/specs
 * kad-dht/README.md ("RPC messages"), the bounds of kad_msg.h, malformed
 * input and the framing's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pb.h"
#include "dmsnet/error.h"
#include "kad/kad_msg.h"

/* A sha2-256 multihash peer id ("Qm..."): 0x12 0x20 then 32 bytes. */
static void mk_id(uint8_t seed, uint8_t out[34], dn_peerid *id)
{
    out[0] = 0x12;
    out[1] = 0x20;
    for (int i = 0; i < 32; i++)
        out[2 + i] = (uint8_t)(seed * 7 + i);
    if (id)
        assert_int_equal(dn_peerid_from_bytes(out, 34, id), 0);
}

/* /ip4/127.0.0.1/tcp/4001 */
static const uint8_t ADDR[] = {0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1};

static void test_find_node_request_bytes(void **state)
{
    (void)state;
    uint8_t idb[34];
    mk_id(1, idb, NULL);
    dn__kad_msg m;
    dn__kad_msg_init(&m);
    m.type = DN_KAD_FIND_NODE;
    m.key = (dn__kad_span){idb, sizeof idb};
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__kad_msg_encode(&m, &b), 0);
    /* type = 1 (varint) 4, key = 2 (bytes) 34 */
    uint8_t want[2 + 2 + 34] = {0x08, 0x04, 0x12, 0x22};
    memcpy(want + 4, idb, 34);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);

    dn__kad_msg d;
    assert_int_equal(dn__kad_msg_decode(want, sizeof want, &d), 0);
    assert_int_equal(d.type, DN_KAD_FIND_NODE);
    assert_int_equal(d.key.len, 34);
    assert_memory_equal(d.key.p, idb, 34);
    assert_false(d.has_record);
    assert_int_equal(d.ncloser + d.nproviders, 0);

    /* The frame is the same bytes after a uvarint length (38 = 0x26). */
    dn_buf f = DN_BUF_INIT;
    assert_int_equal(dn__kad_msg_encode_frame(&m, &f), 0);
    assert_int_equal(f.len, 1 + sizeof want);
    assert_int_equal(f.data[0], sizeof want);
    assert_memory_equal(f.data + 1, want, sizeof want);
    dn_buf_free(&b);
    dn_buf_free(&f);
}

static void test_reply_with_peers_bytes(void **state)
{
    (void)state;
    uint8_t id1[34], id2[34];
    mk_id(2, id1, NULL);
    mk_id(3, id2, NULL);
    /* FIND_NODE reply: closerPeers (8) = Peer{id 1, addrs 2, connection 3},
     * then providerPeers (9) = Peer{id} */
    uint8_t w[200];
    size_t n = 0;
    w[n++] = 0x08, w[n++] = 0x04;
    w[n++] = 0x42, w[n++] = 2 + 34 + 2 + sizeof ADDR + 2;
    w[n++] = 0x0a, w[n++] = 34;
    memcpy(w + n, id1, 34), n += 34;
    w[n++] = 0x12, w[n++] = sizeof ADDR;
    memcpy(w + n, ADDR, sizeof ADDR), n += sizeof ADDR;
    w[n++] = 0x18, w[n++] = DN_KAD_CONNECTED;
    w[n++] = 0x4a, w[n++] = 2 + 34;
    w[n++] = 0x0a, w[n++] = 34;
    memcpy(w + n, id2, 34), n += 34;

    dn__kad_msg d;
    assert_int_equal(dn__kad_msg_decode(w, n, &d), 0);
    assert_int_equal(d.type, DN_KAD_FIND_NODE);
    assert_int_equal(d.ncloser, 1);
    assert_int_equal(d.closer[0].id.len, 34);
    assert_memory_equal(d.closer[0].id.bytes, id1, 34);
    assert_int_equal(d.closer[0].connection, DN_KAD_CONNECTED);
    assert_int_equal(d.closer[0].naddrs, 1);
    assert_int_equal(d.addrs[d.closer[0].addr_first].len, sizeof ADDR);
    assert_memory_equal(d.addrs[d.closer[0].addr_first].p, ADDR, sizeof ADDR);
    assert_int_equal(d.nproviders, 1);
    assert_memory_equal(d.providers[0].id.bytes, id2, 34);
    assert_int_equal(d.providers[0].connection, DN_KAD_NOT_CONNECTED);
    assert_int_equal(d.providers[0].naddrs, 0);
    assert_int_equal(d.dropped_peers + d.dropped_addrs, 0);

    /* Re-encoding gives the very same bytes. */
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__kad_msg_encode(&d, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, w, n);

    /* Building the same reply with add_peer gives them too. */
    dn__kad_msg m;
    dn__kad_msg_init(&m);
    m.type = DN_KAD_FIND_NODE;
    dn_peerid p1, p2;
    mk_id(2, id1, &p1);
    mk_id(3, id2, &p2);
    dn__kad_span a = {ADDR, sizeof ADDR};
    assert_int_equal(dn__kad_msg_add_peer(&m, false, &p1, DN_KAD_CONNECTED, &a, 1), 0);
    assert_int_equal(dn__kad_msg_add_peer(&m, true, &p2, DN_KAD_NOT_CONNECTED, NULL, 0), 0);
    dn_buf_reset(&b);
    assert_int_equal(dn__kad_msg_encode(&m, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, w, n);
    dn_buf_free(&b);
}

static void test_record_bytes(void **state)
{
    (void)state;
    /* PUT_VALUE (type 0 omitted, proto3), key "/pk/x", record {key, value,
     * timeReceived 5}; the removed author (3) and signature (4) fields and
     * an unknown field 7 are skipped. */
    // clang-format off
    static const uint8_t w[] = {
        0x12, 5,    '/', 'p', 'k', '/', 'x',                               /* key */
        0x1a, 29,                                                          /* record */
        0x0a, 5,    '/', 'p', 'k', '/', 'x',                               /* key */
        0x12, 2,    'h', 'i',                                              /* value */
        0x1a, 1,    'A',                                                   /* author */
        0x22, 1,    'S',                                                   /* signature */
        0x2a, 10,   '2', '0', '2', '6', '-', '1', '2', '-', '0', '2',      /* time */
        0x38, 0x01,                                                        /* unknown 7 */
    };
    // clang-format on
    dn__kad_msg d;
    assert_int_equal(dn__kad_msg_decode(w, sizeof w, &d), 0);
    assert_int_equal(d.type, DN_KAD_PUT_VALUE);
    assert_int_equal(d.key.len, 5);
    assert_memory_equal(d.key.p, "/pk/x", 5);
    assert_true(d.has_record);
    assert_int_equal(d.record_key.len, 5);
    assert_int_equal(d.record_value.len, 2);
    assert_memory_equal(d.record_value.p, "hi", 2);
    assert_int_equal(d.record_time.len, 10);
    assert_memory_equal(d.record_time.p, "2026-12-02", 10);

    /* Our encoding drops what we skipped. */
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__kad_msg_encode(&d, &b), 0);
    static const uint8_t want[] = {0x12, 5,   '/', 'p', 'k', '/',  'x', 0x1a, 23,  0x0a, 5,
                                   '/',  'p', 'k', '/', 'x', 0x12, 2,   'h',  'i', 0x2a, 10,
                                   '2',  '0', '2', '6', '-', '1',  '2', '-',  '0', '2'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);

    /* An empty record is still a record (has_record), encoded as 1a 00. */
    dn__kad_msg m;
    dn__kad_msg_init(&m);
    m.type = DN_KAD_GET_VALUE;
    m.has_record = true;
    dn_buf_reset(&b);
    assert_int_equal(dn__kad_msg_encode(&m, &b), 0);
    static const uint8_t want2[] = {0x08, 0x01, 0x1a, 0x00};
    assert_int_equal(b.len, sizeof want2);
    assert_memory_equal(b.data, want2, sizeof want2);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, &d), 0);
    assert_true(d.has_record);
    assert_int_equal(d.record_value.len, 0);
    dn_buf_free(&b);

    /* The empty message is a PUT_VALUE with nothing in it. */
    assert_int_equal(dn__kad_msg_decode(w, 0, &d), 0);
    assert_int_equal(dn__kad_msg_decode(NULL, 0, &d), 0);
    assert_int_equal(d.type, DN_KAD_PUT_VALUE);
    assert_false(d.has_record);
}

static void test_wire_type_mismatch_skipped(void **state)
{
    (void)state;
    /* key as a varint, type as bytes, a peer list as a varint: all skipped
     * (as protobuf readers skip what they cannot place). cluster level 3. */
    static const uint8_t w[] = {0x10, 0x05, 0x0a, 0x01, 0x04, 0x40, 0x01, 0x50, 0x03, 0x08, 0x01};
    dn__kad_msg d;
    assert_int_equal(dn__kad_msg_decode(w, sizeof w, &d), 0);
    assert_int_equal(d.type, DN_KAD_GET_VALUE);
    assert_int_equal(d.key.len, 0);
    assert_int_equal(d.ncloser, 0);
    assert_int_equal(d.cluster_level, 3);
}

static size_t put_peer(dn_buf *b, uint32_t field, const uint8_t *id, size_t idlen, size_t naddrs,
                       size_t addrlen)
{
    dn_buf p = DN_BUF_INIT;
    assert_int_equal(dn_pb_put_bytes(&p, 1, id, idlen), 0);
    uint8_t *a = malloc(addrlen + 1);
    assert_non_null(a);
    memset(a, 0x04, addrlen + 1);
    for (size_t i = 0; i < naddrs; i++)
        assert_int_equal(dn_pb_put_bytes(&p, 2, a, addrlen), 0);
    free(a);
    assert_int_equal(dn_pb_put_bytes(b, field, p.data, p.len), 0);
    size_t n = p.len;
    dn_buf_free(&p);
    return n;
}

static void test_peer_bounds(void **state)
{
    (void)state;
    uint8_t idb[34];
    dn__kad_msg *d = malloc(sizeof *d);
    assert_non_null(d);
    dn_buf b = DN_BUF_INIT;

    /* 50 closer peers: DN_KAD_MAX_PEERS kept, the rest dropped with their
     * addresses; then 3 providers fit still. */
    for (int i = 0; i < 50; i++) {
        mk_id((uint8_t)i, idb, NULL);
        put_peer(&b, 8, idb, 34, 1, sizeof ADDR);
    }
    for (int i = 0; i < 3; i++) {
        mk_id((uint8_t)(100 + i), idb, NULL);
        put_peer(&b, 9, idb, 34, 2, sizeof ADDR);
    }
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, d), 0);
    assert_int_equal(d->ncloser, DN_KAD_MAX_PEERS);
    assert_int_equal(d->nproviders, 3);
    assert_int_equal(d->dropped_peers, 50 - DN_KAD_MAX_PEERS);
    assert_int_equal(d->dropped_addrs, 50 - DN_KAD_MAX_PEERS);
    assert_int_equal(d->naddrs, DN_KAD_MAX_PEERS + 6);
    assert_int_equal(d->providers[2].addr_first, DN_KAD_MAX_PEERS + 4);

    /* Addresses: per peer, too long, empty. */
    dn_buf_reset(&b);
    mk_id(1, idb, NULL);
    put_peer(&b, 8, idb, 34, DN_KAD_MAX_ADDRS + 4, sizeof ADDR);
    put_peer(&b, 8, idb, 34, 1, DN_KAD_MAX_ADDR_LEN + 1);
    put_peer(&b, 8, idb, 34, 1, 0);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, d), 0);
    assert_int_equal(d->ncloser, 3);
    assert_int_equal(d->closer[0].naddrs, DN_KAD_MAX_ADDRS);
    assert_int_equal(d->closer[1].naddrs, 0);
    assert_int_equal(d->closer[2].naddrs, 0);
    assert_int_equal(d->dropped_addrs, 4 + 1 + 1);

    /* The message-wide address bound. */
    dn_buf_reset(&b);
    for (int i = 0; i < DN_KAD_MAX_PEERS; i++) {
        mk_id((uint8_t)i, idb, NULL);
        put_peer(&b, 8, idb, 34, DN_KAD_MAX_ADDRS, 4);
    }
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, d), 0);
    assert_int_equal(d->naddrs, DN_KAD_MAX_ADDRS_TOTAL);
    assert_int_equal(d->dropped_addrs,
                     DN_KAD_MAX_PEERS * DN_KAD_MAX_ADDRS - DN_KAD_MAX_ADDRS_TOTAL);
    size_t sum = 0;
    for (size_t i = 0; i < d->ncloser; i++)
        sum += d->closer[i].naddrs;
    assert_int_equal(sum, DN_KAD_MAX_ADDRS_TOTAL);

    /* Peers without an id or with one that is no multihash are dropped. */
    dn_buf_reset(&b);
    static const uint8_t junk[] = {0x99, 0x01, 0x02};
    put_peer(&b, 8, junk, sizeof junk, 1, sizeof ADDR);
    put_peer(&b, 8, junk, 0, 0, 0);
    mk_id(9, idb, NULL);
    put_peer(&b, 8, idb, 33, 0, 0); /* digest one byte short */
    put_peer(&b, 8, idb, 34, 1, sizeof ADDR);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, d), 0);
    assert_int_equal(d->ncloser, 1);
    assert_int_equal(d->dropped_peers, 3);
    assert_int_equal(d->dropped_addrs, 1);
    assert_int_equal(d->naddrs, 1);
    assert_int_equal(d->closer[0].addr_first, 0);

    /* An unknown connection value reads as NOT_CONNECTED. */
    dn_buf_reset(&b);
    dn_buf p = DN_BUF_INIT;
    assert_int_equal(dn_pb_put_bytes(&p, 1, idb, 34), 0);
    assert_int_equal(dn_pb_put_varint(&p, 3, 9), 0);
    assert_int_equal(dn_pb_put_bytes(&b, 8, p.data, p.len), 0);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, d), 0);
    assert_int_equal(d->closer[0].connection, DN_KAD_NOT_CONNECTED);
    dn_buf_free(&p);
    dn_buf_free(&b);
    free(d);
}

static void test_size_bounds(void **state)
{
    (void)state;
    dn__kad_msg d;
    dn_buf b = DN_BUF_INIT;
    uint8_t *big = calloc(1, DN_KAD_MSG_MAX + 1);
    assert_non_null(big);

    assert_int_equal(dn_pb_put_bytes(&b, 2, big, DN_KAD_MAX_KEY), 0);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, &d), 0);
    dn_buf_reset(&b);
    assert_int_equal(dn_pb_put_bytes(&b, 2, big, DN_KAD_MAX_KEY + 1), 0);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, &d), DN_ETOOBIG);

    /* record value, record key, timeReceived */
    const struct {
        uint32_t field;
        size_t max;
    } rec[] = {{2, DN_KAD_MAX_VALUE}, {1, DN_KAD_MAX_KEY}, {5, DN_KAD_MAX_TIME}};
    for (size_t i = 0; i < 3; i++) {
        for (size_t extra = 0; extra < 2; extra++) {
            dn_buf r = DN_BUF_INIT;
            assert_int_equal(dn_pb_put_bytes(&r, rec[i].field, big, rec[i].max + extra), 0);
            dn_buf_reset(&b);
            assert_int_equal(dn_pb_put_bytes(&b, 3, r.data, r.len), 0);
            assert_int_equal(dn__kad_msg_decode(b.data, b.len, &d), extra ? DN_ETOOBIG : 0);
            dn_buf_free(&r);
        }
    }

    /* The whole message: 4 MiB of unknown-field padding is fine, one byte
     * more is refused before reading. */
    assert_int_equal(dn__kad_msg_decode(big, DN_KAD_MSG_MAX, &d), DN_EMALFORMED); /* 0 tag */
    assert_int_equal(dn__kad_msg_decode(big, DN_KAD_MSG_MAX + 1, &d), DN_ETOOBIG);
    dn_buf_reset(&b);
    size_t payload = DN_KAD_MSG_MAX - 1 - 4; /* tag + 4-byte length */
    assert_int_equal(dn_pb_put_bytes(&b, 15, big, payload), 0);
    assert_int_equal(b.len, DN_KAD_MSG_MAX);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, &d), 0);

    /* Encoding refuses what decoding would. */
    dn__kad_msg m;
    dn__kad_msg_init(&m);
    m.key = (dn__kad_span){big, DN_KAD_MAX_KEY + 1};
    dn_buf_reset(&b);
    assert_int_equal(dn__kad_msg_encode(&m, &b), DN_ETOOBIG);
    assert_int_equal(b.len, 0);
    dn__kad_msg_init(&m);
    m.has_record = true;
    m.record_value = (dn__kad_span){big, DN_KAD_MAX_VALUE + 1};
    assert_int_equal(dn__kad_msg_encode(&m, &b), DN_ETOOBIG);
    dn__kad_msg_init(&m);
    m.type = 6;
    assert_int_equal(dn__kad_msg_encode(&m, &b), DN_EINVAL);
    dn__kad_msg_init(&m);
    m.ncloser = DN_KAD_MAX_PEERS + 1;
    assert_int_equal(dn__kad_msg_encode(&m, &b), DN_EINVAL);
    dn__kad_msg_init(&m);
    m.ncloser = 1;
    m.closer[0].id.len = 0;
    assert_int_equal(dn__kad_msg_encode(&m, &b), DN_EINVAL);
    assert_int_equal(b.len, 0);
    free(big);
    dn_buf_free(&b);
}

static void test_add_peer_limits(void **state)
{
    (void)state;
    dn__kad_msg *m = malloc(sizeof *m);
    assert_non_null(m);
    dn__kad_msg_init(m);
    uint8_t idb[34];
    dn_peerid id;
    mk_id(5, idb, &id);
    dn__kad_span a[DN_KAD_MAX_ADDRS + 1];
    for (size_t i = 0; i <= DN_KAD_MAX_ADDRS; i++)
        a[i] = (dn__kad_span){ADDR, sizeof ADDR};
    assert_int_equal(dn__kad_msg_add_peer(m, false, &id, 0, a, DN_KAD_MAX_ADDRS + 1), DN_ELIMIT);
    assert_int_equal(dn__kad_msg_add_peer(m, false, &id, 4, a, 1), DN_EINVAL);
    assert_int_equal(dn__kad_msg_add_peer(m, false, NULL, 0, a, 1), DN_EINVAL);
    for (int i = 0; i < DN_KAD_MAX_PEERS; i++)
        assert_int_equal(dn__kad_msg_add_peer(m, false, &id, 0, a, 1), 0);
    assert_int_equal(dn__kad_msg_add_peer(m, false, &id, 0, a, 1), DN_ELIMIT);
    /* The message-wide address pool runs out before the provider list. */
    int rc = 0, n = 0;
    while ((rc = dn__kad_msg_add_peer(m, true, &id, 0, a, DN_KAD_MAX_ADDRS)) == 0)
        n++;
    assert_int_equal(rc, DN_ELIMIT);
    assert_int_equal(n, (DN_KAD_MAX_ADDRS_TOTAL - DN_KAD_MAX_PEERS) / DN_KAD_MAX_ADDRS);
    /* What was built encodes and decodes back whole. */
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__kad_msg_encode(m, &b), 0);
    dn__kad_msg *d = malloc(sizeof *d);
    assert_non_null(d);
    assert_int_equal(dn__kad_msg_decode(b.data, b.len, d), 0);
    assert_int_equal(d->ncloser, DN_KAD_MAX_PEERS);
    assert_int_equal(d->nproviders, (size_t)n);
    assert_int_equal(d->naddrs, m->naddrs);
    assert_int_equal(d->dropped_addrs + d->dropped_peers, 0);
    free(d);
    free(m);
    dn_buf_free(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    dn__kad_msg d;
    /* key announces 5 bytes, 2 follow */
    static const uint8_t trunc[] = {0x08, 0x04, 0x12, 0x05, 'a', 'b'};
    assert_int_equal(dn__kad_msg_decode(trunc, sizeof trunc, &d), DN_ETRUNCATED);
    assert_int_equal(d.key.len, 0);
    assert_int_equal(d.type, 0);
    /* field number 0, a group wire type */
    static const uint8_t zero[] = {0x00, 0x01};
    assert_int_equal(dn__kad_msg_decode(zero, sizeof zero, &d), DN_EMALFORMED);
    static const uint8_t group[] = {0x0b};
    assert_int_equal(dn__kad_msg_decode(group, sizeof group, &d), DN_EMALFORMED);
    /* type 6: not a kad message type we know */
    static const uint8_t t6[] = {0x08, 0x06};
    assert_int_equal(dn__kad_msg_decode(t6, sizeof t6, &d), DN_EUNSUPPORTED);
    /* type above 2^32 */
    static const uint8_t tbig[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x10};
    assert_int_equal(dn__kad_msg_decode(tbig, sizeof tbig, &d), DN_EMALFORMED);
    /* clusterLevelRaw -1 (int32 on the wire: a 10-byte varint) */
    static const uint8_t neg[] = {0x50, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(dn__kad_msg_decode(neg, sizeof neg, &d), DN_EMALFORMED);
    /* a peer whose inner bytes are truncated, a record likewise */
    static const uint8_t peer[] = {0x42, 0x03, 0x0a, 0x05, 0x12};
    assert_int_equal(dn__kad_msg_decode(peer, sizeof peer, &d), DN_ETRUNCATED);
    assert_int_equal(d.ncloser, 0);
    static const uint8_t rec[] = {0x1a, 0x02, 0x12, 0x09};
    assert_int_equal(dn__kad_msg_decode(rec, sizeof rec, &d), DN_ETRUNCATED);
    assert_false(d.has_record);
    /* a key that ends inside its tag varint */
    static const uint8_t tag[] = {0x08, 0x04, 0x92};
    assert_int_equal(dn__kad_msg_decode(tag, sizeof tag, &d), DN_ETRUNCATED);
}

static void test_reader(void **state)
{
    (void)state;
    dn__kad_reader r;
    dn__kad_reader_init(&r, 0);
    assert_int_equal(r.max, DN_KAD_MSG_MAX);
    const uint8_t *msg;
    size_t len;

    /* Two frames and the start of a third in one chunk: feed stops at the
     * end of each frame. */
    static const uint8_t s[] = {0x02, 0x08, 0x04, 0x00, 0x03, 0x08};
    assert_false(dn__kad_reader_partial(&r));
    int used = dn__kad_reader_feed(&r, s, sizeof s);
    assert_int_equal(used, 3);
    assert_false(dn__kad_reader_partial(&r));               /* whole, waiting */
    assert_int_equal(dn__kad_reader_feed(&r, s + 3, 3), 0); /* a frame waits */
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), 1);
    assert_int_equal(len, 2);
    assert_memory_equal(msg, s + 1, 2);
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), 0);
    assert_false(dn__kad_reader_partial(&r));
    assert_int_equal(dn__kad_reader_feed(&r, s + 3, 3), 1); /* the empty frame */
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), 1);
    assert_int_equal(len, 0);
    assert_non_null(msg);
    assert_int_equal(dn__kad_reader_feed(&r, s + 4, 2), 2);
    assert_true(dn__kad_reader_partial(&r));
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), 0);
    static const uint8_t rest[] = {0x01, 0x12, 0x00};
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(dn__kad_reader_feed(&r, rest + i, 1), 1);
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), 1);
    assert_int_equal(len, 3);
    static const uint8_t want[] = {0x08, 0x01, 0x12};
    assert_memory_equal(msg, want, 3);
    dn__kad_reader_free(&r);

    /* A frame written by encode_frame, offered one byte at a time. */
    dn__kad_msg m;
    dn__kad_msg_init(&m);
    m.type = DN_KAD_GET_PROVIDERS;
    uint8_t big[300];
    memset(big, 'k', sizeof big);
    m.key = (dn__kad_span){big, sizeof big};
    dn_buf f = DN_BUF_INIT;
    assert_int_equal(dn__kad_msg_encode_frame(&m, &f), 0);
    dn__kad_reader_init(&r, 0);
    int got = 0;
    for (size_t i = 0; i < f.len; i++) {
        assert_int_equal(dn__kad_reader_feed(&r, f.data + i, 1), 1);
        int rc = dn__kad_reader_next(&r, &msg, &len);
        assert_int_equal(rc, i + 1 == f.len ? 1 : 0);
        got += rc;
    }
    assert_int_equal(got, 1);
    dn__kad_msg d;
    assert_int_equal(dn__kad_msg_decode(msg, len, &d), 0);
    assert_int_equal(d.type, DN_KAD_GET_PROVIDERS);
    assert_int_equal(d.key.len, sizeof big);
    dn__kad_reader_free(&r);

    /* The same frame against a reader whose max is one byte short. */
    dn__kad_reader_init(&r, len - 1);
    assert_int_equal(dn__kad_reader_feed(&r, f.data, f.len), DN_ETOOBIG);
    dn__kad_reader_free(&r);
    dn__kad_reader_init(&r, len);
    assert_int_equal(dn__kad_reader_feed(&r, f.data, f.len), (int)f.len);
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), 1);
    dn__kad_reader_free(&r);
    dn_buf_free(&f);
}

static void test_reader_refusals(void **state)
{
    (void)state;
    dn__kad_reader r;
    const uint8_t *msg;
    size_t len;

    /* A length above max is refused as soon as the prefix is read, and the
     * error sticks. */
    dn__kad_reader_init(&r, 100);
    static const uint8_t over[] = {101, 0x08};
    assert_int_equal(dn__kad_reader_feed(&r, over, sizeof over), DN_ETOOBIG);
    assert_int_equal(dn__kad_reader_feed(&r, over + 1, 1), DN_ETOOBIG);
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), DN_ETOOBIG);
    assert_int_equal(r.buf.cap, 0); /* nothing was allocated for it */
    dn__kad_reader_free(&r);
    dn__kad_reader_init(&r, 100);
    static const uint8_t exact[] = {100};
    assert_int_equal(dn__kad_reader_feed(&r, exact, 1), 1);
    dn__kad_reader_free(&r);

    /* 4 MiB + 1 with the default max: 0x81 0x80 0x80 0x02. */
    dn__kad_reader_init(&r, 0);
    static const uint8_t mib4[] = {0x81, 0x80, 0x80, 0x02};
    assert_int_equal(dn__kad_reader_feed(&r, mib4, sizeof mib4), DN_ETOOBIG);
    dn__kad_reader_free(&r);
    /* exactly 4 MiB: 0x80 0x80 0x80 0x02, accepted; the buffer grows with
     * the bytes that come, not with the announced length. */
    dn__kad_reader_init(&r, 0);
    static const uint8_t ok4[] = {0x80, 0x80, 0x80, 0x02, 0x08, 0x01};
    assert_int_equal(dn__kad_reader_feed(&r, ok4, sizeof ok4), 6);
    assert_true(r.buf.cap < 64 * 1024);
    assert_true(dn__kad_reader_partial(&r));
    dn__kad_reader_free(&r);

    /* A prefix that goes on past 4 bytes. */
    dn__kad_reader_init(&r, 0);
    static const uint8_t longv[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
    assert_int_equal(dn__kad_reader_feed(&r, longv, sizeof longv), DN_ETOOBIG);
    dn__kad_reader_free(&r);

    /* A non-minimal prefix (multiformats unsigned-varint: minimal only). */
    dn__kad_reader_init(&r, 0);
    static const uint8_t nonmin[] = {0x85, 0x00, 0x08, 0x04, 0x00, 0x00, 0x00};
    assert_int_equal(dn__kad_reader_feed(&r, nonmin, sizeof nonmin), DN_EMALFORMED);
    assert_int_equal(dn__kad_reader_next(&r, &msg, &len), DN_EMALFORMED);
    dn__kad_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_node_request_bytes),
        cmocka_unit_test(test_reply_with_peers_bytes),
        cmocka_unit_test(test_record_bytes),
        cmocka_unit_test(test_wire_type_mismatch_skipped),
        cmocka_unit_test(test_peer_bounds),
        cmocka_unit_test(test_size_bounds),
        cmocka_unit_test(test_add_peer_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_reader_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
