/* The DHT service (src/kad/service.c, rpc.c, lookup.c, records.c) between
 * hosts on one loop over loopback: table admission only after identify and
 * ping, FIND_NODE through a peer, dial by peer id through the DHT, /pk/ and
 * /dmsnet/ values (forged, foreign, stale and unknown-namespace puts
 * refused), providers (only the sender's own record taken), client and
 * auto mode, and malformed frames resetting only their stream. */
#include <arpa/inet.h>
#include <time.h>

#include "kad_fixture.h"

#include "core/pb.h"
#include "kad/kad_msg.h"
#include "kad/records.h"
#include "kad/service.h"

/* ---- recorders ---- */

typedef struct op {
    int calls, status;
    size_t n;
    uint8_t value[256];
    size_t vlen;
    dn_peerid peers[64];
    size_t npeers;
    dn_kad_lookup_info info;
    bool done;
} op;

static void on_peer(void *arg, int status, const dn_peerid *peer, const dn_multiaddr *addrs,
                    size_t naddrs, const dn_kad_lookup_info *info)
{
    op *o = arg;
    o->calls++;
    o->status = status;
    o->n = naddrs;
    o->info = *info;
}

static void on_put(void *arg, int status, size_t stored, const dn_kad_lookup_info *info)
{
    op *o = arg;
    o->calls++;
    o->status = status;
    o->n = stored;
    o->info = *info;
}

static void on_value(void *arg, int status, const uint8_t *value, size_t vlen,
                     const dn_kad_lookup_info *info)
{
    op *o = arg;
    o->calls++;
    o->status = status;
    o->vlen = vlen < sizeof o->value ? vlen : sizeof o->value;
    if (value)
        memcpy(o->value, value, o->vlen);
    o->info = *info;
}

static void on_prov(void *arg, int status, const dn_peerid *peer, const dn_multiaddr *addrs,
                    size_t naddrs, const dn_kad_lookup_info *info)
{
    op *o = arg;
    if (peer) {
        if (o->npeers < 64)
            o->peers[o->npeers++] = *peer;
        o->n += naddrs;
        return;
    }
    o->calls++;
    o->status = status;
    o->done = true;
}

static void on_boot(void *arg, int status, size_t n)
{
    op *o = arg;
    o->calls++;
    o->status = status;
    o->n = n;
}

/* A raw stream on the kad protocol, for what our own client never sends. */
typedef struct raw {
    dn_stream *s;
    int opened, closed, close_status;
    uint8_t in[65536];
    size_t inlen;
    bool eof;
} raw;

static void raw_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    raw *r = arg;
    if (r->inlen + n <= sizeof r->in) {
        memcpy(r->in + r->inlen, d, n);
        r->inlen += n;
    }
}
static void raw_eof(dn_stream *s, void *arg)
{
    ((raw *)arg)->eof = true;
}
static void raw_close(dn_stream *s, int status, void *arg)
{
    raw *r = arg;
    r->closed++;
    r->close_status = status;
    r->s = NULL;
}
static void raw_opened(dn_stream *s, int status, void *arg)
{
    raw *r = arg;
    r->opened++;
    r->s = s;
    if (status) {
        r->closed++;
        r->close_status = status;
        return;
    }
    static const dn_stream_callbacks cbs = {
        .on_data = raw_data, .on_eof = raw_eof, .on_close = raw_close};
    dn_stream_set_callbacks(s, &cbs, r);
}

static void raw_open(fx *f, dn_conn *c, const char *proto, raw *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(dn_conn_open_stream(c, proto, raw_opened, r), 0);
    RUN_UNTIL(f, r->opened, 5000);
    assert_non_null(r->s);
}

static void raw_send(raw *r, const dn__kad_msg *m)
{
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__kad_msg_encode_frame(m, &b), 0);
    assert_int_equal(dn_stream_write(r->s, b.data, b.len), 0);
    dn_buf_free(&b);
}

/* Both tables hold each other. */
static void linked(fx *f, int a, int b)
{
    connect_to(f, a, b);
    RUN_UNTIL(f, in_table(f, a, b) && in_table(f, b, a), 5000);
}

/* ---- tests ---- */

static int setup(void **state)
{
    *state = fx_new(5);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    return fx_free(*state);
}

