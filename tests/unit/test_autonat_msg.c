/* The AutoNAT v2 message codec (src/proto/autonat_msg.c): round trips of
 * every message, the exact bytes of a few (hand-assembled from the spec's
 * proto), framing, the bounds (message size, address count, address
 * length) and malformed input (two oneof fields, wrong wire types,
 * truncation, uint32 overflow, a DialBack without its nonce). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "proto/autonat_msg.h"

/* Strip the length prefix of one framed message, checking it. */
static void unframe(const dn_buf *b, const uint8_t **body, size_t *len)
{
    int n = dn__autonat_frame(b->data, b->len, DN_AUTONAT_MSG_MAX, body, len);
    assert_int_equal(n, (int)b->len);
}

static void test_dial_request_round_trip(void **state)
{
    (void)state;
    dn_multiaddr a1, a2;
    assert_int_equal(dn_multiaddr_parse("/ip4/1.2.3.4/tcp/4001", &a1), 0);
    assert_int_equal(dn_multiaddr_parse("/ip6/2001:4860::1/tcp/4001", &a2), 0);
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_REQUEST};
    m.u.dial_request.naddrs = 2;
    m.u.dial_request.addrs[0] = a1.bytes;
    m.u.dial_request.addr_lens[0] = a1.len;
    m.u.dial_request.addrs[1] = a2.bytes;
    m.u.dial_request.addr_lens[1] = a2.len;
    m.u.dial_request.nonce = 0x0102030405060708ull;
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode(&m, &b), 0);
    const uint8_t *body;
    size_t len;
    unframe(&b, &body, &len);
    /* Message{1: DialRequest{1: addr, 1: addr, 2: fixed64}} */
    assert_int_equal(body[0], 0x0a);
    size_t inner = 2 + a1.len + 2 + a2.len + 9;
    assert_int_equal(body[1], inner);
    assert_int_equal(body[2], 0x0a);
    assert_int_equal(body[3], a1.len);
    /* the nonce: tag 0x11 (field 2, fixed64), little-endian */
    const uint8_t *n = body + 2 + inner - 9;
    static const uint8_t want_nonce[9] = {0x11, 8, 7, 6, 5, 4, 3, 2, 1};
    assert_memory_equal(n, want_nonce, 9);
    dn__autonat_msg d;
    assert_int_equal(dn__autonat_decode(body, len, &d), 0);
    assert_int_equal(d.type, DN_AUTONAT_DIAL_REQUEST);
    assert_int_equal(d.u.dial_request.naddrs, 2);
    assert_int_equal(d.u.dial_request.addr_lens[1], a2.len);
    assert_memory_equal(d.u.dial_request.addrs[1], a2.bytes, a2.len);
    assert_true(d.u.dial_request.nonce == 0x0102030405060708ull);
    dn_buf_free(&b);
}

