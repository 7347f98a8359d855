// The js-libp2p baseline of bench/gossip_bench.c (issue 10's gossipsub figures): the same
// network, the same traffic, the same measurement, with @libp2p/gossipsub 17 on libp2p 3.
//
//   node bench-gossip.mjs [--nodes 30] [--degree 3] [--seed S] [--publishers 1]
//                         [--size B] [-n N] [--window W] [--lat-n M] [--mem-topics T]
//
// --nodes js-libp2p nodes in this process (tcp, noise, yamux, identify, gossipsub), wired
// the way gossip_bench wires its hosts (the same xorshift32 from the same seed, so the same
// graph): node i dials one random node below it (so the graph is connected), then every node
// dials degree-1 more random ones. All subscribe to one topic. Once every node sees each
// neighbour on the topic and has a mesh:
//   - throughput: N messages of B bytes, published round-robin by the first P nodes, at most W
//     not yet delivered to every other node at a time; deliveries/s = N x (nodes-1) / time;
//   - latency: M messages, one at a time; the delay from publish() to each node's delivery.
// -> {"impl":"js","nodes":..,"size":B,"n":N,"msgs_per_sec":..,"deliveries_per_sec":..,
//     "lat_n":M,"lat_p50_ms":..,"lat_p99_ms":..,"complete":true}
// With --mem-topics T (and no traffic): every node subscribes to T more topics; the process's
// RSS before and after (GC run first, subscriptions seen by every neighbour and two heartbeats
// passed), per subscribed topic per node: {"mem_topics":T,"per_topic_per_node_bytes":..,...}.
//
// The js pitfalls on loopback (shared DESIGN.md): every node is on 127.0.0.1, so the
// IP-colocation score is switched off (IPColocationFactorWeight 0), publishing waits until the
// subscriptions are known, and allowPublishToZeroTopicPeers keeps a publish that races a
// subscription from throwing.

import { performance } from 'node:perf_hooks'
import process from 'node:process'
import v8 from 'node:v8'
import vm from 'node:vm'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

const TOPIC = '/dmsnet/bench/1.0.0'
const STALL_MS = 20000 // no delivery for this long: the phase ends incomplete

function parseArgs (argv) {
  const o = { nodes: 30, degree: 3, seed: 1, publishers: 1, size: 1024, n: 500, window: 8, latN: 100, memTopics: 0 }
  const names = { '--nodes': 'nodes', '--degree': 'degree', '--seed': 'seed', '--publishers': 'publishers', '--size': 'size', '-n': 'n', '--window': 'window', '--lat-n': 'latN', '--mem-topics': 'memTopics' }
  for (let i = 0; i < argv.length; i += 2) {
    const k = names[argv[i]]
    if (k == null || argv[i + 1] === undefined) throw new Error(`bad option ${argv[i]}`)
    o[k] = Number(argv[i + 1])
  }
  return o
}

// xorshift32, as gossip_bench.c: the same seed gives the same graph.
function rng (seed) {
  let x = (seed >>> 0) || 1
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x
  }
}

function graph (n, degree, seed) {
  const r = rng(seed)
  const edges = []
  const has = new Set()
  const add = (a, b) => {
    const k = a < b ? `${a},${b}` : `${b},${a}`
    if (a === b || has.has(k)) return
    has.add(k)
    edges.push([a, b]) // a dials b
  }
  for (let i = 1; i < n; i++) add(i, r() % i)
  for (let i = 0; i < n; i++) for (let e = 1; e < degree; e++) add(i, r() % n)
  return edges
}

function makeNode () {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 100_000, maxConnections: 1024 },
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        scoreParams: { IPColocationFactorWeight: 0 },
        // one benchmark topic and, for memory, many: keep js from dropping them
        maxTopicBytesPerPeer: 64 * 1024 * 1024
      })
    }
  })
}

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

async function waitUntil (what, fn, ms) {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

function pct (sorted, p) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}

function rssKiB () {
  return Math.round(process.memoryUsage().rss / 1024)
}

