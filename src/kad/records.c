#include "kad/records.h"

#include <stdlib.h>
#include <string.h>

#include "core/pb.h"
#include "crypto/envelope.h"
#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "kad/kad_msg.h"

/* ---- validators ---- */

static bool has_prefix(const uint8_t *key, size_t keylen, const char *prefix)
{
    size_t n = strlen(prefix);
    return keylen >= n && memcmp(key, prefix, n) == 0;
}

/* /dmsnet/<peer id>/<name>: the peer id and that a name follows. */
static int dmsnet_key_peer(const uint8_t *key, size_t keylen, dn_peerid *out)
{
    size_t off = strlen(DN_KAD_NS_DMSNET);
    const uint8_t *slash = memchr(key + off, '/', keylen - off);
    if (!slash)
        return DN_EINVAL;
    size_t idlen = (size_t)(slash - (key + off));
    size_t namelen = keylen - off - idlen - 1;
    if (idlen == 0 || idlen > 100 || namelen == 0 || namelen > DN_KAD_NAME_MAX)
        return DN_EINVAL;
    char text[101];
    memcpy(text, key + off, idlen);
    text[idlen] = 0;
    return dn_peerid_parse(text, out) == 0 ? 0 : DN_EINVAL;
}

static int open_record(const uint8_t *key, size_t keylen, const uint8_t *val, size_t vlen,
                       struct dn_verify_cache *vc, dn__kad_valid *out)
{
    dn_peerid owner;
    int rc = dmsnet_key_peer(key, keylen, &owner);
    if (rc)
        return rc;
    dn__envelope e;
    rc = dn__envelope_parse(val, vlen, (const uint8_t *)DN_KAD_RECORD_TYPE,
                            strlen(DN_KAD_RECORD_TYPE), &e);
    if (rc)
        return rc;
    /* Whose key it is, from the bytes, before any parsing or verifying. */
    if (!dn__key_bytes_match_peer(e.pub, e.pub_len, &owner))
        return DN_EPEERID;
    dn_pb_reader r;
    dn_pb_field f;
    bool have_key = false;
    dn_pb_reader_init(&r, e.payload, e.payload_len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == 1 && f.wire_type == DN_PB_LEN) {
            if (f.len != keylen || memcmp(f.bytes, key, keylen) != 0)
                return DN_EPEERID; /* signed for another key */
            have_key = true;
        } else if (f.number == 2 && f.wire_type == DN_PB_VARINT) {
            out->seq = f.varint;
        } else if (f.number == 3 && f.wire_type == DN_PB_LEN) {
            out->inner = f.bytes;
            out->inner_len = f.len;
        }
    }
    if (rc < 0)
        return rc;
    if (!have_key)
        return DN_EMALFORMED;
    rc = dn__envelope_verify(&e, DN_KAD_RECORD_DOMAIN, &owner, vc);
    if (rc)
        return rc;
    out->signed_record = true;
    if (!out->inner)
        out->inner = val; /* an empty value: any non-NULL pointer */
    return 0;
}

int dn__kad_validate(const uint8_t *key, size_t keylen, const uint8_t *val, size_t vlen,
                     struct dn_verify_cache *vc, dn__kad_valid *out)
{
    memset(out, 0, sizeof *out);
    if (!key || !keylen || (!val && vlen))
        return DN_EINVAL;
    if (keylen > DN_KAD_MAX_KEY || vlen > DN_KAD_MAX_VALUE)
        return DN_ETOOBIG;
    if (has_prefix(key, keylen, DN_KAD_NS_PK)) {
        size_t off = strlen(DN_KAD_NS_PK);
        dn_peerid id;
        if (dn_peerid_from_bytes(key + off, keylen - off, &id) != 0)
            return DN_EINVAL;
        if (!dn__key_bytes_match_peer(val, vlen, &id))
            return DN_EPEERID;
        /* The bytes hash to the id; that they are a key we can read is
         * the reader's concern (a key we cannot parse is no use to keep). */
        dn_pubkey *pk = NULL;
        int rc = dn_pubkey_from_protobuf(val, vlen, &pk);
        dn_pubkey_free(pk);
        if (rc)
            return rc;
        out->inner = val;
        out->inner_len = vlen;
        return 0;
    }
    if (has_prefix(key, keylen, DN_KAD_NS_DMSNET)) {
        int rc = open_record(key, keylen, val, vlen, vc, out);
        if (rc)
            memset(out, 0, sizeof *out);
        return rc;
    }
    return DN_EUNSUPPORTED;
}

