/* Tests for pnet (PSK v1 protector) and swarm key files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "pnet/pnet.h"

static const uint8_t key_seq[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    /* load() logs on purpose in some tests; keep the output quiet. */
    dn_log_set_level(DN_LOG_OFF);
    return 0;
}

/* Deterministic pseudo-random numbers for chunkings (reproducible runs). */
static uint32_t rng_state = 0x12345678;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static size_t next_chunk(size_t left)
{
    /* Mix tiny, block-sized and large pieces, plus zero-length calls. */
    size_t c;
    switch (rnd() % 7) {
    case 0: c = 0; break;
    case 1: c = 1 + rnd() % 8; break;
    case 2: c = 60 + rnd() % 9; break; /* around one block */
    case 3: c = 64 * (1 + rnd() % 4); break;
    case 4: c = rnd() % 300; break;
    case 5: c = DN_PNET_KS_LEN - 4 + rnd() % 9; break; /* around the made-ahead keystream */
    default: c = rnd() % 5000; break;
    }
    return c < left ? c : left;
}

/* NaCl's XSalsa20 test vector ("stream3": firstkey / nonce, 32 bytes) —
 * an independent check of the key and nonce handling. */
static void test_known_vector(void **state)
{
    (void)state;
    uint8_t k[32], n[24], want[32], buf[32] = {0};
    assert_int_equal(
        sodium_hex2bin(k, 32, "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389",
                       64, NULL, NULL, NULL),
        0);
    assert_int_equal(sodium_hex2bin(n, 24, "69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37", 48,
                                    NULL, NULL, NULL),
                     0);
    assert_int_equal(
        sodium_hex2bin(want, 32, "eea6a7251c1e72916d11c2cb214d3c252539121d8e234e652d651fa4c8cff880",
                       64, NULL, NULL, NULL),
        0);
    dn_pnet p;
    dn_pnet_init(&p, k, n);
    /* Split 5 + 27 so the leftover-keystream path is part of it. */
    dn_pnet_encrypt(&p, buf, 5);
    dn_pnet_encrypt(&p, buf + 5, 27);
    assert_memory_equal(buf, want, 32);
}

/* The keystream over any chunking equals one-shot XSalsa20 over the whole
 * message (pnet spec, "Algorithm": one stream per direction). */
static void test_chunking_matches_oneshot(void **state)
{
    (void)state;
    const size_t N = 70000;
    uint8_t *msg = malloc(N), *want = malloc(N), *got = malloc(N);
    assert_non_null(msg);
    assert_non_null(want);
    assert_non_null(got);
    uint8_t psk[32], nonce[24];
    for (int round = 0; round < 60; round++) {
        randombytes_buf(psk, sizeof psk);
        randombytes_buf(nonce, sizeof nonce);
        randombytes_buf(msg, N);
        size_t len = round < 10 ? (size_t)round * 7 : N - rnd() % 1000;
        crypto_stream_xsalsa20_xor(want, msg, len, nonce, psk);
        memcpy(got, msg, len);
        dn_pnet p;
        dn_pnet_init(&p, psk, nonce);
        size_t off = 0;
        int guard = 0;
        while (off < len && guard++ < 1000000) {
            size_t c = next_chunk(len - off);
            dn_pnet_encrypt(&p, got + off, c);
            off += c;
        }
        assert_int_equal(off, len);
        assert_memory_equal(got, want, len);
    }
    free(msg);
    free(want);
    free(got);
}

/* Byte by byte across several blocks, then a bulk run: block counter and
 * leftover bytes stay in step. */
static void test_byte_at_a_time(void **state)
{
    (void)state;
    uint8_t want[1000] = {0}, got[1000] = {0};
    crypto_stream_xsalsa20(want, sizeof want, (const uint8_t *)"0123456789abcdefghijklmn", key_seq);
    dn_pnet p;
    dn_pnet_init(&p, key_seq, (const uint8_t *)"0123456789abcdefghijklmn");
    for (size_t i = 0; i < 200; i++)
        dn_pnet_encrypt(&p, got + i, 1);
    dn_pnet_encrypt(&p, got + 200, 800);
    assert_memory_equal(got, want, sizeof want);
}

