/* Tests for identity keys (keys.c, keys_ec.c) and peer IDs from keys
 * (peerid.c). Vectors: libp2p/specs peer-ids/peer-ids.md "Test vectors";
 * peer IDs and signatures that the spec does not list were computed by
 * js-libp2p (@libp2p/crypto 5.1.23, @libp2p/peer-id 6.0.15). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/log.h"
#include "dmsnet/peerid.h"

/* ---- spec test vectors (peer-ids.md, "Test vectors") ---- */
static const char ECDSA_PRIV[] =
    "08031279307702010104203E5B1FE9712E6C314942A750BD67485DE3C1EFE85B1BFB520AE8F9AE3DFA4A4CA00A"
    "06082A8648CE3D030107A14403420004DE3D300FA36AE0E8F5D530899D83ABAB44ABF3161F162A4BC901D8E6EC"
    "DA020E8B6D5F8DA30525E71D6851510C098E5C47C646A597FB4DCEC034E9F77C409E62";
static const char ECDSA_PUB[] =
    "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530899d83a"
    "bab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f7"
    "7c409e62";
static const char ED_PRIV[] =
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be"
    "8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
static const char ED_PUB[] =
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
static const char SECP_PRIV[] =
    "0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB";
static const char SECP_PUB[] =
    "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99";
static const char RSA_PRIV[] =
    "080012ae123082092a0201000282020100e1beab071d08200bde24eef00d049449b07770ff9910257b2d7d5dda"
    "242ce8f0e2f12e1af4b32d9efd2c090f66b0f29986dbb645dae9880089704a94e5066d594162ae6ee8892e6ec7"
    "0701db0a6c445c04778eb3de1293aa1a23c3825b85c6620a2bc3f82f9b0c309bc0ab3aeb1873282bebd3da03c3"
    "3e76c21e9beb172fd44c9e43be32e2c99827033cf8d0f0c606f4579326c930eb4e854395ad941256542c793902"
    "185153c474bed109d6ff5141ebf9cd256cf58893a37f83729f97e7cb435ec679d2e33901d27bb35aa0d7e20561"
    "da08885ef0abbf8e2fb48d6a5487047a9ecb1ad41fa7ed84f6e3e8ecd5d98b3982d2a901b4454991766da295ab"
    "78822add5612a2df83bcee814cf50973e80d7ef38111b1bd87da2ae92438a2c8cbcc70b31ee319939a3b9c761d"
    "bc13b5c086d6b64bf7ae7dacc14622375d92a8ff9af7eb962162bbddebf90acb32adb5e4e4029f1c96019949ec"
    "fbfeffd7ac1e3fbcc6b6168c34be3d5a2e5999fcbb39bba7adbca78eab09b9bc39f7fa4b93411f4cc175e70c0a"
    "083e96bfaefb04a9580b4753c1738a6a760ae1afd851a1a4bdad231cf56e9284d832483df215a46c1c21bdf0c6"
    "cfe951c18f1ee4078c79c13d63edb6e14feaeffabc90ad317e4875fe648101b0864097e998f0ca3025ef9638cd"
    "2b0caecd3770ab54a1d9c6ca959b0f5dcbc90caeefc4135baca6fd475224269bbe1b02030100010282020100a4"
    "72ffa858efd8588ce59ee264b957452f3673acdf5631d7bfd5ba0ef59779c231b0bc838a8b14cae367b6d9ef57"
    "2c03c7883b0a3c652f5c24c316b1ccfd979f13d0cd7da20c7d34d9ec32dfdc81ee7292167e706d705efde5b8f3"
    "edfcba41409e642f8897357df5d320d21c43b33600a7ae4e505db957c1afbc189d73f0b5d972d9aaaeeb232ca2"
    "0eebd5de6fe7f29d01470354413cc9a0af1154b7af7c1029adcd67c74b4798afeb69e09f2cb387305e73a1b5f4"
    "50202d54f0ef096fe1bde340219a1194d1ac9026e90b366cce0c59b239d10e4888f52ca1780824d39ae01a6b9f"
    "4dd6059191a7f12b2a3d8db3c2868cd4e5a5862b8b625a4197d52c6ac77710116ebd3ced81c4d91ad5fdfbed68"
    "312ebce7eea45c1833ca3acf7da2052820eacf5c6b07d086dabeb893391c71417fd8a4b1829ae2cf60d1749d0e"
    "25da19530d889461c21da3492a8dc6ccac7de83ac1c2185262c7473c8cc42f547cc9864b02a8073b6aa54a037d"
    "8c0de3914784e6205e83d97918b944f11b877b12084c0dd1d36592f8a4f8b8da5bb404c3d2c079b22b6ceabfbc"
    "b637c0dbe0201f0909d533f8bf308ada47aee641a012a494d31b54c974e58b87f140258258bb82f31692659db7"
    "aa07e17a5b2a0832c24e122d3a8babcc9ee74cbb07d3058bb85b15f6f6b2674aba9fd34367be9782d444335fbe"
    "d31e3c4086c652597c27104938b47fa10282010100e9fdf843c1550070ca711cb8ff28411466198f0e212511c3"
    "186623890c0071bf6561219682fe7dbdfd81176eba7c4faba21614a20721e0fcd63768e6d925688ecc90992059"
    "ac89256e0524de90bf3d8a052ce6a9f6adafa712f3107a016e20c80255c9e37d8206d1bc327e06e66eb24288da"
    "866b55904fd8b59e6b2ab31bc5eab47e597093c63fab7872102d57b4c589c66077f534a61f5f65127459a33c91"
    "f6db61fc431b1ae90be92b4149a3255291baf94304e3efb77b1107b5a3bda911359c40a53c347ff9100baf8f36"
    "dc5cd991066b5bdc28b39ed644f404afe9213f4d31c9d4e40f3a5f5e3c39bebeb244e84137544e1a1839c1c8aa"
    "ebf0c78a7fad590282010100f6fa1f1e6b803742d5490b7441152f500970f46feb0b73a6e4baba2aaf3c0e245e"
    "d852fc31d86a8e46eb48e90fac409989dfee45238f97e8f1f8e83a136488c1b04b8a7fb695f37b8616307ff8a8"
    "d63e8cfa0b4fb9b9167ffaebabf111aa5a4344afbabd002ae8961c38c02da76a9149abdde93eb389eb32595c29"
    "ba30d8283a7885218a5a9d33f7f01dbdf85f3aad016c071395491338ec318d39220e1c7bd69d3d6b520a13a30d"
    "745c102b827ad9984b0dd6aed73916ffa82a06c1c111e7047dcd2668f988a0570a71474992eecf416e068f029e"
    "c323d5d635fd24694fc9bf96973c255d26c772a95bf8b7f876547a5beabf86f06cd21b67994f944e7a54930282"
    "01010095b02fd30069e547426a8bea58e8a2816f33688dac6c6f6974415af8402244a22133baedf34ce499d703"
    "6f3f19b38eb00897c18949b0c5a25953c71aeeccfc8f6594173157cc854bd98f16dffe8f28ca13b77eb43a2730"
    "585c49fc3f608cd811bb54b03b84bddaa8ef910988567f783012266199667a546a18fd88271fbf63a45ae4fd48"
    "84706da8befb9117c0a4d73de5172f8640b1091ed8a4aea3ed4641463f5ff6a5e3401ad7d0c92811f87956d1fd"
    "5f9a1d15c7f3839a08698d9f35f9d966e5000f7cb2655d7b6c4adcd8a9d950ea5f61bb7c9a33c17508f9baa313"
    "eecfee4ae493249ebe05a5d7770bbd3551b2eeb752e3649e0636de08e3d672e66cb90282010100ad93e4c31072"
    "b063fc5ab5fe22afacece775c795d0efdf7c704cfc027bde0d626a7646fc905bb5a80117e3ca49059af14e0160"
    "089f9190065be9bfecf12c3b2145b211c8e89e42dd91c38e9aa23ca73697063564f6f6aa6590088a738722df05"
    "6004d18d7bccac62b3bafef6172fc2a4b071ea37f31eff7a076bcab7dd144e51a9da8754219352aef2c7347897"
    "1539fa41de4759285ea626fa3c72e7085be47d554d915bbb5149cb6ef835351f231043049cd941506a034bf2f8"
    "767f3e1e42ead92f91cb3d75549b57ef7d56ac39c2d80d67f6a2b4ca192974bfc5060e2dd171217971002193db"
    "a12e7e4133ab201f07500a90495a38610279b13a48d54f0c99028201003e3a1ac0c2b67d54ed5c4bbe04a7db99"
    "103659d33a4f9d35809e1f60c282e5988dddc964527f3b05e6cc890eab3dcb571d66debf3a5527704c87264b39"
    "54d7265f4e8d2c637dd89b491b9cf23f264801f804b90454d65af0c4c830d1aef76f597ef61b26ca857ecce9cb"
    "78d4f6c2218c00d2975d46c2b013fbf59b750c3b92d8d3ed9e6d1fd0ef1ec091a5c286a3fe2dead292f40f3800"
    "65731e2079ebb9f2a7ef2c415ecbb488da98f3a12609ca1b6ec8c734032c8bd513292ff842c375d4acd1b02dfb"
    "206b24cd815f8e2f9d4af8e7dea0370b19c1b23cc531d78b40e06e1119ee2e08f6f31c6e2e8444c568d13c5d45"
    "1a291ae0c9f1d4f27d23b3a00d60ad";