static void test_other_messages_round_trip(void **state)
{
    (void)state;
    dn_buf b = DN_BUF_INIT;
    const uint8_t *body;
    size_t len;
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_RESPONSE}, d;
    m.u.dial_response.status = DN_AUTONAT_RS_OK;
    m.u.dial_response.addr_idx = 3;
    m.u.dial_response.dial_status = DN_AUTONAT_DS_OK;
    assert_int_equal(dn__autonat_encode(&m, &b), 0);
    /* 0a | 12 08 | 08 c8 01 | 10 03 | 18 c8 01 (status 200, addrIdx 3, dialStatus 200) */
    static const uint8_t want[] = {10, 0x12, 8, 0x08, 0xc8, 0x01, 0x10, 3, 0x18, 0xc8, 0x01};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    unframe(&b, &body, &len);
    assert_int_equal(dn__autonat_decode(body, len, &d), 0);
    assert_int_equal(d.type, DN_AUTONAT_DIAL_RESPONSE);
    assert_int_equal(d.u.dial_response.status, 200);
    assert_int_equal(d.u.dial_response.addr_idx, 3);
    assert_int_equal(d.u.dial_response.dial_status, 200);

    /* All-default response: an empty sub-message, still identifiable. */
    dn_buf_reset(&b);
    m.u.dial_response.status = m.u.dial_response.addr_idx = m.u.dial_response.dial_status = 0;
    assert_int_equal(dn__autonat_encode(&m, &b), 0);
    static const uint8_t empty[] = {2, 0x12, 0};
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, empty, 3);
    unframe(&b, &body, &len);
    assert_int_equal(dn__autonat_decode(body, len, &d), 0);
    assert_int_equal(d.type, DN_AUTONAT_DIAL_RESPONSE);
    assert_int_equal(d.u.dial_response.status, DN_AUTONAT_RS_INTERNAL_ERROR);

    dn_buf_reset(&b);
    m = (dn__autonat_msg){.type = DN_AUTONAT_DIAL_DATA_REQUEST};
    m.u.dial_data_request.addr_idx = 1;
    m.u.dial_data_request.num_bytes = 100000;
    assert_int_equal(dn__autonat_encode(&m, &b), 0);
    unframe(&b, &body, &len);
    assert_int_equal(dn__autonat_decode(body, len, &d), 0);
    assert_int_equal(d.type, DN_AUTONAT_DIAL_DATA_REQUEST);
    assert_int_equal(d.u.dial_data_request.addr_idx, 1);
    assert_true(d.u.dial_data_request.num_bytes == 100000);

    dn_buf_reset(&b);
    static const uint8_t zeros[DN_AUTONAT_DIAL_DATA_CHUNK];
    m = (dn__autonat_msg){.type = DN_AUTONAT_DIAL_DATA_RESPONSE};
    m.u.dial_data_response.data = zeros;
    m.u.dial_data_response.len = sizeof zeros;
    assert_int_equal(dn__autonat_encode(&m, &b), 0);
    unframe(&b, &body, &len);
    assert_int_equal(dn__autonat_decode(body, len, &d), 0);
    assert_int_equal(d.type, DN_AUTONAT_DIAL_DATA_RESPONSE);
    assert_int_equal(d.u.dial_data_response.len, 4096);

    /* Empty data is a DialDataResponse of length 0. */
    static const uint8_t empty_data[] = {0x22, 0};
    assert_int_equal(dn__autonat_decode(empty_data, sizeof empty_data, &d), 0);
    assert_int_equal(d.type, DN_AUTONAT_DIAL_DATA_RESPONSE);
    assert_int_equal(d.u.dial_data_response.len, 0);
    assert_non_null(d.u.dial_data_response.data);

    /* DialBack and DialBackResponse */
    dn_buf_reset(&b);
    assert_int_equal(dn__autonat_encode_dial_back(0xfedcba9876543210ull, &b), 0);
    static const uint8_t want_db[] = {9, 0x09, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
    assert_int_equal(b.len, sizeof want_db);
    assert_memory_equal(b.data, want_db, sizeof want_db);
    unframe(&b, &body, &len);
    uint64_t nonce = 0;
    assert_int_equal(dn__autonat_decode_dial_back(body, len, &nonce), 0);
    assert_true(nonce == 0xfedcba9876543210ull);
    dn_buf_reset(&b);
    assert_int_equal(dn__autonat_encode_dial_back_response(DN_AUTONAT_DBS_OK, &b), 0);
    assert_int_equal(b.len, 1); /* proto3: status OK (0) is omitted: an empty message */
    assert_int_equal(b.data[0], 0);
    uint32_t st = 7;
    assert_int_equal(dn__autonat_decode_dial_back_response(b.data + 1, 0, &st), 0);
    assert_int_equal(st, DN_AUTONAT_DBS_OK);
    static const uint8_t st5[] = {0x08, 5};
    assert_int_equal(dn__autonat_decode_dial_back_response(st5, 2, &st), 0);
    assert_int_equal(st, 5);
    dn_buf_free(&b);
}

