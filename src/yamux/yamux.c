/* yamux — stream multiplexer, sans-I/O engine.
 *
 * Spec: libp2p/specs yamux/README.md (a copy of hashicorp/yamux spec.md).
 * Section names below refer to that document.
 *
 * Rules this engine adds where the spec is silent (all documented in the
 * report and tested in tests/unit/test_yamux.c):
 *
 * - Stream ids. The peer's SYN ids must have the peer's parity, must not
 *   be 0, and must increase (every known implementation allocates them
 *   monotonically). A SYN for an id that is open, or at/below the highest
 *   id the peer already used, is a protocol error.
 * - Frames without SYN for a stream we do not know:
 *   * the id was used before (ours: below our next id; the peer's: at or
 *     below the highest SYN id it sent) — the stream was closed or reset, or
 *     we refused it with RST, and the peer may still have frames in flight.
 *     The frame is dropped (Data payload skipped, bounded by max_window)
 *     and the session lives on;
 *   * the id was never opened (or is 0) — protocol error.
 * - Flow control (section "Flow Control"): every stream starts with a
 *   256 KiB window both ways; our SYN and ACK advertise no extra credit
 *   (delta 0), so an idle or short-lived stream costs the peer and the host
 *   at most 256 KiB of buffering. A WindowUpdate restoring the consumed
 *   bytes is sent once the application has consumed at least half of the
 *   current window. Window growth without a clock: when a stream has cycled
 *   a full window of consumed data at the current size (i.e. it is a bulk
 *   stream, not a request/response exchange), and the application is
 *   keeping up (at most a quarter of the window is received but not yet
 *   consumed — growing a window the application cannot drain only buys
 *   buffering), the window doubles, up to max_window. A bulk stream thus
 *   reaches 16 MiB after ~16 MiB of data, while the loop of "update needed,
 *   update sent" each costs one round trip (~30 us on loopback), so the
 *   sender is rarely window-bound.
 * - Data payload after the peer's FIN, or larger than the credit we gave,
 *   is a protocol error.
 *
 * Memory: streams live in an open-addressing table (linear probing,
 * backward-shift deletion) sized for at most max_streams entries; stream
 * records are recycled through a small free list, and the output buffer is
 * reused, so steady-state traffic allocates nothing.
 *
 * Re-entrancy: the callback may call back into the engine (accept, write,
 * consumed, reset, close_write, open, ping, goaway) but not dn_yamux_feed
 * or dn_yamux_free. A stream whose state ends is unlinked from the table at
 * once (later calls on its id fail) and parked on a graveyard list; its
 * memory is recycled only when the outermost engine call returns, so no
 * frame on the C stack holds a dangling pointer. Ids are never reused, so
 * looking a stream up again by id after each callback is always safe. */
#include "yamux/yamux.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"

/* Section "Type Field". */
enum { T_DATA = 0, T_WINDOW_UPDATE = 1, T_PING = 2, T_GOAWAY = 3 };
/* Section "Flag Field". */
enum { F_SYN = 0x1, F_ACK = 0x2, F_FIN = 0x4, F_RST = 0x8 };

#define DEFAULT_MAX_STREAMS 1024u
#define DEFAULT_ACK_BACKLOG 256u /* "Implementation considerations: ACK backlog" */
#define DEFAULT_MAX_WINDOW (16u * 1024u * 1024u)
#define LIMIT_MAX_WINDOW (1u << 30) /* keeps window sums far from 2^32 */
/* Largest Data frame we send. Receivers accept anything within the window,
 * but 64 KiB stays below every implementation's frame-size limit and keeps
 * the receiver's per-frame work small. */
#define MAX_SEND_FRAME (64u * 1024u)
#define FREELIST_MAX 64u