static const char RSA_PUB[] =
    "080012a60430820222300d06092a864886f70d01010105000382020f003082020a0282020100e1beab071d0820"
    "0bde24eef00d049449b07770ff9910257b2d7d5dda242ce8f0e2f12e1af4b32d9efd2c090f66b0f29986dbb645"
    "dae9880089704a94e5066d594162ae6ee8892e6ec70701db0a6c445c04778eb3de1293aa1a23c3825b85c6620a"
    "2bc3f82f9b0c309bc0ab3aeb1873282bebd3da03c33e76c21e9beb172fd44c9e43be32e2c99827033cf8d0f0c6"
    "06f4579326c930eb4e854395ad941256542c793902185153c474bed109d6ff5141ebf9cd256cf58893a37f8372"
    "9f97e7cb435ec679d2e33901d27bb35aa0d7e20561da08885ef0abbf8e2fb48d6a5487047a9ecb1ad41fa7ed84"
    "f6e3e8ecd5d98b3982d2a901b4454991766da295ab78822add5612a2df83bcee814cf50973e80d7ef38111b1bd"
    "87da2ae92438a2c8cbcc70b31ee319939a3b9c761dbc13b5c086d6b64bf7ae7dacc14622375d92a8ff9af7eb96"
    "2162bbddebf90acb32adb5e4e4029f1c96019949ecfbfeffd7ac1e3fbcc6b6168c34be3d5a2e5999fcbb39bba7"
    "adbca78eab09b9bc39f7fa4b93411f4cc175e70c0a083e96bfaefb04a9580b4753c1738a6a760ae1afd851a1a4"
    "bdad231cf56e9284d832483df215a46c1c21bdf0c6cfe951c18f1ee4078c79c13d63edb6e14feaeffabc90ad31"
    "7e4875fe648101b0864097e998f0ca3025ef9638cd2b0caecd3770ab54a1d9c6ca959b0f5dcbc90caeefc4135b"
    "aca6fd475224269bbe1b0203010001";

/* Computed by js-libp2p from the vectors above. */
static const char ED_ID[] = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";
static const char ED_CID[] = "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6";
static const char SECP_ID[] = "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY";
static const char SECP_CID[] =
    "bafzaajiiaijcca3xo7uzjzcsyilaj6i54cj44qk7kqzpoao5rti2pjx6udtdbp6kte";
static const char RSA_ID[] = "QmaeANgBs1DTSxWSrPPtobgQuxW8XTfsS4ydbK4rCHzqxG";
static const char RSA_CID[] = "bafzbeifwzcumbiyql7bhv7fe7mixg6i7aohegq75k234m63bnw6dbicmzu";
/* Ed25519 (deterministic) signature of "hello" with the spec key, by js. */
static const char ED_SIG_HELLO[] =
    "54f7fd037768d6479d14967d3df9500ba0720166b931e5e9912e58a0ac49fbfcef7aa3adc9b89d736d7411749dee"
    "70eb00ff8792ecc5e8c8c39c0b97f710d40c";
/* js-libp2p's ECDSA public key Data form for the spec ECDSA key, and a js
 * (WebCrypto, raw r || s) signature of "hello" with that key. */
static const char ECDSA_PUB_JS[] =
    "080312573055020101a00a06082a8648ce3d030107a14403420004de3d300fa36ae0e8f5d530899d83abab44abf3"
    "161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f77c409e62";
static const char ECDSA_SIG_JS[] =
    "37fa536d2841c7b356d948acdf391ee9be12c4f61406b76763682d4330fee80ed9777acd1de3b085c3c5ceb52ccb"
    "2d33a6c4110b9f3e1c8ad7daef9dde3ed431";

static const uint8_t hello[] = {'h', 'e', 'l', 'l', 'o'};

/* ---- helpers ---- */

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

typedef struct {
    uint8_t b[4096];
    size_t n;
} bytes;

static bytes hx(const char *s)
{
    bytes r;
    r.n = unhex(s, r.b, sizeof r.b);
    return r;
}

static void assert_pub_pb(const dn_pubkey *k, const bytes *want)
{
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn_pubkey_to_protobuf(k, &b), 0);
    assert_int_equal(b.len, want->n);
    assert_memory_equal(b.data, want->b, want->n);
    dn_buf_free(&b);
}

static void assert_priv_pb(const dn_privkey *k, const bytes *want)
{
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn_privkey_to_protobuf(k, &b), 0);
    assert_int_equal(b.len, want->n);
    assert_memory_equal(b.data, want->b, want->n);
    dn_buf_free(&b);
}

