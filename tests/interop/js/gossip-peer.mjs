// A js-libp2p 3 node with @libp2p/gossipsub 17 for dmsnet's pubsub interop tests
// (tests/interop/pubsub_js.test.sh). The same role and the same output lines as the C tool
// tests/tools/pubsub_peer.c:
//
//   node gossip-peer.mjs [--listen MA] [--dial MA]... [--sub TOPIC]... [--heartbeat-ms N]
//        [--mesh D,Dlo,Dhi] [--pub TOPIC --count N [--data PREFIX] [--wait-peers N]
//        [--wait-mesh N] [--pub-delay-ms N] [--pub-interval-ms N]] [--hold SECONDS]
//
//   {"event":"listening","addrs":["<ma>/p2p/<id>"],"peerId":"<id>"}
//   {"event":"peers","topic":T,"peers":N,"mesh":M}          (when either changes)
//   {"event":"message","topic":T,"from":ID,"seqno":"N","data":"<base64>"}
//   {"event":"published","topic":T,"data":"<base64>","sent":N}
//
// --mesh 0,0,0 keeps the node out of every mesh (it grafts nobody and prunes every GRAFT from a
// peer it did not dial): it then receives only what its peers flood-publish to it and what it
// recovers with IWANT after their IHAVE gossip. The IP colocation penalty is off
// (IPColocationFactorWeight 0): every test peer is on 127.0.0.1.

import process from 'node:process'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function usage () {
  process.stderr.write('usage: node gossip-peer.mjs [--listen MA] [--dial MA]... [--sub TOPIC]... ' +
    '[--heartbeat-ms N] [--mesh D,Dlo,Dhi] [--pub TOPIC --count N [--data PREFIX] [--wait-peers N] ' +
    '[--wait-mesh N] [--pub-delay-ms N] [--pub-interval-ms N]] [--hold SECONDS]\n')
  process.exit(2)
}

const opts = {
  listen: [],
  dial: [],
  subs: [],
  heartbeatMs: 1000,
  mesh: null,
  pub: null,
  count: 0,
  data: 'msg',
  waitPeers: 1,
  waitMesh: 0,
  pubDelayMs: 0,
  pubIntervalMs: 50,
  hold: 0
}
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  const v = argv[i + 1]
  if (v === undefined) usage()
  i++
  switch (a) {
    case '--listen': opts.listen.push(v); break
    case '--dial': opts.dial.push(v); break
    case '--sub': opts.subs.push(v); break
    case '--heartbeat-ms': opts.heartbeatMs = Number(v); break
    case '--mesh': {
      const m = v.split(',').map(Number)
      if (m.length !== 3 || m.some(x => !Number.isInteger(x) || x < 0)) usage()
      opts.mesh = m
      break
    }
    case '--pub': opts.pub = v; break
    case '--count': opts.count = Number(v); break
    case '--data': opts.data = v; break
    case '--wait-peers': opts.waitPeers = Number(v); break
    case '--wait-mesh': opts.waitMesh = Number(v); break
    case '--pub-delay-ms': opts.pubDelayMs = Number(v); break
    case '--pub-interval-ms': opts.pubIntervalMs = Number(v); break
    case '--hold': opts.hold = Number(v); break
    default: usage()
  }
}
if (opts.listen.length === 0) opts.listen.push('/ip4/127.0.0.1/tcp/0')

const gsOpts = {
  emitSelf: false,
  allowPublishToZeroTopicPeers: false,
  heartbeatInterval: opts.heartbeatMs,
  scoreParams: { IPColocationFactorWeight: 0 }
}
if (opts.mesh != null) {
  const [D, Dlo, Dhi] = opts.mesh
  Object.assign(gsOpts, { D, Dlo, Dhi, Dscore: Math.min(D, 4), Dout: Math.min(2, Math.floor(D / 2)) })
}

const node = await createLibp2p({
  addresses: { listen: opts.listen },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { inboundConnectionThreshold: 10_000, maxConnections: 1024 },
  connectionMonitor: { enabled: false },
  services: {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub(gsOpts)
  }
})
const ps = node.services.pubsub
const b64 = (u8) => Buffer.from(u8).toString('base64')

ps.addEventListener('message', (evt) => {
  const m = evt.detail
  emit({
    event: 'message',
    topic: m.topic,
    from: m.type === 'signed' ? m.from.toString() : null,
    seqno: m.type === 'signed' ? m.sequenceNumber.toString() : null,
    data: b64(m.data)
  })
})
for (const t of opts.subs) ps.subscribe(t)

emit({ event: 'listening', addrs: node.getMultiaddrs().map(a => a.toString()), peerId: node.peerId.toString() })

for (const d of opts.dial) {
  node.dial(multiaddr(d)).catch((err) => {
    emit({ event: 'error', message: `dial ${d}: ${err.message}` })
    process.exit(1)
  })
}

const last = new Map()
let published = 0
let readyAt = 0
let lastPub = 0
let stopping = false

async function stop (code) {
  if (stopping) return
  stopping = true
  clearInterval(poll)
  await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 2000))])
  process.exit(code)
}

const poll = setInterval(() => {
  for (const t of opts.subs) {
    const peers = ps.getSubscribers(t).length
    const mesh = ps.getMeshPeers(t).length
    const key = `${peers},${mesh}`
    if (last.get(t) !== key) {
      last.set(t, key)
      emit({ event: 'peers', topic: t, peers, mesh })
    }
  }
  if (opts.pub == null || published >= opts.count) return
  const now = Date.now()
  if (readyAt === 0) {
    // js throws on publish until it has seen a subscriber: wait for them.
    if (ps.getSubscribers(opts.pub).length < opts.waitPeers) return
    if (ps.getMeshPeers(opts.pub).length < opts.waitMesh) return
    readyAt = now
  }
  if (now < readyAt + opts.pubDelayMs || (published > 0 && now < lastPub + opts.pubIntervalMs)) return
  published++
  lastPub = now
  const data = new TextEncoder().encode(`${opts.data}-${published}`)
  ps.publish(opts.pub, data).then((res) => {
    emit({ event: 'published', topic: opts.pub, data: b64(data), sent: res.recipients.length })
  }).catch((err) => {
    emit({ event: 'error', message: `publish: ${err.message}` })
    stop(1)
  })
}, 20)

process.on('SIGTERM', () => { stop(0) })
process.on('SIGINT', () => { stop(0) })
if (opts.hold > 0) setTimeout(() => { stop(0) }, opts.hold * 1000)
