/* noise — the libp2p handshake payload (libp2p noise spec, "The libp2p
 * Handshake Payload"; extensions from connections/inlined-muxer-
 * negotiation.md):
 *
 *   message NoiseExtensions {
 *     repeated bytes  webtransport_certhashes = 1;
 *     repeated string stream_muxers = 2;
 *   }
 *   message NoiseHandshakePayload {
 *     optional bytes identity_key = 1;        // PublicKey protobuf
 *     optional bytes identity_sig = 2;        // sig("noise-libp2p-static-key:" || s)
 *     optional NoiseExtensions extensions = 4;
 *   }
 *
 * The payload is the whole decrypted handshake payload (no inner length
 * prefix since spec r1). */
#include "noise/noise_internal.h"

#include <string.h>

#include <sodium.h>

#include "core/pb.h"
#include "crypto/verify_cache.h"
#include "dmsnet/error.h"

enum {
    PB_IDENTITY_KEY = 1,
    PB_IDENTITY_SIG = 2,
    PB_EXTENSIONS = 4,
    PB_EXT_STREAM_MUXERS = 2,
};

static int parse_extensions(const uint8_t *p, size_t len, dn__noise_payload *out)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number != PB_EXT_STREAM_MUXERS)
            continue; /* webtransport_certhashes and future fields */
        if (f.wire_type != DN_PB_LEN)
            return DN_EMALFORMED;
        /* Keep the first few usable names; a muxer id we could offer is
         * short and printable, anything else can never match ours. */
        if (out->nmuxers >= DN_NOISE_MAX_MUXERS || f.len == 0 || f.len >= sizeof out->muxers[0] ||
            memchr(f.bytes, 0, f.len))
            continue;
        memcpy(out->muxers[out->nmuxers], f.bytes, f.len);
        out->muxers[out->nmuxers][f.len] = '\0';
        out->nmuxers++;
    }
    return rc == 0 ? 0 : DN_EMALFORMED;
}

int dn__noise_payload_parse(const uint8_t *p, size_t len, dn__noise_payload *out)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    memset(out, 0, sizeof *out);
    dn_pb_reader_init(&r, p, len);
    /* Singular fields: the last occurrence wins (protobuf merge rule). A
     * repeated extensions message merges, so its muxers accumulate. */
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        switch (f.number) {
        case PB_IDENTITY_KEY:
            if (f.wire_type != DN_PB_LEN)
                return DN_EMALFORMED;
            out->key = f.bytes;
            out->key_len = f.len;
            break;
        case PB_IDENTITY_SIG:
            if (f.wire_type != DN_PB_LEN)
                return DN_EMALFORMED;
            out->sig = f.bytes;
            out->sig_len = f.len;
            break;
        case PB_EXTENSIONS:
            if (f.wire_type != DN_PB_LEN)
                return DN_EMALFORMED;
            rc = parse_extensions(f.bytes, f.len, out);
            if (rc)
                return rc;
            break;
        default: break; /* unknown (e.g. the old `data` field 3): ignored */
        }
    }
    if (rc != 0)
        return DN_EMALFORMED;
    if (!out->key || out->key_len == 0 || out->key_len > DN_PUBKEY_PB_MAX ||
        out->sig_len > DN_NOISE_SIG_MAX)
        return DN_EMALFORMED;
    return 0;
}

void dn__noise_sig_message(uint8_t msg[DN_NOISE_SIG_PREFIX_LEN + 32], const uint8_t s[32])
{
    memcpy(msg, DN_NOISE_SIG_PREFIX, DN_NOISE_SIG_PREFIX_LEN);
    memcpy(msg + DN_NOISE_SIG_PREFIX_LEN, s, 32);
}

int dn__noise_payload_build_signed(const dn_privkey *identity, const uint8_t *sig, size_t siglen,
                                   const char *const *muxers, size_t nmuxers, dn_buf *out)
{
    dn_buf key = DN_BUF_INIT, ext = DN_BUF_INIT;
    int rc = dn_pubkey_to_protobuf(dn_privkey_public(identity), &key);
    if (!rc)
        rc = dn_pb_put_bytes(out, PB_IDENTITY_KEY, key.data, key.len);
    if (!rc)
        rc = dn_pb_put_bytes(out, PB_IDENTITY_SIG, sig, siglen);
    /* Omit the extensions message when we offer nothing: peers then
     * negotiate the muxer with multistream-select, as before the
     * extension existed. */
    for (size_t i = 0; !rc && i < nmuxers; i++)
        rc = dn_pb_put_string(&ext, PB_EXT_STREAM_MUXERS, muxers[i]);
    if (!rc && nmuxers)
        rc = dn_pb_put_bytes(out, PB_EXTENSIONS, ext.data, ext.len);
    dn_buf_free(&key);
    dn_buf_free(&ext);
    return rc;
}

int dn__noise_payload_build(const dn_privkey *identity, const uint8_t static_pub[32],
                            const char *const *muxers, size_t nmuxers, dn_buf *out)
{
    uint8_t msg[DN_NOISE_SIG_PREFIX_LEN + 32];
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;

    dn__noise_sig_message(msg, static_pub);
    int rc = dn_privkey_sign(identity, msg, sizeof msg, sig, &siglen);
    if (!rc)
        rc = dn__noise_payload_build_signed(identity, sig, siglen, muxers, nmuxers, out);
    sodium_memzero(sig, sizeof sig);
    return rc;
}

int dn__noise_payload_verify(const dn__noise_payload *pl, const uint8_t rs[32],
                             const dn_peerid *expected, dn_pubkey **key_out, dn_peerid *id_out)
{
    return dn__noise_payload_verify_cached(pl, rs, expected, NULL, key_out, id_out);
}

int dn__noise_payload_verify_cached(const dn__noise_payload *pl, const uint8_t rs[32],
                                    const dn_peerid *expected, struct dn_verify_cache *vc,
                                    dn_pubkey **key_out, dn_peerid *id_out)
{
    uint8_t msg[DN_NOISE_SIG_PREFIX_LEN + 32];
    dn_pubkey *k = NULL;
    int rc = dn_pubkey_from_protobuf(pl->key, pl->key_len, &k);
    if (rc)
        return rc < 0 ? rc : DN_EMALFORMED;
    dn__noise_sig_message(msg, rs);
    /* The MUST of the spec: the identity key vouches for this very static
     * key, or the connection ends here. A cache hit means this exact key,
     * message (so this very rs) and signature verified before. */
    if (!pl->sig || pl->sig_len == 0 ||
        dn_verify_cached(vc, k, msg, sizeof msg, pl->sig, pl->sig_len)) {
        rc = DN_EBADSIG;
        goto fail;
    }
    rc = dn_peerid_from_pubkey(k, id_out);
    if (rc)
        goto fail;
    if (expected && !dn_peerid_equal(expected, id_out)) {
        rc = DN_EPEERID;
        goto fail;
    }
    *key_out = k;
    return 0;
fail:
    dn_pubkey_free(k);
    return rc;
}
