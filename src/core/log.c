#include "dmsnet/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "off"};

/* -1 means "not read from the environment yet". */
static int current_level = -1;

int dn_log_level_parse(const char *name)
{
    for (int i = 0; i <= DN_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *dn_log_level_name(dn_log_level level)
{
    return level <= DN_LOG_OFF ? level_names[level] : "info";
}

void dn_log_set_level(dn_log_level level) { current_level = (int)level; }

dn_log_level dn_log_get_level(void)
{
    if (current_level < 0) {
        const char *env = getenv("DMSNET_LOG");
        int lvl = env ? dn_log_level_parse(env) : -1;
        current_level = lvl >= 0 ? lvl : DN_LOG_INFO;
    }
    return (dn_log_level)current_level;
}

void dn_log_write(dn_log_level level, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %-5s %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], module);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    /* One write per line so concurrent processes do not interleave mid-line. */
    size_t total = strnlen(line, sizeof line - 2);
    line[total++] = '\n';
    fwrite(line, 1, total, stderr);
}

int dn_log_allow(dn_log_limit *l, const char *module)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long now = (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
    if (now - l->window_ms >= 1000) {
        if (l->suppressed)
            dn_log_write(DN_LOG_WARN, module, "%llu similar lines suppressed in the last %llu ms",
                         l->suppressed, now - l->window_ms);
        l->window_ms = now;
        l->count = 0;
        l->suppressed = 0;
    }
    if (l->count < DN_LOG_BURST) {
        l->count++;
        return 1;
    }
    l->suppressed++;
    return 0;
}