/* Two peers A and B: each sends its nonce, then data both ways. */
static void test_pair_roundtrip(void **state)
{
    (void)state;
    uint8_t psk[32], na[24], nb[24];
    randombytes_buf(psk, sizeof psk);
    randombytes_buf(na, sizeof na);
    randombytes_buf(nb, sizeof nb);
    dn_pnet a, b;
    dn_pnet_init(&a, psk, na);
    dn_pnet_init(&b, psk, nb);
    assert_false(dn_pnet_ready(&a));
    assert_int_equal(dn_pnet_feed_nonce(&a, nb, 24), 24);
    assert_int_equal(dn_pnet_feed_nonce(&b, na, 24), 24);
    assert_true(dn_pnet_ready(&a));
    assert_true(dn_pnet_ready(&b));

    uint8_t data[3000], buf[3000];
    for (int round = 0; round < 20; round++) {
        size_t n = 1 + rnd() % sizeof data;
        randombytes_buf(data, n);
        /* A -> B */
        memcpy(buf, data, n);
        dn_pnet_encrypt(&a, buf, n);
        if (n >= 16)
            assert_memory_not_equal(buf, data, 16);
        dn_pnet_decrypt(&b, buf, n);
        assert_memory_equal(buf, data, n);
        /* B -> A, different size so the streams run out of step */
        size_t m = 1 + rnd() % sizeof data;
        randombytes_buf(data, m);
        memcpy(buf, data, m);
        dn_pnet_encrypt(&b, buf, m);
        dn_pnet_decrypt(&a, buf, m);
        assert_memory_equal(buf, data, m);
    }
    /* The two directions are distinct keystreams: A's outbound keystream
     * is not B's outbound keystream. */
    uint8_t ka[64] = {0}, kb[64] = {0};
    dn_pnet_encrypt(&a, ka, 64);
    dn_pnet_encrypt(&b, kb, 64);
    assert_memory_not_equal(ka, kb, 64);
    dn_pnet_wipe(&a);
    dn_pnet_wipe(&b);
}

/* The peer's nonce arrives split at every byte, glued to ciphertext. */
static void test_nonce_split(void **state)
{
    (void)state;
    uint8_t psk[32], na[24], nb[24];
    randombytes_buf(psk, sizeof psk);
    randombytes_buf(na, sizeof na);
    randombytes_buf(nb, sizeof nb);
    const char *text = "/multistream/1.0.0 and more";
    size_t tlen = strlen(text);
    for (size_t split = 0; split <= 24 + tlen; split++) {
        dn_pnet a, b;
        dn_pnet_init(&a, psk, na);
        dn_pnet_init(&b, psk, nb);
        /* What A puts on the wire: its nonce, then ciphertext. */
        uint8_t wire[64];
        memcpy(wire, na, 24);
        memcpy(wire + 24, text, tlen);
        dn_pnet_encrypt(&a, wire + 24, tlen);
        size_t wlen = 24 + tlen;

        uint8_t plain[64];
        size_t plen = 0;
        const uint8_t *parts[2] = {wire, wire + split};
        size_t lens[2] = {split, wlen - split};
        for (int i = 0; i < 2; i++) {
            const uint8_t *pp = parts[i];
            size_t l = lens[i];
            size_t used = dn_pnet_feed_nonce(&b, pp, l);
            assert_true(used <= l);
            /* Everything up to the end of the nonce is nonce, not more. */
            size_t expect_used = 0;
            size_t before = (size_t)(pp - wire);
            if (before < 24)
                expect_used = (24 - before) < l ? 24 - before : l;
            assert_int_equal(used, expect_used);
            if (dn_pnet_ready(&b) && l > used) {
                memcpy(plain + plen, pp + used, l - used);
                dn_pnet_decrypt(&b, plain + plen, l - used);
                plen += l - used;
            }
        }
        assert_true(dn_pnet_ready(&b));
        assert_int_equal(plen, tlen);
        assert_memory_equal(plain, text, tlen);
        /* Once complete, more nonce bytes are not taken. */
        assert_int_equal(dn_pnet_feed_nonce(&b, wire, 10), 0);
    }
}