static void assert_id_text(const dn_peerid *id, const char *b58, const char *cid)
{
    char s[DN_PEERID_STR_MAX];
    assert_int_equal(dn_peerid_to_string(id, s, sizeof s), (int)strlen(b58));
    assert_string_equal(s, b58);
    assert_int_equal(dn_peerid_to_cid_string(id, s, sizeof s), (int)strlen(cid));
    assert_string_equal(s, cid);
    dn_peerid back;
    assert_int_equal(dn_peerid_parse(b58, &back), 0);
    assert_true(dn_peerid_equal(&back, id));
    assert_int_equal(dn_peerid_parse(cid, &back), 0);
    assert_true(dn_peerid_equal(&back, id));
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    dn_log_set_level(DN_LOG_OFF);
    return 0;
}

/* ---- spec vectors ---- */

/* Private vector -> same private bytes back, the listed public key, and the
 * public vector itself round-trips. Returns the peer id. */
static void check_vector(const char *priv_hex, const char *pub_hex, dn_key_type type, dn_peerid *id)
{
    bytes priv = hx(priv_hex), pub = hx(pub_hex);
    dn_privkey *k;
    assert_int_equal(dn_privkey_from_protobuf(priv.b, priv.n, &k), 0);
    assert_int_equal(dn_privkey_type(k), type);
    assert_int_equal(dn_pubkey_type(dn_privkey_public(k)), type);
    assert_priv_pb(k, &priv);
    assert_pub_pb(dn_privkey_public(k), &pub);

    dn_pubkey *p;
    assert_int_equal(dn_pubkey_from_protobuf(pub.b, pub.n, &p), 0);
    assert_pub_pb(p, &pub);
    assert_true(dn_pubkey_equal(p, dn_privkey_public(k)));

    /* Sign with the private key, verify with the parsed public key. */
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(dn_privkey_sign(k, hello, sizeof hello, sig, &siglen), 0);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), 0);

    dn_peerid id2;
    assert_int_equal(dn_peerid_from_pubkey(p, id), 0);
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &id2), 0);
    assert_int_equal(id->len, id2.len);
    assert_memory_equal(id->bytes, id2.bytes, id->len);
    assert_true(dn_peerid_matches_pubkey(id, p));
    dn_pubkey_free(p);
    dn_privkey_free(k);
}

static void test_vector_ed25519(void **state)
{
    (void)state;
    dn_peerid id;
    check_vector(ED_PRIV, ED_PUB, DN_KEY_ED25519, &id);
    /* 36-byte protobuf: identity multihash 0x00 0x24 || protobuf. */
    bytes pub = hx(ED_PUB);
    assert_int_equal(id.len, 2 + pub.n);
    assert_int_equal(id.bytes[0], 0x00);
    assert_int_equal(id.bytes[1], pub.n);
    assert_memory_equal(id.bytes + 2, pub.b, pub.n);
    assert_id_text(&id, ED_ID, ED_CID);

    /* Ed25519 signatures are deterministic: same bytes as js-libp2p. */
    bytes priv = hx(ED_PRIV), want = hx(ED_SIG_HELLO);
    dn_privkey *k;
    assert_int_equal(dn_privkey_from_protobuf(priv.b, priv.n, &k), 0);
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(dn_privkey_sign(k, hello, sizeof hello, sig, &siglen), 0);
    assert_int_equal(siglen, 64);
    assert_memory_equal(sig, want.b, 64);
    dn_privkey_free(k);
}

static void test_vector_secp256k1(void **state)
{
    (void)state;
    dn_peerid id;
    check_vector(SECP_PRIV, SECP_PUB, DN_KEY_SECP256K1, &id);
    assert_int_equal(id.bytes[0], 0x00); /* 37 bytes: still inlined */
    assert_int_equal(id.len, 2 + 37);
    assert_id_text(&id, SECP_ID, SECP_CID);
}

static void sha256_mh(const bytes *pb, uint8_t out[34])
{
    unsigned n = 0;
    out[0] = 0x12;
    out[1] = 32;
    assert_int_equal(EVP_Digest(pb->b, pb->n, out + 2, &n, EVP_sha256(), NULL), 1);
}

static void test_vector_ecdsa(void **state)
{
    (void)state;
    dn_peerid id;
    check_vector(ECDSA_PRIV, ECDSA_PUB, DN_KEY_ECDSA, &id);
    /* 95-byte protobuf: sha2-256 multihash of it. */
    bytes pub = hx(ECDSA_PUB);
    uint8_t mh[34];
    sha256_mh(&pub, mh);
    assert_int_equal(id.len, 34);
    assert_memory_equal(id.bytes, mh, 34);
}

static void test_vector_ecdsa_js_forms(void **state)
{
    (void)state;
    bytes spki = hx(ECDSA_PUB), js = hx(ECDSA_PUB_JS), sig = hx(ECDSA_SIG_JS);
    dn_pubkey *a, *b;
    assert_int_equal(dn_pubkey_from_protobuf(spki.b, spki.n, &a), 0);
    assert_int_equal(dn_pubkey_from_protobuf(js.b, js.n, &b), 0);
    /* Same key in two encodings: equal, and each re-encodes as it came. */
    assert_true(dn_pubkey_equal(a, b));
    assert_pub_pb(b, &js);
    /* js signs with WebCrypto: raw r || s. Both key forms verify it. */
    assert_int_equal(sig.n, 64);
    assert_int_equal(dn_pubkey_verify(a, hello, sizeof hello, sig.b, sig.n), 0);
    assert_int_equal(dn_pubkey_verify(b, hello, sizeof hello, sig.b, sig.n), 0);
    sig.b[10] ^= 1;
    assert_int_equal(dn_pubkey_verify(b, hello, sizeof hello, sig.b, sig.n), DN_EBADSIG);
    /* The peer id follows the bytes received (sha2-256 of the js form). */
    dn_peerid id;
    uint8_t mh[34];
    assert_int_equal(dn_peerid_from_pubkey(b, &id), 0);
    sha256_mh(&js, mh);
    assert_memory_equal(id.bytes, mh, 34);
    dn_pubkey_free(a);
    dn_pubkey_free(b);
}

/* The spec's RSA private key: we only hold RSA public keys, so loading it is
 * DN_EUNSUPPORTED; OpenSSL signs with it and we verify. */
