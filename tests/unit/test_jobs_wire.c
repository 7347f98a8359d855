/* publishJob's message layouts (src/node/jobs_wire.c, docs/jobs.md):
 * JobRequest, Bid and BidReply round trips, every required field, wrong
 * wire types and sizes refused, unknown fields skipped, the requester's
 * error text escaped, and garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pb.h"
#include "dmsnet/error.h"
#include "node/jobs_wire.h"

#define PEER "12D3KooWNWbj1RmcmzeE2fQge4YkpfzwQie2thXFG4S4PmKBWbAG"

static const uint8_t ID[DN_JOB_ID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void test_request_round_trip(void **state)
{
    (void)state;
    dn_peerid me;
    assert_int_equal(dn_peerid_parse(PEER, &me), 0);
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__job_request_encode(&b, ID, &me, 1796196435759ull, "{\"cpu\":4}", 9,
                                            "/my/bids/1"),
                     0);
    dn__job_request r;
    assert_int_equal(dn__job_request_decode(b.data, b.len, &r), 0);
    assert_memory_equal(r.id, ID, DN_JOB_ID_LEN);
    assert_true(dn_peerid_equal(&r.requester, &me));
    assert_int_equal(r.deadline_ms, 1796196435759ull);
    assert_int_equal(r.len, 9);
    assert_memory_equal(r.job, "{\"cpu\":4}", 9);
    assert_int_equal(r.bid_type_len, 10);
    assert_memory_equal(r.bid_type, "/my/bids/1", 10);
    dn_buf_free(&b);

    /* no bid_type: the default; an empty job is a job; unknown fields skipped */
    assert_int_equal(dn__job_request_encode(&b, ID, &me, 5, "", 0, NULL), 0);
    assert_int_equal(dn_pb_put_string(&b, 9, "future field"), 0);
    assert_int_equal(dn_pb_put_varint(&b, 10, 7), 0);
    assert_int_equal(dn__job_request_decode(b.data, b.len, &r), 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.bid_type_len, strlen(DN_JOB_BID_TYPE));
    assert_memory_equal(r.bid_type, DN_JOB_BID_TYPE, r.bid_type_len);
    dn_buf_free(&b);
}

/* Build a request field by field; skip leaves field `skip` out. */
static void build(dn_buf *b, int skip, int bad)
{
    dn_peerid me;
    assert_int_equal(dn_peerid_parse(PEER, &me), 0);
    if (skip != 1)
        bad == 1 ? dn_pb_put_bytes(b, 1, ID, 15) : dn_pb_put_bytes(b, 1, ID, DN_JOB_ID_LEN);
    if (skip != 2)
        bad == 2 ? dn_pb_put_bytes(b, 2, "\x12\x20nope", 6) : dn_pb_put_bytes(b, 2, me.bytes, me.len);
    if (skip != 3)
        bad == 3 ? dn_pb_put_bytes(b, 3, "x", 1) : dn_pb_put_varint(b, 3, 99);
    if (skip != 4)
        bad == 4 ? dn_pb_put_varint(b, 4, 1) : dn_pb_put_bytes(b, 4, "job", 3);
    if (bad == 5)
        dn_pb_put_string(b, 5, "/has space");
    if (bad == 6)
        dn_pb_put_string(b, 5, "no-slash");
}

static void test_request_refused(void **state)
{
    (void)state;
    dn__job_request r;
    for (int f = 1; f <= 4; f++) {
        dn_buf b = DN_BUF_INIT;
        build(&b, f, 0);
        if (dn__job_request_decode(b.data, b.len, &r) != DN_EMALFORMED)
            fail_msg("a request without field %d was accepted", f);
        dn_buf_free(&b);
    }
    for (int f = 1; f <= 6; f++) {
        dn_buf b = DN_BUF_INIT;
        build(&b, 0, f);
        if (dn__job_request_decode(b.data, b.len, &r) != DN_EMALFORMED)
            fail_msg("a request with a bad field (case %d) was accepted", f);
        dn_buf_free(&b);
    }
    dn_buf b = DN_BUF_INIT;
    build(&b, 0, 0);
    assert_int_equal(dn__job_request_decode(b.data, b.len, &r), 0);
    assert_true(dn__job_request_decode(b.data, b.len - 1, &r) < 0); /* cut inside the job */
    dn_buf_free(&b);
    assert_int_equal(dn__job_request_decode(NULL, 0, &r), DN_EMALFORMED);
}