/* Stream state bits. */
enum {
    S_OUTBOUND = 1u << 0,
    S_SYN_UNACKED = 1u << 1, /* we sent SYN, no ACK yet */
    S_UNACCEPTED = 1u << 2,  /* peer sent SYN, we have not ACKed */
    S_LOCAL_FIN = 1u << 3,
    S_REMOTE_FIN = 1u << 4,
    S_DEAD = 1u << 5, /* unlinked, on the graveyard */
};

typedef struct ystream {
    uint32_t id;
    uint32_t st;
    uint32_t send_win;    /* bytes the peer lets us send */
    uint32_t recv_win;    /* our current window size W */
    uint32_t recv_avail;  /* credit the peer still has */
    uint32_t unconsumed;  /* delivered, not yet dn_yamux_consumed */
    uint32_t pending;     /* consumed, not yet returned by a WindowUpdate */
    uint32_t grow_credit; /* bytes returned at the current window size */
    void *user;
    struct ystream *next; /* graveyard / free list */
} ystream;

struct dn_yamux {
    bool client;
    bool remote_goaway;
    bool local_goaway;
    bool failed;
    bool in_feed;
    int fail_rc; /* what dn_yamux_feed returns once failed */
    dn_yamux_config cfg;
    dn_yamux_event_cb cb;
    void *ctx;
    dn_buf out;

    ystream **slots;
    uint32_t mask; /* slots has mask+1 entries, a power of two */
    uint32_t count;
    uint32_t n_unaccepted;
    uint32_t n_unacked;
    uint64_t next_id;      /* our next stream id */
    uint32_t last_peer_id; /* highest id the peer opened, 0 if none */

    /* Frame parser. */
    uint8_t hdr[DN_YAMUX_HEADER_LEN];
    uint8_t hdr_have;
    bool cur_deliver;   /* payload of the current Data frame goes to cur_id */
    uint16_t cur_flags; /* FIN/RST of the current Data frame, applied after it */
    uint32_t cur_id;
    uint32_t cur_left; /* payload bytes of the current Data frame still to come */

    int depth; /* nesting of engine calls; sweep the graveyard at 0 */
    ystream *graveyard;
    ystream *freelist;
    uint32_t nfree;
};

/* ---- helpers ---------------------------------------------------------- */

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline bool id_is_ours(const dn_yamux *y, uint32_t id)
{
    /* Section "StreamID Field": client odd, server even. */
    return (id & 1u) == (y->client ? 1u : 0u);
}

/* Was this id ever in use on this session (so late frames are expected)? */
static bool id_was_used(const dn_yamux *y, uint32_t id)
{
    if (id == 0)
        return false;
    if (id_is_ours(y, id))
        return (uint64_t)id < y->next_id;
    return id <= y->last_peer_id;
}

static void emit(dn_yamux *y, dn_yamux_event_type type, ystream *s, uint32_t id,
                 const uint8_t *data, size_t len, uint32_t value)
{
    if (!y->cb)
        return;
    dn_yamux_event ev = {
        .type = type,
        .stream_id = s ? s->id : id,
        .user = s ? s->user : NULL,
        .data = data,
        .len = len,
        .value = value,
    };
    y->cb(y->ctx, &ev);
}

static void encode_header(uint8_t *p, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    p[0] = 0; /* section "Version Field" */
    p[1] = type;
    p[2] = (uint8_t)(flags >> 8);
    p[3] = (uint8_t)flags;
    wr32(p + 4, id);
    wr32(p + 8, len);
}

static int put_header(dn_yamux *y, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    int rc = dn_buf_reserve(&y->out, DN_YAMUX_HEADER_LEN);
    if (rc)
        return rc;
    encode_header(y->out.data + y->out.len, type, flags, id, len);
    y->out.len += DN_YAMUX_HEADER_LEN;
    return 0;
}

/* ---- stream table ----------------------------------------------------- */

static inline uint32_t slot_of(const dn_yamux *y, uint32_t id)
{
    /* A 32-bit mixer (murmur3 finaliser): sequential ids spread evenly, and
     * ids a peer picks to collide cost at most max_streams probes. */
    uint32_t h = id;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h & y->mask;
}