static void test_framing(void **state)
{
    (void)state;
    const uint8_t *body;
    size_t len;
    static const uint8_t two[] = {2, 0x12, 0, 1};
    /* one whole message, then the partial next one */
    assert_int_equal(dn__autonat_frame(two, sizeof two, DN_AUTONAT_MSG_MAX, &body, &len), 3);
    assert_int_equal(len, 2);
    assert_ptr_equal(body, two + 1);
    assert_int_equal(dn__autonat_frame(two + 3, 1, DN_AUTONAT_MSG_MAX, &body, &len), 0);
    assert_int_equal(dn__autonat_frame(two, 2, DN_AUTONAT_MSG_MAX, &body, &len), 0);
    assert_int_equal(dn__autonat_frame(two, 0, DN_AUTONAT_MSG_MAX, &body, &len), 0);
    /* a length over the bound is refused before any body arrives */
    static const uint8_t big[] = {0x81, 0x80, 0x04}; /* 65537 */
    assert_int_equal(dn__autonat_frame(big, sizeof big, DN_AUTONAT_MSG_MAX, &body, &len),
                     DN_ETOOBIG);
    static const uint8_t at_max[] = {0x80, 0x80, 0x04}; /* 65536: allowed, incomplete */
    assert_int_equal(dn__autonat_frame(at_max, sizeof at_max, DN_AUTONAT_MSG_MAX, &body, &len), 0);
    static const uint8_t partial_varint[] = {0x80};
    assert_int_equal(dn__autonat_frame(partial_varint, 1, DN_AUTONAT_MSG_MAX, &body, &len), 0);
    static const uint8_t overlong[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(dn__autonat_frame(overlong, sizeof overlong, DN_AUTONAT_MSG_MAX, &body, &len),
                     DN_EMALFORMED);
}

static void test_bounds(void **state)
{
    (void)state;
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_REQUEST}, d;
    dn_multiaddr a;
    assert_int_equal(dn_multiaddr_parse("/ip4/1.2.3.4/tcp/1", &a), 0);
    m.u.dial_request.naddrs = DN_AUTONAT_MAX_ADDRS;
    for (size_t i = 0; i < DN_AUTONAT_MAX_ADDRS; i++) {
        m.u.dial_request.addrs[i] = a.bytes;
        m.u.dial_request.addr_lens[i] = a.len;
    }
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode(&m, &b), 0);
    const uint8_t *body;
    size_t len;
    unframe(&b, &body, &len);
    assert_int_equal(dn__autonat_decode(body, len, &d), 0);
    assert_int_equal(d.u.dial_request.naddrs, DN_AUTONAT_MAX_ADDRS);
    /* one address more (hand-built: the encoder refuses it) */
    dn_buf inner = DN_BUF_INIT, msg = DN_BUF_INIT;
    for (size_t i = 0; i <= DN_AUTONAT_MAX_ADDRS; i++) {
        dn_buf_append_byte(&inner, 0x0a);
        dn_buf_append_byte(&inner, (uint8_t)a.len);
        dn_buf_append(&inner, a.bytes, a.len);
    }
    dn_buf_append_byte(&msg, 0x0a);
    dn_buf_append_uvarint(&msg, inner.len);
    dn_buf_append(&msg, inner.data, inner.len);
    assert_int_equal(dn__autonat_decode(msg.data, msg.len, &d), DN_ETOOBIG);
    m.u.dial_request.naddrs = DN_AUTONAT_MAX_ADDRS + 1;
    assert_int_equal(dn__autonat_encode(&m, &b), DN_EINVAL);
    /* an address longer than any multiaddr */
    static uint8_t huge[DN_MULTIADDR_MAX + 1];
    m.u.dial_request.naddrs = 1;
    m.u.dial_request.addrs[0] = huge;
    m.u.dial_request.addr_lens[0] = sizeof huge;
    assert_int_equal(dn__autonat_encode(&m, &b), DN_EINVAL);
    dn_buf_reset(&inner);
    dn_buf_reset(&msg);
    dn_buf_append_byte(&inner, 0x0a);
    dn_buf_append_uvarint(&inner, sizeof huge);
    dn_buf_append(&inner, huge, sizeof huge);
    dn_buf_append_byte(&msg, 0x0a);
    dn_buf_append_uvarint(&msg, inner.len);
    dn_buf_append(&msg, inner.data, inner.len);
    assert_int_equal(dn__autonat_decode(msg.data, msg.len, &d), DN_ETOOBIG);
    /* a whole message over the bound */
    static uint8_t over[DN_AUTONAT_MSG_MAX + 1];
    assert_int_equal(dn__autonat_decode(over, sizeof over, &d), DN_ETOOBIG);
    assert_int_equal(dn__autonat_decode_dial_back(over, sizeof over, &(uint64_t){0}), DN_ETOOBIG);
    dn_buf_free(&b);
    dn_buf_free(&inner);
    dn_buf_free(&msg);
}