static void test_bid(void **state)
{
    (void)state;
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__job_bid_encode(&b, ID, "4 cores", 7), 0);
    dn__job_bid d;
    assert_int_equal(dn__job_bid_decode(b.data, b.len, &d), 0);
    assert_memory_equal(d.request, ID, DN_JOB_ID_LEN);
    assert_int_equal(d.len, 7);
    assert_memory_equal(d.bid, "4 cores", 7);
    dn_buf_free(&b);
    /* no bid field: an empty bid */
    assert_int_equal(dn_pb_put_bytes(&b, 1, ID, DN_JOB_ID_LEN), 0);
    assert_int_equal(dn__job_bid_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.len, 0);
    dn_buf_free(&b);
    /* no request id, a short one, a varint id */
    assert_int_equal(dn_pb_put_bytes(&b, 2, "x", 1), 0);
    assert_int_equal(dn__job_bid_decode(b.data, b.len, &d), DN_EMALFORMED);
    dn_buf_free(&b);
    assert_int_equal(dn_pb_put_bytes(&b, 1, ID, 8), 0);
    assert_int_equal(dn__job_bid_decode(b.data, b.len, &d), DN_EMALFORMED);
    dn_buf_free(&b);
    assert_int_equal(dn_pb_put_varint(&b, 1, 8), 0);
    assert_int_equal(dn__job_bid_decode(b.data, b.len, &d), DN_EMALFORMED);
    dn_buf_free(&b);
}

static void test_reply(void **state)
{
    (void)state;
    dn_buf b = DN_BUF_INIT;
    bool ok;
    char why[256];
    assert_int_equal(dn__job_reply_encode(&b, NULL), 0);
    assert_int_equal(dn__job_reply_decode(b.data, b.len, &ok, why, sizeof why), 0);
    assert_true(ok);
    dn_buf_free(&b);
    assert_int_equal(dn__job_reply_encode(&b, "request x is closed\x1b[2J\xff"), 0);
    assert_int_equal(dn__job_reply_decode(b.data, b.len, &ok, why, sizeof why), 0);
    assert_false(ok);
    assert_string_equal(why, "request x is closed\\x1b[2J\\xff");
    dn_buf_free(&b);
    /* neither accepted nor an error; accepted: 0; a wrong wire type */
    assert_int_equal(dn__job_reply_decode((const uint8_t *)"", 0, &ok, why, sizeof why),
                     DN_EMALFORMED);
    assert_int_equal(dn_pb_put_varint(&b, 1, 0), 0);
    assert_int_equal(dn__job_reply_decode(b.data, b.len, &ok, why, sizeof why), DN_EMALFORMED);
    dn_buf_free(&b);
    assert_int_equal(dn_pb_put_bytes(&b, 1, "1", 1), 0);
    assert_int_equal(dn__job_reply_decode(b.data, b.len, &ok, why, sizeof why), DN_EMALFORMED);
    dn_buf_free(&b);
}

static void test_garbage(void **state)
{
    (void)state;
    uint8_t buf[256];
    uint32_t x = 12345;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % 256);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (uint8_t)(x >> 16);
        }
        dn__job_request r;
        if (dn__job_request_decode(buf, n, &r) == 0) {
            assert_true(r.id >= buf && r.id + DN_JOB_ID_LEN <= buf + n);
            assert_true(r.job >= buf && r.job + r.len <= buf + n);
        }
        dn__job_bid d;
        if (dn__job_bid_decode(buf, n, &d) == 0)
            assert_true(!d.bid || (d.bid >= buf && d.bid + d.len <= buf + n));
        bool ok;
        char why[64];
        if (dn__job_reply_decode(buf, n, &ok, why, sizeof why) == 0 && !ok)
            assert_true(strlen(why) < sizeof why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip), cmocka_unit_test(test_request_refused),
        cmocka_unit_test(test_bid),                cmocka_unit_test(test_reply),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
