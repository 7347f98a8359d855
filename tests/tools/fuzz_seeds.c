/* Writes the seed corpora of the identify, peer-record and DHT-record fuzz
 * targets (tests/fuzz/corpus/{identify,peer_record,kad_records}/) with our
 * real encoders: dn__identify_encode, dn__peer_record_seal and
 * dn__kad_record_seal. Records are sealed with the
 * fixed Ed25519 key fuzz_peer_record.c expects (seed 32 x 0x2a), one with a
 * fresh ECDSA key (sha2-256 peer id). ECDSA signatures are randomised, so
 * that file differs on each run; the rest are reproducible.
 *   fuzz_seeds <tests/fuzz/corpus> */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/multiaddr.h"
#include "kad/records.h"
#include "proto/identify_msg.h"
#include "proto/peer_record.h"

static const char *root;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_seeds: %s\n", what);
    exit(1);
}

static void put(const char *dir, const char *name, const dn_buf *b)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", root, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f))
        die(path);
}

static dn_privkey *fixed_key(void)
{
    uint8_t seed[32], pk[32], sk[64], pb[4 + 64] = {0x08, 0x01, 0x12, 64};
    memset(seed, 0x2a, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    memcpy(pb + 4, seed, 32);
    memcpy(pb + 36, pk, 32);
    dn_privkey *k = NULL;
    if (dn_privkey_from_protobuf(pb, sizeof pb, &k))
        die("fixed key");
    return k;
}

static void addr(const char *text, dn_multiaddr *out)
{
    if (dn_multiaddr_parse(text, out))
        die(text);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: fuzz_seeds <corpus dir>");
    root = argv[1];
    if (sodium_init() < 0)
        die("sodium");
    dn_privkey *k = fixed_key(), *ec = NULL;
    if (dn_privkey_generate(DN_KEY_ECDSA, &ec))
        die("ecdsa key");
    dn_multiaddr addrs[3];
    addr("/ip4/127.0.0.1/tcp/4001", &addrs[0]);
    addr("/ip6/::1/tcp/4001", &addrs[1]);
    addr("/dns4/example.com/tcp/443/wss", &addrs[2]);

    /* peer records */
    dn_buf rec0 = DN_BUF_INIT, rec3 = DN_BUF_INIT, recec = DN_BUF_INIT;
    if (dn__peer_record_seal(k, 1, NULL, 0, &rec0) ||
        dn__peer_record_seal(k, 42, addrs, 3, &rec3) ||
        dn__peer_record_seal(ec, 7, addrs, 2, &recec))
        die("seal");
    put("peer_record", "ed25519_empty", &rec0);
    put("peer_record", "ed25519_3addrs", &rec3);
    put("peer_record", "ecdsa_2addrs", &recec);

    /* identify messages */
    static dn__identify_msg m;
    dn_buf pub = DN_BUF_INIT, out = DN_BUF_INIT;
    if (dn_pubkey_to_protobuf(dn_privkey_public(k), &pub))
        die("pubkey");
    m.has_public_key = true;
    m.public_key = pub.data;
    m.public_key_len = pub.len;
    m.has_listen_addrs = true;
    memcpy(m.listen_addrs, addrs, sizeof addrs);
    m.nlisten_addrs = 3;
    char *protos[] = {"/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", "/perf/1.0.0"};
    m.has_protocols = true;
    memcpy(m.protocols, protos, sizeof protos);
    m.nprotocols = 4;
    m.has_observed_addr = true;
    addr("/ip4/192.0.2.7/tcp/50123", &m.observed_addr);
    m.has_protocol_version = true;
    strcpy(m.protocol_version, "ipfs/0.1.0");
    m.has_agent_version = true;
    strcpy(m.agent_version, "dmsnet/0.1.0");
    m.has_signed_record = true;
    m.signed_record = rec3.data;
    m.signed_record_len = rec3.len;
    if (dn__identify_encode(&m, &out))
        die("encode full");
    put("identify", "full", &out);

    /* go-libp2p's second message of a split identify: the record alone */
    static dn__identify_msg only;
    only.has_signed_record = true;
    only.signed_record = rec3.data;
    only.signed_record_len = rec3.len;
    dn_buf_reset(&out);
    if (dn__identify_encode(&only, &out))
        die("encode record");
    put("identify", "record_only", &out);

    /* a push with changed protocols and a hostile agent string */
    static dn__identify_msg push;
    push.has_protocols = true;
    memcpy(push.protocols, protos, sizeof protos);
    push.nprotocols = 2;
    push.has_agent_version = true;
    strcpy(push.agent_version, "evil\n\x1b[31m\xc2\x9b\xff");
    dn_buf_reset(&out);
    if (dn__identify_encode(&push, &out))
        die("encode push");
    put("identify", "push_hostile_agent", &out);

    /* DHT records: a selector byte (0: /dmsnet/<fixed>/n, 1: .../other,
     * 2: /pk/<fixed>), then the value. */
    dn_peerid fid;
    char fid_text[128], dkey[256];
    if (dn_peerid_from_pubkey(dn_privkey_public(k), &fid) ||
        dn_peerid_to_string(&fid, fid_text, sizeof fid_text) < 0)
        die("peer id");
    int dlen = snprintf(dkey, sizeof dkey, "/dmsnet/%s/n", fid_text);
    dn_buf_reset(&out);
    dn_buf_append_byte(&out, 0);
    if (dn__kad_record_seal(k, (const uint8_t *)dkey, (size_t)dlen, 5, (const uint8_t *)"hello", 5,
                            &out))
        die("kad seal");
    put("kad_records", "dmsnet_seq5", &out);
    dn_buf_reset(&out);
    dn_buf_append_byte(&out, 0);
    if (dn__kad_record_seal(k, (const uint8_t *)dkey, (size_t)dlen, 6, NULL, 0, &out))
        die("kad seal");
    put("kad_records", "dmsnet_seq6_empty", &out);
    dn_buf_reset(&out);
    dn_buf_append_byte(&out, 2);
    dn_buf_append(&out, pub.data, pub.len);
    put("kad_records", "pk", &out);

    dn_buf_free(&out);
    dn_buf_free(&pub);
    dn_buf_free(&rec0);
    dn_buf_free(&rec3);
    dn_buf_free(&recec);
    dn_privkey_free(ec);
    dn_privkey_free(k);
    return 0;
}