int dn__kad_compare(const dn__kad_valid *a, const dn__kad_valid *b)
{
    if (!a->signed_record || !b->signed_record)
        return 0;
    return a->seq > b->seq ? 1 : a->seq < b->seq ? -1 : 0;
}

int dn__kad_record_seal(const dn_privkey *priv, const uint8_t *key, size_t keylen, uint64_t seq,
                        const uint8_t *value, size_t vlen, dn_buf *out)
{
    dn_buf payload = DN_BUF_INIT;
    int rc = dn_pb_put_bytes(&payload, 1, key, keylen);
    if (!rc)
        rc = dn_pb_put_varint(&payload, 2, seq);
    if (!rc && vlen)
        rc = dn_pb_put_bytes(&payload, 3, value, vlen);
    if (!rc)
        rc = dn__envelope_seal(priv, DN_KAD_RECORD_DOMAIN, (const uint8_t *)DN_KAD_RECORD_TYPE,
                               strlen(DN_KAD_RECORD_TYPE), payload.data, payload.len, out);
    dn_buf_free(&payload);
    return rc;
}

/* ---- hash tables ---- */

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static size_t pow2_at_least(size_t n)
{
    size_t b = 64;
    while (b < n && b < ((size_t)1 << 20))
        b <<= 1;
    return b;
}

int dn__kad_store_init(dn__kad_store *st, const dn__kad_store_limits *lim,
                       struct dn_verify_cache *vc)
{
    memset(st, 0, sizeof *st);
    st->lim = *lim;
    st->vc = vc;
    st->nrec_buckets = pow2_at_least(lim->max_records / 2);
    st->ncount_buckets = 256;
    st->npkey_buckets = pow2_at_least(lim->max_provider_keys / 2);
    st->recs = calloc(st->nrec_buckets, sizeof *st->recs);
    st->counts = calloc(st->ncount_buckets, sizeof *st->counts);
    st->pkeys = calloc(st->npkey_buckets, sizeof *st->pkeys);
    if (!st->recs || !st->counts || !st->pkeys) {
        dn__kad_store_free(st);
        return DN_ENOMEM;
    }
    return 0;
}

static void rec_free(dn__kad_rec *r)
{
    free(r->key);
    free(r->value);
    free(r);
}