static void test_vector_rsa(void **state)
{
    (void)state;
    bytes priv = hx(RSA_PRIV), pub = hx(RSA_PUB);
    dn_privkey *k;
    assert_int_equal(dn_privkey_from_protobuf(priv.b, priv.n, &k), DN_EUNSUPPORTED);

    dn_pubkey *p;
    assert_int_equal(dn_pubkey_from_protobuf(pub.b, pub.n, &p), 0);
    assert_int_equal(dn_pubkey_type(p), DN_KEY_RSA);
    assert_pub_pb(p, &pub);
    dn_peerid id;
    assert_int_equal(dn_peerid_from_pubkey(p, &id), 0);
    assert_int_equal(id.bytes[0], 0x12);
    assert_id_text(&id, RSA_ID, RSA_CID);
    dn_pubkey *ex = (dn_pubkey *)1;
    assert_int_equal(dn_peerid_extract_pubkey(&id, &ex), DN_ENOTFOUND);
    assert_null(ex);

    /* PKCS#1 RSAPrivateKey DER after the 5-byte protobuf header. */
    const unsigned char *der = priv.b + 5;
    EVP_PKEY *rsa = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &der, (long)(priv.n - 5));
    assert_non_null(rsa);
    /* Its public half is the listed public key. */
    unsigned char *spki = NULL;
    int spki_len = i2d_PUBKEY(rsa, &spki);
    assert_int_equal(spki_len, pub.n - 5);
    assert_memory_equal(spki, pub.b + 5, (size_t)spki_len);
    OPENSSL_free(spki);

    uint8_t sig[512];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, rsa), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, hello, sizeof hello), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(siglen, 512);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), 0);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello - 1, sig, siglen), DN_EBADSIG);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen - 1), DN_EBADSIG);
    sig[100] ^= 0x40;
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), DN_EBADSIG);
    EVP_PKEY_free(rsa);
    dn_pubkey_free(p);
}

/* ---- sign / verify for generated keys ---- */

static void check_sign_verify(dn_key_type type)
{
    dn_privkey *k, *other;
    assert_int_equal(dn_privkey_generate(type, &k), 0);
    assert_int_equal(dn_privkey_generate(type, &other), 0);
    const dn_pubkey *pk = dn_privkey_public(k);
    uint8_t msg[100];
    randombytes_buf(msg, sizeof msg);
    for (int round = 0; round < 8; round++) {
        uint8_t sig[DN_SIG_MAX];
        size_t siglen = 0;
        assert_int_equal(dn_privkey_sign(k, msg, sizeof msg, sig, &siglen), 0);
        assert_true(siglen > 0 && siglen <= DN_SIG_MAX);
        assert_int_equal(dn_pubkey_verify(pk, msg, sizeof msg, sig, siglen), 0);
        /* wrong message */
        msg[round] ^= 1;
        assert_int_equal(dn_pubkey_verify(pk, msg, sizeof msg, sig, siglen), DN_EBADSIG);
        msg[round] ^= 1;
        /* wrong key */
        assert_int_equal(dn_pubkey_verify(dn_privkey_public(other), msg, sizeof msg, sig, siglen),
                         DN_EBADSIG);
        /* every single-bit flip of the signature fails */
        for (size_t i = 0; i < siglen; i++) {
            sig[i] ^= (uint8_t)(1u << (i % 8));
            assert_int_equal(dn_pubkey_verify(pk, msg, sizeof msg, sig, siglen), DN_EBADSIG);
            sig[i] ^= (uint8_t)(1u << (i % 8));
        }
        /* truncated, extended, empty */
        assert_int_equal(dn_pubkey_verify(pk, msg, sizeof msg, sig, siglen - 1), DN_EBADSIG);
        sig[siglen] = 0;
        assert_int_equal(dn_pubkey_verify(pk, msg, sizeof msg, sig, siglen + 1), DN_EBADSIG);
        assert_int_equal(dn_pubkey_verify(pk, msg, sizeof msg, sig, 0), DN_EBADSIG);
        /* empty message signs and verifies too */
        assert_int_equal(dn_privkey_sign(k, NULL, 0, sig, &siglen), 0);
        assert_int_equal(dn_pubkey_verify(pk, NULL, 0, sig, siglen), 0);
        assert_int_equal(dn_pubkey_verify(pk, msg, 1, sig, siglen), DN_EBADSIG);
    }
    /* Generated keys survive a protobuf round trip (private and public). */
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn_privkey_to_protobuf(k, &b), 0);
    dn_privkey *k2;
    assert_int_equal(dn_privkey_from_protobuf(b.data, b.len, &k2), 0);
    assert_true(dn_pubkey_equal(dn_privkey_public(k2), pk));
    assert_false(dn_pubkey_equal(dn_privkey_public(other), pk));
    dn_buf b2 = DN_BUF_INIT;
    assert_int_equal(dn_privkey_to_protobuf(k2, &b2), 0);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    dn_buf_free_secure(&b);
    dn_buf_free_secure(&b2);
    assert_int_equal(dn_pubkey_to_protobuf(pk, &b), 0);
    dn_pubkey *p;
    assert_int_equal(dn_pubkey_from_protobuf(b.data, b.len, &p), 0);
    assert_true(dn_pubkey_equal(p, pk));
    dn_buf_free(&b);
    dn_pubkey_free(p);
    dn_privkey_free(k2);
    dn_privkey_free(other);
    dn_privkey_free(k);
}

static void test_sign_verify_ed25519(void **state)
{
    (void)state;
    check_sign_verify(DN_KEY_ED25519);
}
static void test_sign_verify_secp256k1(void **state)
{
    (void)state;
    check_sign_verify(DN_KEY_SECP256K1);
}
static void test_sign_verify_ecdsa(void **state)
{
    (void)state;
    check_sign_verify(DN_KEY_ECDSA);
}

/* secp256k1 signatures are low-S (BIP-62); js-libp2p rejects others. */
static void test_secp256k1_low_s(void **state)
{
    (void)state;
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_SECP256K1, &k), 0);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp256k1);
    BIGNUM *half = BN_new();
    BN_rshift1(half, EC_GROUP_get0_order(g));
    for (int i = 0; i < 64; i++) {
        uint8_t sig[DN_SIG_MAX], msg[4] = {(uint8_t)i, 1, 2, 3};
        size_t siglen;
        assert_int_equal(dn_privkey_sign(k, msg, sizeof msg, sig, &siglen), 0);
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        assert_non_null(es);
        assert_ptr_equal(p, sig + siglen);
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(es, &r, &s);
        assert_true(BN_cmp(s, half) <= 0);
        ECDSA_SIG_free(es);
        assert_int_equal(dn_pubkey_verify(dn_privkey_public(k), msg, sizeof msg, sig, siglen), 0);
    }
    BN_free(half);
    EC_GROUP_free(g);
    dn_privkey_free(k);
}

/* ---- malformed input ---- */

/* Macros so that a failure reports the line of the case. */
#define expect_pub(h, want) expect_pub_at(h, want, __FILE__, __LINE__)
#define expect_priv(h, want) expect_priv_at(h, want, __FILE__, __LINE__)

static void expect_pub_at(const char *h, int want, const char *file, int line)
{
    bytes b = hx(h);
    dn_pubkey *p = (dn_pubkey *)1;
    _assert_int_equal(cast_to_largest_integral_type(dn_pubkey_from_protobuf(b.b, b.n, &p)),
                      cast_to_largest_integral_type(want), file, line);
    if (want)
        assert_null(p);
    else
        dn_pubkey_free(p);
}

