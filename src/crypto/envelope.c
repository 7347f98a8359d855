#include "crypto/envelope.h"

#include <string.h>

#include <sodium.h>

#include "core/pb.h"
#include "crypto/verify_cache.h"
#include "dmsnet/error.h"

/* The bytes a signature covers: each part length-prefixed (RFC 0002). */
static int signed_bytes(const char *domain, const uint8_t *type, size_t type_len,
                        const uint8_t *payload, size_t payload_len, dn_buf *out)
{
    size_t dlen = strlen(domain);
    int rc = dn_buf_append_uvarint(out, dlen);
    if (!rc)
        rc = dn_buf_append(out, domain, dlen);
    if (!rc)
        rc = dn_buf_append_uvarint(out, type_len);
    if (!rc)
        rc = dn_buf_append(out, type, type_len);
    if (!rc)
        rc = dn_buf_append_uvarint(out, payload_len);
    if (!rc && payload_len)
        rc = dn_buf_append(out, payload, payload_len);
    return rc;
}

int dn__envelope_seal(const dn_privkey *key, const char *domain, const uint8_t *type,
                      size_t type_len, const uint8_t *payload, size_t payload_len, dn_buf *out)
{
    if (!key || !domain || !type || (!payload && payload_len) || !out)
        return DN_EINVAL;
    dn_buf tosign = DN_BUF_INIT, pub = DN_BUF_INIT;
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;
    size_t start = out->len;
    int rc = signed_bytes(domain, type, type_len, payload, payload_len, &tosign);
    if (!rc)
        rc = dn_privkey_sign(key, tosign.data, tosign.len, sig, &siglen);
    if (!rc)
        rc = dn_pubkey_to_protobuf(dn_privkey_public(key), &pub);
    if (!rc)
        rc = dn_pb_put_bytes(out, 1, pub.data, pub.len);
    if (!rc)
        rc = dn_pb_put_bytes(out, 2, type, type_len);
    if (!rc)
        rc = dn_pb_put_bytes(out, 3, payload, payload_len);
    if (!rc)
        rc = dn_pb_put_bytes(out, 5, sig, siglen);
    if (rc)
        out->len = start;
    dn_buf_free(&tosign);
    dn_buf_free(&pub);
    return rc;
}

int dn__envelope_parse(const uint8_t *env, size_t len, const uint8_t *type, size_t type_len,
                       dn__envelope *e)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    bool have_payload = false;
    memset(e, 0, sizeof *e);
    dn_pb_reader_init(&r, env, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.wire_type != DN_PB_LEN)
            continue;
        switch (f.number) {
        case 1:
            e->pub = f.bytes;
            e->pub_len = f.len;
            break;
        case 2:
            e->type = f.bytes;
            e->type_len = f.len;
            break;
        case 3:
            e->payload = f.bytes;
            e->payload_len = f.len;
            have_payload = true;
            break;
        case 5:
            e->sig = f.bytes;
            e->sig_len = f.len;
            break;
        default: break;
        }
    }
    if (rc < 0 || !e->pub || !e->type || !have_payload || !e->sig) {
        memset(e, 0, sizeof *e);
        return rc < 0 ? rc : DN_EMALFORMED;
    }
    if (e->type_len != type_len || memcmp(e->type, type, type_len) != 0) {
        memset(e, 0, sizeof *e);
        return DN_EUNSUPPORTED;
    }
    if (e->pub_len > DN_PUBKEY_PB_MAX) {
        memset(e, 0, sizeof *e);
        return DN_ETOOBIG;
    }
    return 0;
}

int dn__envelope_verify(const dn__envelope *e, const char *domain, const dn_peerid *signer,
                        struct dn_verify_cache *vc)
{
    if (signer && !dn__key_bytes_match_peer(e->pub, e->pub_len, signer))
        return DN_EPEERID;
    dn_pubkey *key = NULL;
    int rc = dn_pubkey_from_protobuf(e->pub, e->pub_len, &key);
    dn_buf tosign = DN_BUF_INIT;
    if (!rc)
        rc = signed_bytes(domain, e->type, e->type_len, e->payload, e->payload_len, &tosign);
    if (!rc)
        rc = dn_verify_cached(vc, key, tosign.data, tosign.len, e->sig, e->sig_len);
    dn_buf_free(&tosign);
    dn_pubkey_free(key);
    return rc;
}

bool dn__key_bytes_match_peer(const uint8_t *pb, size_t len, const dn_peerid *id)
{
    if (!id || (!pb && len))
        return false;
    if (len <= 42) /* identity multihash: the bytes themselves */
        return id->len == 2 + len && id->bytes[0] == 0x00 && id->bytes[1] == len &&
               (len == 0 || memcmp(id->bytes + 2, pb, len) == 0);
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, pb, len);
    return id->len == 2 + sizeof digest && id->bytes[0] == 0x12 && id->bytes[1] == sizeof digest &&
           memcmp(id->bytes + 2, digest, sizeof digest) == 0;
}
