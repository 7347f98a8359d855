/* node — the event bus behind dn_network_event_register.
 *
 * Subscribers live in an array. Emitting walks it by index while a
 * callback may register or unregister (itself or others): removal only
 * marks the slot, and the array is compacted when no emit is running, so
 * the walk never skips or repeats a subscriber and never reads freed
 * memory. A subscriber added during an emit sees the next event. */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "dmsnet/error.h"
#include "node/node_internal.h"

/* More subscribers than this is a leak in the caller (each API event stream
 * is one, and the API bounds its connections). */
#define BUS_MAX_SUBSCRIBERS 4096

typedef struct sub {
    uint32_t mask;
    dn_network_event_cb cb;
    void *arg;
    bool removed;
} sub;

struct dn__node_bus {
    sub *v;
    size_t n, cap;
    unsigned emitting; /* nesting depth: a callback may cause another event */
    bool dirty;        /* some slot is marked removed */
};

int dn__node_bus_new(dn__node_bus **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : DN_ENOMEM;
}

void dn__node_bus_free(dn__node_bus *b)
{
    if (!b)
        return;
    free(b->v);
    free(b);
}

static void compact(dn__node_bus *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        if (!b->v[i].removed)
            b->v[k++] = b->v[i];
    b->n = k;
    b->dirty = false;
}

int dn__node_bus_add(dn__node_bus *b, uint32_t mask, dn_network_event_cb cb, void *arg)
{
    if (!cb || !(mask & DN_NET_EV_ALL))
        return DN_EINVAL;
    for (size_t i = 0; i < b->n; i++)
        if (!b->v[i].removed && b->v[i].cb == cb && b->v[i].arg == arg)
            return DN_EEXIST;
    if (dn__node_bus_count(b) >= BUS_MAX_SUBSCRIBERS)
        return DN_ELIMIT;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        sub *v = realloc(b->v, cap * sizeof *v);
        if (!v)
            return DN_ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = (sub){.mask = mask, .cb = cb, .arg = arg};
    return 0;
}

void dn__node_bus_remove(dn__node_bus *b, dn_network_event_cb cb, void *arg)
{
    for (size_t i = 0; i < b->n; i++) {
        if (!b->v[i].removed && b->v[i].cb == cb && b->v[i].arg == arg) {
            b->v[i].removed = true;
            b->dirty = true;
            break;
        }
    }
    if (b->dirty && !b->emitting)
        compact(b);
}

size_t dn__node_bus_count(const dn__node_bus *b)
{
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++)
        k += !b->v[i].removed;
    return k;
}

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

void dn__node_bus_emit(dn__node_bus *b, dn_network *n, dn_network_event *ev)
{
    if (!ev->time_ms)
        ev->time_ms = unix_ms();
    uint32_t bit = 1u << ev->type;
    b->emitting++;
    /* n is read each round: subscribers added meanwhile (appended, maybe
     * after a realloc) are beyond the count taken here. */
    size_t count = b->n;
    for (size_t i = 0; i < count && i < b->n; i++) {
        sub s = b->v[i];
        if (!s.removed && (s.mask & bit))
            s.cb(n, ev, s.arg);
    }
    if (--b->emitting == 0 && b->dirty)
        compact(b);
}

const char *dn_network_event_name(dn_network_event_type t)
{
    switch (t) {
    case DN_NET_EV_LOCAL_ADDRS_UPDATED: return "local_addresses_updated";
    case DN_NET_EV_REACHABILITY_CHANGED: return "local_reachability_changed";
    case DN_NET_EV_PEER_IDENTIFIED: return "peer_identification_completed";
    case DN_NET_EV_NAT_TYPE_CHANGED: return "nat_device_type_changed";
    case DN_NET_EV_PEER_CONNECTEDNESS: return "peer_connectedness_changed";
    }
    return "unknown";
}

const char *dn_reachability_name(dn_reachability r)
{
    switch (r) {
    case DN_REACHABILITY_PUBLIC: return "public";
    case DN_REACHABILITY_PRIVATE: return "private";
    case DN_REACHABILITY_UNKNOWN: break;
    }
    return "unknown";
}

const char *dn_nat_type_name(dn_nat_type t)
{
    switch (t) {
    case DN_NAT_CONE: return "cone";
    case DN_NAT_SYMMETRIC: return "symmetric";
    case DN_NAT_UNKNOWN: break;
    }
    return "unknown";
}

const char *dn_connectedness_name(dn_connectedness c)
{
    return c == DN_CONNECTED ? "connected" : "not_connected";
}
