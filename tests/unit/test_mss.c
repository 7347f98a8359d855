/* Tests for multistream-select 1.0 (dialer and listener, in memory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/buf.h"
#include "dmsnet/error.h"
#include "mss/mss.h"

#define HDR "\x13/multistream/1.0.0\n" /* 0x13 = 19 = 18 characters + '\n' */
#define HDR_LEN 20

static const char *const noise_only[] = {"/noise"};
static const char *const tls_noise[] = {"/tls/1.0.0", "/noise"};
static const char *const yamux_noise[] = {"/yamux/1.0.0", "/noise"};

/* Feed all of in[0..len) in one call; returns the status. */
static int feed_all(dn_mss *m, const void *in, size_t len, size_t *consumed, dn_buf *out)
{
    return dn_mss_feed(m, (const uint8_t *)in, len, consumed, out);
}

/* Run a dialer and a listener against each other, delivering bytes in
 * chunks of at most `chunk` bytes. Returns when both are done or one fails;
 * *rd / *rl hold the last status of each. */
static void run_pair(dn_mss *d, dn_mss *l, size_t chunk, int *rd, int *rl)
{
    dn_buf to_l = DN_BUF_INIT, to_d = DN_BUF_INIT;
    assert_int_equal(dn_mss_start(d, &to_l), 0);
    assert_int_equal(dn_mss_start(l, &to_d), 0);
    *rd = DN_MSS_NEED_MORE;
    *rl = DN_MSS_NEED_MORE;
    for (int guard = 0; guard < 10000; guard++) {
        if ((to_l.len == 0 && to_d.len == 0) || *rd < 0 || *rl < 0)
            break;
        if (to_l.len > 0 && *rl == DN_MSS_NEED_MORE) {
            size_t n = to_l.len < chunk ? to_l.len : chunk, used = 0;
            uint8_t tmp[2048];
            memcpy(tmp, to_l.data, n);
            dn_buf_consume(&to_l, n);
            *rl = dn_mss_feed(l, tmp, n, &used, &to_d);
            if (*rl == DN_MSS_NEED_MORE)
                assert_int_equal(used, n);
        } else if (*rl != DN_MSS_NEED_MORE) {
            to_l.len = 0;
        }
        if (to_d.len > 0 && *rd == DN_MSS_NEED_MORE) {
            size_t n = to_d.len < chunk ? to_d.len : chunk, used = 0;
            uint8_t tmp[2048];
            memcpy(tmp, to_d.data, n);
            dn_buf_consume(&to_d, n);
            *rd = dn_mss_feed(d, tmp, n, &used, &to_l);
            if (*rd == DN_MSS_NEED_MORE)
                assert_int_equal(used, n);
        } else if (*rd != DN_MSS_NEED_MORE) {
            to_d.len = 0;
        }
    }
    dn_buf_free(&to_l);
    dn_buf_free(&to_d);
}

static void test_success(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        dn_mss d, l;
        dn_mss_init_dialer(&d, noise_only, 1);
        dn_mss_init_listener(&l, yamux_noise, 2);
        assert_null(dn_mss_selected(&d));
        int rd, rl;
        run_pair(&d, &l, chunk, &rd, &rl);
        assert_int_equal(rd, DN_MSS_DONE);
        assert_int_equal(rl, DN_MSS_DONE);
        assert_string_equal(dn_mss_selected(&d), "/noise");
        assert_string_equal(dn_mss_selected(&l), "/noise");
        /* The listener's answer is one of its own strings. */
        assert_ptr_equal(dn_mss_selected(&l), yamux_noise[1]);
    }
}

static void test_na_then_second(void **state)
{
    (void)state;
    dn_mss d, l;
    dn_mss_init_dialer(&d, tls_noise, 2);
    dn_mss_init_listener(&l, noise_only, 1);
    int rd, rl;
    run_pair(&d, &l, 1000, &rd, &rl);
    assert_int_equal(rd, DN_MSS_DONE);
    assert_int_equal(rl, DN_MSS_DONE);
    assert_string_equal(dn_mss_selected(&d), "/noise");
    assert_string_equal(dn_mss_selected(&l), "/noise");
    assert_int_equal(l.na_count, 1);
}

