/* libFuzzer target for the pubsub RPC decoder, the frame reader and the
 * router's handling of whatever an RPC holds (src/pubsub/).
 *
 * Checks the contracts of pubsub_msg.h: errors are documented codes; a
 * decoded RPC keeps its bounds; encoding it gives bytes that decode to an
 * RPC encoding to the very same bytes (a fixed point); the frame reader
 * fed the input in pieces returns frames no longer than its bound, and
 * only whole ones. The router must take any RPC from a peer without
 * crashing or growing past its bounds (run under ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/buf.h"
#include "dmsnet/error.h"
#include "pubsub/pubsub_msg.h"
#include "pubsub/router.h"

static void check_bounds(const dn__pubsub_rpc *r)
{
    if (r->nsubs > DN_PUBSUB_MAX_SUBS || r->nmsgs > DN_PUBSUB_MAX_MSGS ||
        r->nihave_ids > DN_PUBSUB_MAX_IHAVE_IDS || r->niwant_ids > DN_PUBSUB_MAX_IWANT_IDS ||
        r->nidontwant_ids > DN_PUBSUB_MAX_IDONTWANT_IDS || r->npx > DN_PUBSUB_MAX_PX)
        abort();
    for (size_t i = 0; i < r->nsubs; i++)
        if (!r->subs[i].topic.len || r->subs[i].topic.len > DN_PUBSUB_TOPIC_MAX)
            abort();
    for (size_t i = 0; i < r->nihave; i++)
        if (r->ihave[i].first + r->ihave[i].count > r->nihave_ids)
            abort();
    for (size_t i = 0; i < r->nprune; i++)
        if (r->prune[i].first + r->prune[i].count > r->npx)
            abort();
}

static void check_codec(const uint8_t *data, size_t size)
{
    dn__pubsub_rpc r, r2;
    int rc = dn__pubsub_rpc_decode(data, size, &r);
    if (rc) {
        if (rc != DN_EMALFORMED && rc != DN_ETRUNCATED && rc != DN_ETOOBIG && rc != DN_ENOMEM)
            abort();
        return;
    }
    check_bounds(&r);
    if (size > DN_PUBSUB_RPC_MAX / 2) { /* re-encoding may grow a little */
        dn__pubsub_rpc_free(&r);
        return;
    }
    dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT;
    if (dn__pubsub_rpc_encode(&r, &a))
        abort();
    if (dn__pubsub_rpc_decode(a.data, a.len, &r2))
        abort();
    check_bounds(&r2);
    if (r2.nsubs != r.nsubs || r2.nmsgs != r.nmsgs || r2.nihave_ids != r.nihave_ids ||
        r2.niwant_ids != r.niwant_ids || r2.ngraft != r.ngraft || r2.nprune != r.nprune ||
        r2.npx != r.npx || r2.nidontwant_ids != r.nidontwant_ids)
        abort();
    if (dn__pubsub_rpc_encode(&r2, &b) || a.len != b.len ||
        (a.len && memcmp(a.data, b.data, a.len)))
        abort();
    dn__pubsub_rpc_free(&r2);
    dn__pubsub_rpc_free(&r);
    dn_buf_free(&a);
    dn_buf_free(&b);
}

static void check_framer(const uint8_t *data, size_t size)
{
    dn__pubsub_framer f;
    dn__pubsub_framer_init(&f, 4096);
    size_t off = 0, step = size ? (size_t)data[0] % 7 + 1 : 1;
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        int rc = dn__pubsub_framer_feed(&f, data + off, n);
        off += n;
        if (rc) {
            if (rc != DN_ETOOBIG && rc != DN_EMALFORMED)
                abort();
            break;
        }
        const uint8_t *fr;
        size_t fl;
        while ((rc = dn__pubsub_framer_next(&f, &fr, &fl)) == 1)
            if (fl > 4096)
                abort();
        if (rc < 0 && rc != DN_ETOOBIG && rc != DN_EMALFORMED)
            abort();
        if (dn__pubsub_framer_pending(&f) > 2 * 4096 + 16)
            abort();
        if (rc < 0)
            break;
    }
    dn__pubsub_framer_close(&f);
}

static dn__pubsub_router *router;
static dn_privkey *self_key, *peer_key;
static dn_peerid peer_id;
static uint64_t now = 1000000;

static void check_router(const uint8_t *data, size_t size)
{
    if (!router) {
        if (dn_privkey_generate(DN_KEY_ED25519, &self_key) ||
            dn_privkey_generate(DN_KEY_ED25519, &peer_key) ||
            dn_peerid_from_pubkey(dn_privkey_public(peer_key), &peer_id) ||
            dn__pubsub_router_new(NULL, self_key, 1, &router) ||
            dn__pubsub_subscribe(router, "t", now) ||
            dn__pubsub_add_peer(router, &peer_id, DN_PUBSUB_MESHSUB_12, false, now))
            abort();
        dn__pubsub_clear_outputs(router);
    }
    /* The peer must never be graylisted for good, or the fuzzer stops
     * reaching the handlers: re-add it fresh when it is. */
    if (dn__pubsub_graylisted(router, &peer_id)) {
        dn__pubsub_remove_peer(router, &peer_id, now);
        dn__pubsub_add_peer(router, &peer_id, DN_PUBSUB_MESHSUB_12, false, now);
    }
    dn__pubsub_handle_rpc(router, &peer_id, data, size, now);
    now += 1000;
    dn__pubsub_heartbeat(router, now);
    size_t n;
    dn__pubsub_sends(router, &n);
    if (n > 4)
        abort(); /* one peer: a frame per call, split only when too big */
    dn__pubsub_clear_outputs(router);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_codec(data, size);
    check_framer(data, size);
    check_router(data, size);
    return 0;
}
