/* dmsnet — leveled logging to stderr, one line per event.
 * Never log a secret. Peer ids are shortened by callers. */
#ifndef DMSNET_LOG_H
#define DMSNET_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dn_log_level {
    DN_LOG_TRACE = 0,
    DN_LOG_DEBUG = 1,
    DN_LOG_INFO = 2,
    DN_LOG_WARN = 3,
    DN_LOG_ERROR = 4,
    DN_LOG_OFF = 5,
} dn_log_level;

/* The level starts from the DMSNET_LOG environment variable (trace, debug,
 * info, warn, error, off); the default is info. */
void dn_log_set_level(dn_log_level level);
dn_log_level dn_log_get_level(void);
/* Parse a level name; returns -1 if unknown. */
int dn_log_level_parse(const char *name);
/* The name of a level ("info"), the inverse of dn_log_level_parse. */
const char *dn_log_level_name(dn_log_level level);

void dn_log_write(dn_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define DN_LOG(level, module, ...)                                   \
    do {                                                             \
        if ((level) >= dn_log_get_level())                           \
            dn_log_write((level), (module), __VA_ARGS__);            \
    } while (0)
/* Rate limiting for lines a peer can cause (refusals, failed handshakes):
 * at most DN_LOG_BURST lines per second from one call site; the first
 * line after a quiet second says how many were suppressed. */
#define DN_LOG_BURST 5
typedef struct dn_log_limit {
    unsigned long long window_ms;
    unsigned count;
    unsigned long long suppressed;
} dn_log_limit;
/* Whether the call site may log now (counts the line either way). */
int dn_log_allow(dn_log_limit *l, const char *module);
#define DN_LOG_LIMITED(level, module, ...)                           \
    do {                                                             \
        static dn_log_limit dn_log_limit_;                           \
        if ((level) >= dn_log_get_level() &&                         \
            dn_log_allow(&dn_log_limit_, (module)))                  \
            dn_log_write((level), (module), __VA_ARGS__);            \
    } while (0)

#define DN_TRACE(m, ...) DN_LOG(DN_LOG_TRACE, m, __VA_ARGS__)
#define DN_DEBUG(m, ...) DN_LOG(DN_LOG_DEBUG, m, __VA_ARGS__)
#define DN_INFO(m, ...) DN_LOG(DN_LOG_INFO, m, __VA_ARGS__)
#define DN_WARN(m, ...) DN_LOG(DN_LOG_WARN, m, __VA_ARGS__)
#define DN_ERROR(m, ...) DN_LOG(DN_LOG_ERROR, m, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
