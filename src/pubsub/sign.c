/* StrictSign and message ids: see sign.h. */
#include "pubsub/sign.h"

#include <string.h>

#include "core/pb.h"
#include "dmsnet/error.h"

int dn__pubsub_signed_bytes(const dn__pubsub_message *m, dn_buf *out)
{
    dn__pubsub_message u = *m;
    u.raw = (dn__ps_span){0};
    u.has_signature = false;
    u.has_key = false;
    int rc = dn_buf_append(out, DN_PUBSUB_SIGN_PREFIX, sizeof DN_PUBSUB_SIGN_PREFIX - 1);
    return rc ? rc : dn__pubsub_message_encode(&u, out);
}

int dn__pubsub_message_sign(const dn_privkey *k, const char *topic, size_t topic_len,
                            const uint8_t *data, size_t len, uint64_t seqno, dn_buf *out)
{
    if (!k || !topic || topic_len == 0 || topic_len > DN_PUBSUB_TOPIC_MAX || (len && !data))
        return DN_EINVAL;
    dn_peerid id;
    uint8_t sq[DN_PUBSUB_SEQNO_LEN];
    for (int i = 0; i < DN_PUBSUB_SEQNO_LEN; i++)
        sq[i] = (uint8_t)(seqno >> (56 - 8 * i));
    int rc = dn_peerid_from_pubkey(dn_privkey_public(k), &id);
    if (rc)
        return rc;
    dn_buf kb = DN_BUF_INIT, tbs = DN_BUF_INIT;
    dn__pubsub_message m = {
        .has_from = true,
        .from = {id.bytes, id.len},
        .has_data = true,
        .data = {data, len},
        .has_seqno = true,
        .seqno = {sq, sizeof sq},
        .topic = {(const uint8_t *)topic, topic_len},
    };
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;
    rc = dn__pubsub_signed_bytes(&m, &tbs);
    if (!rc)
        rc = dn_privkey_sign(k, tbs.data, tbs.len, sig, &siglen);
    if (!rc)
        rc = dn_pubkey_to_protobuf(dn_privkey_public(k), &kb);
    if (!rc) {
        m.has_signature = true;
        m.signature = (dn__ps_span){sig, siglen};
        m.has_key = true;
        m.key = (dn__ps_span){kb.data, kb.len};
        rc = dn__pubsub_message_encode(&m, out);
    }
    dn_buf_free(&kb);
    dn_buf_free(&tbs);
    return rc;
}

/* The PublicKey protobuf inside an identity-multihash peer id, or NULL. */
static const uint8_t *identity_key(dn__ps_span from, size_t *len)
{
    if (from.len < 2 || from.p[0] != 0x00 || (from.p[1] & 0x80) || from.p[1] != from.len - 2)
        return NULL;
    *len = from.p[1];
    return from.p + 2;
}

int dn__pubsub_message_verify(const dn__pubsub_message *m, dn_peerid *author)
{
    if (!m->has_seqno || m->seqno.len != DN_PUBSUB_SEQNO_LEN || !m->has_from || !m->has_signature)
        return DN_EMALFORMED;
    dn_peerid from;
    if (dn_peerid_from_bytes(m->from.p, m->from.len, &from))
        return DN_EMALFORMED;
    dn_pubkey *k = NULL;
    int rc;
    if (m->has_key) {
        if (dn_pubkey_from_protobuf(m->key.p, m->key.len, &k))
            return DN_EMALFORMED;
        if (!dn_peerid_matches_pubkey(&from, k)) {
            dn_pubkey_free(k);
            return DN_EPEERID;
        }
    } else if ((rc = dn_peerid_extract_pubkey(&from, &k))) {
        return DN_EMALFORMED; /* a hashed id and no key: nothing to verify with */
    }
    dn_buf tbs = DN_BUF_INIT;
    rc = dn__pubsub_signed_bytes(m, &tbs);
    if (!rc)
        rc = dn_pubkey_verify(k, tbs.data, tbs.len, m->signature.p, m->signature.len) ? DN_EBADSIG
                                                                                      : 0;
    dn_buf_free(&tbs);
    dn_pubkey_free(k);
    if (!rc && author)
        *author = from;
    return rc;
}

int dn__pubsub_msgid(const dn__pubsub_message *m, dn__pubsub_msgid_mode mode, uint8_t *out,
                     size_t cap)
{
    if (!m->has_from || !m->has_seqno || m->seqno.len != DN_PUBSUB_SEQNO_LEN)
        return DN_EMALFORMED;
    const uint8_t *head = m->from.p;
    size_t hlen = m->from.len;
    if (mode == DN_PUBSUB_MSGID_JS) {
        /* js: publicKeyToProtobuf(from.publicKey ?? key). The embedded key
         * of an identity id first; our key parser keeps the bytes as sent,
         * and a verified Message.key hashes to from, so both are the same
         * canonical protobuf. */
        head = identity_key(m->from, &hlen);
        if (!head) {
            if (!m->has_key || m->key.len == 0)
                return DN_EMALFORMED;
            head = m->key.p;
            hlen = m->key.len;
        }
    }
    if (hlen + DN_PUBSUB_SEQNO_LEN > cap || hlen + DN_PUBSUB_SEQNO_LEN > DN_PUBSUB_MSGID_MAX)
        return DN_ETOOBIG;
    memcpy(out, head, hlen);
    memcpy(out + hlen, m->seqno.p, DN_PUBSUB_SEQNO_LEN);
    return (int)(hlen + DN_PUBSUB_SEQNO_LEN);
}