void dn__kad_store_free(dn__kad_store *st)
{
    for (size_t i = 0; st->recs && i < st->nrec_buckets; i++)
        for (dn__kad_rec *r = st->recs[i], *next; r; r = next) {
            next = r->next;
            rec_free(r);
        }
    for (size_t i = 0; st->counts && i < st->ncount_buckets; i++)
        for (dn__kad_pcount *c = st->counts[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    for (size_t i = 0; st->pkeys && i < st->npkey_buckets; i++)
        for (dn__kad_pkey *k = st->pkeys[i], *next; k; k = next) {
            next = k->next;
            free(k->key);
            free(k->p);
            free(k);
        }
    free(st->recs);
    free(st->counts);
    free(st->pkeys);
    memset(st, 0, sizeof *st);
}

static dn__kad_rec **rec_slot(dn__kad_store *st, const uint8_t *key, size_t keylen)
{
    dn__kad_rec **pp = &st->recs[hash_bytes(key, keylen) & (st->nrec_buckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->keylen == keylen && memcmp((*pp)->key, key, keylen) == 0)
            break;
    return pp;
}

static dn__kad_pcount **count_slot(dn__kad_store *st, const dn_peerid *id)
{
    dn__kad_pcount **pp = &st->counts[hash_bytes(id->bytes, id->len) & (st->ncount_buckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if (dn_peerid_equal(&(*pp)->id, id))
            break;
    return pp;
}

static void count_drop(dn__kad_store *st, const dn_peerid *id)
{
    if (!id->len)
        return;
    dn__kad_pcount **pp = count_slot(st, id);
    if (*pp && --(*pp)->n == 0) {
        dn__kad_pcount *c = *pp;
        *pp = c->next;
        free(c);
    }
}

static void rec_unlink(dn__kad_store *st, dn__kad_rec **pp)
{
    dn__kad_rec *r = *pp;
    *pp = r->next;
    count_drop(st, &r->from);
    st->nrecs--;
    rec_free(r);
}

int dn__kad_store_put(dn__kad_store *st, const uint8_t *key, size_t keylen, const uint8_t *val,
                      size_t vlen, const dn_peerid *from, uint64_t received_ms, uint64_t now_ms)
{
    dn__kad_valid nv;
    int rc = dn__kad_validate(key, keylen, val, vlen, st->vc, &nv);
    if (rc)
        return rc;
    if (st->lim.record_ttl_ms && received_ms + st->lim.record_ttl_ms <= now_ms)
        return DN_ETIMEOUT; /* already expired (a restored record) */
    dn__kad_rec **pp = rec_slot(st, key, keylen);
    dn__kad_rec *r = *pp;
    if (r) {
        if (r->vlen == vlen && memcmp(r->value, val, vlen) == 0) {
            r->received_ms = received_ms > r->received_ms ? received_ms : r->received_ms;
            return DN_KAD_PUT_SAME;
        }
        dn__kad_valid ov;
        if (dn__kad_validate(r->key, r->keylen, r->value, r->vlen, st->vc, &ov) == 0 &&
            dn__kad_compare(&nv, &ov) <= 0)
            return DN_ESTATE; /* ours is as new or newer */
        uint8_t *copy = malloc(vlen ? vlen : 1);
        if (!copy)
            return DN_ENOMEM;
        memcpy(copy, val, vlen);
        free(r->value);
        r->value = copy;
        r->vlen = vlen;
        r->seq = nv.seq;
        r->received_ms = received_ms;
        return DN_KAD_PUT_STORED;
    }
    if (st->nrecs >= st->lim.max_records)
        return DN_ELIMIT;
    dn__kad_pcount **cp = NULL;
    if (from && from->len) {
        cp = count_slot(st, from);
        if (*cp && (*cp)->n >= st->lim.max_per_peer)
            return DN_ELIMIT;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        return DN_ENOMEM;
    r->key = malloc(keylen);
    r->value = malloc(vlen ? vlen : 1);
    if (cp && !*cp) {
        *cp = calloc(1, sizeof **cp);
        if (*cp)
            (*cp)->id = *from;
    }
    if (!r->key || !r->value || (cp && !*cp)) {
        rec_free(r);
        return DN_ENOMEM;
    }
    memcpy(r->key, key, keylen);
    memcpy(r->value, val, vlen);
    r->keylen = keylen;
    r->vlen = vlen;
    r->seq = nv.seq;
    r->received_ms = received_ms;
    if (cp) {
        r->from = *from;
        (*cp)->n++;
    }
    *pp = r;
    st->nrecs++;
    return DN_KAD_PUT_STORED;
}

const dn__kad_rec *dn__kad_store_get(dn__kad_store *st, const uint8_t *key, size_t keylen,
                                     uint64_t now_ms)
{
    dn__kad_rec **pp = rec_slot(st, key, keylen);
    if (!*pp)
        return NULL;
    if (st->lim.record_ttl_ms && (*pp)->received_ms + st->lim.record_ttl_ms <= now_ms) {
        rec_unlink(st, pp);
        return NULL;
    }
    return *pp;
}

/* ---- providers ---- */

static dn__kad_pkey **pkey_slot(dn__kad_store *st, const uint8_t *key, size_t keylen)
{
    dn__kad_pkey **pp = &st->pkeys[hash_bytes(key, keylen) & (st->npkey_buckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->keylen == keylen && memcmp((*pp)->key, key, keylen) == 0)
            break;
    return pp;
}

int dn__kad_prov_add(dn__kad_store *st, const uint8_t *key, size_t keylen, const dn_peerid *id,
                     uint64_t expires_ms, uint64_t now_ms)
{
    if (!key || !keylen || keylen > DN_KAD_MAX_KEY || !id || !id->len)
        return DN_EINVAL;
    dn__kad_pkey **pp = pkey_slot(st, key, keylen);
    dn__kad_pkey *k = *pp;
    if (!k) {
        if (st->npkeys >= st->lim.max_provider_keys)
            return DN_ELIMIT;
        k = calloc(1, sizeof *k);
        if (!k || !(k->key = malloc(keylen))) {
            free(k);
            return DN_ENOMEM;
        }
        memcpy(k->key, key, keylen);
        k->keylen = keylen;
        *pp = k;
        st->npkeys++;
    }
    for (size_t i = 0; i < k->n; i++) {
        if (dn_peerid_equal(&k->p[i].id, id)) {
            if (expires_ms > k->p[i].expires_ms)
                k->p[i].expires_ms = expires_ms;
            return 1;
        }
    }
    /* Make room from the expired ones first. */
    for (size_t i = 0; i < k->n;) {
        if (k->p[i].expires_ms <= now_ms) {
            k->p[i] = k->p[--k->n];
            st->nprovs--;
        } else {
            i++;
        }
    }
    if (k->n >= st->lim.max_per_key)
        return DN_ELIMIT;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4;
        if (cap > st->lim.max_per_key)
            cap = st->lim.max_per_key;
        dn__kad_prov *p = realloc(k->p, cap * sizeof *p);
        if (!p)
            return DN_ENOMEM;
        k->p = p;
        k->cap = cap;
    }
    k->p[k->n++] = (dn__kad_prov){.id = *id, .expires_ms = expires_ms};
    st->nprovs++;
    return 0;
}

size_t dn__kad_prov_get(dn__kad_store *st, const uint8_t *key, size_t keylen, uint64_t now_ms,
                        dn_peerid *out, size_t max)
{
    dn__kad_pkey *k = *pkey_slot(st, key, keylen);
    size_t n = 0;
    for (size_t i = 0; k && i < k->n && n < max; i++)
        if (k->p[i].expires_ms > now_ms)
            out[n++] = k->p[i].id;
    return n;
}

void dn__kad_store_expire(dn__kad_store *st, uint64_t now_ms,
                          void (*on_drop_prov)(void *arg, const uint8_t *key, size_t keylen,
                                               const dn_peerid *id),
                          void *arg)
{
    for (size_t i = 0; i < st->nrec_buckets; i++) {
        for (dn__kad_rec **pp = &st->recs[i]; *pp;) {
            if (st->lim.record_ttl_ms && (*pp)->received_ms + st->lim.record_ttl_ms <= now_ms)
                rec_unlink(st, pp);
            else
                pp = &(*pp)->next;
        }
    }
    for (size_t i = 0; i < st->npkey_buckets; i++) {
        for (dn__kad_pkey **pp = &st->pkeys[i]; *pp;) {
            dn__kad_pkey *k = *pp;
            for (size_t j = 0; j < k->n;) {
                if (k->p[j].expires_ms <= now_ms) {
                    if (on_drop_prov)
                        on_drop_prov(arg, k->key, k->keylen, &k->p[j].id);
                    k->p[j] = k->p[--k->n];
                    st->nprovs--;
                } else {
                    j++;
                }
            }
            if (k->n == 0) {
                *pp = k->next;
                free(k->key);
                free(k->p);
                free(k);
                st->npkeys--;
            } else {
                pp = &k->next;
            }
        }
    }
}
