/* dmsnet — the basic services: identify, ping and perf. Each attaches to a
 * host through the host's public API (the host knows none of them); its
 * state lives as long as the host. The node (or a tool) composes them. */
#ifndef DMSNET_PROTOCOLS_H
#define DMSNET_PROTOCOLS_H

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

#ifdef __cplusplus
}
#endif
#endif
