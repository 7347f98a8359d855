/* Unit tests: the pubsub RPC codec and frame reader (src/pubsub/pubsub_msg.c)
 * — field numbers of libp2p/specs pubsub/README.md and gossipsub v1.0-v1.2,
 * round trips, bounds, malformed input, and frames split anywhere. */
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
#include "pubsub/pubsub_msg.h"

#define S(str) ((dn__ps_span){(const uint8_t *)(str), sizeof(str) - 1})

static bool span_eq(dn__ps_span a, const char *s)
{
    return a.len == strlen(s) && !memcmp(a.p, s, a.len);
}

/* An RPC with every kind of field. */
static void full_rpc(dn__pubsub_rpc *r, dn__pubsub_subopt *subs, dn__pubsub_message *msgs,
                     dn__pubsub_ihave *ih, dn__ps_span *ids, dn__ps_span *graft,
                     dn__pubsub_prune *pr, dn__pubsub_px *px)
{
    memset(r, 0, sizeof *r);
    subs[0] = (dn__pubsub_subopt){true, S("jobs")};
    subs[1] = (dn__pubsub_subopt){false, S("old")};
    r->subs = subs;
    r->nsubs = 2;
    memset(msgs, 0, sizeof *msgs);
    msgs[0].has_from = msgs[0].has_data = msgs[0].has_seqno = true;
    msgs[0].has_signature = msgs[0].has_key = true;
    msgs[0].from = S("\x00\x02\x08\x01");
    msgs[0].data = S("");
    msgs[0].seqno = S("\x00\x00\x00\x00\x00\x00\x00\x07");
    msgs[0].topic = S("jobs");
    msgs[0].signature = S("sig");
    msgs[0].key = S("\x08\x01");
    r->msgs = msgs;
    r->nmsgs = 1;
    ids[0] = S("id-1");
    ids[1] = S("id-2");
    ids[2] = S("want-1");
    ids[3] = S("dw-1");
    ih[0] = (dn__pubsub_ihave){S("jobs"), 0, 2};
    r->ihave = ih;
    r->nihave = 1;
    r->ihave_ids = ids;
    r->nihave_ids = 2;
    r->iwant_ids = ids + 2;
    r->niwant_ids = 1;
    graft[0] = S("jobs");
    r->graft = graft;
    r->ngraft = 1;
    px[0] = (dn__pubsub_px){S("peer-a"), S("record-a")};
    px[1] = (dn__pubsub_px){S("peer-b"), {NULL, 0}};
    pr[0] = (dn__pubsub_prune){S("other"), 0, 2, true, 60};
    r->prune = pr;
    r->nprune = 1;
    r->px = px;
    r->npx = 2;
    r->idontwant_ids = ids + 3;
    r->nidontwant_ids = 1;
}

static void test_roundtrip(void **state)
{
    dn__pubsub_rpc r, d;
    dn__pubsub_subopt subs[2];
    dn__pubsub_message msgs[1];
    dn__pubsub_ihave ih[1];
    dn__ps_span ids[4], graft[1];
    dn__pubsub_prune pr[1];
    dn__pubsub_px px[2];
    full_rpc(&r, subs, msgs, ih, ids, graft, pr, px);
    dn_buf b = DN_BUF_INIT, b2 = DN_BUF_INIT;
    assert_int_equal(dn__pubsub_rpc_encode(&r, &b), 0);
    assert_int_equal(dn__pubsub_rpc_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.nsubs, 2);
    assert_true(d.subs[0].subscribe);
    assert_true(span_eq(d.subs[0].topic, "jobs"));
    assert_false(d.subs[1].subscribe);
    assert_int_equal(d.nmsgs, 1);
    assert_true(d.msgs[0].has_data); /* empty but present survives */
    assert_int_equal(d.msgs[0].data.len, 0);
    assert_int_equal(d.msgs[0].seqno.len, 8);
    assert_true(span_eq(d.msgs[0].topic, "jobs"));
    assert_true(span_eq(d.msgs[0].signature, "sig"));
    assert_true(d.has_control);
    assert_int_equal(d.nihave, 1);
    assert_int_equal(d.ihave[0].count, 2);
    assert_true(span_eq(d.ihave_ids[d.ihave[0].first + 1], "id-2"));
    assert_int_equal(d.niwant_ids, 1);
    assert_true(span_eq(d.iwant_ids[0], "want-1"));
    assert_int_equal(d.ngraft, 1);
    assert_int_equal(d.nprune, 1);
    assert_true(d.prune[0].has_backoff);
    assert_int_equal(d.prune[0].backoff_s, 60);
    assert_int_equal(d.prune[0].count, 2);
    assert_true(span_eq(d.px[0].signed_record, "record-a"));
    assert_true(span_eq(d.px[1].peer_id, "peer-b"));
    assert_int_equal(d.px[1].signed_record.len, 0);
    assert_int_equal(d.nidontwant_ids, 1);
    assert_true(span_eq(d.idontwant_ids[0], "dw-1"));
    /* Re-encoding the decoded RPC (messages verbatim through raw) gives
     * the same bytes. */
    assert_int_equal(dn__pubsub_rpc_encode(&d, &b2), 0);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    dn__pubsub_rpc_free(&d);
    dn_buf_free(&b);
    dn_buf_free(&b2);
}