/* Peers with different keys read garbage (the spec's only "check"). */
static void test_wrong_key_garbage(void **state)
{
    (void)state;
    uint8_t k1[32], k2[32], na[24];
    randombytes_buf(k1, sizeof k1);
    memcpy(k2, k1, sizeof k2);
    k2[31] ^= 1; /* one bit differs */
    randombytes_buf(na, sizeof na);
    dn_pnet a, b;
    dn_pnet_init(&a, k1, na);
    dn_pnet_init(&b, k2, na);
    dn_pnet_feed_nonce(&b, na, 24);
    uint8_t buf[256], text[256];
    memset(text, 'x', sizeof text);
    memcpy(buf, text, sizeof buf);
    dn_pnet_encrypt(&a, buf, sizeof buf);
    dn_pnet_decrypt(&b, buf, sizeof buf);
    size_t same = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        same += buf[i] == text[i];
    assert_true(same < 16); /* ~1 expected by chance */
}

/* Decrypt before the nonce is complete leaves data alone (caller bug, no
 * keystream from a partial nonce); wipe clears the key. */
static void test_decrypt_not_ready_and_wipe(void **state)
{
    (void)state;
    dn_pnet p;
    uint8_t nonce[24] = {1};
    dn_pnet_init(&p, key_seq, nonce);
    uint8_t buf[10] = "abcdefghi";
    dn_pnet_feed_nonce(&p, nonce, 23);
    dn_pnet_decrypt(&p, buf, sizeof buf);
    assert_memory_equal(buf, "abcdefghi", 10);
    dn_pnet_wipe(&p);
    uint8_t zero[DN_PSK_LEN] = {0};
    assert_memory_equal(p.psk, zero, DN_PSK_LEN);
    assert_memory_equal(p.out.subkey, zero, 32);
}

/* ---- swarm key files ---- */

