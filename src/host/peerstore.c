#include "host/peerstore.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

void dn__peerstore_init(dn_peerstore *ps) { memset(ps, 0, sizeof *ps); }

static const char empty[] = "";

static void text_free(const char **field)
{
    if (*field && *field != empty)
        free((char *)*field);
    *field = empty;
}

void dn__peer_clear_lists(dn_peer_info *p)
{
    for (size_t i = 0; i < p->nprotocols; i++)
        free(p->protocols[i]);
    free(p->protocols);
    p->protocols = NULL;
    p->nprotocols = 0;
    free(p->addr_bytes);
    p->addr_bytes = NULL;
    p->addr_bytes_len = 0;
    p->naddrs = 0;
    free(p->observed_bytes);
    p->observed_bytes = NULL;
    p->observed_len = 0;
    text_free(&p->agent_version);
    text_free(&p->protocol_version);
}

int dn__peer_set_text(const char **field, const char *text)
{
    size_t n = strnlen(text, DN_PEER_MAX_STRING - 1);
    if (*field && strlen(*field) == n && memcmp(*field, text, n) == 0)
        return 0;
    char *copy = malloc(n + 1);
    if (!copy)
        return DN_ENOMEM;
    memcpy(copy, text, n);
    copy[n] = 0;
    text_free(field);
    *field = copy;
    return 0;
}

int dn__peer_set_addrs(dn_peer_info *p, const dn_multiaddr *addrs, size_t n)
{
    if (n > DN_PEER_MAX_ADDRS)
        n = DN_PEER_MAX_ADDRS;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += 2 + addrs[i].len;
    uint8_t *b = malloc(total ? total : 1);
    if (!b)
        return DN_ENOMEM;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        b[off] = (uint8_t)(addrs[i].len >> 8);
        b[off + 1] = (uint8_t)addrs[i].len;
        memcpy(b + off + 2, addrs[i].bytes, addrs[i].len);
        off += 2 + addrs[i].len;
    }
    free(p->addr_bytes);
    p->addr_bytes = b;
    p->addr_bytes_len = total;
    p->naddrs = n;
    return 0;
}

int dn__peer_set_observed(dn_peer_info *p, const dn_multiaddr *ma)
{
    uint8_t *b = malloc(ma->len ? ma->len : 1);
    if (!b)
        return DN_ENOMEM;
    memcpy(b, ma->bytes, ma->len);
    free(p->observed_bytes);
    p->observed_bytes = b;
    p->observed_len = ma->len;
    return 0;
}

int dn_peer_info_addr(const dn_peer_info *p, size_t i, dn_multiaddr *out)
{
    size_t off = 0;
    for (size_t k = 0; k < p->naddrs && off + 2 <= p->addr_bytes_len; k++) {
        size_t len = (size_t)p->addr_bytes[off] << 8 | p->addr_bytes[off + 1];
        if (k == i) {
            if (len > DN_MULTIADDR_MAX || off + 2 + len > p->addr_bytes_len)
                return DN_EMALFORMED;
            memcpy(out->bytes, p->addr_bytes + off + 2, len);
            out->len = len;
            return 0;
        }
        off += 2 + len;
    }
    return DN_ENOTFOUND;
}

int dn_peer_info_observed(const dn_peer_info *p, dn_multiaddr *out)
{
    if (!p->observed_bytes || p->observed_len > DN_MULTIADDR_MAX)
        return DN_ENOTFOUND;
    memcpy(out->bytes, p->observed_bytes, p->observed_len);
    out->len = p->observed_len;
    return 0;
}

void dn__peer_forget_session(dn_peer_info *p)
{
    for (size_t i = 0; i < p->nprotocols; i++)
        free(p->protocols[i]);
    free(p->protocols);
    p->protocols = NULL;
    p->nprotocols = 0;
    free(p->observed_bytes);
    p->observed_bytes = NULL;
    p->observed_len = 0;
    text_free(&p->protocol_version);
    p->identified = false;
}

void dn__peerstore_free(dn_peerstore *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        dn__peer_clear_lists(ps->entries[i]);
        dn_pubkey_free(ps->entries[i]->public_key);
        free(ps->entries[i]);
    }
    free(ps->entries);
    memset(ps, 0, sizeof *ps);
}

dn_peer_info *dn__peerstore_get(dn_peerstore *ps, const dn_peerid *id, bool create)
{
    for (size_t i = 0; i < ps->n; i++)
        if (dn_peerid_equal(&ps->entries[i]->id, id))
            return ps->entries[i];
    if (!create)
        return NULL;
    if (ps->n >= DN_PEERSTORE_MAX) {
        for (size_t i = 0; i < ps->n; i++) {
            dn_peer_info *old = ps->entries[i];
            if (old->connections)
                continue;
            dn__peer_clear_lists(old);
            dn_pubkey_free(old->public_key);
            free(old);
            ps->entries[i] = ps->entries[--ps->n];
            break;
        }
    }
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        dn_peer_info **e = realloc(ps->entries, cap * sizeof *e);
        if (!e)
            return NULL;
        ps->entries = e;
        ps->cap = cap;
    }
    dn_peer_info *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->id = *id;
    p->agent_version = empty;
    p->protocol_version = empty;
    p->latency_us = -1;
    ps->entries[ps->n++] = p;
    return p;
}

int dn__peer_set_key(dn_peer_info *p, const dn_pubkey *key)
{
    if (p->public_key)
        return 0;
    dn_buf pb = DN_BUF_INIT;
    int rc = dn_pubkey_to_protobuf(key, &pb);
    if (!rc)
        rc = dn_pubkey_from_protobuf(pb.data, pb.len, &p->public_key);
    dn_buf_free(&pb);
    return rc;
}

int dn__peer_set_strings(char ***list, size_t *n, const char *const *items, size_t count)
{
    if (count > DN_PEER_MAX_PROTOCOLS)
        count = DN_PEER_MAX_PROTOCOLS;
    char **out = calloc(count ? count : 1, sizeof *out);
    if (!out)
        return DN_ENOMEM;
    size_t kept = 0, bytes = 0;
    for (size_t i = 0; i < count; i++) {
        /* A name past the string bound is dropped, not cut: cut, it would
         * name another protocol. */
        size_t len = strnlen(items[i], DN_PEER_MAX_STRING);
        if (len >= DN_PEER_MAX_STRING)
            continue;
        if (bytes + len + 1 > DN_PEER_MAX_PROTOCOL_BYTES)
            break; /* the rest would pass the peer's byte budget */
        bytes += len + 1;
        out[kept] = strdup(items[i]);
        if (!out[kept]) {
            for (size_t j = 0; j < kept; j++)
                free(out[j]);
            free(out);
            return DN_ENOMEM;
        }
        kept++;
    }
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = out;
    *n = kept;
    return 0;
}