static void test_malformed(void **state)
{
    (void)state;
    dn__autonat_msg d;
    /* no oneof field at all; an unknown field only */
    assert_int_equal(dn__autonat_decode(NULL, 0, &d), DN_EMALFORMED);
    static const uint8_t unknown[] = {0x2a, 0}; /* field 5 */
    assert_int_equal(dn__autonat_decode(unknown, sizeof unknown, &d), DN_EMALFORMED);
    /* two oneof fields, or one twice */
    static const uint8_t two[] = {0x12, 0, 0x1a, 0};
    assert_int_equal(dn__autonat_decode(two, sizeof two, &d), DN_EMALFORMED);
    static const uint8_t twice[] = {0x12, 0, 0x12, 0};
    assert_int_equal(dn__autonat_decode(twice, sizeof twice, &d), DN_EMALFORMED);
    /* a unknown field beside a known one is skipped */
    static const uint8_t skip[] = {0x28, 1, 0x12, 2, 0x10, 4};
    assert_int_equal(dn__autonat_decode(skip, sizeof skip, &d), 0);
    assert_int_equal(d.u.dial_response.addr_idx, 4);
    /* the oneof field as a varint */
    static const uint8_t varint[] = {0x10, 1};
    assert_int_equal(dn__autonat_decode(varint, sizeof varint, &d), DN_EMALFORMED);
    /* a nonce as a varint (the spec says fixed64) */
    static const uint8_t nonce_varint[] = {0x0a, 2, 0x10, 5};
    assert_int_equal(dn__autonat_decode(nonce_varint, sizeof nonce_varint, &d), DN_EMALFORMED);
    /* a truncated fixed64 nonce */
    static const uint8_t nonce_short[] = {0x0a, 5, 0x11, 1, 2, 3, 4};
    assert_int_equal(dn__autonat_decode(nonce_short, sizeof nonce_short, &d), DN_ETRUNCATED);
    /* the sub-message running past the span */
    static const uint8_t past[] = {0x12, 5, 0x08};
    assert_int_equal(dn__autonat_decode(past, sizeof past, &d), DN_ETRUNCATED);
    /* addrIdx over uint32 */
    static const uint8_t big_idx[] = {0x12, 6, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10};
    assert_int_equal(dn__autonat_decode(big_idx, sizeof big_idx, &d), DN_EMALFORMED);
    /* an address as a varint */
    static const uint8_t addr_varint[] = {0x0a, 2, 0x08, 1};
    assert_int_equal(dn__autonat_decode(addr_varint, sizeof addr_varint, &d), DN_EMALFORMED);
    /* data twice */
    static const uint8_t data_twice[] = {0x22, 6, 0x0a, 1, 'x', 0x0a, 1, 'y'};
    assert_int_equal(dn__autonat_decode(data_twice, sizeof data_twice, &d), DN_EMALFORMED);
    /* group wire types */
    static const uint8_t group[] = {0x0b};
    assert_int_equal(dn__autonat_decode(group, sizeof group, &d), DN_EMALFORMED);
    /* DialBack: no nonce, a varint nonce, a short one */
    uint64_t n;
    assert_int_equal(dn__autonat_decode_dial_back(NULL, 0, &n), DN_EMALFORMED);
    static const uint8_t db_varint[] = {0x08, 1};
    assert_int_equal(dn__autonat_decode_dial_back(db_varint, 2, &n), DN_EMALFORMED);
    static const uint8_t db_short[] = {0x09, 1, 2};
    assert_int_equal(dn__autonat_decode_dial_back(db_short, 3, &n), DN_ETRUNCATED);
    /* DialBackResponse status over uint32, or not a varint */
    uint32_t st;
    static const uint8_t dbr_big[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x10};
    assert_int_equal(dn__autonat_decode_dial_back_response(dbr_big, sizeof dbr_big, &st),
                     DN_EMALFORMED);
    static const uint8_t dbr_len[] = {0x0a, 0};
    assert_int_equal(dn__autonat_decode_dial_back_response(dbr_len, 2, &st), DN_EMALFORMED);
    /* numBytes of 2^63 or more cannot be encoded (the decoder stops below) */
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_DATA_REQUEST};
    m.u.dial_data_request.num_bytes = 1ull << 63;
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode(&m, &b), DN_EINVAL);
    m.type = DN_AUTONAT_NONE;
    assert_int_equal(dn__autonat_encode(&m, &b), DN_EINVAL);
    dn_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dial_request_round_trip),
        cmocka_unit_test(test_other_messages_round_trip),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