/* Field numbers on the wire, built by hand (DESIGN.md "gossipsub"). */
static void test_wire_numbers(void **state)
{
    dn_buf sub = DN_BUF_INIT, ctl = DN_BUF_INIT, inner = DN_BUF_INIT, rpc = DN_BUF_INIT;
    dn_pb_put_varint(&sub, 1, 1);
    dn_pb_put_bytes(&sub, 2, "t", 1);
    dn_pb_put_bytes(&rpc, 1, sub.data, sub.len);
    dn_pb_put_bytes(&inner, 1, "t", 1);
    dn_pb_put_varint(&inner, 3, 30);
    dn_pb_put_bytes(&ctl, 4, inner.data, inner.len); /* prune */
    dn_buf_reset(&inner);
    dn_pb_put_bytes(&inner, 1, "x", 1);
    dn_pb_put_bytes(&ctl, 5, inner.data, inner.len); /* idontwant */
    dn_pb_put_bytes(&ctl, 2, inner.data, inner.len); /* iwant */
    dn_pb_put_bytes(&ctl, 99, "junk", 4);            /* unknown: skipped */
    dn_pb_put_bytes(&rpc, 3, ctl.data, ctl.len);
    dn__pubsub_rpc d;
    assert_int_equal(dn__pubsub_rpc_decode(rpc.data, rpc.len, &d), 0);
    assert_int_equal(d.nsubs, 1);
    assert_int_equal(d.nprune, 1);
    assert_int_equal(d.prune[0].backoff_s, 30);
    assert_int_equal(d.nidontwant_ids, 1);
    assert_int_equal(d.niwant_ids, 1);
    dn__pubsub_rpc_free(&d);
    dn_buf_free(&sub);
    dn_buf_free(&ctl);
    dn_buf_free(&inner);
    dn_buf_free(&rpc);
}

static int decode_rc(const dn_buf *b)
{
    dn__pubsub_rpc d;
    int rc = dn__pubsub_rpc_decode(b->data, b->len, &d);
    if (rc == 0)
        dn__pubsub_rpc_free(&d);
    else
        assert_null(d.subs); /* nothing owned after an error */
    return rc;
}

static void test_malformed(void **state)
{
    dn_buf b = DN_BUF_INIT, in = DN_BUF_INIT;
    /* publish with the varint wire type */
    dn_pb_put_varint(&b, 2, 5);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);
    /* truncated length */
    dn_buf_reset(&b);
    dn_buf_append(&b, "\x12\x05\x0a", 3);
    assert_int_equal(decode_rc(&b), DN_ETRUNCATED);
    /* subscription without a topic */
    dn_buf_reset(&b);
    dn_pb_put_varint(&in, 1, 1);
    dn_pb_put_bytes(&b, 1, in.data, in.len);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);
    /* GRAFT with an empty topic */
    dn_buf_reset(&b);
    dn_buf_reset(&in);
    dn_buf_append(&in, "\x1a\x02\x0a\x00", 4);
    dn_pb_put_bytes(&b, 3, in.data, in.len);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);
    /* IWANT with an empty id */
    dn_buf_reset(&b);
    dn_buf_reset(&in);
    dn_buf_append(&in, "\x12\x02\x0a\x00", 4);
    dn_pb_put_bytes(&b, 3, in.data, in.len);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);
    /* group wire type */
    dn_buf_reset(&b);
    dn_buf_append(&b, "\x0b", 1);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);
    dn_buf_free(&b);
    dn_buf_free(&in);
}

