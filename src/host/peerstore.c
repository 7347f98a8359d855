#include "host/peerstore.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

void dn__peerstore_init(dn_peerstore *ps) { memset(ps, 0, sizeof *ps); }

void dn__peer_clear_lists(dn_peer_info *p)
{
    for (size_t i = 0; i < p->nprotocols; i++)
        free(p->protocols[i]);
    free(p->protocols);
    p->protocols = NULL;
    p->nprotocols = 0;
    free(p->listen_addrs);
    p->listen_addrs = NULL;
    p->naddrs = 0;
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
    char **out = calloc(count ? count : 1, sizeof *out);
    if (!out)
        return DN_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        out[i] = strdup(items[i]);
        if (!out[i]) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return DN_ENOMEM;
        }
    }
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = out;
    *n = count;
    return 0;
}
