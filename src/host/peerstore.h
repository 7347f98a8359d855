/* What the host knows about other peers: keys, addresses, protocols and
 * agent version (filled by the handshake and by services such as
 * identify). In memory, stored compactly: a peer that sends the most we
 * keep costs a few KiB, not a 1 KiB struct per address. */
#ifndef DN_HOST_PEERSTORE_H
#define DN_HOST_PEERSTORE_H

#include "dmsnet/host.h"

/* Bounds on what one peer may make us store. */
#define DN_PEER_MAX_ADDRS 32
#define DN_PEER_MAX_PROTOCOLS 128
#define DN_PEER_MAX_STRING 256
/* All protocol names of one peer together (go and js peers list ~20). */
#define DN_PEER_MAX_PROTOCOL_BYTES 8192
/* Entries kept for peers we are not connected to: past this, creating an
 * entry forgets one of them, so peers that come and go with fresh
 * identities cannot grow the store without bound. */
#define DN_PEERSTORE_MAX 8192

typedef struct dn_peerstore {
    dn_peer_info **entries;
    size_t n, cap;
} dn_peerstore;

void dn__peerstore_init(dn_peerstore *ps);
void dn__peerstore_free(dn_peerstore *ps);
/* Find or create the entry for id. NULL on allocation failure. */
dn_peer_info *dn__peerstore_get(dn_peerstore *ps, const dn_peerid *id, bool create);
/* Replace fields (each may be NULL to keep the old value). */
int dn__peer_set_key(dn_peer_info *p, const dn_pubkey *key_to_copy_pb);
/* Replace a list of protocol names: at most DN_PEER_MAX_PROTOCOLS of the
 * first count items, skipping names of DN_PEER_MAX_STRING bytes or more. */
int dn__peer_set_strings(char ***list, size_t *n, const char *const *items, size_t count);
/* Listen addresses, packed (at most DN_PEER_MAX_ADDRS are kept). */
int dn__peer_set_addrs(dn_peer_info *p, const dn_multiaddr *addrs, size_t n);
int dn__peer_set_observed(dn_peer_info *p, const dn_multiaddr *ma);
/* A string field (agent, protocol version), cut at DN_PEER_MAX_STRING - 1. */
int dn__peer_set_text(const char **field, const char *text);
void dn__peer_clear_lists(dn_peer_info *p);
/* The peer's last connection closed: drop what identify tells again on the
 * next one (protocols, observed address), keep its key, addresses and
 * agent. Keeps the entries of peers that come and go small. */
void dn__peer_forget_session(dn_peer_info *p);

#endif
