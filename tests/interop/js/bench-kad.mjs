// The js-libp2p baseline of `kad_bench serve` (issue 10's DHT figures): the same network and
// lookups with @libp2p/kad-dht 16 on libp2p 3, and a node whose GET_VALUE answers
// `kad_bench get` then measures (the same client for both servers).
//
//   node bench-kad.mjs [--nodes 50] [--degree 3] [--seed S] [--lookups L] [--value-size B]
//
// --nodes js-libp2p nodes in this process (tcp, noise, yamux, identify, ping, kad-dht in server
// mode with the protocol /dmsnet/kad/1.0.0, passthroughMapper since everything is on
// loopback), wired as kad_bench wires its hosts (xorshift32 from the same seed: node i dials
// one random node below it, then degree-1 more random ones). Every node looks itself up once
// the routing tables have their neighbours, then L lookups one at a time, each from a random
// node: getClosestPeers of a random key; the time to the end of the query, and its hops (the
// longest chain of answers: a peer from the routing table is 1, one learnt from a peer at hop h
// is h+1). Prints the keys kad_bench prints (lookup_*), then node 0 puts a record of B bytes
// under /dmsnet/<its id>/bench (a validator that accepts it: js knows no /dmsnet/ namespace),
// prints "records <node 0's address> <key>" and serves until SIGTERM.

import { performance } from 'node:perf_hooks'
import process from 'node:process'
import { randomBytes } from 'node:crypto'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

const PROTOCOL = '/dmsnet/kad/1.0.0'

function parseArgs (argv) {
  const o = { nodes: 50, degree: 3, seed: 1, lookups: 100, valueSize: 1024 }
  const names = { '--nodes': 'nodes', '--degree': 'degree', '--seed': 'seed', '--lookups': 'lookups', '--value-size': 'valueSize' }
  for (let i = 0; i < argv.length; i += 2) {
    const k = names[argv[i]]
    if (k == null || argv[i + 1] === undefined) throw new Error(`bad option ${argv[i]}`)
    o[k] = Number(argv[i + 1])
  }
  return o
}

function rng (seed) {
  let x = (seed >>> 0) || 1
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x
  }
}

function makeNode () {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 100_000, maxConnections: 1024, maxIncomingPendingConnections: 1024 },
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping({ maxInboundStreams: 1024, maxOutboundStreams: 1024 }),
      dht: kadDHT({
        protocol: PROTOCOL,
        clientMode: false,
        peerInfoMapper: passthroughMapper,
        validators: { dmsnet: async () => {} },
        selectors: { dmsnet: () => 0 },
        // kad_bench get keeps many requests in flight from each client
        maxInboundStreams: 1024,
        maxOutboundStreams: 1024
      })
    }
  })
}

const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

function pct (sorted, p) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}

// One getClosestPeers: its hops as described at the top.
async function lookup (dht, key) {
  const depth = new Map()
  let hops = 0
  for await (const ev of dht.getClosestPeers(key)) {
    if (ev.name === 'SEND_QUERY') {
      const id = ev.to.toString()
      if (!depth.has(id)) depth.set(id, 1)
    } else if (ev.name === 'PEER_RESPONSE') {
      const d = depth.get(ev.from.toString()) ?? 1
      if (d > hops) hops = d
      for (const p of ev.closer) {
        const id = p.id.toString()
        if (!depth.has(id)) depth.set(id, d + 1)
      }
    }
  }
  return hops
}

async function main () {
  const o = parseArgs(process.argv.slice(2))
  const nodes = []
  for (let i = 0; i < o.nodes; i++) nodes.push(await makeNode())
  const r = rng(o.seed)
  const dials = []
  for (let i = 0; i < o.nodes; i++) {
    for (let e = 0; e < o.degree; e++) {
      const j = e === 0 ? (i > 0 ? r() % i : i) : r() % o.nodes
      if (j === i) continue
      dials.push(nodes[i].dial(nodes[j].getMultiaddrs()[0]))
    }
  }
  await Promise.all(dials)
  const dhts = nodes.map(n => n.services.dht)
  // Admission (identify, then a ping) before the self lookups.
  const end = Date.now() + 30000
  while (!dhts.every(d => d.routingTable.size > 0)) {
    if (Date.now() > end) throw new Error('routing tables still empty after 30 s')
    await sleep(100)
  }
  await sleep(1000)
  await Promise.all(dhts.map((d, i) => lookup(d, nodes[i].peerId.toMultihash().bytes)))
  await sleep(1000)
  const table = dhts.reduce((s, d) => s + d.routingTable.size, 0) / dhts.length

  const ms = []
  const hops = []
  for (let q = 0; q < o.lookups; q++) {
    const a = r() % o.nodes
    const t0 = performance.now()
    hops.push(await lookup(dhts[a], randomBytes(32)))
    ms.push(performance.now() - t0)
  }
  ms.sort((x, y) => x - y)
  hops.sort((x, y) => x - y)
  console.log(JSON.stringify({
    impl: 'js',
    nodes: o.nodes,
    table_mean: +table.toFixed(1),
    lookup_n: o.lookups,
    lookup_hops_p50: pct(hops, 50),
    lookup_hops_max: pct(hops, 100),
    lookup_p50_ms: +pct(ms, 50).toFixed(3),
    lookup_p99_ms: +pct(ms, 99).toFixed(3)
  }))

  const key = `/dmsnet/${nodes[0].peerId.toString()}/bench`
  // eslint-disable-next-line no-unused-vars
  for await (const _ of dhts[0].put(new TextEncoder().encode(key), randomBytes(o.valueSize))) { /* events */ }
  console.log(`records ${nodes[0].getMultiaddrs()[0].toString()} ${key}`)
  const stop = async () => {
    await Promise.all(nodes.map(n => n.stop()))
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

try {
  await main()
} catch (err) {
  process.stderr.write(`bench-kad: ${err.stack ?? err}\n`)
  process.exit(1)
}