static ystream *lookup(const dn_yamux *y, uint32_t id)
{
    if (!y->slots)
        return NULL;
    for (uint32_t i = slot_of(y, id);; i = (i + 1) & y->mask) {
        ystream *s = y->slots[i];
        if (!s)
            return NULL;
        if (s->id == id)
            return s;
    }
}

static void raw_insert(dn_yamux *y, ystream *s)
{
    uint32_t i = slot_of(y, s->id);
    while (y->slots[i])
        i = (i + 1) & y->mask;
    y->slots[i] = s;
}

static int table_insert(dn_yamux *y, ystream *s)
{
    /* Keep the load at most 1/2; count is bounded by max_streams, so the
     * table is too. */
    if (!y->slots || (uint64_t)(y->count + 1) * 2 > (uint64_t)y->mask + 1) {
        uint32_t ncap = y->slots ? (y->mask + 1) * 2 : 16;
        ystream **ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return DN_ENOMEM;
        ystream **old = y->slots;
        uint32_t ocap = old ? y->mask + 1 : 0;
        y->slots = ns;
        y->mask = ncap - 1;
        for (uint32_t i = 0; i < ocap; i++)
            if (old[i])
                raw_insert(y, old[i]);
        free(old);
    }
    raw_insert(y, s);
    y->count++;
    return 0;
}

static void table_remove(dn_yamux *y, ystream *s)
{
    uint32_t i = slot_of(y, s->id);
    while (y->slots[i] != s)
        i = (i + 1) & y->mask;
    y->slots[i] = NULL;
    y->count--;
    /* Backward-shift deletion: move later members of the probe run into
     * the hole when their home slot does not lie cyclically in (i, j]. */
    for (uint32_t j = (i + 1) & y->mask; y->slots[j]; j = (j + 1) & y->mask) {
        uint32_t k = slot_of(y, y->slots[j]->id);
        bool k_in_range = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!k_in_range) {
            y->slots[i] = y->slots[j];
            y->slots[j] = NULL;
            i = j;
        }
    }
}

static ystream *stream_new(dn_yamux *y, uint32_t id, uint32_t st)
{
    ystream *s = y->freelist;
    if (s) {
        y->freelist = s->next;
        y->nfree--;
    } else {
        s = malloc(sizeof *s);
        if (!s)
            return NULL;
    }
    memset(s, 0, sizeof *s);
    s->id = id;
    s->st = st;
    s->send_win = DN_YAMUX_INITIAL_WINDOW;
    s->recv_win = DN_YAMUX_INITIAL_WINDOW;
    s->recv_avail = DN_YAMUX_INITIAL_WINDOW;
    if (table_insert(y, s)) {
        s->next = y->freelist;
        y->freelist = s;
        y->nfree++;
        return NULL;
    }
    if (st & S_UNACCEPTED)
        y->n_unaccepted++;
    if (st & S_SYN_UNACKED)
        y->n_unacked++;
    return s;
}

static void mark_accepted(dn_yamux *y, ystream *s)
{
    if (s->st & S_UNACCEPTED) {
        s->st &= ~(uint32_t)S_UNACCEPTED;
        y->n_unaccepted--;
    }
}

/* The stream's state ends: unlink it, emit STREAM_GONE (once), and park it
 * until the outermost engine call returns. */
static void stream_gone(dn_yamux *y, ystream *s)
{
    if (s->st & S_DEAD)
        return;
    mark_accepted(y, s);
    if (s->st & S_SYN_UNACKED) {
        s->st &= ~(uint32_t)S_SYN_UNACKED;
        y->n_unacked--;
    }
    s->st |= S_DEAD;
    table_remove(y, s);
    s->next = y->graveyard;
    y->graveyard = s;
    emit(y, DN_YAMUX_EV_STREAM_GONE, s, 0, NULL, 0, 0);
}

