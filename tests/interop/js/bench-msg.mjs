// The js-libp2p baseline of bench/msg_bench.c (issue 10's Messenger figures): the same two
// message types, the same framing, the same measurement, in js-libp2p 3 (noise, yamux, tcp).
//
//   node bench-msg.mjs serve [--listen MA]
//       prints {"event":"listening","addrs":[...]} and serves until SIGTERM.
//   node bench-msg.mjs run MA [--peers P] [-n N] [--window W] [--rr-n M] [--size B]
//       P js-libp2p nodes in this process, one connection each to MA; prints one JSON line
//       with the keys msg_bench prints (oneway_per_sec, rr_per_sec, rr_p50_us, rr_p99_us, ...).
//
// The Messenger framing (shared DESIGN.md "Messages:"): one stream per message, the protocol
// id is the type, an 8-byte little-endian length, then the payload, and the sender closes its
// write side. The receiver ends its side once it has the frame; for a request it first writes
// one framed reply (here: the payload it got). "/dmsnet/bench/send/1.0.0" is taken without a
// reply, "/dmsnet/bench/echo/1.0.0" is echoed. A send counts as done once the receiver has
// ended its side, as dn_messenger_send reports it.
//
// Either end can be dmsnet's msg_bench: that is the interop check run.sh makes once.

import { performance } from 'node:perf_hooks'
import process from 'node:process'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const SEND = '/dmsnet/bench/send/1.0.0'
const ECHO = '/dmsnet/bench/echo/1.0.0'
const MAX_PAYLOAD = 1 << 20
const STREAM_LIMIT = 1024
const WARMUP_PER_PEER = 4

function parseArgs (argv) {
  const opts = { mode: argv[0], listen: '/ip4/127.0.0.1/tcp/0', target: null, peers: 1, n: 20000, window: 16, rrN: 5000, size: 1024 }
  let i = 1
  if (opts.mode === 'run') opts.target = argv[i++]
  for (; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[++i]
    if (v === undefined) throw new Error(`${a} needs a value`)
    if (a === '--listen') opts.listen = v
    else if (a === '--peers') opts.peers = Number(v)
    else if (a === '-n') opts.n = Number(v)
    else if (a === '--window') opts.window = Number(v)
    else if (a === '--rr-n') opts.rrN = Number(v)
    else if (a === '--size') opts.size = Number(v)
    else throw new Error(`unknown option ${a}`)
  }
  if (opts.mode !== 'serve' && !(opts.mode === 'run' && opts.target)) {
    throw new Error('usage: bench-msg.mjs serve [--listen MA] | run MA [--peers P] [-n N] [--window W] [--rr-n M] [--size B]')
  }
  return opts
}

function makeNode (listen) {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT, maxEarlyStreams: 256 })],
    connectionManager: {
      // every client dials from 127.0.0.1, 100 of them at once
      inboundConnectionThreshold: 100_000,
      maxIncomingPendingConnections: 1024,
      maxConnections: 4096
    },
    connectionMonitor: { enabled: false }
  })
}

function frame (payload) {
  const f = new Uint8Array(8 + payload.byteLength)
  new DataView(f.buffer).setBigUint64(0, BigInt(payload.byteLength), true)
  f.set(payload, 8)
  return f
}

// Reads one frame from the stream: resolves with its payload once it is complete (with
// `untilEnd`, only once the remote has also ended its side). Rejects on a reset, an early end,
// bytes past the frame, or a length past MAX_PAYLOAD.
function readFrame (stream, untilEnd) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let have = 0
    let want = -1
    let payload = null
    let done = false
    const finish = (err, value) => {
      if (done) return
      done = true
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('end', onEnd)
      stream.removeEventListener('close', onClose)
      if (err) reject(err)
      else resolve(value)
    }
    const onMessage = (evt) => {
      const d = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      chunks.push(d)
      have += d.byteLength
      if (want < 0 && have >= 8) {
        const all = concat(chunks, have)
        chunks.length = 0
        chunks.push(all)
        const len = new DataView(all.buffer, all.byteOffset, 8).getBigUint64(0, true)
        if (len > BigInt(MAX_PAYLOAD)) return finish(new Error(`frame of ${len} bytes`))
        want = 8 + Number(len)
      }
      if (want >= 0 && have > want) return finish(new Error('bytes past the frame'))
      if (want >= 0 && have === want) {
        payload = concat(chunks, have).subarray(8)
        if (!untilEnd) finish(null, payload)
      }
    }
    const onEnd = () => {
      if (stream.status === 'reset' || stream.status === 'aborted') finish(new Error(`stream ${stream.status}`))
      else if (payload == null) finish(new Error(`stream ended after ${have} bytes of the frame`))
      else finish(null, payload)
    }
    const onClose = (evt) => {
      if (evt.error != null) finish(evt.error)
      else onEnd()
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('end', onEnd)
    stream.addEventListener('close', onClose)
    if (stream.readableEnded) queueMicrotask(onEnd)
  })
}

