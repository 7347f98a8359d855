/* libFuzzer target for the DHT's record validators and store
 * (src/kad/records.c) on arbitrary values. The first input byte picks the
 * key: /dmsnet/<fixed peer>/n, /dmsnet/<fixed peer>/other, or /pk/<fixed
 * peer> (the fixed Ed25519 peer the seeds are sealed with, seed 32 x
 * 0x2a, tests/tools/fuzz_seeds.c); the rest is the value. Checks: errors
 * are documented codes and leave the result empty; a valid value's inner
 * value lies inside it; the store takes a valid value (or calls it stale
 * against what it holds) and refuses an invalid one; what it holds for the
 * key is valid, and a value accepted twice is the same value; the record
 * sealed again from a valid one's seq and inner value validates with the
 * same seq. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "kad/records.h"

static dn_privkey *fixed;
static dn_peerid fixed_id;
static dn_verify_cache cache;
static dn__kad_store store;
static uint8_t keys[3][160];
static size_t keylens[3];

static void init(void)
{
    uint8_t seed[32], pk[32], sk[64], pb[4 + 64] = {0x08, 0x01, 0x12, 64};
    memset(seed, 0x2a, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    memcpy(pb + 4, seed, 32);
    memcpy(pb + 36, pk, 32);
    char id[128];
    if (dn_privkey_from_protobuf(pb, sizeof pb, &fixed) ||
        dn_peerid_from_pubkey(dn_privkey_public(fixed), &fixed_id) ||
        dn_peerid_to_string(&fixed_id, id, sizeof id) < 0)
        abort();
    keylens[0] = (size_t)snprintf((char *)keys[0], sizeof keys[0], "/dmsnet/%s/n", id);
    keylens[1] = (size_t)snprintf((char *)keys[1], sizeof keys[1], "/dmsnet/%s/other", id);
    memcpy(keys[2], "/pk/", 4);
    memcpy(keys[2] + 4, fixed_id.bytes, fixed_id.len);
    keylens[2] = 4 + fixed_id.len;
    dn_verify_cache_init(&cache);
    dn__kad_store_limits lim = {.max_records = 16,
                                .max_per_peer = 8,
                                .max_per_key = 4,
                                .max_provider_keys = 4,
                                .record_ttl_ms = 1000};
    if (dn__kad_store_init(&store, &lim, &cache))
        abort();
}

static int documented(int rc)
{
    return rc == DN_EMALFORMED || rc == DN_ETRUNCATED || rc == DN_ETOOBIG ||
           rc == DN_EUNSUPPORTED || rc == DN_EPEERID || rc == DN_EBADSIG || rc == DN_EINVAL ||
           rc == DN_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fixed)
        init();
    if (size < 1)
        return 0;
    unsigned which = data[0] % 3;
    const uint8_t *val = data + 1;
    size_t vlen = size - 1;
    const uint8_t *key = keys[which];
    size_t keylen = keylens[which];

    dn__kad_valid v;
    int rc = dn__kad_validate(key, keylen, val, vlen, &cache, &v);
    if (rc) {
        static const dn__kad_valid zero;
        if (!documented(rc) || memcmp(&v, &zero, sizeof v) != 0)
            abort();
    } else {
        if (!v.inner || v.inner < val || v.inner + v.inner_len > val + vlen)
            abort();
        if (v.signed_record != (which < 2))
            abort();
        if (v.signed_record) {
            dn_buf again = DN_BUF_INIT;
            dn__kad_valid v2;
            if (dn__kad_record_seal(fixed, key, keylen, v.seq, v.inner, v.inner_len, &again) ||
                dn__kad_validate(key, keylen, again.data, again.len, &cache, &v2) ||
                v2.seq != v.seq || dn__kad_compare(&v, &v2) != 0 || v2.inner_len != v.inner_len ||
                memcmp(v2.inner, v.inner, v.inner_len) != 0)
                abort();
            dn_buf_free(&again);
        }
    }

    /* The store: same verdict, and what it holds stays valid. */
    uint64_t now = 1000000;
    const dn__kad_rec *before = dn__kad_store_get(&store, key, keylen, now);
    uint64_t before_seq = before ? before->seq : 0;
    int put = dn__kad_store_put(&store, key, keylen, val, vlen, NULL, now, now);
    if (rc && put != rc)
        abort();
    if (!rc && put != DN_KAD_PUT_STORED && put != DN_KAD_PUT_SAME && put != DN_ESTATE &&
        put != DN_ELIMIT && put != DN_ENOMEM)
        abort();
    const dn__kad_rec *held = dn__kad_store_get(&store, key, keylen, now);
    if (put == DN_KAD_PUT_STORED || put == DN_KAD_PUT_SAME) {
        if (!held || held->vlen != vlen || memcmp(held->value, val, vlen) != 0)
            abort();
    }
    if (put == DN_ESTATE && (!before || (v.signed_record && v.seq > before_seq)))
        abort();
    if (held) {
        dn__kad_valid hv;
        if (dn__kad_validate(held->key, held->keylen, held->value, held->vlen, &cache, &hv))
            abort();
        if (hv.signed_record && before && hv.seq < before_seq)
            abort(); /* never older than before */
    }
    return 0;
}