static void test_all_na(void **state)
{
    (void)state;
    static const char *const other[] = {"/plaintext/2.0.0"};
    dn_mss d, l;
    dn_mss_init_dialer(&d, tls_noise, 2);
    dn_mss_init_listener(&l, other, 1);
    int rd, rl;
    run_pair(&d, &l, 7, &rd, &rl);
    assert_int_equal(rd, DN_ENEGOTIATE);
    assert_int_equal(rl, DN_MSS_NEED_MORE); /* the listener just waits */
    assert_null(dn_mss_selected(&d));
    /* A failed engine refuses more input. */
    size_t used = 99;
    dn_buf out = DN_BUF_INIT;
    assert_int_equal(feed_all(&d, "\x03na\n", 4, &used, &out), DN_ESTATE);
    assert_int_equal(used, 0);
    assert_int_equal(out.len, 0);
    dn_buf_free(&out);

    /* A listener with no protocols says "na" to everything. */
    dn_mss_init_dialer(&d, noise_only, 1);
    dn_mss_init_listener(&l, NULL, 0);
    run_pair(&d, &l, 100, &rd, &rl);
    assert_int_equal(rd, DN_ENEGOTIATE);
}

/* The exact bytes of a known exchange (connections spec, "Protocol
 * Negotiation": "na" is 0x036e610a). */
static void test_wire_bytes(void **state)
{
    (void)state;
    dn_mss d, l;
    dn_buf out = DN_BUF_INIT;
    dn_mss_init_dialer(&d, tls_noise, 2);
    assert_int_equal(dn_mss_start(&d, &out), 0);
    const char want_d1[] = HDR "\x0b/tls/1.0.0\n";
    assert_int_equal(out.len, sizeof want_d1 - 1);
    assert_memory_equal(out.data, want_d1, out.len);

    dn_buf lout = DN_BUF_INIT;
    dn_mss_init_listener(&l, noise_only, 1);
    /* The listener says nothing before the dialer's header arrives; then
     * its header and its first answer go out together. */
    assert_int_equal(dn_mss_start(&l, &lout), 0);
    assert_int_equal(lout.len, 0);

    size_t used = 0;
    int rc = dn_mss_feed(&l, out.data, out.len, &used, &lout);
    assert_int_equal(rc, DN_MSS_NEED_MORE);
    assert_int_equal(used, out.len);
    const char want_l[] = HDR "\x03na\n";
    assert_int_equal(lout.len, sizeof want_l - 1);
    assert_memory_equal(lout.data, want_l, lout.len);
    assert_memory_equal(lout.data + HDR_LEN, "\x03\x6e\x61\x0a", 4);

    dn_buf_reset(&out);
    rc = dn_mss_feed(&d, lout.data, lout.len, &used, &out);
    assert_int_equal(rc, DN_MSS_NEED_MORE);
    assert_int_equal(out.len, 8);
    assert_memory_equal(out.data, "\x07/noise\n", 8);

    dn_buf_reset(&lout);
    rc = dn_mss_feed(&l, out.data, out.len, &used, &lout);
    assert_int_equal(rc, DN_MSS_DONE);
    assert_int_equal(used, 8);
    assert_int_equal(lout.len, 8);
    assert_memory_equal(lout.data, "\x07/noise\n", 8);

    dn_buf_reset(&out);
    rc = dn_mss_feed(&d, lout.data, lout.len, &used, &out);
    assert_int_equal(rc, DN_MSS_DONE);
    assert_int_equal(used, 8);
    assert_int_equal(out.len, 0);
    /* Done stays done and takes nothing more. */
    rc = dn_mss_feed(&d, (const uint8_t *)"xyz", 3, &used, &out);
    assert_int_equal(rc, DN_MSS_DONE);
    assert_int_equal(used, 0);
    dn_buf_free(&out);
    dn_buf_free(&lout);
}

/* Optimistic data: whatever follows the protocol line is left for the app,
 * on both sides. */
static void test_optimistic_data(void **state)
{
    (void)state;
    const char in[] = HDR "\x07/noise\nHELLO\x13/multistream/1.0.0\n";
    size_t len = sizeof in - 1;
    dn_mss l;
    dn_buf out = DN_BUF_INIT;
    dn_mss_init_listener(&l, noise_only, 1);
    size_t used = 0;
    assert_int_equal(feed_all(&l, in, len, &used, &out), DN_MSS_DONE);
    assert_int_equal(used, HDR_LEN + 8);
    assert_memory_equal(in + used, "HELLO", 5);
    assert_int_equal(out.len, HDR_LEN + 8); /* its header, then the echo */
    assert_memory_equal(out.data, HDR "\x07/noise\n", HDR_LEN + 8);

    /* Dialer side: the listener's echo followed by its first bytes. */
    dn_mss d;
    dn_buf_reset(&out);
    dn_mss_init_dialer(&d, noise_only, 1);
    const char in2[] = HDR "\x07/noise\n\x00\x20noise-msg";
    size_t len2 = sizeof in2 - 1;
    assert_int_equal(feed_all(&d, in2, len2, &used, &out), DN_MSS_DONE);
    assert_int_equal(used, HDR_LEN + 8);
    assert_int_equal(out.len, 0);
    dn_buf_free(&out);
}

