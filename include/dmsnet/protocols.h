/* dmsnet — the basic services: identify, ping and perf. Each attaches to a
 * host through the host's public API (the host knows none of them); its
 * state lives as long as the host. The node (or a tool) composes them. */
#ifndef DMSNET_PROTOCOLS_H
#define DMSNET_PROTOCOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* identify (/ipfs/id/1.0.0) and identify push (/ipfs/id/push/1.0.0):
 * answers identify requests, identifies every new connection (reporting
 * DN_CONN_EV_IDENTIFIED to the host's observers), and pushes our
 * addresses and protocols to connected peers when they change. */
int dn_identify_attach(dn_host *h);

/* ping (/ipfs/ping/1.0.0): 32 random bytes, echoed back. */
int dn_ping_attach(dn_host *h);
#define DN_PING_SIZE 32
/* on_reply runs once per answered ping; on_done once at the end with 0
 * when all `count` pings were answered, else the error. */
typedef struct dn_ping_callbacks {
    void (*on_reply)(void *arg, unsigned seq, uint64_t rtt_ns);
    void (*on_done)(void *arg, int status);
} dn_ping_callbacks;
int dn_ping_run(dn_conn *c, unsigned count, unsigned interval_ms, const dn_ping_callbacks *cbs,
                void *arg);

/* perf (/perf/1.0.0, perf spec): the client sends the 8-byte big-endian
 * number of bytes it wants back, uploads `upload` bytes, closes its side,
 * then reads until EOF. */
typedef struct dn_perf_result {
    uint64_t uploaded;
    uint64_t downloaded;
    uint64_t upload_ns;   /* from the start to the first byte back (or EOF) */
    uint64_t total_ns;    /* from stream open to EOF */
} dn_perf_result;
typedef void (*dn_perf_done_cb)(void *arg, int status, const dn_perf_result *r);
/* Serve perf. A request for more than max_download bytes back is refused
 * (stream reset); 0 means the default, 64 GiB. */
int dn_perf_attach(dn_host *h, uint64_t max_download);
#define DN_PERF_DEFAULT_MAX_DOWNLOAD (64ull << 30)
int dn_perf_run(dn_conn *c, uint64_t upload, uint64_t download, dn_perf_done_cb cb, void *arg);

/* AutoNAT v2 (libp2p/specs autonat/autonat-v2.md): whether peers can dial
 * our addresses. The verdict for the node as a whole: */
typedef enum dn_reachability {
    DN_REACHABILITY_UNKNOWN = 0,
    DN_REACHABILITY_PUBLIC = 1,  /* some address of ours was dialled back */
    DN_REACHABILITY_PRIVATE = 2, /* every address tested failed the dial-back */
} dn_reachability;

/* The AutoNAT v2 service: a server that dials back addresses peers ask it
 * to test, and a client that asks connected servers about our own
 * addresses and reaches a verdict. See docs/autonat.md. Initialise the
 * configuration with DN_AUTONAT_CONFIG_INIT (or dn_autonat_config_init);
 * zero fields take their default. */
typedef struct dn_autonat_config {
    size_t size;                /* sizeof(dn_autonat_config) of the caller */
    bool server;                /* serve /libp2p/autonat/2/dial-request (default on) */
    bool client;                /* probe our addresses (default on) */
    bool allow_private;         /* test and dial loopback/private addresses (tests, labs) */
    unsigned confidence;        /* distinct servers that must agree, default 3 */
    uint32_t probe_interval_ms; /* re-test each address this often, default 10 min */
    void (*on_reachability)(void *arg, dn_reachability r); /* verdict changed (or NULL) */
    void *arg;
    uint32_t timeout_ms;                    /* one probe or one served request, default 30000 */
    uint32_t max_dial_backs;                /* server: dial-backs at once, default 8 */
    uint32_t max_requests_per_peer_per_min; /* server, default 12 */
    uint32_t max_requests_per_min;          /* server, all peers, default 60 */
} dn_autonat_config;

#define DN_AUTONAT_CONFIG_INIT                                                                     \
    {                                                                                              \
        .size = sizeof(dn_autonat_config), .server = true, .client = true                          \
    }
void dn_autonat_config_init(dn_autonat_config *cfg);

typedef struct dn_autonat dn_autonat;
/* Attach to h (state is freed with the host). *out may be NULL. */
int dn_autonat_attach(dn_host *h, const dn_autonat_config *cfg, dn_autonat **out);
dn_reachability dn_autonat_reachability(const dn_autonat *a);
/* Our addresses that the verdict says peers can dial. Returns how many
 * there are (at most max written). */
size_t dn_autonat_reachable_addrs(const dn_autonat *a, dn_multiaddr *out, size_t max);
/* Test the addresses again now (tests; after an address change). */
void dn_autonat_probe_now(dn_autonat *a);
/* Test ma too, beside the listen and observed addresses (an announced or
 * port-mapped address); at most 8 such. DN_ELIMIT when full. */
int dn_autonat_add_candidate(dn_autonat *a, const dn_multiaddr *ma);

/* Counters, for status and tests. */
typedef struct dn_autonat_stats {
    /* server */
    uint64_t requests;        /* dial requests received */
    uint64_t rejected;        /* answered E_REQUEST_REJECTED (limits) */
    uint64_t refused;         /* answered E_DIAL_REFUSED (no address we would dial) */
    uint64_t dial_data_asked; /* requests that had to send dial data */
    uint64_t dial_data_bytes; /* dial data bytes received */
    uint64_t dial_backs_ok;   /* dial-backs the client acknowledged */
    uint64_t dial_errors;     /* dial-backs that could not connect */
    /* client */
    uint64_t probes;         /* dial requests sent */
    uint64_t probe_ok;       /* answered OK with our nonce dialled back */
    uint64_t probe_failed;   /* answered E_DIAL_ERROR */
    uint64_t probe_other;    /* refused, rejected, errors, no answer */
    uint64_t dial_data_sent; /* dial data bytes we sent */
    uint64_t bad_dial_backs; /* dial-backs with an unknown nonce or on the request's connection */
} dn_autonat_stats;
void dn_autonat_get_stats(const dn_autonat *a, dn_autonat_stats *out);

#ifdef __cplusplus
}
#endif
#endif