static void test_bounds(void **state)
{
    dn_buf b = DN_BUF_INIT, in = DN_BUF_INIT, sub = DN_BUF_INIT;
    /* topic of DN_PUBSUB_TOPIC_MAX is fine, one more is not */
    char *t = malloc(DN_PUBSUB_TOPIC_MAX + 1);
    memset(t, 'a', DN_PUBSUB_TOPIC_MAX + 1);
    dn_pb_put_bytes(&sub, 2, t, DN_PUBSUB_TOPIC_MAX);
    dn_pb_put_bytes(&b, 1, sub.data, sub.len);
    assert_int_equal(decode_rc(&b), 0);
    dn_buf_reset(&b);
    dn_buf_reset(&sub);
    dn_pb_put_bytes(&sub, 2, t, DN_PUBSUB_TOPIC_MAX + 1);
    dn_pb_put_bytes(&b, 1, sub.data, sub.len);
    assert_int_equal(decode_rc(&b), DN_ETOOBIG);
    /* IDONTWANT: 512 ids fine, 513 refused */
    for (int n = DN_PUBSUB_MAX_IDONTWANT_IDS; n <= DN_PUBSUB_MAX_IDONTWANT_IDS + 1; n++) {
        dn_buf_reset(&b);
        dn_buf_reset(&in);
        for (int i = 0; i < n; i++)
            dn_pb_put_bytes(&in, 1, "id", 2);
        dn_buf_reset(&sub);
        dn_pb_put_bytes(&sub, 5, in.data, in.len);
        dn_pb_put_bytes(&b, 3, sub.data, sub.len);
        assert_int_equal(decode_rc(&b), n > DN_PUBSUB_MAX_IDONTWANT_IDS ? DN_ETOOBIG : 0);
    }
    /* IHAVE ids over all IHAVEs: 5000 fine, 5001 refused (split across two) */
    for (int extra = 0; extra <= 1; extra++) {
        dn_buf_reset(&b);
        dn_buf_reset(&sub);
        for (int k = 0; k < 2; k++) {
            dn_buf_reset(&in);
            dn_pb_put_bytes(&in, 1, "t", 1);
            for (int i = 0; i < DN_PUBSUB_MAX_IHAVE_IDS / 2 + (k ? extra : 0); i++)
                dn_pb_put_bytes(&in, 2, "id", 2);
            dn_pb_put_bytes(&sub, 1, in.data, in.len);
        }
        dn_pb_put_bytes(&b, 3, sub.data, sub.len);
        assert_int_equal(decode_rc(&b), extra ? DN_ETOOBIG : 0);
    }
    /* PX peers: 17 in one prune refused */
    dn_buf_reset(&b);
    dn_buf_reset(&in);
    dn_pb_put_bytes(&in, 1, "t", 1);
    for (int i = 0; i < DN_PUBSUB_MAX_PX + 1; i++)
        dn_pb_put_bytes(&in, 2, "\x0a\x01x", 3);
    dn_buf_reset(&sub);
    dn_pb_put_bytes(&sub, 4, in.data, in.len);
    dn_pb_put_bytes(&b, 3, sub.data, sub.len);
    assert_int_equal(decode_rc(&b), DN_ETOOBIG);
    /* An RPC over the size bound */
    dn_buf_reset(&b);
    dn_buf_reserve(&b, DN_PUBSUB_RPC_MAX + 1);
    memset(b.data, 0, DN_PUBSUB_RPC_MAX + 1);
    b.len = DN_PUBSUB_RPC_MAX + 1;
    assert_int_equal(decode_rc(&b), DN_ETOOBIG);
    /* The encoder refuses what the decoder would */
    dn__pubsub_rpc r = {0};
    dn__pubsub_subopt s = {true, {(const uint8_t *)t, DN_PUBSUB_TOPIC_MAX + 1}};
    r.subs = &s;
    r.nsubs = 1;
    dn_buf_reset(&b);
    assert_int_equal(dn__pubsub_rpc_encode(&r, &b), DN_EINVAL);
    s.topic.len = 0;
    assert_int_equal(dn__pubsub_rpc_encode(&r, &b), DN_EINVAL);
    free(t);
    dn_buf_free(&b);
    dn_buf_free(&in);
    dn_buf_free(&sub);
}