static void expect_priv_at(const char *h, int want, const char *file, int line)
{
    bytes b = hx(h);
    dn_privkey *k = (dn_privkey *)1;
    _assert_int_equal(cast_to_largest_integral_type(dn_privkey_from_protobuf(b.b, b.n, &k)),
                      cast_to_largest_integral_type(want), file, line);
    if (want)
        assert_null(k);
    else
        dn_privkey_free(k);
}

#define ED_PK "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
#define ED_SEED "7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"

static void test_malformed_protobuf(void **state)
{
    (void)state;
    expect_pub(ED_PUB, 0);
    /* input ending before both fields */
    expect_pub("", DN_ETRUNCATED);
    expect_pub("08", DN_ETRUNCATED);
    expect_pub("0801", DN_ETRUNCATED);
    expect_pub("080112", DN_ETRUNCATED);
    expect_pub("08011220" ED_PK "", 0);
    expect_pub("080112211ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
               DN_ETRUNCATED);
    /* deterministic encoding (peer-ids spec, "Keys"): tag order, each field
     * once, no other fields, minimal varints */
    expect_pub("12200801" ED_PK, DN_EMALFORMED);
    expect_pub("1220" ED_PK "0801", DN_EMALFORMED);
    expect_pub("080108011220" ED_PK, DN_EMALFORMED);
    expect_pub("08011220" ED_PK "1220" ED_PK, DN_EMALFORMED);
    expect_pub("08011220" ED_PK "1801", DN_EMALFORMED);
    expect_pub("080118011220" ED_PK, DN_EMALFORMED);
    expect_pub("0881001220" ED_PK, DN_EMALFORMED); /* type 1 in two bytes */
    expect_pub("080112a000" ED_PK, DN_EMALFORMED); /* length 32 in two bytes */
    /* wrong wire types */
    expect_pub("0a01011220" ED_PK, DN_EMALFORMED);
    expect_pub("08011020", DN_EMALFORMED);
    expect_pub("0d010000001220" ED_PK, DN_EMALFORMED);
    /* group wire types and field 0 */
    expect_pub("0b08011220" ED_PK, DN_EMALFORMED);
    expect_pub("00011220" ED_PK, DN_EMALFORMED);
    /* unknown key type */
    expect_pub("08041220" ED_PK, DN_EUNSUPPORTED);
    expect_pub("08ffffffff0f1220" ED_PK, DN_EUNSUPPORTED);
    /* wrong Data sizes for Ed25519 */
    expect_pub("0801121f1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce2",
               DN_EMALFORMED);
    expect_pub("08011221" ED_PK "00", DN_EMALFORMED);
    expect_pub("08011200", DN_EMALFORMED);
    /* secp256k1: compressed points only, and on the curve */
    expect_pub("08021221047777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99",
               DN_EMALFORMED);
    expect_pub("0802122102ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
               DN_EMALFORMED);
    expect_pub("08021220" ED_PK, DN_EMALFORMED);
    /* ECDSA: the point must be on P-256 (last byte of y changed) */
    expect_pub("0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d5"
               "30899d83abab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646"
               "a597fb4dcec034e9f77c409e63",
               DN_EMALFORMED);
    /* ECDSA: a compressed point in the SPKI */
    expect_pub("0803123b3039301306072a8648ce3d020106082a8648ce3d03010703220002de3d300fa36ae0e8f5d5"
               "30899d83abab44abf3161f162a4bc901d8e6ecda020e",
               DN_EUNSUPPORTED);
    /* ECDSA type with an Ed25519 key inside */
    expect_pub("08031220" ED_PK, DN_EUNSUPPORTED);
    expect_pub("0803120130", DN_EMALFORMED);
    /* RSA type with garbage, or with an EC SPKI inside */
    expect_pub("08001220" ED_PK, DN_EMALFORMED);
    expect_pub("0800125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d5"
               "30899d83abab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646"
               "a597fb4dcec034e9f77c409e62",
               DN_EMALFORMED);

    /* private keys */
    expect_priv(ED_PRIV, 0);
    expect_priv("", DN_ETRUNCATED);
    expect_priv("0801", DN_ETRUNCATED);
    expect_priv("12400801" ED_SEED ED_PK, DN_EMALFORMED);
    expect_priv("08011240" ED_SEED ED_PK "1a00", DN_EMALFORMED);
    /* legacy 96-byte Ed25519 form: accepted when both public copies match */
    expect_priv("08011260" ED_SEED ED_PK ED_PK, 0);
    expect_priv("08011260" ED_SEED ED_PK
                "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27f",
                DN_EMALFORMED);
    /* a public half that does not belong to the seed */
    expect_priv("08011240" ED_SEED
                "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27f",
                DN_EMALFORMED);
    /* seed-only (32 bytes): js and go reject it as well */
    expect_priv("08011220" ED_SEED, DN_EMALFORMED);
    /* secp256k1 scalars 0 and n are not keys */
    expect_priv("080212200000000000000000000000000000000000000000000000000000000000000000",
                DN_EMALFORMED);
    expect_priv("08021220fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
                DN_EMALFORMED);
    expect_priv("08021220fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140", 0);
    expect_priv("0802121f53DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8",
                DN_EMALFORMED);
    /* ECDSA SEC1 whose embedded public key is not the scalar's */
    expect_priv("08031279307702010104203E5B1FE9712E6C314942A750BD67485DE3C1EFE85B1BFB520AE8F9AE3DFA"
                "4A4CA00A06082A8648CE3D030107A14403420004DE3D300FA36AE0E8F5D530899D83ABAB44ABF3161F"
                "162A4BC901D8E6ECDA020E8B6D5F8DA30525E71D6851510C098E5C47C646A597FB4DCEC034E9F77C40"
                "9E63",
                DN_EMALFORMED);
    /* ECDSA SEC1 with another curve OID (secp256k1) */
    expect_priv("08031276307402010104203E5B1FE9712E6C314942A750BD67485DE3C1EFE85B1BFB520AE8F9AE3DFA"
                "4A4CA00706052B8104000AA14403420004DE3D300FA36AE0E8F5D530899D83ABAB44ABF3161F162A4B"
                "C901D8E6ECDA020E8B6D5F8DA30525E71D6851510C098E5C47C646A597FB4DCEC034E9F77C409E62",
                DN_EUNSUPPORTED);
    expect_priv("08041220" ED_SEED, DN_EUNSUPPORTED);
    expect_priv("08001220" ED_SEED, DN_EUNSUPPORTED); /* RSA private keys */

    /* size bounds */
    uint8_t big[DN_PUBKEY_PB_MAX + 1];
    memset(big, 0, sizeof big);
    dn_pubkey *p;
    assert_int_equal(dn_pubkey_from_protobuf(big, sizeof big, &p), DN_ETOOBIG);
    uint8_t *huge = calloc(1, 1 << 20);
    dn_privkey *k;
    assert_int_equal(dn_privkey_from_protobuf(huge, 1 << 20, &k), DN_ETOOBIG);
    free(huge);
}

