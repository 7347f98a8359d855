/* libFuzzer target for signed peer records (src/proto/peer_record.c) on
 * arbitrary envelopes. Each input is opened three ways: from any signer,
 * as the record of a fixed Ed25519 peer (the key the seed corpus is sealed
 * with, tests/tools/fuzz_seeds.c), and through a verify cache, twice.
 * Checks: errors are documented codes and leave the record cleared; an
 * opened record names its signer (and the expected peer when one is
 * given), holds at most DN_PEER_RECORD_MAX_ADDRS valid addresses; the
 * cache changes no answer; a record of the fixed peer, sealed again with
 * its key, opens to the same content. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "proto/peer_record.h"

static dn_privkey *fixed;
static dn_peerid fixed_id;
static dn_verify_cache cache;

/* The seed corpus signer: Ed25519 from the seed 32 x 0x2a. */
static void init(void)
{
    uint8_t seed[32], pk[32], sk[64], pb[4 + 64] = {0x08, 0x01, 0x12, 64};
    memset(seed, 0x2a, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    memcpy(pb + 4, seed, 32);
    memcpy(pb + 36, pk, 32);
    if (dn_privkey_from_protobuf(pb, sizeof pb, &fixed) ||
        dn_peerid_from_pubkey(dn_privkey_public(fixed), &fixed_id))
        abort();
    dn_verify_cache_init(&cache);
}

static int documented(int rc)
{
    return rc == DN_EMALFORMED || rc == DN_ETRUNCATED || rc == DN_ETOOBIG ||
           rc == DN_EUNSUPPORTED || rc == DN_EPEERID || rc == DN_EBADSIG || rc == DN_ENOMEM;
}

static int cleared(const dn_peer_record *r)
{
    static const dn_peer_record zero;
    return memcmp(r, &zero, sizeof zero) == 0;
}

static int same(const dn_peer_record *a, const dn_peer_record *b)
{
    if (!dn_peerid_equal(&a->peer, &b->peer) || a->seq != b->seq || a->naddrs != b->naddrs)
        return 0;
    for (size_t i = 0; i < a->naddrs; i++)
        if (a->addrs[i].len != b->addrs[i].len ||
            memcmp(a->addrs[i].bytes, b->addrs[i].bytes, a->addrs[i].len))
            return 0;
    return 1;
}

static void check_opened(int rc, const dn_peer_record *r, const dn_peerid *expected)
{
    if (rc) {
        if (!documented(rc) || !cleared(r))
            abort();
        return;
    }
    if (expected && !dn_peerid_equal(&r->peer, expected))
        abort();
    if (r->naddrs > DN_PEER_RECORD_MAX_ADDRS)
        abort();
    for (size_t i = 0; i < r->naddrs; i++) {
        dn_multiaddr m;
        if (dn_multiaddr_from_bytes(r->addrs[i].bytes, r->addrs[i].len, &m))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dn_peer_record any, mine, c1, c2, again;
    if (!fixed)
        init();
    int rc_any = dn__peer_record_open(data, size, NULL, NULL, &any);
    check_opened(rc_any, &any, NULL);
    int rc_mine = dn__peer_record_open(data, size, &fixed_id, NULL, &mine);
    check_opened(rc_mine, &mine, &fixed_id);
    /* The fixed peer's record opens from any signer too, to the same. */
    if (!rc_mine && (rc_any || !same(&any, &mine)))
        abort();
    /* Opened from any signer, and it is the fixed peer's: it opens as
     * that peer's record. */
    if (!rc_any && dn_peerid_equal(&any.peer, &fixed_id) && rc_mine)
        abort();

    int r1 = dn__peer_record_open(data, size, &fixed_id, &cache, &c1);
    int r2 = dn__peer_record_open(data, size, &fixed_id, &cache, &c2);
    if (r1 != rc_mine || r2 != rc_mine || (!r1 && (!same(&c1, &mine) || !same(&c2, &mine))))
        abort();

    if (!rc_mine) {
        dn_buf env = DN_BUF_INIT;
        if (dn__peer_record_seal(fixed, mine.seq, mine.addrs, mine.naddrs, &env) ||
            dn__peer_record_open(env.data, env.len, &fixed_id, NULL, &again) ||
            !same(&again, &mine))
            abort();
        dn_buf_free(&env);
    }
    return 0;
}