static void test_admission(void **state)
{
    fx *f = *state;
    host_up(f, 0, NULL);
    host_up(f, 1, NULL);
    /* 2: speaks kad but has no ping service; 3: a client. */
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = f->key[2];
    assert_int_equal(dn_host_new(&f->loop, &cfg, &f->host[2]), 0);
    dn_multiaddr any = ma("/ip4/127.0.0.1/tcp/0");
    assert_int_equal(dn_host_listen(f->host[2], &any), 0);
    assert_int_equal(dn_identify_attach(f->host[2]), 0);
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_SERVER;
    kc.query_timeout_ms = 500;
    assert_int_equal(dn_kad_attach(f->host[2], &kc, &f->kad[2]), 0);
    kc.mode = DN_KAD_MODE_CLIENT;
    host_up(f, 3, &kc);

    assert_int_equal(dn_kad_table_size(f->kad[0]), 0);
    linked(f, 0, 1);
    connect_to(f, 2, 0);
    connect_to(f, 3, 0);
    run_for(f, 800);
    assert_false(in_table(f, 0, 2)); /* identify says kad, but the ping went unanswered */
    assert_false(in_table(f, 0, 3)); /* a client does not advertise kad */
    assert_true(in_table(f, 2, 0));  /* 0 answered 2's ping */
    assert_int_equal(dn_kad_table_size(f->kad[0]), 1);
    dn_kad_table_entry e[4];
    assert_int_equal(dn_kad_table(f->kad[0], e, 4), 1);
    assert_true(dn_peerid_equal(&e[0].id, dn_host_peerid(f->host[1])));
    assert_false(e[0].stale);
    assert_true(e[0].added_unix_ms > 0);
}