/* Every proper prefix of every vector fails cleanly; only the whole parses. */
static void test_truncations(void **state)
{
    (void)state;
    const char *pubs[] = {ED_PUB, SECP_PUB, ECDSA_PUB, ECDSA_PUB_JS, RSA_PUB};
    const char *privs[] = {ED_PRIV, SECP_PRIV, ECDSA_PRIV};
    for (size_t v = 0; v < sizeof pubs / sizeof pubs[0]; v++) {
        bytes b = hx(pubs[v]);
        for (size_t n = 0; n < b.n; n++) {
            /* copy so ASan sees reads past n */
            uint8_t *c = malloc(n ? n : 1);
            memcpy(c, b.b, n);
            dn_pubkey *p;
            int rc = dn_pubkey_from_protobuf(c, n, &p);
            assert_int_equal(rc, DN_ETRUNCATED);
            free(c);
        }
    }
    for (size_t v = 0; v < sizeof privs / sizeof privs[0]; v++) {
        bytes b = hx(privs[v]);
        for (size_t n = 0; n < b.n; n++) {
            uint8_t *c = malloc(n ? n : 1);
            memcpy(c, b.b, n);
            dn_privkey *k;
            assert_int_equal(dn_privkey_from_protobuf(c, n, &k), DN_ETRUNCATED);
            free(c);
        }
    }
}

/* ---- RSA key sizes ---- */

static void wrap_rsa(EVP_PKEY *pk, dn_buf *pb)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pk, &der);
    assert_true(n > 0);
    dn_buf_reset(pb);
    dn_buf_append_byte(pb, 0x08);
    dn_buf_append_byte(pb, 0x00);
    dn_buf_append_byte(pb, 0x12);
    dn_buf_append_uvarint(pb, (uint64_t)n);
    dn_buf_append(pb, der, (size_t)n);
    OPENSSL_free(der);
}

/* An RSA public key with modulus n and exponent e, built from its
 * components: enough to test the parse-time limits without generating
 * large keys (nothing checks that n has two prime factors). */
static EVP_PKEY *rsa_from_bn(const BIGNUM *n, const BIGNUM *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pk = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

/* Modulus 2^(bits-1) + 1, exponent 65537. */
static EVP_PKEY *fake_rsa(int bits)
{
    BIGNUM *n = BN_new(), *e = BN_new();
    BN_set_bit(n, bits - 1);
    BN_set_bit(n, 0);
    BN_set_word(e, 65537);
    EVP_PKEY *pk = rsa_from_bn(n, e);
    BN_free(n);
    BN_free(e);
    return pk;
}

/* The parse result of a 3072-bit modulus 2^3071 + 1 with exponent e. */
static int parse_rsa_e(const BIGNUM *e)
{
    BIGNUM *n = BN_new();
    BN_set_bit(n, 3071);
    BN_set_bit(n, 0);
    EVP_PKEY *pk = rsa_from_bn(n, e);
    dn_buf pb = DN_BUF_INIT;
    wrap_rsa(pk, &pb);
    dn_pubkey *p = (dn_pubkey *)1;
    int rc = dn_pubkey_from_protobuf(pb.data, pb.len, &p);
    if (rc)
        assert_null(p);
    dn_pubkey_free(p);
    dn_buf_free(&pb);
    EVP_PKEY_free(pk);
    BN_free(n);
    return rc;
}

static int parse_rsa_e_word(unsigned long w)
{
    BIGNUM *e = BN_new();
    BN_set_word(e, w);
    int rc = parse_rsa_e(e);
    BN_free(e);
    return rc;
}

static void test_rsa_sizes(void **state)
{
    (void)state;
    dn_buf pb = DN_BUF_INIT;
    dn_pubkey *p;

    EVP_PKEY *small = EVP_RSA_gen(1024);
    assert_non_null(small);
    wrap_rsa(small, &pb);
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), DN_EUNSUPPORTED);
    EVP_PKEY_free(small);

    EVP_PKEY *k2047 = fake_rsa(2047);
    wrap_rsa(k2047, &pb);
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), DN_EUNSUPPORTED);
    EVP_PKEY_free(k2047);

    EVP_PKEY *k8192 = fake_rsa(8192);
    wrap_rsa(k8192, &pb);
    assert_true(pb.len <= DN_PUBKEY_PB_MAX);
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), 0);
    dn_pubkey_free(p);
    EVP_PKEY_free(k8192);

    EVP_PKEY *k8200 = fake_rsa(8200);
    wrap_rsa(k8200, &pb);
    assert_true(pb.len <= DN_PUBKEY_PB_MAX);
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), DN_ETOOBIG);
    EVP_PKEY_free(k8200);

    /* A real 2048-bit key: accepted; its signatures verify, others do not. */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    assert_non_null(rsa);
    wrap_rsa(rsa, &pb);
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), 0);
    uint8_t sig[256];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, rsa), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, hello, sizeof hello), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), 0);
    sig[0] ^= 1;
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), DN_EBADSIG);
    /* a SHA-1 PKCS#1 signature is not the libp2p scheme */
    siglen = sizeof sig;
    ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha1(), NULL, rsa), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, hello, sizeof hello), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), DN_EBADSIG);
    dn_pubkey_free(p);

    /* trailing garbage after the DER */
    wrap_rsa(rsa, &pb);
    pb.data[3]++; /* the length varint's low byte (a two-byte varint) */
    dn_buf_append_byte(&pb, 0x00);
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), DN_EMALFORMED);
    EVP_PKEY_free(rsa);
    dn_buf_free(&pb);
}

/* The public exponent: every verification costs one modular squaring per
 * bit of e, so a huge e is a CPU lever (issue 8: an RSA-3072 key with a
 * 3,071-bit e cost ~7 ms per verify). Accepted: e odd, 3 <= e <= 2^31 - 1. */
