/* The Messenger frame codec (src/messenger/frame.c): the header's byte
 * order (NuNet DMS: 8-byte little-endian length), whole payloads, the
 * limit refused from the header before anything is buffered, byte-at-a-
 * time input, memory held in proportion to what arrived, and garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "messenger/frame.h"

#define MIB (1u << 20)

static void test_header_little_endian(void **state)
{
    uint8_t h[8];
    dn__msg_frame_header(0x0102030405060708ull, h);
    const uint8_t want[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    assert_memory_equal(h, want, 8);
    dn__msg_frame_header(MIB, h);
    const uint8_t mib[8] = {0, 0, 0x10, 0, 0, 0, 0, 0};
    assert_memory_equal(h, mib, 8);
}

static void test_roundtrip_and_trailing(void **state)
{
    uint8_t buf[8 + 5 + 3];
    dn__msg_frame_header(5, buf);
    memcpy(buf + 8, "hello", 5);
    memcpy(buf + 13, "xyz", 3); /* not part of the frame */
    dn__msg_reader r;
    dn__msg_reader_init(&r, 100);
    size_t used = 0;
    assert_int_equal(dn__msg_reader_feed(&r, buf, sizeof buf, &used), 1);
    assert_int_equal(used, 13); /* the bytes past the frame are left */
    size_t len = 0;
    const uint8_t *p = dn__msg_reader_payload(&r, &len);
    assert_non_null(p);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "hello", 5);
    /* A complete reader takes nothing more. */
    assert_int_equal(dn__msg_reader_feed(&r, buf, 3, &used), 1);
    assert_int_equal(used, 0);
    dn__msg_reader_free(&r);
}

static void test_empty_payload(void **state)
{
    uint8_t h[8];
    dn__msg_frame_header(0, h);
    dn__msg_reader r;
    dn__msg_reader_init(&r, 100);
    size_t used = 0, len = 99;
    assert_int_equal(dn__msg_reader_feed(&r, h, 7, &used), 0);
    assert_int_equal(used, 7);
    assert_null(dn__msg_reader_payload(&r, &len));
    assert_int_equal(dn__msg_reader_feed(&r, h + 7, 1, &used), 1);
    assert_non_null(dn__msg_reader_payload(&r, &len));
    assert_int_equal(len, 0);
    dn__msg_reader_free(&r);
}

static void test_limit_exact_and_one_over(void **state)
{
    uint8_t *buf = malloc(8 + MIB + 1);
    assert_non_null(buf);
    for (size_t i = 0; i < MIB + 1; i++)
        buf[8 + i] = (uint8_t)(i * 7);
    dn__msg_reader r;
    size_t used = 0, len = 0;
    /* Exactly the limit: accepted. */
    dn__msg_frame_header(MIB, buf);
    dn__msg_reader_init(&r, MIB);
    assert_int_equal(dn__msg_reader_feed(&r, buf, 8 + MIB, &used), 1);
    assert_int_equal(used, 8 + MIB);
    const uint8_t *p = dn__msg_reader_payload(&r, &len);
    assert_int_equal(len, MIB);
    assert_memory_equal(p, buf + 8, MIB);
    assert_true(dn__msg_reader_held(&r) <= MIB + 8);
    dn__msg_reader_free(&r);
    /* One over: refused from the header, before any payload is taken. */
    dn__msg_frame_header(MIB + 1, buf);
    dn__msg_reader_init(&r, MIB);
    assert_int_equal(dn__msg_reader_feed(&r, buf, 8 + MIB + 1, &used), DN_ETOOBIG);
    assert_int_equal(used, 8);
    assert_int_equal(dn__msg_reader_held(&r), 8);
    assert_null(dn__msg_reader_payload(&r, &len));
    /* It stays refused. */
    assert_int_equal(dn__msg_reader_feed(&r, buf + 8, 10, &used), DN_ETOOBIG);
    assert_int_equal(used, 0);
    dn__msg_reader_free(&r);
    /* The largest length the header can say. */
    memset(buf, 0xff, 8);
    dn__msg_reader_init(&r, MIB);
    assert_int_equal(dn__msg_reader_feed(&r, buf, 8, &used), DN_ETOOBIG);
    dn__msg_reader_free(&r);
    free(buf);
}