// Waits until the remote has ended its side (after our frame): resolves on a clean end.
function waitEnd (stream) {
  return new Promise((resolve, reject) => {
    const done = (err) => {
      stream.removeEventListener('end', onEnd)
      stream.removeEventListener('close', onClose)
      if (err) reject(err)
      else resolve()
    }
    const onEnd = () => done(stream.status === 'reset' || stream.status === 'aborted' ? new Error(`stream ${stream.status}`) : null)
    const onClose = (evt) => done(evt.error ?? null)
    // a listener for data too, so the stream is read (and its end seen)
    stream.addEventListener('message', () => {})
    stream.addEventListener('end', onEnd)
    stream.addEventListener('close', onClose)
    if (stream.readableEnded) queueMicrotask(onEnd)
  })
}

function concat (chunks, total) {
  if (chunks.length === 1) return chunks[0]
  const out = new Uint8Array(total)
  let off = 0
  for (const c of chunks) { out.set(c, off); off += c.byteLength }
  return out
}

let served = 0
let serveErrors = 0

async function serveOne (stream, echo) {
  try {
    const payload = await readFrame(stream, false)
    served++
    if (echo) stream.send(frame(payload))
    await stream.close()
  } catch (err) {
    serveErrors++
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

async function serve (opts) {
  const node = await makeNode([opts.listen])
  const limits = { maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT }
  await node.handle(SEND, (stream) => { serveOne(stream, false) }, limits)
  await node.handle(ECHO, (stream) => { serveOne(stream, true) }, limits)
  console.log(JSON.stringify({ event: 'listening', peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) }))
  const stop = async () => {
    process.stderr.write(`bench-msg: served ${served} messages, ${serveErrors} failed\n`)
    await node.stop()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

async function sendOne (conn, payload) {
  const s = await conn.newStream(SEND, { maxOutboundStreams: STREAM_LIMIT })
  const ended = waitEnd(s)
  s.send(frame(payload))
  // Done once the receiver has ended its side, as for dn_messenger_send; our own close (sent
  // right behind the frame) completes in the background.
  s.close().catch(() => {})
  await ended
}

async function requestOne (conn, payload) {
  const s = await conn.newStream(ECHO, { maxOutboundStreams: STREAM_LIMIT })
  const reply = readFrame(s, false)
  s.send(frame(payload))
  s.close().catch(() => {})
  const r = await reply // the round trip ends with the reply, as for dn_messenger_request
  if (r.byteLength !== payload.byteLength) throw new Error(`reply of ${r.byteLength} bytes`)
}

// total operations in all, `perPeer` in flight on each connection; returns seconds and, for
// requests, every round trip in microseconds.
async function phase (conns, total, perPeer, fn) {
  let started = 0
  const rtts = []
  const t0 = performance.now()
  const worker = async (conn) => {
    while (started < total) {
      started++
      const t = performance.now()
      await fn(conn)
      rtts.push((performance.now() - t) * 1000)
    }
  }
  const workers = []
  for (let w = 0; w < perPeer; w++) for (const c of conns) workers.push(worker(c))
  await Promise.all(workers)
  return { seconds: (performance.now() - t0) / 1000, rtts }
}

function pct (sorted, p) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}

async function run (opts) {
  const payload = new Uint8Array(opts.size).map(() => Math.floor(Math.random() * 256))
  const nodes = []
  for (let i = 0; i < opts.peers; i++) nodes.push(await makeNode([]))
  const ma = multiaddr(opts.target)
  const conns = []
  for (let i = 0; i < nodes.length; i += 32) {
    conns.push(...await Promise.all(nodes.slice(i, i + 32).map(n => n.dial(ma))))
  }
  await phase(conns, WARMUP_PER_PEER * conns.length, 1, c => requestOne(c, payload))
  const one = await phase(conns, opts.n, opts.window, c => sendOne(c, payload))
  const rr = await phase(conns, opts.rrN, 1, c => requestOne(c, payload))
  const sorted = rr.rtts.sort((a, b) => a - b)
  console.log(JSON.stringify({
    peers: opts.peers,
    size: opts.size,
    window: opts.window,
    oneway_n: opts.n,
    oneway_seconds: +one.seconds.toFixed(4),
    oneway_per_sec: +(opts.n / one.seconds).toFixed(1),
    rr_n: opts.rrN,
    rr_seconds: +rr.seconds.toFixed(4),
    rr_per_sec: +(opts.rrN / rr.seconds).toFixed(1),
    rr_p50_us: +pct(sorted, 50).toFixed(1),
    rr_p99_us: +pct(sorted, 99).toFixed(1)
  }))
  await Promise.all(nodes.map(n => n.stop()))
}

try {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.mode === 'serve') await serve(opts)
  else {
    await run(opts)
    process.exit(0)
  }
} catch (err) {
  process.stderr.write(`bench-msg: ${err.stack ?? err}\n`)
  process.exit(1)
}