static void test_rsa_exponents(void **state)
{
    (void)state;
    assert_int_equal(parse_rsa_e_word(3), 0);
    assert_int_equal(parse_rsa_e_word(65537), 0);
    assert_int_equal(parse_rsa_e_word(0x7fffffffUL), 0);               /* 2^31 - 1 */
    assert_int_equal(parse_rsa_e_word(0x80000001UL), DN_EUNSUPPORTED); /* 2^31 + 1 */
    assert_int_equal(parse_rsa_e_word(0xffffffffUL), DN_EUNSUPPORTED);
    assert_int_equal(parse_rsa_e_word(1), DN_EMALFORMED);
    assert_int_equal(parse_rsa_e_word(65536), DN_EMALFORMED); /* even */
    assert_int_equal(parse_rsa_e_word(2), DN_EMALFORMED);

    /* The attack key: a 3,071-bit exponent (2^3070 + 1). */
    BIGNUM *e = BN_new();
    BN_set_bit(e, 3070);
    BN_set_bit(e, 0);
    assert_int_equal(parse_rsa_e(e), DN_EUNSUPPORTED);
    BN_free(e);

    /* An even modulus is no RSA modulus. */
    BIGNUM *n = BN_new();
    e = BN_new();
    BN_set_bit(n, 3071);
    BN_set_bit(n, 1);
    BN_set_word(e, 65537);
    EVP_PKEY *pk = rsa_from_bn(n, e);
    dn_buf pb = DN_BUF_INIT;
    wrap_rsa(pk, &pb);
    dn_pubkey *p;
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), DN_EMALFORMED);
    EVP_PKEY_free(pk);
    BN_free(n);
    BN_free(e);

    /* A real key with e = 3 (allowed by go and ring alike) verifies. */
    EVP_PKEY_CTX *gctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *three = BN_new();
    BN_set_word(three, 3);
    assert_int_equal(EVP_PKEY_keygen_init(gctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(gctx, 2048), 1);
    assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(gctx, three), 1);
    EVP_PKEY *rsa = NULL;
    assert_int_equal(EVP_PKEY_keygen(gctx, &rsa), 1);
    EVP_PKEY_CTX_free(gctx);
    BN_free(three);
    wrap_rsa(rsa, &pb);
    assert_int_equal(dn_pubkey_from_protobuf(pb.data, pb.len, &p), 0);
    uint8_t sig[256];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, rsa), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, hello, sizeof hello), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), 0);
    dn_pubkey_free(p);
    EVP_PKEY_free(rsa);
    dn_buf_free(&pb);
}

/* ---- deterministic encoding ---- */

static void test_deterministic_encoding(void **state)
{
    (void)state;
    dn_key_type types[] = {DN_KEY_ED25519, DN_KEY_SECP256K1, DN_KEY_ECDSA};
    size_t publen[] = {36, 37, 95};
    size_t privlen[] = {68, 36, 125};
    for (size_t i = 0; i < 3; i++) {
        dn_privkey *k;
        assert_int_equal(dn_privkey_generate(types[i], &k), 0);
        dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT;
        assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(k), &a), 0);
        assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(k), &b), 0);
        assert_int_equal(a.len, publen[i]);
        assert_memory_equal(a.data, b.data, a.len);
        /* field 1 (varint) then field 2 (bytes), one-byte lengths */
        assert_int_equal(a.data[0], 0x08);
        assert_int_equal(a.data[1], types[i]);
        assert_int_equal(a.data[2], 0x12);
        assert_int_equal(a.data[3], publen[i] - 4);
        /* to_protobuf appends */
        assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(k), &a), 0);
        assert_int_equal(a.len, 2 * publen[i]);
        assert_memory_equal(a.data + publen[i], b.data, publen[i]);
        dn_buf_reset(&a);
        assert_int_equal(dn_privkey_to_protobuf(k, &a), 0);
        assert_int_equal(a.len, privlen[i]);
        assert_int_equal(a.data[0], 0x08);
        assert_int_equal(a.data[2], 0x12);
        dn_buf_free_secure(&a);
        dn_buf_free(&b);
        dn_privkey_free(k);
    }
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_RSA, &k), DN_EUNSUPPORTED);
    assert_int_equal(dn_privkey_generate((dn_key_type)9, &k), DN_EINVAL);
}

static void test_key_type_names(void **state)
{
    (void)state;
    dn_key_type t;
    assert_int_equal(dn_key_type_parse("ed25519", &t), 0);
    assert_int_equal(t, DN_KEY_ED25519);
    assert_int_equal(dn_key_type_parse("Ed25519", &t), 0);
    assert_int_equal(dn_key_type_parse("secp256k1", &t), 0);
    assert_int_equal(t, DN_KEY_SECP256K1);
    assert_int_equal(dn_key_type_parse("ecdsa", &t), 0);
    assert_int_equal(t, DN_KEY_ECDSA);
    assert_int_equal(dn_key_type_parse("rsa", &t), 0);
    assert_int_equal(t, DN_KEY_RSA);
    assert_int_equal(dn_key_type_parse("ed448", &t), DN_EINVAL);
    assert_int_equal(dn_key_type_parse("", &t), DN_EINVAL);
    assert_string_equal(dn_key_type_name(DN_KEY_SECP256K1), "secp256k1");
    assert_string_equal(dn_key_type_name(DN_KEY_ECDSA), "ecdsa");
}

/* ---- key files ---- */

static char tmpdir[64];