/* Every split point (and every pair of split points) of the byte stream
 * gives the same result and the same consumed count. */
static void feed_split(bool dialer, const char *const *protos, size_t np, const uint8_t *in,
                       size_t len, size_t s1, size_t s2, int want_rc, size_t want_used,
                       const uint8_t *want_out, size_t want_out_len)
{
    dn_mss m;
    if (dialer)
        dn_mss_init_dialer(&m, protos, np);
    else
        dn_mss_init_listener(&m, protos, np);
    dn_buf out = DN_BUF_INIT;
    size_t cuts[4] = {0, s1, s2, len};
    size_t total = 0;
    int rc = DN_MSS_NEED_MORE;
    for (int i = 0; i < 3; i++) {
        size_t used = 0;
        rc = dn_mss_feed(&m, in + cuts[i], cuts[i + 1] - cuts[i], &used, &out);
        total += used;
        if (rc != DN_MSS_NEED_MORE)
            break;
        assert_int_equal(used, cuts[i + 1] - cuts[i]);
    }
    assert_int_equal(rc, want_rc);
    if (want_rc == DN_MSS_DONE)
        assert_int_equal(total, want_used);
    assert_int_equal(out.len, want_out_len);
    if (want_out_len)
        assert_memory_equal(out.data, want_out, want_out_len);
    dn_buf_free(&out);
}

static void test_every_split(void **state)
{
    (void)state;
    /* Listener input: header, an unknown proposal, ls, the accepted one,
     * then app data. */
    const char lin[] = HDR "\x0b/tls/1.0.0\n\x03ls\n\x07/noise\nAPPDATA";
    size_t llen = sizeof lin - 1;
    const char lout[] = HDR "\x03na\n\x03na\n\x07/noise\n";
    size_t used_l = llen - 7;
    for (size_t s1 = 0; s1 <= llen; s1++)
        for (size_t s2 = s1; s2 <= llen; s2++)
            feed_split(false, noise_only, 1, (const uint8_t *)lin, llen, s1, s2, DN_MSS_DONE,
                       used_l, (const uint8_t *)lout, sizeof lout - 1);

    /* Dialer input: header, "na" for /tls/1.0.0, the echo, then data. */
    const char din[] = HDR "\x03na\n\x07/noise\n\x13more";
    size_t dlen = sizeof din - 1;
    for (size_t s1 = 0; s1 <= dlen; s1++)
        for (size_t s2 = s1; s2 <= dlen; s2++)
            feed_split(true, tls_noise, 2, (const uint8_t *)din, dlen, s1, s2, DN_MSS_DONE,
                       dlen - 5, (const uint8_t *)"\x07/noise\n", 8);

    /* A long (2-byte varint) message split everywhere: 200 characters. */
    uint8_t big[HDR_LEN + 2 + 201 + 2 + 7];
    char name[201];
    memset(name, 'p', 200);
    name[0] = '/';
    name[200] = '\0';
    const char *const bigp[] = {name};
    size_t o = 0;
    memcpy(big, HDR, HDR_LEN);
    o += HDR_LEN;
    big[o++] = 0xc9; /* 201 = 0x49 | 0x80, then 0x01 */
    big[o++] = 0x01;
    memcpy(big + o, name, 200);
    o += 200;
    big[o++] = '\n';
    memcpy(big + o, "\x02xy", 3);
    o += 3;
    uint8_t echo[HDR_LEN + 203]; /* the listener's header, then the echo */
    memcpy(echo, HDR, HDR_LEN);
    echo[HDR_LEN] = 0xc9;
    echo[HDR_LEN + 1] = 0x01;
    memcpy(echo + HDR_LEN + 2, name, 200);
    echo[HDR_LEN + 202] = '\n';
    for (size_t s1 = 0; s1 <= o; s1++)
        feed_split(false, bigp, 1, big, o, s1, s1, DN_MSS_DONE, o - 3, echo, sizeof echo);
}