static void test_byte_at_a_time(void **state)
{
    enum { N = 3000 };
    uint8_t buf[8 + N];
    dn__msg_frame_header(N, buf);
    for (size_t i = 0; i < N; i++)
        buf[8 + i] = (uint8_t)(i % 251);
    dn__msg_reader r;
    dn__msg_reader_init(&r, N);
    size_t declared = 0;
    for (size_t i = 0; i < sizeof buf; i++) {
        size_t used = 0;
        int rc = dn__msg_reader_feed(&r, buf + i, 1, &used);
        assert_int_equal(used, 1);
        assert_int_equal(rc, i + 1 == sizeof buf ? 1 : 0);
        assert_int_equal(dn__msg_reader_declared(&r, &declared), i >= 7);
    }
    assert_int_equal(declared, N);
    size_t len = 0;
    const uint8_t *p = dn__msg_reader_payload(&r, &len);
    assert_int_equal(len, N);
    assert_memory_equal(p, buf + 8, N);
    dn__msg_reader_free(&r);
}

/* A peer that declares the limit and sends little costs what it sent. */
static void test_memory_follows_arrival(void **state)
{
    uint8_t h[8];
    dn__msg_frame_header(MIB, h);
    dn__msg_reader r;
    dn__msg_reader_init(&r, MIB);
    size_t used = 0;
    assert_int_equal(dn__msg_reader_feed(&r, h, 8, &used), 0);
    static uint8_t chunk[1000];
    assert_int_equal(dn__msg_reader_feed(&r, chunk, sizeof chunk, &used), 0);
    assert_true(dn__msg_reader_held(&r) <= 8 + 16 * 1024);
    /* Fed on to the end in odd pieces: never more than limit + 8. */
    size_t got = sizeof chunk;
    while (got < MIB) {
        size_t n = MIB - got < 777 ? MIB - got : 777;
        static uint8_t piece[777];
        int rc = dn__msg_reader_feed(&r, piece, n, &used);
        assert_int_equal(used, n);
        got += n;
        assert_int_equal(rc, got == MIB ? 1 : 0);
        assert_true(dn__msg_reader_held(&r) <= MIB + 8);
    }
    dn__msg_reader_free(&r);
}

/* Random bytes against random limits: every outcome is one of the three,
 * the payload is what followed the header, and memory stays bounded. */
static void test_garbage(void **state)
{
    srand(12345);
    static uint8_t buf[4096];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)rand() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rand();
        /* Now and then a small length, so that some frames complete. */
        if (round % 3 == 0 && n >= 8)
            dn__msg_frame_header((uint64_t)rand() % 64, buf);
        size_t limit = (size_t)rand() % 2048;
        dn__msg_reader r;
        dn__msg_reader_init(&r, limit);
        size_t off = 0;
        int rc = 0;
        while (off < n && rc == 0) {
            size_t step = 1 + (size_t)rand() % 300, used = 0;
            if (step > n - off)
                step = n - off;
            rc = dn__msg_reader_feed(&r, buf + off, step, &used);
            off += used;
            assert_true(dn__msg_reader_held(&r) <= limit + 8);
        }
        assert_true(rc == 0 || rc == 1 || rc == DN_ETOOBIG);
        if (rc == 1) {
            size_t len = 0;
            const uint8_t *p = dn__msg_reader_payload(&r, &len);
            assert_int_equal(off, 8 + len);
            assert_memory_equal(p, buf + 8, len);
        }
        dn__msg_reader_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_little_endian),
        cmocka_unit_test(test_roundtrip_and_trailing),
        cmocka_unit_test(test_empty_payload),
        cmocka_unit_test(test_limit_exact_and_one_over),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_memory_follows_arrival),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