static void maybe_gone(dn_yamux *y, ystream *s)
{
    if ((s->st & S_LOCAL_FIN) && (s->st & S_REMOTE_FIN))
        stream_gone(y, s);
}

static void enter(dn_yamux *y)
{
    y->depth++;
}

static void leave(dn_yamux *y)
{
    if (--y->depth > 0)
        return;
    while (y->graveyard) {
        ystream *s = y->graveyard;
        y->graveyard = s->next;
        if (y->nfree < FREELIST_MAX) {
            s->next = y->freelist;
            y->freelist = s;
            y->nfree++;
        } else {
            free(s);
        }
    }
}

/* Flags for a frame we send on s: the first frame on a stream the peer
 * opened carries ACK (section "Opening a stream"); sending it accepts. */
static uint16_t out_flags(dn_yamux *y, ystream *s)
{
    if (s->st & S_UNACCEPTED) {
        mark_accepted(y, s);
        return F_ACK;
    }
    return 0;
}

/* ---- receive-window updates ------------------------------------------- */

static int send_window_update(dn_yamux *y, ystream *s)
{
    uint32_t delta = s->pending;
    /* saturate at recv_win: only "a full window went by" matters */
    s->grow_credit =
        s->pending >= s->recv_win - s->grow_credit ? s->recv_win : s->grow_credit + s->pending;
    if (s->recv_win < y->cfg.max_window && s->grow_credit >= s->recv_win &&
        s->unconsumed <= s->recv_win / 4) {
        uint32_t nw = s->recv_win * 2 > y->cfg.max_window ? y->cfg.max_window : s->recv_win * 2;
        delta += nw - s->recv_win;
        s->recv_win = nw;
        s->grow_credit = 0;
    }
    uint16_t flags = (s->st & S_UNACCEPTED) ? F_ACK : 0;
    int rc = put_header(y, T_WINDOW_UPDATE, flags, s->id, delta);
    if (rc)
        return rc;
    mark_accepted(y, s);
    s->recv_avail += delta;
    s->pending = 0;
    return 0;
}

/* ---- inbound frames --------------------------------------------------- */

static int proto_error(dn_yamux *y, const char *why, uint32_t id)
{
    DN_DEBUG("yamux", "protocol error on stream %u: %s", id, why);
    return DN_EPROTO;
}

/* FIN/RST from the peer, after any payload of the frame. */
static void apply_remote_flags(dn_yamux *y, ystream *s, uint16_t flags)
{
    if (s->st & S_DEAD)
        return;
    if (flags & F_RST) {
        emit(y, DN_YAMUX_EV_RESET, s, 0, NULL, 0, 0);
        stream_gone(y, s);
        return;
    }
    if ((flags & F_FIN) && !(s->st & S_REMOTE_FIN)) {
        s->st |= S_REMOTE_FIN;
        emit(y, DN_YAMUX_EV_FIN, s, 0, NULL, 0, 0);
        if (!(s->st & S_DEAD))
            maybe_gone(y, s);
    }
}

static int finish_data_frame(dn_yamux *y)
{
    if (y->cur_deliver && y->cur_flags) {
        ystream *s = lookup(y, y->cur_id);
        if (s)
            apply_remote_flags(y, s, y->cur_flags);
    }
    y->cur_deliver = false;
    y->cur_flags = 0;
    return 0;
}

static void skip_payload(dn_yamux *y, uint32_t id, uint32_t len)
{
    y->cur_id = id;
    y->cur_left = len;
    y->cur_deliver = false;
    y->cur_flags = 0;
}