static int files_setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/dn_test_keys.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int files_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[400];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (unlink(p))
            rmdir(p);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    return 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_save_load(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/identity.key", tmpdir);
    dn_key_type types[] = {DN_KEY_ED25519, DN_KEY_SECP256K1, DN_KEY_ECDSA};
    for (size_t i = 0; i < 3; i++) {
        dn_privkey *k, *l;
        assert_int_equal(dn_privkey_generate(types[i], &k), 0);
        /* saving over an existing file replaces it */
        assert_int_equal(dn_privkey_save(k, path), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(count_entries(tmpdir), 1); /* no temp file left */

        /* the file holds exactly the PrivateKey protobuf */
        dn_buf pb = DN_BUF_INIT;
        assert_int_equal(dn_privkey_to_protobuf(k, &pb), 0);
        assert_int_equal((size_t)st.st_size, pb.len);
        uint8_t disk[256];
        FILE *f = fopen(path, "rb");
        assert_int_equal(fread(disk, 1, sizeof disk, f), pb.len);
        fclose(f);
        assert_memory_equal(disk, pb.data, pb.len);

        assert_int_equal(dn_privkey_load(path, &l), 0);
        assert_int_equal(dn_privkey_type(l), types[i]);
        assert_true(dn_pubkey_equal(dn_privkey_public(l), dn_privkey_public(k)));
        uint8_t sig[DN_SIG_MAX];
        size_t siglen;
        assert_int_equal(dn_privkey_sign(l, hello, sizeof hello, sig, &siglen), 0);
        assert_int_equal(dn_pubkey_verify(dn_privkey_public(k), hello, sizeof hello, sig, siglen),
                         0);

        /* every truncation of the file fails cleanly */
        char tpath[160];
        snprintf(tpath, sizeof tpath, "%s/trunc.key", tmpdir);
        for (size_t n = 0; n < pb.len; n++) {
            write_file(tpath, pb.data, n);
            dn_privkey *t = (dn_privkey *)1;
            assert_int_equal(dn_privkey_load(tpath, &t), DN_ETRUNCATED);
            assert_null(t);
        }
        unlink(tpath);
        dn_buf_free_secure(&pb);
        dn_privkey_free(l);
        dn_privkey_free(k);
    }
    /* an existing file with looser permissions ends up 0600 */
    chmod(path, 0644);
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
    assert_int_equal(dn_privkey_save(k, path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a directory that does not exist */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/identity.key", tmpdir);
    assert_int_equal(dn_privkey_save(k, bad), -ENOENT);
    dn_privkey_free(k);
    unlink(path);
}

static void test_load_errors(void **state)
{
    (void)state;
    char path[128];
    dn_privkey *k = (dn_privkey *)1;
    snprintf(path, sizeof path, "%s/nope.key", tmpdir);
    assert_int_equal(dn_privkey_load(path, &k), -ENOENT);
    assert_null(k);
    assert_int_equal(dn_privkey_load(tmpdir, &k), -EISDIR);

    snprintf(path, sizeof path, "%s/bad.key", tmpdir);
    write_file(path, "", 0);
    assert_int_equal(dn_privkey_load(path, &k), DN_ETRUNCATED);
    write_file(path, "not a key at all\n", 17);
    assert_int_equal(dn_privkey_load(path, &k), DN_EMALFORMED);
    bytes rsa = hx(RSA_PRIV);
    write_file(path, rsa.b, rsa.n);
    assert_int_equal(dn_privkey_load(path, &k), DN_EUNSUPPORTED);
    bytes ed = hx(ED_PRIV);
    uint8_t big[16 * 1024 + 1];
    memset(big, 0, sizeof big);
    memcpy(big, ed.b, ed.n);
    write_file(path, big, sizeof big);
    assert_int_equal(dn_privkey_load(path, &k), DN_ETOOBIG);
    /* the spec key with trailing bytes is not a key file */
    write_file(path, big, ed.n + 1);
    assert_int_equal(dn_privkey_load(path, &k), DN_EMALFORMED);
    write_file(path, ed.b, ed.n);
    assert_int_equal(dn_privkey_load(path, &k), 0);
    dn_peerid id;
    char s[DN_PEERID_STR_MAX];
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &id), 0);
    assert_true(dn_peerid_to_string(&id, s, sizeof s) > 0);
    assert_string_equal(s, ED_ID);
    dn_privkey_free(k);
    assert_int_equal(dn_privkey_load("/dev/null", &k), DN_EINVAL);
    unlink(path);
}

/* ---- peer ids ---- */

static void test_peerid_extract(void **state)
{
    (void)state;
    dn_peerid id;
    dn_pubkey *p;
    assert_int_equal(dn_peerid_parse(ED_ID, &id), 0);
    assert_int_equal(dn_peerid_extract_pubkey(&id, &p), 0);
    bytes pub = hx(ED_PUB);
    assert_pub_pb(p, &pub);
    assert_true(dn_peerid_matches_pubkey(&id, p));
    dn_pubkey_free(p);

    assert_int_equal(dn_peerid_parse(SECP_ID, &id), 0);
    assert_int_equal(dn_peerid_extract_pubkey(&id, &p), 0);
    bytes spub = hx(SECP_PUB);
    assert_pub_pb(p, &spub);
    /* the key verifies a signature made with the matching private key */
    bytes spriv = hx(SECP_PRIV);
    dn_privkey *k;
    assert_int_equal(dn_privkey_from_protobuf(spriv.b, spriv.n, &k), 0);
    uint8_t sig[DN_SIG_MAX];
    size_t siglen;
    assert_int_equal(dn_privkey_sign(k, hello, sizeof hello, sig, &siglen), 0);
    assert_int_equal(dn_pubkey_verify(p, hello, sizeof hello, sig, siglen), 0);
    /* and does not match another key's id */
    dn_peerid edid;
    assert_int_equal(dn_peerid_parse(ED_ID, &edid), 0);
    assert_false(dn_peerid_matches_pubkey(&edid, p));
    dn_privkey_free(k);
    dn_pubkey_free(p);

    /* sha2-256 ids carry no key */
    assert_int_equal(dn_peerid_parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", &id), 0);
    p = (dn_pubkey *)1;
    assert_int_equal(dn_peerid_extract_pubkey(&id, &p), DN_ENOTFOUND);
    assert_null(p);

    /* hand-made identity ids with bad content */
    dn_peerid bad;
    bad.bytes[0] = 0x00;
    bad.bytes[1] = 4;
    memcpy(bad.bytes + 2, "\x08\x01\x12\x00", 4);
    bad.len = 6;
    assert_int_equal(dn_peerid_extract_pubkey(&bad, &p), DN_EMALFORMED);
    bad.bytes[1] = 5; /* length disagrees with the id size */
    assert_int_equal(dn_peerid_extract_pubkey(&bad, &p), DN_EMALFORMED);
    bad.len = 0;
    assert_int_equal(dn_peerid_extract_pubkey(&bad, &p), DN_EMALFORMED);
    bad.len = 6;
    bad.bytes[0] = 0x13; /* sha2-512: not a peer id hash */
    assert_int_equal(dn_peerid_extract_pubkey(&bad, &p), DN_EUNSUPPORTED);
}

static void test_peerid_generated(void **state)
{
    (void)state;
    /* identity for Ed25519 (36 bytes) and secp256k1 (37), sha2-256 for
     * ECDSA (95): the 42-byte threshold of the spec */
    struct {
        dn_key_type t;
        uint8_t code;
        size_t len;
    } cases[] = {
        {DN_KEY_ED25519, 0x00, 38}, {DN_KEY_SECP256K1, 0x00, 39}, {DN_KEY_ECDSA, 0x12, 34}};
    for (size_t i = 0; i < 3; i++) {
        dn_privkey *k;
        assert_int_equal(dn_privkey_generate(cases[i].t, &k), 0);
        dn_peerid id;
        assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &id), 0);
        assert_int_equal(id.bytes[0], cases[i].code);
        assert_int_equal(id.len, cases[i].len);
        assert_true(dn_peerid_matches_pubkey(&id, dn_privkey_public(k)));
        dn_pubkey *p = NULL;
        int rc = dn_peerid_extract_pubkey(&id, &p);
        if (cases[i].code == 0x00) {
            assert_int_equal(rc, 0);
            assert_true(dn_pubkey_equal(p, dn_privkey_public(k)));
            dn_pubkey_free(p);
        } else {
            assert_int_equal(rc, DN_ENOTFOUND);
        }
        id.bytes[id.len - 1] ^= 1;
        assert_false(dn_peerid_matches_pubkey(&id, dn_privkey_public(k)));
        dn_privkey_free(k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_ed25519),
        cmocka_unit_test(test_vector_secp256k1),
        cmocka_unit_test(test_vector_ecdsa),
        cmocka_unit_test(test_vector_ecdsa_js_forms),
        cmocka_unit_test(test_vector_rsa),
        cmocka_unit_test(test_sign_verify_ed25519),
        cmocka_unit_test(test_sign_verify_secp256k1),
        cmocka_unit_test(test_sign_verify_ecdsa),
        cmocka_unit_test(test_secp256k1_low_s),
        cmocka_unit_test(test_malformed_protobuf),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_rsa_sizes),
        cmocka_unit_test(test_rsa_exponents),
        cmocka_unit_test(test_deterministic_encoding),
        cmocka_unit_test(test_key_type_names),
        cmocka_unit_test_setup_teardown(test_save_load, files_setup, files_teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, files_setup, files_teardown),
        cmocka_unit_test(test_peerid_extract),
        cmocka_unit_test(test_peerid_generated),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
