/* dmsnet — clients of the built-in protocols: ping and perf. (The host
 * serves ping and identify always, perf when enabled.) */
#ifndef DMSNET_PROTOCOLS_H
#define DMSNET_PROTOCOLS_H

#include <stdint.h>

#include "dmsnet/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ping (/ipfs/ping/1.0.0): 32 random bytes, echoed back. */
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
int dn_perf_run(dn_conn *c, uint64_t upload, uint64_t download, dn_perf_done_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