async function main () {
  const o = parseArgs(process.argv.slice(2))
  const nodes = []
  for (let i = 0; i < o.nodes; i++) nodes.push(await makeNode())
  const edges = graph(o.nodes, o.degree, o.seed)
  const neighbours = nodes.map(() => new Set())
  for (const [a, b] of edges) {
    await nodes[a].dial(nodes[b].getMultiaddrs()[0])
    neighbours[a].add(nodes[b].peerId.toString())
    neighbours[b].add(nodes[a].peerId.toString())
  }
  const ps = nodes.map(n => n.services.pubsub)
  // Subscriptions known both ways: every node lists each neighbour as subscribed to topic.
  const topicKnown = (topic) => ps.every((p, i) => {
    const subs = new Set(p.getSubscribers(topic).map(String))
    for (const nb of neighbours[i]) if (!subs.has(nb)) return false
    return true
  })

  if (o.memTopics > 0) {
    for (const p of ps) p.subscribe(TOPIC)
    await waitUntil('subscriptions', () => topicKnown(TOPIC), 30000)
    await sleep(2500) // two heartbeats: meshes formed
    const gc = globalThis.gc ?? (v8.setFlagsFromString('--expose-gc'), vm.runInNewContext('gc'))
    gc(); gc()
    const before = rssKiB()
    const topics = []
    for (let t = 0; t < o.memTopics; t++) topics.push(`/dmsnet/bench/mem/${t}`)
    for (const p of ps) for (const t of topics) p.subscribe(t)
    await waitUntil('the last topic\'s subscriptions', () => topicKnown(topics[topics.length - 1]), 60000)
    await sleep(2500)
    gc(); gc()
    const after = rssKiB()
    const links = neighbours.reduce((s, n) => s + n.size, 0)
    console.log(JSON.stringify({
      impl: 'js',
      nodes: o.nodes,
      mem_topics: o.memTopics,
      rss_before_kib: before,
      rss_after_kib: after,
      per_topic_per_node_bytes: +((after - before) * 1024 / (o.nodes * o.memTopics)).toFixed(1),
      per_topic_per_link_bytes: +((after - before) * 1024 / (links * o.memTopics)).toFixed(1)
    }))
    await Promise.all(nodes.map(n => n.stop()))
    return
  }

  // Deliveries: per message index, how many nodes got it and when it was published.
  const want = o.nodes - 1
  let got = []
  let tPub = []
  let lat = null // latency phase: every delivery's delay
  let onComplete = null
  let lastDelivery = 0
  let phaseNo = 0
  ps.forEach((p) => {
    p.addEventListener('message', (evt) => {
      const m = evt.detail
      if (m.topic !== TOPIC || m.data.byteLength < 8) return
      const dv = new DataView(m.data.buffer, m.data.byteOffset, 8)
      const idx = dv.getUint32(0, true)
      if (dv.getUint32(4, true) !== phaseNo || idx >= got.length) return // a late one
      const now = performance.now()
      lastDelivery = now
      if (lat != null) lat.push(now - tPub[idx])
      if (++got[idx] === want) onComplete?.(idx)
    })
  })
  for (const p of ps) p.subscribe(TOPIC)
  await waitUntil('subscriptions', () => topicKnown(TOPIC), 30000)
  await waitUntil('meshes', () => ps.every(p => p.getMeshPeers(TOPIC).length > 0), 30000)
  await sleep(1500) // a heartbeat more: meshes grafted both ways

  const payload = new Uint8Array(Math.max(8, o.size)).fill(0x5a)
  // Publish count messages, window at a time; resolves with the seconds from the first
  // publish to the last full delivery (or null when the network stalled).
  const phase = (count, window) => new Promise((resolve) => {
    got = new Array(count).fill(0)
    tPub = new Array(count).fill(0)
    phaseNo++
    let next = 0
    let done = 0
    const t0 = performance.now()
    lastDelivery = t0
    const publishNext = () => {
      if (next >= count) return
      const idx = next++
      const data = new Uint8Array(payload)
      new DataView(data.buffer).setUint32(0, idx, true)
      new DataView(data.buffer).setUint32(4, phaseNo, true)
      tPub[idx] = performance.now()
      ps[idx % o.publishers].publish(TOPIC, data).catch((err) => {
        process.stderr.write(`bench-gossip: publish: ${err.message}\n`)
      })
    }
    const stall = setInterval(() => {
      if (performance.now() - lastDelivery > STALL_MS) {
        clearInterval(stall)
        onComplete = null
        resolve(null)
      }
    }, 500)
    onComplete = () => {
      if (++done === count) {
        clearInterval(stall)
        onComplete = null
        resolve((performance.now() - t0) / 1000)
      } else publishNext()
    }
    for (let w = 0; w < window; w++) publishNext()
  })

  // Warm-up: a few messages through every path.
  await phase(Math.min(20, o.n), 1)
  const secs = await phase(o.n, o.window)
  const delivered = got.reduce((s, g) => s + g, 0)
  lat = []
  const latSecs = await phase(o.latN, 1)
  const sorted = lat.sort((a, b) => a - b)
  console.log(JSON.stringify({
    impl: 'js',
    nodes: o.nodes,
    links: edges.length,
    publishers: o.publishers,
    size: o.size,
    n: o.n,
    window: o.window,
    seconds: secs == null ? null : +secs.toFixed(4),
    msgs_per_sec: secs == null ? null : +(o.n / secs).toFixed(1),
    deliveries_per_sec: secs == null ? null : +(o.n * want / secs).toFixed(1),
    delivered_fraction: +(delivered / (o.n * want)).toFixed(4),
    lat_n: o.latN,
    lat_p50_ms: +pct(sorted, 50).toFixed(3),
    lat_p99_ms: +pct(sorted, 99).toFixed(3),
    complete: secs != null && latSecs != null
  }))
  await Promise.all(nodes.map(n => n.stop()))
  if (secs == null || latSecs == null) process.exitCode = 1
}

try {
  await main()
  process.exit(process.exitCode ?? 0)
} catch (err) {
  process.stderr.write(`bench-gossip: ${err.stack ?? err}\n`)
  process.exit(1)
}