static void test_framer(void **state)
{
    dn__pubsub_rpc r = {0};
    dn__pubsub_subopt s[1] = {{true, S("topic-a")}};
    r.subs = s;
    r.nsubs = 1;
    dn_buf stream = DN_BUF_INIT;
    for (int i = 0; i < 3; i++)
        assert_int_equal(dn__pubsub_rpc_frame(&r, &stream), 0);
    dn_buf_append(&stream, "\x00", 1); /* an empty RPC is a valid frame */
    /* Feed byte by byte: exactly four frames come out, none early. */
    dn__pubsub_framer f;
    dn__pubsub_framer_init(&f, 0);
    int frames = 0;
    for (size_t i = 0; i < stream.len; i++) {
        assert_int_equal(dn__pubsub_framer_feed(&f, stream.data + i, 1), 0);
        const uint8_t *fr;
        size_t fl;
        int rc;
        while ((rc = dn__pubsub_framer_next(&f, &fr, &fl)) == 1) {
            dn__pubsub_rpc d;
            assert_int_equal(dn__pubsub_rpc_decode(fr, fl, &d), 0);
            assert_int_equal(d.nsubs, frames < 3 ? 1 : 0);
            dn__pubsub_rpc_free(&d);
            frames++;
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(frames, 4);
    assert_int_equal(dn__pubsub_framer_pending(&f), 0);
    dn__pubsub_framer_close(&f);

    /* An oversized prefix is refused before its body arrives, and sticks. */
    dn__pubsub_framer_init(&f, 100);
    uint8_t big[] = {0xe5, 0x00 + 1}; /* 229 > 100 */
    assert_int_equal(dn__pubsub_framer_feed(&f, big, sizeof big), 0);
    const uint8_t *fr;
    size_t fl;
    assert_int_equal(dn__pubsub_framer_next(&f, &fr, &fl), DN_ETOOBIG);
    assert_int_equal(dn__pubsub_framer_feed(&f, big, 1), DN_ETOOBIG);
    dn__pubsub_framer_close(&f);
    /* A prefix of exactly max is fine. */
    dn__pubsub_framer_init(&f, 100);
    uint8_t ok[101] = {100};
    assert_int_equal(dn__pubsub_framer_feed(&f, ok, sizeof ok), 0);
    assert_int_equal(dn__pubsub_framer_next(&f, &fr, &fl), 1);
    assert_int_equal(fl, 100);
    dn__pubsub_framer_close(&f);
    /* A non-minimal prefix is malformed. */
    dn__pubsub_framer_init(&f, 0);
    uint8_t nm[] = {0x81, 0x00};
    assert_int_equal(dn__pubsub_framer_feed(&f, nm, sizeof nm), 0);
    assert_int_equal(dn__pubsub_framer_next(&f, &fr, &fl), DN_EMALFORMED);
    dn__pubsub_framer_close(&f);
    /* The frame writer refuses an RPC over the bound. */
    dn_buf_reset(&stream);
    uint8_t *blob = calloc(1, DN_PUBSUB_RPC_MAX);
    dn__pubsub_message m = {.has_data = true, .data = {blob, DN_PUBSUB_RPC_MAX}};
    dn__pubsub_rpc r2 = {.msgs = &m, .nmsgs = 1};
    assert_int_equal(dn__pubsub_rpc_frame(&r2, &stream), DN_EINVAL);
    free(blob);
    dn_buf_free(&stream);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_wire_numbers),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_framer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