static const char hex_seq[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char b64_seq[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

static int parse_str(const char *s, uint8_t psk[32])
{
    return dn_swarm_key_parse((const uint8_t *)s, strlen(s), psk);
}

static void expect_key(const char *text)
{
    uint8_t psk[32];
    memset(psk, 0xee, sizeof psk);
    int rc = parse_str(text, psk);
    if (rc != 0)
        fail_msg("parse of %s failed: %s", text, dn_strerror(rc));
    assert_memory_equal(psk, key_seq, 32);
}

static void test_swarm_key_forms(void **state)
{
    (void)state;
    char text[256];
    /* base16 as go / js write it (no final newline), and with the usual
     * variations: final newline, CRLF, trailing blank lines, upper case. */
    snprintf(text, sizeof text, "/key/swarm/psk/1.0.0/\n/base16/\n%s", hex_seq);
    expect_key(text);
    snprintf(text, sizeof text, "/key/swarm/psk/1.0.0/\n/base16/\n%s\n", hex_seq);
    expect_key(text);
    snprintf(text, sizeof text, "/key/swarm/psk/1.0.0/\r\n/base16/\r\n%s\r\n", hex_seq);
    expect_key(text);
    snprintf(text, sizeof text, "/key/swarm/psk/1.0.0/\n/base16/\n%s \t\n\n", hex_seq);
    expect_key(text);
    snprintf(text, sizeof text,
             "/key/swarm/psk/1.0.0/\n/base16/\n"
             "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
    expect_key(text);
    /* base64, padded and unpadded */
    snprintf(text, sizeof text, "/key/swarm/psk/1.0.0/\n/base64/\n%s\n", b64_seq);
    expect_key(text);
    snprintf(text, sizeof text, "/key/swarm/psk/1.0.0/\r\n/base64/\r\n%.43s", b64_seq);
    expect_key(text);

    /* bin: 32 raw bytes, including bytes that look like whitespace */
    uint8_t raw[64];
    size_t hl = strlen("/key/swarm/psk/1.0.0/\n/bin/\n");
    memcpy(raw, "/key/swarm/psk/1.0.0/\n/bin/\n", hl);
    uint8_t k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)(i % 2 ? '\n' : ' ');
    memcpy(raw + hl, k, 32);
    uint8_t psk[32];
    assert_int_equal(dn_swarm_key_parse(raw, hl + 32, psk), 0);
    assert_memory_equal(psk, k, 32);
    raw[hl + 32] = '\n';
    assert_int_equal(dn_swarm_key_parse(raw, hl + 33, psk), 0);
    assert_memory_equal(psk, k, 32);
    raw[hl + 32] = '\r';
    raw[hl + 33] = '\n';
    assert_int_equal(dn_swarm_key_parse(raw, hl + 34, psk), 0);
    assert_memory_equal(psk, k, 32);
    memcpy(raw + hl, key_seq, 32);
    assert_int_equal(dn_swarm_key_parse(raw, hl + 32, psk), 0);
    assert_memory_equal(psk, key_seq, 32);
}

static void test_swarm_key_format(void **state)
{
    (void)state;
    char out[DN_SWARM_KEY_TEXT_MAX];
    int n = dn_swarm_key_format(key_seq, out, sizeof out);
    /* Byte for byte what go's ipfs-swarm-key-gen and js-libp2p's
     * generateKey produce. */
    const char *want = "/key/swarm/psk/1.0.0/\n/base16/\n"
                       "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    assert_int_equal(n, 95);
    assert_string_equal(out, want);
    uint8_t psk[32];
    assert_int_equal(dn_swarm_key_parse((const uint8_t *)out, (size_t)n, psk), 0);
    assert_memory_equal(psk, key_seq, 32);
    /* Round trip of random keys. */
    for (int i = 0; i < 100; i++) {
        uint8_t k[32], back[32];
        randombytes_buf(k, sizeof k);
        n = dn_swarm_key_format(k, out, sizeof out);
        assert_int_equal(n, 95);
        assert_int_equal(dn_swarm_key_parse((const uint8_t *)out, (size_t)n, back), 0);
        assert_memory_equal(k, back, 32);
    }
    char small[95];
    assert_int_equal(dn_swarm_key_format(key_seq, small, sizeof small), DN_ETOOBIG);
}

static void expect_err(const char *text, int want)
{
    uint8_t psk[32];
    memset(psk, 0xaa, sizeof psk);
    int rc = parse_str(text, psk);
    if (rc != want)
        fail_msg("parse of \"%s\": got %d (%s), want %d (%s)", text, rc, dn_strerror(rc), want,
                 dn_strerror(want));
    /* The output is left alone on failure. */
    for (int i = 0; i < 32; i++)
        assert_int_equal(psk[i], 0xaa);
}

static void test_swarm_key_errors(void **state)
{
    (void)state;
    char t[300];
    /* wrong or missing header */
    expect_err("", DN_EMALFORMED);
    expect_err("/key/swarm/psk/1.0.0/", DN_EMALFORMED); /* no newline */
    snprintf(t, sizeof t, "/key/swarm/psk/2.0.0/\n/base16/\n%s", hex_seq);
    expect_err(t, DN_EMALFORMED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0\n/base16/\n%s", hex_seq);
    expect_err(t, DN_EMALFORMED);
    snprintf(t, sizeof t, " /key/swarm/psk/1.0.0/\n/base16/\n%s", hex_seq);
    expect_err(t, DN_EMALFORMED);
    snprintf(t, sizeof t, "%s\n", hex_seq);
    expect_err(t, DN_EMALFORMED);
    expect_err("/key/swarm/psk/1.0.0/\n/base16/", DN_EMALFORMED); /* no encoding line end */
    /* unknown encodings */
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base32/\n%s", hex_seq);
    expect_err(t, DN_EUNSUPPORTED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base58btc/\n%s", hex_seq);
    expect_err(t, DN_EUNSUPPORTED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\nbase16\n%s", hex_seq);
    expect_err(t, DN_EUNSUPPORTED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/BASE16/\n%s", hex_seq);
    expect_err(t, DN_EUNSUPPORTED);
    /* wrong key length */
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%.63s", hex_seq);
    expect_err(t, DN_ETRUNCATED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%.62s", hex_seq);
    expect_err(t, DN_ETRUNCATED);
    expect_err("/key/swarm/psk/1.0.0/\n/base16/\n", DN_ETRUNCATED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%s00", hex_seq);
    expect_err(t, DN_ETOOBIG);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%s0", hex_seq);
    expect_err(t, DN_ETOOBIG);
    /* bad hex */
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%.62sg0", hex_seq);
    expect_err(t, DN_EMALFORMED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%.32s %.32s", hex_seq, hex_seq + 32);
    expect_err(t, DN_EMALFORMED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n%.32s\n%.32s", hex_seq, hex_seq + 32);
    expect_err(t, DN_EMALFORMED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n %s", hex_seq);
    expect_err(t, DN_EMALFORMED);
    snprintf(t, sizeof t, "/key/swarm/psk/1.0.0/\n/base16/\n0x%.62s", hex_seq);
    expect_err(t, DN_EMALFORMED);
    /* base64: short, long, bad characters, bad padding */
    expect_err("/key/swarm/psk/1.0.0/\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n",
               DN_ETRUNCATED); /* 31 bytes */
    expect_err("/key/swarm/psk/1.0.0/\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n",
               DN_ETOOBIG); /* 33 bytes */
    expect_err("/key/swarm/psk/1.0.0/\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj"
               "JCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9Q\n",
               DN_ETOOBIG); /* 81 bytes */
    expect_err("/key/swarm/psk/1.0.0/\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx*dHh8=\n",
               DN_EMALFORMED);
    expect_err("/key/swarm/psk/1.0.0/\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==\n",
               DN_EMALFORMED);
    expect_err("/key/swarm/psk/1.0.0/\n/base64/\nAAECAwQFBgcICQoLDA0O DxAREhMUFRYXGBkaGxwdHh8=\n",
               DN_EMALFORMED);
    /* bin: wrong lengths */
    expect_err("/key/swarm/psk/1.0.0/\n/bin/\n0123456789012345678901234567890", DN_ETRUNCATED);
    expect_err("/key/swarm/psk/1.0.0/\n/bin/\n012345678901234567890123456789012", DN_ETOOBIG);
    expect_err("/key/swarm/psk/1.0.0/\n/bin/\n01234567890123456789012345678901\n\n", DN_ETOOBIG);
    expect_err("/key/swarm/psk/1.0.0/\n/bin/\n", DN_ETRUNCATED);
}

/* ---- dn_swarm_key_load ---- */

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    unlink(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_swarm_key_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/dn_test_pnet_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/swarm.key", dir);
    char text[DN_SWARM_KEY_TEXT_MAX];
    int n = dn_swarm_key_format(key_seq, text, sizeof text);
    assert_true(n > 0);
    uint8_t psk[32];

    write_file(path, text, (size_t)n, 0600);
    memset(psk, 0, sizeof psk);
    assert_int_equal(dn_swarm_key_load(path, psk), 0);
    assert_memory_equal(psk, key_seq, 32);

    /* Readable by others still loads (with a warning in the log). */
    write_file(path, text, (size_t)n, 0644);
    memset(psk, 0, sizeof psk);
    assert_int_equal(dn_swarm_key_load(path, psk), 0);
    assert_memory_equal(psk, key_seq, 32);

    /* Exactly 4096 bytes (key + trailing whitespace) is fine; 4097 is not. */
    char big[4097];
    memset(big, '\n', sizeof big);
    memcpy(big, text, (size_t)n);
    write_file(path, big, 4096, 0600);
    assert_int_equal(dn_swarm_key_load(path, psk), 0);
    write_file(path, big, 4097, 0600);
    assert_int_equal(dn_swarm_key_load(path, psk), DN_ETOOBIG);

    /* Parse errors come through unchanged. */
    write_file(path, "/key/swarm/psk/1.0.0/\n/base32/\nAA\n", 34, 0600);
    assert_int_equal(dn_swarm_key_load(path, psk), DN_EUNSUPPORTED);

    /* Missing file: -errno from the OS boundary; a directory: DN_EINVAL. */
    unlink(path);
    assert_int_equal(dn_swarm_key_load(path, psk), -ENOENT);
    assert_int_equal(dn_swarm_key_load(dir, psk), DN_EINVAL);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vector),
        cmocka_unit_test(test_chunking_matches_oneshot),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_pair_roundtrip),
        cmocka_unit_test(test_nonce_split),
        cmocka_unit_test(test_wrong_key_garbage),
        cmocka_unit_test(test_decrypt_not_ready_and_wipe),
        cmocka_unit_test(test_swarm_key_forms),
        cmocka_unit_test(test_swarm_key_format),
        cmocka_unit_test(test_swarm_key_errors),
        cmocka_unit_test(test_swarm_key_load),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