static int on_stream_frame(dn_yamux *y, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    bool is_data = type == T_DATA;
    ystream *s = NULL;

    if (id == 0)
        return proto_error(y, "stream frame on id 0", id);

    if (flags & F_SYN) {
        if (id_is_ours(y, id))
            return proto_error(y, "SYN with our parity", id);
        if (lookup(y, id))
            return proto_error(y, "SYN for an open stream", id);
        if (id <= y->last_peer_id)
            return proto_error(y, "SYN id not increasing", id);
        if (is_data && len > DN_YAMUX_INITIAL_WINDOW)
            return proto_error(y, "SYN data exceeds initial window", id);
        y->last_peer_id = id;
        bool refuse = y->local_goaway || y->count >= y->cfg.max_streams ||
                      y->n_unaccepted >= y->cfg.max_ack_backlog || (flags & F_RST);
        if (!refuse) {
            s = stream_new(y, id, S_UNACCEPTED);
            if (!s)
                return DN_ENOMEM;
        } else {
            /* Refuse with RST (section "Opening a stream"); the session
             * lives on. A SYN|RST is simply dropped. */
            if (!(flags & F_RST)) {
                int rc = put_header(y, T_WINDOW_UPDATE, F_RST, id, 0);
                if (rc)
                    return rc;
            }
            if (is_data)
                skip_payload(y, id, len);
            return 0;
        }
        if (type == T_WINDOW_UPDATE && len > 0) /* extra initial credit */
            s->send_win = (uint32_t)((uint64_t)s->send_win + len > UINT32_MAX ? UINT32_MAX
                                                                              : s->send_win + len);
        emit(y, DN_YAMUX_EV_STREAM_OPENED, s, 0, NULL, 0, 0);
        if (type == T_WINDOW_UPDATE)
            len = 0; /* credit already applied */
    } else {
        s = lookup(y, id);
        if (!s) {
            if (!id_was_used(y, id))
                return proto_error(y, "frame for a stream never opened", id);
            /* Late frame for a stream we closed, reset or refused. */
            if (is_data) {
                if (len > y->cfg.max_window)
                    return proto_error(y, "data frame larger than any window", id);
                skip_payload(y, id, len);
            }
            return 0;
        }
    }

    if (s->st & S_DEAD) { /* reset from inside STREAM_OPENED */
        if (is_data)
            skip_payload(y, id, len);
        return 0;
    }

    if ((flags & F_ACK) && (s->st & S_SYN_UNACKED)) {
        s->st &= ~(uint32_t)S_SYN_UNACKED;
        y->n_unacked--;
        emit(y, DN_YAMUX_EV_STREAM_ACKED, s, 0, NULL, 0, 0);
        if (s->st & S_DEAD) {
            if (is_data)
                skip_payload(y, id, len);
            return 0;
        }
    }

    if (!is_data) {
        /* Section "Length Field": a window update's length is a delta. */
        if (len > 0 && !(flags & F_RST)) {
            uint64_t w = (uint64_t)s->send_win + len;
            s->send_win = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
            if (!(s->st & S_LOCAL_FIN))
                emit(y, DN_YAMUX_EV_WRITABLE, s, 0, NULL, 0, s->send_win);
            if (s->st & S_DEAD)
                return 0;
        }
        apply_remote_flags(y, s, flags);
        return 0;
    }

    if (len > 0) {
        if (s->st & S_REMOTE_FIN)
            return proto_error(y, "data after FIN", id);
        if (len > s->recv_avail)
            return proto_error(y, "data exceeds receive window", id);
        s->recv_avail -= len;
    }
    y->cur_id = id;
    y->cur_left = len;
    y->cur_deliver = true;
    y->cur_flags = flags & (F_FIN | F_RST);
    if (len == 0)
        return finish_data_frame(y);
    return 0;
}

