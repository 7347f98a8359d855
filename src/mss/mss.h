/* mss — multistream-select 1.0 (connection-establishment and
 * multistream-select specs), sans-I/O, dialer and listener.
 *
 * Wire: each message is uvarint(len) + bytes + '\n', len counting the '\n'.
 * Both sides send "/multistream/1.0.0": the dialer at once, the listener
 * when the dialer's header arrives (together with its first answer). The
 * dialer proposes one protocol at a time; the listener answers with the
 * same line or "na".
 * The dialer here is optimistic in the usual way: its first write carries
 * the header and its first proposal together. The listener accepts
 * application data right after the chosen protocol line: dn_mss_feed
 * reports how many input bytes it consumed; the rest belongs to the app.
 * The listener answers "ls" with "na" (listing is optional) and gives at
 * most DN_MSS_MAX_NA "na" answers. After an error, feed returns DN_ESTATE. */
#ifndef DN_MSS_H
#define DN_MSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"

#define DN_MSS_PROTOCOL "/multistream/1.0.0"
/* Longest message we accept (protocol ids are short); longer is an error. */
#define DN_MSS_MAX_MSG 1024
#define DN_MSS_MAX_PROTOS 32
/* Listener: "na" answers (to unknown proposals and to "ls") it gives before
 * it fails with DN_ENEGOTIATE, so a peer cannot keep it busy forever. */
#define DN_MSS_MAX_NA 16

enum dn_mss_status {
    DN_MSS_NEED_MORE = 0, /* feed more input */
    DN_MSS_DONE = 1,      /* dn_mss_selected() is the agreed protocol */
};

typedef struct dn_mss {
    bool dialer;
    bool header_seen; /* peer's /multistream/1.0.0 received */
    bool done;
    const char *const *protos; /* dialer: proposals in order; listener: supported */
    size_t nprotos;
    size_t next;                         /* dialer: index of the proposal in flight */
    int selected;                        /* index into protos, -1 until done */
    uint8_t partial[DN_MSS_MAX_MSG + 2]; /* a message split across reads */
    size_t partial_len;
    unsigned na_count; /* listener: "na" answers given (bounded) */
} dn_mss;

/* protos must stay valid until done. A listener given nprotos == 0 says
 * "na" to everything; a NULL entry in a listener's protos is a protocol no
 * longer served (the host removes handlers so): it says "na" to it. The
 * listener reads protos when a proposal arrives, so an entry the caller
 * sets to NULL meanwhile is refused from then on. */
void dn_mss_init_dialer(dn_mss *m, const char *const *protos, size_t nprotos);
void dn_mss_init_listener(dn_mss *m, const char *const *protos, size_t nprotos);
/* Bytes to send first: dialer, the header and the first proposal;
 * listener, nothing (its header answers the dialer's). */
int dn_mss_start(dn_mss *m, dn_buf *out);
/* Process input. *consumed is set to the bytes used; any bytes after a
 * DN_MSS_DONE are application data. Writes replies to out. Returns
 * DN_MSS_NEED_MORE, DN_MSS_DONE, DN_ENEGOTIATE (dialer: every proposal got
 * "na"), DN_EPROTO (bad header, bad message) or DN_ETOOBIG. */
int dn_mss_feed(dn_mss *m, const uint8_t *in, size_t len, size_t *consumed, dn_buf *out);
/* The agreed protocol (one of protos), or NULL. */
const char *dn_mss_selected(const dn_mss *m);

#endif