static void expect_listener_err(const void *in, size_t len, int want)
{
    /* In one piece and byte by byte. */
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        dn_mss l;
        dn_buf out = DN_BUF_INIT;
        dn_mss_init_listener(&l, noise_only, 1);
        int rc = DN_MSS_NEED_MORE;
        size_t used = 0;
        if (bytewise) {
            for (size_t i = 0; i < len && rc == DN_MSS_NEED_MORE; i++)
                rc = dn_mss_feed(&l, (const uint8_t *)in + i, 1, &used, &out);
        } else {
            rc = dn_mss_feed(&l, in, len, &used, &out);
        }
        if (rc != want)
            fail_msg("got %d (%s), want %d (%s)", rc, dn_strerror(rc), want, dn_strerror(want));
        assert_null(dn_mss_selected(&l));
        assert_int_equal(dn_mss_feed(&l, (const uint8_t *)HDR, HDR_LEN, &used, &out), DN_ESTATE);
        dn_buf_free(&out);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    /* wrong header, or no header first */
    expect_listener_err("\x13/multistream/2.0.0\n", HDR_LEN, DN_EPROTO);
    expect_listener_err("\x07/noise\n", 8, DN_EPROTO);
    expect_listener_err("\x12/multistream/1.0.0", 19, DN_EPROTO); /* no '\n' inside len */
    expect_listener_err("\x14/multistream/1.0.0\n\n", 21, DN_EPROTO);
    /* missing newline */
    expect_listener_err("\x13/multistream/1.0.0X", HDR_LEN, DN_EPROTO);
    expect_listener_err(HDR "\x06/noise", HDR_LEN + 7, DN_EPROTO);
    expect_listener_err(HDR "\x07/noise/", HDR_LEN + 8, DN_EPROTO);
    /* empty messages */
    expect_listener_err("\x00", 1, DN_EPROTO);
    expect_listener_err("\x01\n", 2, DN_EPROTO);
    expect_listener_err(HDR "\x01\n", HDR_LEN + 2, DN_EPROTO);
    expect_listener_err(HDR "\x00", HDR_LEN + 1, DN_EPROTO);
    /* bad varints: non-minimal, too many bytes */
    expect_listener_err("\x93\x00/multistream/1.0.0\n", 21, DN_EPROTO);
    /* Before the header, any byte that is not the header's next one is a
     * protocol violation at once (long lengths included). */
    expect_listener_err("\x80\x80\x80\x01", 4, DN_EPROTO);
    expect_listener_err("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10, DN_EPROTO);
    expect_listener_err("\x13/multistream/1.0.1\n", HDR_LEN, DN_EPROTO);
    /* too long: 1025 = 0x81 0x08; also a huge announced length */
    expect_listener_err("\x81\x08", 2, DN_EPROTO);
    expect_listener_err(HDR "\x81\x08", HDR_LEN + 2, DN_ETOOBIG);
    expect_listener_err(HDR "\x80\x80\x80\x01", HDR_LEN + 4, DN_ETOOBIG);
    expect_listener_err(HDR "\xff\x7f", HDR_LEN + 2, DN_ETOOBIG);
}

/* Exactly DN_MSS_MAX_MSG is accepted, one more is refused. */
static void test_max_len(void **state)
{
    (void)state;
    static uint8_t in[HDR_LEN + 2 + DN_MSS_MAX_MSG + 1];
    memcpy(in, HDR, HDR_LEN);
    in[HDR_LEN] = (uint8_t)(0x80 | (DN_MSS_MAX_MSG & 0x7f));
    in[HDR_LEN + 1] = (uint8_t)(DN_MSS_MAX_MSG >> 7);
    memset(in + HDR_LEN + 2, 'a', DN_MSS_MAX_MSG - 1);
    in[HDR_LEN + 2 + DN_MSS_MAX_MSG - 1] = '\n';
    size_t len = HDR_LEN + 2 + DN_MSS_MAX_MSG;
    dn_mss l;
    dn_buf out = DN_BUF_INIT;
    size_t used = 0;
    dn_mss_init_listener(&l, noise_only, 1);
    assert_int_equal(dn_mss_feed(&l, in, len, &used, &out), DN_MSS_NEED_MORE);
    assert_int_equal(used, len);
    assert_int_equal(out.len, HDR_LEN + 4);
    assert_memory_equal(out.data, HDR "\x03na\n", HDR_LEN + 4);

    in[HDR_LEN] = (uint8_t)(0x80 | ((DN_MSS_MAX_MSG + 1) & 0x7f));
    in[HDR_LEN + 1] = (uint8_t)((DN_MSS_MAX_MSG + 1) >> 7);
    in[HDR_LEN + 2 + DN_MSS_MAX_MSG - 1] = 'a';
    in[HDR_LEN + 2 + DN_MSS_MAX_MSG] = '\n';
    dn_mss_init_listener(&l, noise_only, 1);
    dn_buf_reset(&out);
    assert_int_equal(dn_mss_feed(&l, in, len + 1, &used, &out), DN_ETOOBIG);
    dn_buf_free(&out);
}

/* The listener gives at most DN_MSS_MAX_NA "na" answers ("ls" included). */
static void test_na_limit(void **state)
{
    (void)state;
    dn_mss l;
    dn_buf out = DN_BUF_INIT;
    size_t used = 0;
    dn_mss_init_listener(&l, noise_only, 1);
    assert_int_equal(feed_all(&l, HDR, HDR_LEN, &used, &out), DN_MSS_NEED_MORE);
    for (int i = 0; i < DN_MSS_MAX_NA; i++) {
        const char *msg = i % 2 ? "\x03ls\n" : "\x05/tls\n";
        dn_buf_reset(&out);
        assert_int_equal(feed_all(&l, msg, strlen(msg), &used, &out), DN_MSS_NEED_MORE);
        assert_int_equal(out.len, 4);
        assert_memory_equal(out.data, "\x03na\n", 4);
    }
    dn_buf_reset(&out);
    assert_int_equal(feed_all(&l, "\x05/tls\n", 6, &used, &out), DN_ENEGOTIATE);
    assert_int_equal(out.len, 0);

    /* Even a good proposal after the limit was reached is not taken. */
    assert_int_equal(feed_all(&l, "\x07/noise\n", 8, &used, &out), DN_ESTATE);

    /* But a good proposal as the 17th message is accepted. */
    dn_mss_init_listener(&l, noise_only, 1);
    assert_int_equal(feed_all(&l, HDR, HDR_LEN, &used, &out), DN_MSS_NEED_MORE);
    for (int i = 0; i < DN_MSS_MAX_NA; i++)
        assert_int_equal(feed_all(&l, "\x05/tls\n", 6, &used, &out), DN_MSS_NEED_MORE);
    assert_int_equal(feed_all(&l, "\x07/noise\n", 8, &used, &out), DN_MSS_DONE);
    dn_buf_free(&out);
}

/* The dialer accepts only its proposal echoed, or "na". */
static void test_dialer_bad_answers(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        int want;
    } cases[] = {
        {HDR "\x05/tls\n", HDR_LEN + 6, DN_EPROTO},        /* not what we proposed */
        {HDR "\x0b/tls/1.0.0\n", HDR_LEN + 12, DN_EPROTO}, /* the other proposal, too early */
        {HDR "\x03NA\n", HDR_LEN + 4, DN_EPROTO},
        {HDR "\x07/noise\r", HDR_LEN + 8, DN_EPROTO},
        {"\x03na\n", 4, DN_EPROTO}, /* no header */
        {HDR "\x81\x10", HDR_LEN + 2, DN_ETOOBIG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dn_mss d;
        dn_buf out = DN_BUF_INIT;
        size_t used;
        dn_mss_init_dialer(&d, noise_only, 1);
        int rc = feed_all(&d, cases[i].in, cases[i].len, &used, &out);
        if (rc != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, rc, cases[i].want);
        dn_buf_free(&out);
    }
}

static void test_start_validation(void **state)
{
    (void)state;
    dn_mss m;
    dn_buf out = DN_BUF_INIT;
    size_t used;
    dn_mss_init_dialer(&m, NULL, 0);
    assert_int_equal(dn_mss_start(&m, &out), DN_EINVAL);
    assert_int_equal(feed_all(&m, HDR, HDR_LEN, &used, &out), DN_EINVAL);
    static const char *const empty[] = {""};
    dn_mss_init_dialer(&m, empty, 1);
    assert_int_equal(dn_mss_start(&m, &out), DN_EINVAL);
    static const char *const nl[] = {"/a\nb"};
    dn_mss_init_listener(&m, nl, 1);
    assert_int_equal(dn_mss_start(&m, &out), DN_EINVAL);
    static char longp[DN_MSS_MAX_MSG + 1];
    memset(longp, 'x', DN_MSS_MAX_MSG);
    const char *const lp[] = {longp};
    dn_mss_init_dialer(&m, lp, 1);
    assert_int_equal(dn_mss_start(&m, &out), DN_EINVAL);
    longp[DN_MSS_MAX_MSG - 1] = '\0'; /* 1023 characters + '\n' = the limit */
    assert_int_equal(dn_mss_start(&m, &out), 0);
    assert_int_equal(out.len, HDR_LEN + 2 + DN_MSS_MAX_MSG);
    dn_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success),          cmocka_unit_test(test_na_then_second),
        cmocka_unit_test(test_all_na),           cmocka_unit_test(test_wire_bytes),
        cmocka_unit_test(test_optimistic_data),  cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_malformed),        cmocka_unit_test(test_max_len),
        cmocka_unit_test(test_na_limit),         cmocka_unit_test(test_dialer_bad_answers),
        cmocka_unit_test(test_start_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