static void test_find_peer_and_route_dials(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 4; i++)
        host_up(f, i, NULL);
    /* 0 - 1 - 2, and 3 - 1: only 1 knows everybody. */
    linked(f, 0, 1);
    linked(f, 2, 1);
    linked(f, 3, 1);
    op o = {0};
    assert_int_equal(dn_kad_find_peer(f->kad[0], dn_host_peerid(f->host[2]), on_peer, &o), 0);
    assert_int_equal(o.calls, 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    assert_true(o.n >= 1);
    assert_int_equal(o.info.hops, 1);
    assert_true(o.info.answered >= 1);
    assert_true(o.info.elapsed_ms < 5000);
    /* A connected peer is answered here, at once, with a sane elapsed time. */
    o = (op){0};
    assert_int_equal(dn_kad_find_peer(f->kad[0], dn_host_peerid(f->host[1]), on_peer, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.info.hops, 0);
    assert_true(o.info.elapsed_ms < 1000);
    /* Nobody knows this one. */
    dn_privkey *x;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &x), 0);
    dn_peerid xid;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(x), &xid), 0);
    dn_privkey_free(x);
    o = (op){0};
    assert_int_equal(dn_kad_find_peer(f->kad[0], &xid, on_peer, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, DN_ENOTFOUND);

    /* Dial 4 by its peer id alone: no address known, the DHT finds it. */
    host_up(f, 4, NULL);
    linked(f, 4, 1);
    const dn_peerid *id3 = dn_host_peerid(f->host[4]);
    const dn_peer_info *p = dn_host_peer(f->host[0], id3);
    assert_true(!p || p->naddrs == 0);
    dial_rec d = {0};
    assert_int_equal(dn_host_dial_peer(f->host[0], id3, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls, 5000);
    assert_int_equal(d.status, DN_ENOTFOUND); /* no router yet */
    assert_int_equal(dn_kad_route_dials(f->kad[0]), 0);
    d = (dial_rec){0};
    assert_int_equal(dn_host_dial_peer(f->host[0], id3, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls, 5000);
    assert_int_equal(d.status, 0);
    assert_true(dn_peerid_equal(dn_conn_remote_peer(d.conn), id3));
    d = (dial_rec){0};
    assert_int_equal(dn_host_dial_peer(f->host[0], &xid, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls, 5000);
    assert_int_equal(d.status, DN_ENOTFOUND);
}

static void pk_key(const dn_peerid *id, uint8_t *key, size_t *len)
{
    memcpy(key, "/pk/", 4);
    memcpy(key + 4, id->bytes, id->len);
    *len = 4 + id->len;
}

static void test_put_get_pk(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 3; i++)
        host_up(f, i, NULL);
    linked(f, 0, 1);
    linked(f, 2, 1);
    /* An RSA-sized key hashes to a sha2-256 id; ed25519 is inlined, so
     * take the key of host 2, whatever its type. */
    uint8_t key[64];
    size_t keylen;
    const dn_peerid *id2 = dn_host_peerid(f->host[2]);
    pk_key(id2, key, &keylen);
    dn_buf pub = DN_BUF_INIT, other = DN_BUF_INIT;
    assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(f->key[2]), &pub), 0);
    assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(f->key[1]), &other), 0);
    /* Another peer's key under 2's name: refused before anything is sent. */
    op o = {0};
    assert_int_equal(dn_kad_put(f->kad[0], key, keylen, other.data, other.len, on_put, &o),
                     DN_EPEERID);
    assert_int_equal(dn_kad_put(f->kad[0], key, keylen, pub.data, pub.len, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.n, 2); /* 1 and 2 took it */
    op g = {0};
    assert_int_equal(dn_kad_get(f->kad[2], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.vlen, pub.len);
    assert_memory_equal(g.value, pub.data, pub.len);
    dn_kad_stats st;
    dn_kad_get_stats(f->kad[1], &st);
    assert_int_equal(st.records_held, 1);
    dn_buf_free(&pub);
    dn_buf_free(&other);
}

static size_t dmsnet_key(fx *f, int owner, const char *name, uint8_t *out)
{
    char id[128];
    assert_true(dn_peerid_to_string(dn_host_peerid(f->host[owner]), id, sizeof id) > 0);
    return (size_t)snprintf((char *)out, 256, "/dmsnet/%s/%s", id, name);
}

static void test_put_get_dmsnet(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 4; i++)
        host_up(f, i, NULL);
    linked(f, 0, 1);
    linked(f, 2, 1);
    linked(f, 3, 1);
    op o = {0};
    assert_int_equal(dn_kad_put_signed(f->kad[0], "svc", (const uint8_t *)"v1", 2, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    assert_true(o.n >= 1);
    uint8_t key[256];
    size_t keylen = dmsnet_key(f, 0, "svc", key);
    op g = {0};
    assert_int_equal(dn_kad_get(f->kad[2], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.vlen, 2);
    assert_memory_equal(g.value, "v1", 2);

    /* Newest wins. */
    o = (op){0};
    assert_int_equal(dn_kad_put_signed(f->kad[0], "svc", (const uint8_t *)"v2", 2, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    g = (op){0};
    assert_int_equal(dn_kad_get(f->kad[3], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, 0);
    assert_memory_equal(g.value, "v2", 2);

    /* Forged: 1 signs a record for 0's key. */
    dn_buf env = DN_BUF_INIT;
    assert_int_equal(dn__kad_record_seal(f->key[1], key, keylen, (UINT64_C(1) << 62),
                                         (const uint8_t *)"evil", 4, &env),
                     0);
    assert_int_equal(dn_kad_put(f->kad[1], key, keylen, env.data, env.len, on_put, &o), DN_EPEERID);
    /* 0's own signature, but for another name: not replayable here. */
    uint8_t key2[256];
    size_t key2len = dmsnet_key(f, 0, "other", key2);
    dn_buf_reset(&env);
    assert_int_equal(dn__kad_record_seal(f->key[0], key2, key2len, (UINT64_C(1) << 62),
                                         (const uint8_t *)"x", 1, &env),
                     0);
    assert_int_equal(dn_kad_put(f->kad[1], key, keylen, env.data, env.len, on_put, &o), DN_EPEERID);
    /* A broken signature. */
    dn_buf_reset(&env);
    assert_int_equal(dn__kad_record_seal(f->key[0], key, keylen, (UINT64_C(1) << 62),
                                         (const uint8_t *)"x", 1, &env),
                     0);
    env.data[env.len - 50] ^= 1; /* in R: S must stay canonical */
    assert_int_equal(dn_kad_put(f->kad[1], key, keylen, env.data, env.len, on_put, &o), DN_EBADSIG);
    /* A stale seq, signed by the owner: 0 refuses it itself; 4, which holds
     * nothing, takes it locally, but the peers that hold v2 refuse it. */
    dn_buf_reset(&env);
    assert_int_equal(
        dn__kad_record_seal(f->key[0], key, keylen, 1, (const uint8_t *)"old", 3, &env), 0);
    assert_int_equal(dn_kad_put(f->kad[0], key, keylen, env.data, env.len, on_put, &o), DN_ESTATE);
    host_up(f, 4, NULL);
    linked(f, 4, 1);
    o = (op){0};
    assert_int_equal(dn_kad_put(f->kad[4], key, keylen, env.data, env.len, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, DN_ERESET); /* every peer refused it */
    assert_int_equal(o.n, 0);
    g = (op){0};
    assert_int_equal(dn_kad_get(f->kad[3], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, 0);
    assert_memory_equal(g.value, "v2", 2);
    /* 3 heard 4's old record among the answers and corrected it. */
    const dn__kad_rec *held;
    RUN_UNTIL(f,
              (held = dn__kad_store_get(&f->kad[4]->store, key, keylen, dn__kad_unix_ms())) &&
                  held->seq > 1,
              5000);
    /* 4 asks: the best answer wins. */
    g = (op){0};
    assert_int_equal(dn_kad_get(f->kad[4], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, 0);
    assert_memory_equal(g.value, "v2", 2);
    dn_buf_free(&env);

    /* A namespace with no validator. */
    static const uint8_t foo[] = "/foo/bar";
    assert_int_equal(
        dn_kad_put(f->kad[0], foo, sizeof foo - 1, (const uint8_t *)"x", 1, on_put, &o),
        DN_EUNSUPPORTED);
    g = (op){0};
    assert_int_equal(dn_kad_get(f->kad[2], foo, sizeof foo - 1, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, DN_ENOTFOUND);
}

static void test_remote_refusals(void **state)
{
    fx *f = *state;
    host_up(f, 0, NULL);
    host_up(f, 1, NULL);
    dn_conn *c = connect_to(f, 0, 1);
    RUN_UNTIL(f, in_table(f, 1, 0), 5000);
    const char *proto = dn_kad_protocol(f->kad[1]);
    assert_string_equal(proto, "/dmsnet/kad/1.0.0");

    /* PUT_VALUE in an unknown namespace, sent raw: reset, counted. */
    raw r;
    raw_open(f, c, proto, &r);
    dn__kad_msg *m = calloc(1, sizeof *m);
    dn__kad_msg_init(m);
    m->type = DN_KAD_PUT_VALUE;
    m->key = (dn__kad_span){(const uint8_t *)"/foo/x", 6};
    m->has_record = true;
    m->record_key = m->key;
    m->record_value = (dn__kad_span){(const uint8_t *)"v", 1};
    raw_send(&r, m);
    RUN_UNTIL(f, r.closed, 5000);
    assert_int_equal(r.close_status, DN_ERESET);
    dn_kad_stats st;
    dn_kad_get_stats(f->kad[1], &st);
    assert_int_equal(st.records_held, 0);
    assert_true(st.requests_bad >= 1);

    /* ADD_PROVIDER naming another peer: no reply, nothing stored; naming
     * the sender: stored. Then PING on the same stream is answered. */
    raw_open(f, c, proto, &r);
    dn__kad_msg_init(m);
    m->type = DN_KAD_ADD_PROVIDER;
    m->key = (dn__kad_span){(const uint8_t *)"\x12\x20"
                                             "0123456789abcdef0123456789abcdef",
                            34};
    dn__kad_span a = {(const uint8_t *)"\x04\x7f\x00\x00\x01\x06\x10\x00", 8};
    assert_int_equal(
        dn__kad_msg_add_peer(m, true, dn_host_peerid(f->host[1]), DN_KAD_CONNECTED, &a, 1), 0);
    raw_send(&r, m);
    m->nproviders = 0;
    m->naddrs = 0;
    assert_int_equal(
        dn__kad_msg_add_peer(m, true, dn_host_peerid(f->host[0]), DN_KAD_CONNECTED, &a, 1), 0);
    raw_send(&r, m);
    dn__kad_msg_init(m);
    m->type = DN_KAD_PING;
    raw_send(&r, m);
    RUN_UNTIL(f, r.inlen >= 2, 5000);
    assert_int_equal(r.in[0], 2); /* one frame: type PING */
    assert_int_equal(r.in[1], 0x08);
    dn_kad_get_stats(f->kad[1], &st);
    assert_int_equal(st.providers_held, 1);
    assert_int_equal(r.closed, 0);

    /* Garbage on a second stream resets that one only. */
    raw bad;
    raw_open(f, c, proto, &bad);
    static const uint8_t junk[] = {0x05, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(dn_stream_write(bad.s, junk, sizeof junk), 0);
    RUN_UNTIL(f, bad.closed, 5000);
    assert_int_equal(bad.close_status, DN_ERESET);
    /* An announced length past the limit: reset at once. */
    raw big;
    raw_open(f, c, proto, &big);
    static const uint8_t huge[] = {0x80, 0x80, 0x80, 0x04}; /* 8 MiB */
    assert_int_equal(dn_stream_write(big.s, huge, sizeof huge), 0);
    RUN_UNTIL(f, big.closed, 5000);
    assert_int_equal(big.close_status, DN_ERESET);
    /* The first stream still works. */
    size_t before = r.inlen;
    raw_send(&r, m);
    RUN_UNTIL(f, r.inlen > before, 5000);
    assert_int_equal(r.closed, 0);
    dn_stream_close_write(r.s);
    RUN_UNTIL(f, r.closed, 5000);
    assert_int_equal(r.close_status, 0);
    free(m);
}

static void test_providers(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 4; i++)
        host_up(f, i, NULL);
    linked(f, 0, 1);
    linked(f, 2, 1);
    linked(f, 3, 1);
    static const uint8_t cid[] = "\x12\x20"
                                 "abcdefghabcdefghabcdefghabcdefgh";
    op o = {0};
    assert_int_equal(dn_kad_provide(f->kad[0], cid, 34, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    assert_true(o.n >= 1);
    o = (op){0};
    assert_int_equal(dn_kad_provide(f->kad[3], cid, 34, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    op p = {0};
    assert_int_equal(dn_kad_find_providers(f->kad[2], cid, 34, 0, on_prov, &p), 0);
    RUN_UNTIL(f, p.done, 5000);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.npeers, 2);
    assert_true(p.n >= 2); /* with addresses */
    bool saw0 = false, saw3 = false;
    for (size_t i = 0; i < p.npeers; i++) {
        saw0 |= dn_peerid_equal(&p.peers[i], dn_host_peerid(f->host[0]));
        saw3 |= dn_peerid_equal(&p.peers[i], dn_host_peerid(f->host[3]));
    }
    assert_true(saw0 && saw3);
    /* Enough found: stops at max. */
    p = (op){0};
    assert_int_equal(dn_kad_find_providers(f->kad[2], cid, 34, 1, on_prov, &p), 0);
    RUN_UNTIL(f, p.done, 5000);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.npeers, 1);
    /* Nobody provides this. */
    p = (op){0};
    assert_int_equal(
        dn_kad_find_providers(f->kad[2], (const uint8_t *)"\x12\x20zz", 4, 0, on_prov, &p), 0);
    RUN_UNTIL(f, p.done, 5000);
    assert_int_equal(p.status, DN_ENOTFOUND);
    assert_int_equal(p.npeers, 0);
}

static bool serves(dn_host *h, const char *proto)
{
    const char *list[64];
    size_t n = dn_host_protocols(h, list, 64);
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], proto) == 0)
            return true;
    return false;
}

static void test_modes(void **state)
{
    fx *f = *state;
    host_up(f, 0, NULL);
    host_up(f, 1, NULL);
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_CLIENT;
    host_up(f, 2, &kc);
    kc.mode = DN_KAD_MODE_AUTO;
    kc.prefix = "/other";
    host_up(f, 3, &kc);
    linked(f, 0, 1);
    assert_true(dn_kad_serving(f->kad[0]));
    assert_false(dn_kad_serving(f->kad[2]));
    assert_false(serves(f->host[2], "/dmsnet/kad/1.0.0"));
    dn_conn *c = connect_to(f, 0, 2);
    /* The client does not serve, but its own lookups work. */
    op o = {0};
    connect_to(f, 2, 1);
    assert_int_equal(dn_kad_find_peer(f->kad[2], dn_host_peerid(f->host[0]), on_peer, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    op b = {0};
    assert_int_equal(dn_kad_bootstrap(f->kad[2], on_boot, &b), 0);
    RUN_UNTIL(f, b.calls, 5000);
    assert_int_equal(b.status, 0);
    assert_int_equal(b.n, 2); /* 0 and 1 answered: both in the client's table */
    run_for(f, 300);
    assert_false(in_table(f, 0, 2));
    assert_false(in_table(f, 1, 2));
    raw r;
    memset(&r, 0, sizeof r);
    assert_int_equal(dn_conn_open_stream(c, "/dmsnet/kad/1.0.0", raw_opened, &r), 0);
    RUN_UNTIL(f, r.closed, 5000);
    assert_int_equal(r.close_status, DN_ENEGOTIATE);

    /* Auto: serves once reachable, stops when not. */
    assert_string_equal(dn_kad_protocol(f->kad[3]), "/other/kad/1.0.0");
    assert_false(dn_kad_serving(f->kad[3]));
    assert_false(serves(f->host[3], "/other/kad/1.0.0"));
    dn_kad_set_reachable(f->kad[3], true);
    assert_true(dn_kad_serving(f->kad[3]));
    assert_true(serves(f->host[3], "/other/kad/1.0.0"));
    dn_kad_set_reachable(f->kad[3], false);
    assert_false(serves(f->host[3], "/other/kad/1.0.0"));
}

typedef struct saved {
    size_t tables, last_n, providers, records;
} saved;

static void sv_table(void *arg, const dn_peerid *peers, const dn_multiaddr *const *addrs,
                     const size_t *naddrs, size_t n)
{
    saved *s = arg;
    s->tables++;
    s->last_n = n;
    for (size_t i = 0; i < n; i++)
        assert_true(naddrs[i] >= 1 && addrs[i][0].len > 0);
}
static void sv_prov(void *arg, const uint8_t *key, size_t keylen, const dn_peerid *provider,
                    uint64_t expires_unix_ms)
{
    ((saved *)arg)->providers++;
}
static void sv_rec(void *arg, const uint8_t *key, size_t keylen, const uint8_t *value, size_t vlen,
                   uint64_t received_unix_ms)
{
    ((saved *)arg)->records++;
}

static void test_persist_restore(void **state)
{
    fx *f = *state;
    saved s = {0};
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_SERVER;
    kc.persist = (dn_kad_persist){
        .arg = &s, .save_table = sv_table, .save_provider = sv_prov, .save_record = sv_rec};
    host_up(f, 0, &kc);
    host_up(f, 1, NULL);
    host_up(f, 2, NULL);
    linked(f, 0, 1);
    RUN_UNTIL(f, s.tables >= 1, 3000);
    assert_int_equal(s.last_n, 1);
    op o = {0};
    assert_int_equal(dn_kad_put_signed(f->kad[1], "n", (const uint8_t *)"x", 1, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(s.records, 1);
    assert_int_equal(dn_kad_provide(f->kad[0], (const uint8_t *)"\x12\x01q", 3, on_put, &o), 0);
    assert_int_equal(s.providers, 1);
    /* 2 restores 0 as a candidate: bootstrap reaches it by its address. */
    dn_multiaddr a0;
    assert_true(dn_host_listen_addrs(f->host[0], &a0, 1) == 1);
    assert_int_equal(dn_kad_restore_peer(f->kad[2], dn_host_peerid(f->host[0]), &a0, 1), 0);
    assert_int_equal(dn_kad_table_size(f->kad[2]), 0);
    op b = {0};
    assert_int_equal(dn_kad_bootstrap(f->kad[2], on_boot, &b), 0);
    RUN_UNTIL(f, b.calls, 5000);
    assert_int_equal(b.status, 0);
    assert_true(in_table(f, 2, 0));
    assert_true(in_table(f, 2, 1)); /* named by 0, then answered */
    /* A restored provider record answers; an expired one is refused. */
    static const uint8_t cid[] = "\x12\x20zyxwvutszyxwvutszyxwvutszyxwvuts";
    assert_int_equal(dn_kad_restore_provider(f->kad[2], cid, 34, dn_host_peerid(f->host[1]), 1),
                     DN_ETIMEOUT);
    assert_int_equal(
        dn_kad_restore_provider(f->kad[2], cid, 34, dn_host_peerid(f->host[1]), UINT64_C(1) << 62),
        0);
    op p = {0};
    assert_int_equal(dn_kad_find_providers(f->kad[0], cid, 34, 0, on_prov, &p), 0);
    RUN_UNTIL(f, p.done, 5000);
    assert_int_equal(p.npeers, 1);
    /* A restored record is served. */
    uint8_t key[256];
    size_t keylen = dmsnet_key(f, 2, "r", key);
    dn_buf env = DN_BUF_INIT;
    assert_int_equal(dn__kad_record_seal(f->key[2], key, keylen, 5, (const uint8_t *)"rv", 2, &env),
                     0);
    assert_int_equal(dn_kad_restore_record(f->kad[2], key, keylen, env.data, env.len, 1),
                     DN_ETIMEOUT); /* received in 1970: long expired */
    assert_int_equal(dn_kad_restore_record(f->kad[2], key, keylen, env.data, env.len,
                                           (uint64_t)time(NULL) * 1000),
                     0);
    dn_buf_free(&env);
    op g = {0};
    assert_int_equal(dn_kad_get(f->kad[0], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, 0);
    assert_memory_equal(g.value, "rv", 2);
}

/* Replace host i's key by one whose DHT key has cpl 0 with host 0's
 * (the same bucket of 0's table). */
static void key_in_bucket0(fx *f, int i)
{
    dn__kad_key k0, ki;
    dn_peerid id0, idi;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(f->key[0]), &id0), 0);
    assert_int_equal(dn__kad_key_from_peerid(&id0, &k0), 0);
    for (;;) {
        assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(f->key[i]), &idi), 0);
        assert_int_equal(dn__kad_key_from_peerid(&idi, &ki), 0);
        if (dn__kad_cpl(&k0, &ki) == 0)
            return;
        dn_privkey_free(f->key[i]);
        assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &f->key[i]), 0);
    }
}

static void test_full_bucket(void **state)
{
    fx *f = *state;
    for (int i = 1; i < 4; i++)
        key_in_bucket0(f, i);
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_SERVER;
    kc.k = 1; /* one peer per bucket */
    kc.query_timeout_ms = 1000;
    host_up(f, 0, &kc);
    for (int i = 1; i < 4; i++)
        host_up(f, i, NULL);
    linked(f, 0, 1);
    /* Full: 1 is pinged, answers, stays; 2 waits outside. */
    connect_to(f, 2, 0);
    RUN_UNTIL(f, in_table(f, 2, 0), 5000);
    run_for(f, 300);
    assert_true(in_table(f, 0, 1));
    assert_false(in_table(f, 0, 2));
    /* 1 goes: the next newcomer's ping of 1 fails, 1 is stale, 3 takes
     * its place. */
    host_down(f, 1);
    RUN_UNTIL(f, f->close_cbs[1] == 1, 5000);
    connect_to(f, 3, 0);
    RUN_UNTIL(f, in_table(f, 0, 3), 5000);
    assert_false(in_table(f, 0, 1));
    assert_int_equal(dn_kad_table_size(f->kad[0]), 1);
}

static void test_refresh_and_expiry(void **state)
{
    fx *f = *state;
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_SERVER;
    kc.refresh_interval_ms = 1000;
    kc.record_ttl_ms = 1500;
    for (int i = 0; i < 3; i++)
        host_up(f, i, &kc);
    linked(f, 0, 1);
    linked(f, 2, 1);
    dn_kad_stats before, after;
    dn_kad_get_stats(f->kad[0], &before);
    run_for(f, 2500);
    dn_kad_get_stats(f->kad[0], &after);
    assert_true(after.requests_out > before.requests_out); /* refresh lookups, on their own */
    op o = {0};
    assert_int_equal(dn_kad_put_signed(f->kad[0], "ttl", (const uint8_t *)"t", 1, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.n, 2);
    uint8_t key[256];
    size_t keylen = dmsnet_key(f, 0, "ttl", key);
    op g = {0};
    assert_int_equal(dn_kad_get(f->kad[2], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, 0);
    run_for(f, 1600);
    g = (op){0};
    assert_int_equal(dn_kad_get(f->kad[2], key, keylen, on_value, &g), 0);
    RUN_UNTIL(f, g.calls, 5000);
    assert_int_equal(g.status, DN_ENOTFOUND); /* expired everywhere */
}

/* A peer whose address we hold is stale (it moved): find_peer takes the
 * address the DHT gives, and the dial by peer id reaches it. */
static void test_moved_peer(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 3; i++)
        host_up(f, i, NULL);
    linked(f, 0, 1);
    linked(f, 2, 1);
    /* A port nobody listens on, as 2's address in 0's peerstore. */
    uv_tcp_t probe;
    uv_tcp_init(&f->loop, &probe);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&probe, (struct sockaddr *)&sin, 0), 0);
    int len = sizeof sin;
    assert_int_equal(uv_tcp_getsockname(&probe, (struct sockaddr *)&sin, &len), 0);
    uv_close((uv_handle_t *)&probe, NULL);
    run_for(f, 1);
    char dead_s[64];
    snprintf(dead_s, sizeof dead_s, "/ip4/127.0.0.1/tcp/%u", ntohs(sin.sin_port));
    dn_multiaddr dead = ma(dead_s);
    const dn_peerid *id2 = dn_host_peerid(f->host[2]);
    dn_peer_update u = {.set_addrs = true, .addrs = &dead, .naddrs = 1};
    assert_int_equal(dn_host_peer_update(f->host[0], id2, &u), 0);
    assert_int_equal(dn_kad_route_dials(f->kad[0]), 0);
    op o = {0};
    assert_int_equal(dn_kad_find_peer(f->kad[0], id2, on_peer, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.n, 1);
    dial_rec d = {0};
    assert_int_equal(dn_host_dial_peer(f->host[0], id2, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls, 5000);
    assert_int_equal(d.status, 0);
}

static void test_bounds(void **state)
{
    fx *f = *state;
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_SERVER;
    kc.max_records_per_peer = 2;
    kc.max_providers_per_key = 1;
    host_up(f, 0, NULL);
    host_up(f, 1, &kc);
    host_up(f, 2, NULL);
    linked(f, 0, 1);
    linked(f, 2, 1);
    /* Records first put by one peer: 2 at 1; the third is refused there. */
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        op o = {0};
        assert_int_equal(
            dn_kad_put_signed(f->kad[0], names[i], (const uint8_t *)"v", 1, on_put, &o), 0);
        RUN_UNTIL(f, o.calls, 5000);
        assert_int_equal(o.status, 0);
        assert_int_equal(o.n, i < 2 ? 2 : 1); /* 1 and 2, then 2 alone */
    }
    dn_kad_stats st;
    dn_kad_get_stats(f->kad[1], &st);
    assert_int_equal(st.records_held, 2);
    /* An update of a record 1 holds is not a new one: taken. */
    op o = {0};
    assert_int_equal(dn_kad_put_signed(f->kad[0], "a", (const uint8_t *)"w", 1, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    assert_int_equal(o.n, 2);
    /* Providers per key: 1 at 1. */
    static const uint8_t cid[] = "\x12\x20"
                                 "providersprovidersprovidersprovi";
    o = (op){0};
    assert_int_equal(dn_kad_provide(f->kad[0], cid, 34, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    o = (op){0};
    assert_int_equal(dn_kad_provide(f->kad[2], cid, 34, on_put, &o), 0);
    RUN_UNTIL(f, o.calls, 5000);
    RUN_UNTIL(f, (dn_kad_get_stats(f->kad[1], &st), st.providers_held >= 1), 5000);
    run_for(f, 100);
    dn_kad_get_stats(f->kad[1], &st);
    assert_int_equal(st.providers_held, 1);

    /* Requests per stream: 1024 answered, the next one resets. */
    dn_conn *c = connect_to(f, 0, 1);
    raw r;
    raw_open(f, c, dn_kad_protocol(f->kad[1]), &r);
    dn__kad_msg *m = calloc(1, sizeof *m);
    dn__kad_msg_init(m);
    m->type = DN_KAD_PING;
    for (int i = 0; i < 1025; i++)
        raw_send(&r, m);
    free(m);
    RUN_UNTIL(f, r.closed, 5000);
    assert_int_equal(r.close_status, DN_ERESET);
    assert_int_equal(r.inlen, 1024 * 3); /* each answer: length 2, 0x08 0x05 */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_peer_and_route_dials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_pk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_dmsnet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_providers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_bucket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_peer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