static int on_header(dn_yamux *y)
{
    const uint8_t *h = y->hdr;
    uint8_t type = h[1];
    uint16_t flags = (uint16_t)(h[2] << 8 | h[3]);
    uint32_t id = rd32(h + 4);
    uint32_t len = rd32(h + 8);

    if (h[0] != 0)
        return proto_error(y, "bad version", id);
    switch (type) {
    case T_DATA:
    case T_WINDOW_UPDATE: return on_stream_frame(y, type, flags, id, len);
    case T_PING:
        /* Section "Flag Field": SYN marks a request, ACK the response. */
        if (flags & F_SYN)
            return put_header(y, T_PING, F_ACK, 0, len);
        if (flags & F_ACK)
            emit(y, DN_YAMUX_EV_PING, NULL, 0, NULL, 0, len);
        return 0;
    case T_GOAWAY:
        y->remote_goaway = true;
        emit(y, DN_YAMUX_EV_GOAWAY, NULL, 0, NULL, 0, len);
        return 0;
    default: return proto_error(y, "unknown frame type", id);
    }
}

/* ---- public API ------------------------------------------------------- */

int dn_yamux_set_max_window(dn_yamux *y, uint32_t max_window)
{
    if (!y || max_window < DN_YAMUX_INITIAL_WINDOW || max_window > LIMIT_MAX_WINDOW)
        return DN_EINVAL;
    y->cfg.max_window = max_window;
    return 0;
}

int dn_yamux_new(bool is_client, const dn_yamux_config *cfg, dn_yamux_event_cb cb, void *ctx,
                 dn_yamux **out)
{
    if (!out)
        return DN_EINVAL;
    *out = NULL;
    dn_yamux_config c = {DEFAULT_MAX_STREAMS, DEFAULT_ACK_BACKLOG, DEFAULT_MAX_WINDOW};
    if (cfg) {
        if (cfg->max_streams)
            c.max_streams = cfg->max_streams;
        if (cfg->max_ack_backlog)
            c.max_ack_backlog = cfg->max_ack_backlog;
        if (cfg->max_window)
            c.max_window = cfg->max_window;
    }
    if (c.max_window < DN_YAMUX_INITIAL_WINDOW || c.max_window > LIMIT_MAX_WINDOW ||
        c.max_streams > (1u << 24))
        return DN_EINVAL;
    dn_yamux *y = calloc(1, sizeof *y);
    if (!y)
        return DN_ENOMEM;
    y->client = is_client;
    y->cfg = c;
    y->cb = cb;
    y->ctx = ctx;
    dn_buf_init(&y->out);
    y->next_id = is_client ? 1 : 2;
    *out = y;
    return 0;
}

static void free_list(ystream *s)
{
    while (s) {
        ystream *n = s->next;
        free(s);
        s = n;
    }
}

void dn_yamux_free(dn_yamux *y)
{
    if (!y)
        return;
    if (y->slots) {
        for (uint32_t i = 0; i <= y->mask; i++)
            free(y->slots[i]);
        free(y->slots);
    }
    free_list(y->graveyard);
    free_list(y->freelist);
    dn_buf_free(&y->out);
    free(y);
}

int dn_yamux_feed(dn_yamux *y, const uint8_t *in, size_t len)
{
    if (y->failed)
        return y->fail_rc;
    if (y->in_feed)
        return DN_ESTATE;
    enter(y);
    y->in_feed = true;
    int rc = 0;
    while (len > 0) {
        if (y->cur_left > 0) {
            uint32_t n = len < y->cur_left ? (uint32_t)len : y->cur_left;
            if (y->cur_deliver) {
                ystream *s = lookup(y, y->cur_id);
                if (s) {
                    s->unconsumed += n;
                    emit(y, DN_YAMUX_EV_DATA, s, 0, in, n, 0);
                } else {
                    y->cur_deliver = false; /* reset meanwhile: drop the rest */
                }
            }
            in += n;
            len -= n;
            y->cur_left -= n;
            if (y->cur_left == 0 && (rc = finish_data_frame(y)) != 0)
                break;
            continue;
        }
        size_t take = DN_YAMUX_HEADER_LEN - y->hdr_have;
        if (take > len)
            take = len;
        memcpy(y->hdr + y->hdr_have, in, take);
        y->hdr_have = (uint8_t)(y->hdr_have + take);
        in += take;
        len -= take;
        if (y->hdr_have < DN_YAMUX_HEADER_LEN)
            break;
        y->hdr_have = 0;
        if ((rc = on_header(y)) != 0)
            break;
    }
    if (rc) {
        /* Section "Session termination": tell the peer why, then the host
         * closes the connection once the output is flushed. */
        y->failed = true;
        y->fail_rc = rc;
        if (rc == DN_EPROTO && !y->local_goaway) {
            y->local_goaway = true;
            (void)put_header(y, T_GOAWAY, 0, 0, DN_YAMUX_GOAWAY_PROTOCOL);
        }
    }
    y->in_feed = false;
    leave(y);
    return rc;
}

