/* The DHT's value and provider stores, and the record validators,
 * sans-I/O (time comes in as now_ms, unix milliseconds).
 *
 * Validators (js refuses a namespace it has no validator for; so do we):
 * - /pk/<multihash bytes>: the value is a PublicKey protobuf whose peer id
 *   (identity multihash up to 42 bytes, sha2-256 above) is the multihash.
 *   Every valid value is the same key, so the first one is kept.
 * - /dmsnet/<peer id text>/<name>: the value is an RFC 0002 envelope signed
 *   by that peer over the domain DN_KAD_RECORD_DOMAIN with the payload type
 *   DN_KAD_RECORD_TYPE; the payload is DhtRecord { bytes key = 1 (the whole
 *   record key, so a signed value cannot be replayed under another name);
 *   uint64 seq = 2; bytes value = 3 }. A higher seq wins; a put with a lower
 *   seq, or the same seq and other bytes, is stale and refused.
 *
 * Bounds: at most max_records values (each at most DN_KAD_MAX_VALUE bytes
 * under a key of at most DN_KAD_MAX_KEY), of which max_per_peer first put by
 * one peer; at most max_provider_keys keys with providers, max_per_key
 * providers each. Records expire record_ttl_ms after they were received,
 * providers at their expiry time. */
#ifndef DN_KAD_RECORDS_H
#define DN_KAD_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"

#define DN_KAD_RECORD_DOMAIN "dmsnet-dht-record"
#define DN_KAD_RECORD_TYPE "/dmsnet/dht-record"
#define DN_KAD_NS_PK "/pk/"
#define DN_KAD_NS_DMSNET "/dmsnet/"
#define DN_KAD_NAME_MAX 256

struct dn_verify_cache;

/* What a valid value says. For /dmsnet/ records inner is the payload's
 * value (a span into the envelope), for /pk/ the value itself. */
typedef struct dn__kad_valid {
    bool signed_record;
    uint64_t seq;
    const uint8_t *inner;
    size_t inner_len;
} dn__kad_valid;

/* Validate value for key. 0, DN_EUNSUPPORTED (no validator for the
 * namespace), DN_EINVAL (a key of the namespace that is malformed),
 * DN_EPEERID (a key or signer that is not the key's peer), DN_EBADSIG,
 * DN_EMALFORMED / DN_ETRUNCATED, DN_ETOOBIG. */
int dn__kad_validate(const uint8_t *key, size_t keylen, const uint8_t *val, size_t vlen,
                     struct dn_verify_cache *vc, dn__kad_valid *out);

/* Compare two valid values of one key: >0 when a is better than b, <0 when
 * b is, 0 when they are equally good (the same seq). */
int dn__kad_compare(const dn__kad_valid *a, const dn__kad_valid *b);

/* Build the /dmsnet/ envelope of value for key (which must be
 * /dmsnet/<our id>/<name>), signed by key. */
int dn__kad_record_seal(const dn_privkey *priv, const uint8_t *key, size_t keylen, uint64_t seq,
                        const uint8_t *value, size_t vlen, dn_buf *out);

/* A held record. */
typedef struct dn__kad_rec {
    uint8_t *key, *value;
    size_t keylen, vlen;
    uint64_t received_ms;
    uint64_t seq;
    dn_peerid from; /* who first put it (for the per-peer bound); empty: ourselves */
    struct dn__kad_rec *next;
} dn__kad_rec;

typedef struct dn__kad_prov {
    dn_peerid id;
    uint64_t expires_ms;
} dn__kad_prov;

typedef struct dn__kad_pkey {
    uint8_t *key;
    size_t keylen;
    dn__kad_prov *p;
    size_t n, cap;
    struct dn__kad_pkey *next;
} dn__kad_pkey;

typedef struct dn__kad_pcount {
    dn_peerid id;
    uint32_t n;
    struct dn__kad_pcount *next;
} dn__kad_pcount;

typedef struct dn__kad_store_limits {
    uint32_t max_records, max_per_peer, max_per_key, max_provider_keys;
    uint64_t record_ttl_ms;
} dn__kad_store_limits;

typedef struct dn__kad_store {
    dn__kad_store_limits lim;
    dn__kad_rec **recs;
    size_t nrec_buckets, nrecs;
    dn__kad_pcount **counts;
    size_t ncount_buckets;
    dn__kad_pkey **pkeys;
    size_t npkey_buckets, npkeys, nprovs;
    struct dn_verify_cache *vc;
} dn__kad_store;

/* vc (may be NULL) verifies signatures through the cache; it must outlive
 * the store. Returns 0 or DN_ENOMEM. */
int dn__kad_store_init(dn__kad_store *st, const dn__kad_store_limits *lim,
                       struct dn_verify_cache *vc);
void dn__kad_store_free(dn__kad_store *st);

/* Results of dn__kad_store_put (non-negative). */
enum { DN_KAD_PUT_STORED = 0, DN_KAD_PUT_SAME = 1 };

/* Validate and store (from NULL: ourselves, outside the per-peer bound).
 * Returns DN_KAD_PUT_STORED (new or newer), DN_KAD_PUT_SAME (the value we
 * hold: its time refreshed), a validation error, DN_ESTATE (older than the
 * one held, or the same seq with other bytes), DN_ELIMIT (a bound), or
 * DN_ENOMEM. received_ms is when it arrived (now, or the restored time). */
int dn__kad_store_put(dn__kad_store *st, const uint8_t *key, size_t keylen, const uint8_t *val,
                      size_t vlen, const dn_peerid *from, uint64_t received_ms, uint64_t now_ms);
/* The record held for key, or NULL (an expired one is dropped). */
const dn__kad_rec *dn__kad_store_get(dn__kad_store *st, const uint8_t *key, size_t keylen,
                                     uint64_t now_ms);

/* Add or refresh a provider of key until expires_ms. Returns 0 (added),
 * 1 (refreshed), DN_ELIMIT (the key has max_per_key providers, or there are
 * max_provider_keys keys), DN_ENOMEM. */
int dn__kad_prov_add(dn__kad_store *st, const uint8_t *key, size_t keylen, const dn_peerid *id,
                     uint64_t expires_ms, uint64_t now_ms);
/* Up to max live providers of key into out. Returns how many. */
size_t dn__kad_prov_get(dn__kad_store *st, const uint8_t *key, size_t keylen, uint64_t now_ms,
                        dn_peerid *out, size_t max);

/* Drop what expired: records past the TTL, providers past their time.
 * on_drop_prov (may be NULL) is told of each provider dropped. */
void dn__kad_store_expire(dn__kad_store *st, uint64_t now_ms,
                          void (*on_drop_prov)(void *arg, const uint8_t *key, size_t keylen,
                                               const dn_peerid *id),
                          void *arg);

#endif