dn_buf *dn_yamux_output(dn_yamux *y)
{
    return &y->out;
}

int dn_yamux_open(dn_yamux *y, uint32_t *stream_id)
{
    if (y->failed || y->remote_goaway || y->local_goaway)
        return DN_ECLOSED;
    if (y->count >= y->cfg.max_streams)
        return DN_ELIMIT;
    if (y->n_unacked >= y->cfg.max_ack_backlog)
        return DN_EAGAIN;
    if (y->next_id > UINT32_MAX)
        return DN_ELIMIT; /* id space exhausted: a new connection is needed */
    uint32_t id = (uint32_t)y->next_id;
    /* Reserve output room first so a failure leaves no half-open stream. */
    int rc = dn_buf_reserve(&y->out, DN_YAMUX_HEADER_LEN);
    if (rc)
        return rc;
    ystream *s = stream_new(y, id, S_OUTBOUND | S_SYN_UNACKED);
    if (!s)
        return DN_ENOMEM;
    y->next_id += 2;
    /* Section "Opening a stream": a WindowUpdate with SYN, delta 0 (we
     * start every stream at the default 256 KiB window). */
    (void)put_header(y, T_WINDOW_UPDATE, F_SYN, id, 0);
    if (stream_id)
        *stream_id = id;
    return 0;
}

/* Lookup for API calls: DN_ECLOSED for ids that existed, DN_ENOTFOUND
 * otherwise. */
static ystream *api_lookup(dn_yamux *y, uint32_t id, int *err)
{
    ystream *s = y->failed ? NULL : lookup(y, id);
    if (!s)
        *err = (y->failed || id_was_used(y, id)) ? DN_ECLOSED : DN_ENOTFOUND;
    return s;
}

int dn_yamux_accept(dn_yamux *y, uint32_t stream_id)
{
    int err;
    ystream *s = api_lookup(y, stream_id, &err);
    if (!s)
        return err;
    if (s->st & S_OUTBOUND)
        return DN_EINVAL;
    if (!(s->st & S_UNACCEPTED))
        return 0; /* already accepted (explicitly or by a write) */
    int rc = put_header(y, T_WINDOW_UPDATE, F_ACK, stream_id, 0);
    if (rc)
        return rc;
    mark_accepted(y, s);
    return 0;
}

void dn_yamux_set_user(dn_yamux *y, uint32_t stream_id, void *user)
{
    ystream *s = lookup(y, stream_id);
    if (s)
        s->user = user;
}

/* The stream data may send now: open for writing, within the window. */
static ssize_t sendable(dn_yamux *y, uint32_t stream_id, size_t len, ystream **out)
{
    int err;
    ystream *s = api_lookup(y, stream_id, &err);
    if (!s)
        return err;
    if (s->st & S_LOCAL_FIN)
        return DN_ECLOSED;
    *out = s;
    return (ssize_t)(len < s->send_win ? len : s->send_win);
}

ssize_t dn_yamux_write(dn_yamux *y, uint32_t stream_id, const uint8_t *data, size_t len)
{
    ystream *s = NULL;
    ssize_t r = sendable(y, stream_id, len, &s);
    if (r <= 0)
        return r;
    size_t n = (size_t)r;
    size_t frames = (n + MAX_SEND_FRAME - 1) / MAX_SEND_FRAME;
    int rc = dn_buf_reserve(&y->out, n + frames * DN_YAMUX_HEADER_LEN);
    if (rc)
        return rc;
    uint16_t flags = out_flags(y, s);
    for (size_t off = 0; off < n;) {
        uint32_t chunk = n - off > MAX_SEND_FRAME ? MAX_SEND_FRAME : (uint32_t)(n - off);
        (void)put_header(y, T_DATA, flags, stream_id, chunk);
        memcpy(y->out.data + y->out.len, data + off, chunk);
        y->out.len += chunk;
        off += chunk;
        flags = 0;
    }
    s->send_win -= (uint32_t)n;
    return (ssize_t)n;
}

ssize_t dn_yamux_write_header(dn_yamux *y, uint32_t stream_id, size_t len,
                              uint8_t hdr[DN_YAMUX_HEADER_LEN])
{
    ystream *s = NULL;
    if (len > MAX_SEND_FRAME)
        len = MAX_SEND_FRAME;
    ssize_t r = sendable(y, stream_id, len, &s);
    if (r <= 0)
        return r;
    encode_header(hdr, T_DATA, out_flags(y, s), stream_id, (uint32_t)r);
    s->send_win -= (uint32_t)r;
    return r;
}

uint32_t dn_yamux_send_window(dn_yamux *y, uint32_t stream_id)
{
    ystream *s = y->failed ? NULL : lookup(y, stream_id);
    if (!s || (s->st & S_LOCAL_FIN))
        return 0;
    return s->send_win;
}

int dn_yamux_consumed(dn_yamux *y, uint32_t stream_id, size_t n)
{
    int err;
    ystream *s = api_lookup(y, stream_id, &err);
    if (!s)
        return err;
    if (n > s->unconsumed)
        return DN_EINVAL;
    s->unconsumed -= (uint32_t)n;
    s->pending += (uint32_t)n;
    /* No update once the peer has closed its side: it sends no more. */
    if (!(s->st & S_REMOTE_FIN) && s->pending > 0 && s->pending >= s->recv_win / 2)
        return send_window_update(y, s);
    return 0;
}

int dn_yamux_close_write(dn_yamux *y, uint32_t stream_id)
{
    int err;
    ystream *s = api_lookup(y, stream_id, &err);
    if (!s)
        return err;
    if (s->st & S_LOCAL_FIN)
        return 0;
    /* Section "Closing a stream": a WindowUpdate with FIN, delta 0. */
    uint16_t flags = (s->st & S_UNACCEPTED) ? F_ACK : 0;
    int rc = put_header(y, T_WINDOW_UPDATE, flags | F_FIN, stream_id, 0);
    if (rc)
        return rc;
    mark_accepted(y, s);
    s->st |= S_LOCAL_FIN;
    enter(y);
    maybe_gone(y, s);
    leave(y);
    return 0;
}

int dn_yamux_reset(dn_yamux *y, uint32_t stream_id)
{
    int err;
    ystream *s = api_lookup(y, stream_id, &err);
    if (!s)
        return err;
    int rc = put_header(y, T_WINDOW_UPDATE, F_RST, stream_id, 0);
    enter(y);
    stream_gone(y, s); /* even without memory for the RST, the stream ends */
    leave(y);
    return rc;
}

int dn_yamux_ping(dn_yamux *y, uint32_t opaque)
{
    if (y->failed)
        return DN_ECLOSED;
    return put_header(y, T_PING, F_SYN, 0, opaque);
}

int dn_yamux_goaway(dn_yamux *y, uint32_t code)
{
    if (y->local_goaway)
        return 0;
    int rc = put_header(y, T_GOAWAY, 0, 0, code);
    if (rc)
        return rc;
    y->local_goaway = true;
    return 0;
}

size_t dn_yamux_stream_count(const dn_yamux *y)
{
    return y->count;
}
