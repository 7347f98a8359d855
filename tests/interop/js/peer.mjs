// A controllable js-libp2p 3 peer for dmsnet's interop tests.
//
// It listens (default) or dials (--dial), and reports everything it sees as one JSON object per
// line on stdout, so shell tests can wait for lines and compare fields.  See README.md beside
// this file for the options and the line formats.
//
// The perf protocol (/perf/1.0.0, libp2p/specs perf/perf.md) is implemented here because the
// @libp2p/perf package is not available to us:
//   client: u64 big-endian "bytes I want back", then its upload, then closes its write side;
//   server: reads the u64, reads until EOF, only then sends the requested bytes and closes.

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import process from 'node:process'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromProtobuf, publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const PERF_PROTOCOL = '/perf/1.0.0'
const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const PING_LENGTH = 32
// The interop tests open up to a few hundred streams per protocol on one connection; js-libp2p's
// defaults (32 inbound / 64 outbound per protocol) are far below that.
const STREAM_LIMIT = 1024
// One reused buffer for every perf write: the content does not matter, only the byte count.
const CHUNK_SIZE = 64 * 1024
const CHUNK = new Uint8Array(CHUNK_SIZE).fill(0x5a)
const WRITE_HIGH_WATER = 4 * 1024 * 1024

// ---------------------------------------------------------------------------------------------
// Work around a bug in xsalsa20 1.2.0, the XSalsa20 that @libp2p/pnet uses (README.md, "pnet:
// the xsalsa20 memory bug"). All its instances share one WebAssembly.Memory (10 pages = 640 KiB
// at first, at most 1000 pages = 62.5 MiB), but each keeps its own Uint8Array view of it. A
// grow detaches every other view (length 0), and an instance whose view is detached then grows
// the memory by its whole chunk again instead of by what is missing. So once one chunk is larger
// than the memory (pnet xors all of its pending writes as one chunk: MiBs on a bulk upload),
// each switch between a connection's send and receive instance leaks 1-2 pages, and after ~330
// switches (about one per yamux frame received) pnet throws "RangeError:
// WebAssembly.Memory.grow(): Maximum memory size exceeded" and the connection dies.
//
// The tests are about dmsnet, so peer.mjs gives a detached instance a fresh view before each
// chunk, which is what the library should do itself: the memory then grows only when a chunk
// needs more than there is, by what is missing. Everything else in pnet runs unmodified.
// PEER_PNET_WORKAROUND=0 leaves the bug in place. Either way the chunks are counted, so the
// `pnet` line at exit can say whether the memory grew beyond what the largest chunk needs.
const XSalsa20 = createRequire(import.meta.resolve('@libp2p/pnet'))('xsalsa20')
const WASM_PAGE = 65536
const WASM_INITIAL_PAGES = 10 // xsalsa20.wat: (memory (export "memory") 10 1000)
const pnetStats = { largestChunk: 0, refreshedViews: 0 }

// A view of the memory as it is now: a new instance takes one, finalize() returns its slot.
function freshMemoryView () {
  const x = new XSalsa20(new Uint8Array(XSalsa20.NONCEBYTES), new Uint8Array(XSalsa20.KEYBYTES))
  const view = x._xor._memory
  x.finalize()
  return view
}

function hookXSalsa20 (fixDetachedViews) {
  const probe = new XSalsa20(new Uint8Array(XSalsa20.NONCEBYTES), new Uint8Array(XSalsa20.KEYBYTES))
  const impl = probe._xor
  probe.finalize()
  if (!(impl?._memory instanceof Uint8Array) || typeof impl.update !== 'function') {
    throw new Error('xsalsa20 is not the 1.2.0 WebAssembly build this workaround knows (README.md)')
  }
  const proto = Object.getPrototypeOf(impl)
  const update = proto.update
  proto.update = function (input, output) {
    if (fixDetachedViews && this._memory.byteLength === 0) {
      this._memory = freshMemoryView()
      pnetStats.refreshedViews++
    }
    if (input.length > pnetStats.largestChunk) pnetStats.largestChunk = input.length
    return update.call(this, input, output)
  }
}

// The `pnet` line: how large the memory is, and whether that is more than the largest chunk
// explains (plus a page for the instance slots and a chunk's offset): with the bug, ~1000 pages.
function pnetLine (workaround) {
  const pages = freshMemoryView().byteLength / WASM_PAGE
  const needed = Math.max(WASM_INITIAL_PAGES, Math.ceil(pnetStats.largestChunk / WASM_PAGE) + 2)
  return { event: 'pnet', workaround, pages, neededPages: needed, ...pnetStats, leaked: pages > needed }
}

// ---------------------------------------------------------------------------------------------
// Output: one JSON object per line.  stdout writes to files and pipes are synchronous on Linux,
// so a line is out before the next statement runs (and before process.exit).

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function errMessage (err) {
  if (err == null) return 'unknown error'
  const name = err.name != null && err.name !== 'Error' ? `${err.name}: ` : ''
  return `${name}${err.message ?? String(err)}`
}

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE = `usage: node peer.mjs [--listen MA]... [--psk FILE] [--key FILE] [--agent STRING]
       [--perf-server] [--monitor SECONDS] [--no-auto-identify] [--no-pnet-workaround]
       [--dial MA [--identify] [--ping N [--ping-new-stream]]
                  [--perf-upload BYTES --perf-download BYTES [--streams N]]]
       [--hold SECONDS] [--timeout SECONDS]`

function parseArgs (argv) {
  const opts = {
    listen: [],
    psk: null,
    key: null,
    agent: 'js-libp2p-interop',
    perfServer: false,
    monitor: 0,
    autoIdentify: true,
    dial: null,
    identify: false,
    ping: 0,
    pingNewStream: false,
    perfUpload: null,
    perfDownload: null,
    streams: 1,
    hold: null,
    timeout: 30,
    // PEER_PNET_WORKAROUND=0 turns it off for a whole test run (README.md)
    pnetWorkaround: process.env.PEER_PNET_WORKAROUND !== '0'
  }
  const need = (i, name) => {
    if (i + 1 >= argv.length) throw new Error(`${name} needs a value`)
    return argv[i + 1]
  }
  const num = (v, name, { integer = true, min = 0 } = {}) => {
    const n = Number(v)
    if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n)) || n < min) {
      throw new Error(`${name}: bad number '${v}'`)
    }
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    switch (a) {
      case '--listen': opts.listen.push(need(i, a)); i++; break
      case '--psk': opts.psk = need(i, a); i++; break
      case '--key': opts.key = need(i, a); i++; break
      case '--agent': opts.agent = need(i, a); i++; break
      case '--perf-server': opts.perfServer = true; break
      case '--monitor': opts.monitor = num(need(i, a), a, { integer: false }); i++; break
      case '--no-auto-identify': opts.autoIdentify = false; break
      case '--no-pnet-workaround': opts.pnetWorkaround = false; break
      case '--dial': opts.dial = need(i, a); i++; break
      case '--identify': opts.identify = true; break
      case '--ping': opts.ping = num(need(i, a), a, { min: 1 }); i++; break
      case '--ping-new-stream': opts.pingNewStream = true; break
      case '--perf-upload': opts.perfUpload = num(need(i, a), a); i++; break
      case '--perf-download': opts.perfDownload = num(need(i, a), a); i++; break
      case '--streams': opts.streams = num(need(i, a), a, { min: 1 }); i++; break
      case '--hold': opts.hold = num(need(i, a), a, { integer: false }); i++; break
      case '--timeout': opts.timeout = num(need(i, a), a, { integer: false, min: 0.001 }); i++; break
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0); break
      default: throw new Error(`unknown argument '${a}'\n${USAGE}`)
    }
  }
  if ((opts.perfUpload == null) !== (opts.perfDownload == null)) {
    throw new Error('--perf-upload and --perf-download go together')
  }
  if (opts.dial == null && (opts.identify || opts.ping > 0 || opts.perfUpload != null)) {
    throw new Error('--identify, --ping and --perf-* need --dial')
  }
  if (opts.dial == null && opts.listen.length === 0) opts.listen.push('/ip4/127.0.0.1/tcp/0')
  return opts
}

// ---------------------------------------------------------------------------------------------
// Stream helpers for the libp2p 3 message-stream API (send()/'message' events, no it-pipe).

// Deliver every received chunk to onData until the remote closes its write side.  Resolves on
// a clean end, rejects if the stream is reset or aborted.  Attaching a 'message' listener
// flushes anything that arrived before the handler ran, then 'end' fires once the read buffer
// is empty and the remote has closed; `readableEnded` covers an end that already happened.
function readUntilEnd (stream, onData, signal) {
  return new Promise((resolve, reject) => {
    let done = false
    const finish = (err) => {
      if (done) return
      done = true
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('end', onEnd)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      if (err != null) reject(err)
      else resolve()
    }
    const onMessage = (evt) => {
      try {
        onData(evt.data)
      } catch (err) {
        stream.abort(err)
        finish(err)
      }
    }
    // 'end' also fires when the remote resets the stream: only a clean end counts.
    const onEnd = () => {
      if (stream.status === 'reset' || stream.status === 'aborted') finish(new Error(`stream ${stream.status}`))
      else finish()
    }
    const onClose = (evt) => {
      if (evt.error != null) finish(evt.error)
      else if (stream.readableEnded) finish()
      else finish(new Error('stream closed before the remote finished writing'))
    }
    const onAbort = () => finish(signal.reason ?? new Error('aborted'))
    stream.addEventListener('message', onMessage)
    stream.addEventListener('end', onEnd)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
    if (stream.readableEnded) queueMicrotask(onEnd)
  })
}

// Wait until the stream accepts writes again. Not stream.onDrain(): in this libp2p version it
// keeps its first resolved promise, so after one drain it never waits again and every later
// write piles up in memory (measured: GBs queued on an endless perf download).
function waitDrain (stream, signal) {
  if (!stream.writableNeedsDrain) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = () => { cleanup(); resolve() }
    const onClose = (evt) => { cleanup(); reject(evt.error ?? new Error('stream closed while waiting to write')) }
    const onAbort = () => { cleanup(); reject(signal.reason ?? new Error('aborted')) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}

// Write `total` bytes (Infinity: until the stream can no longer be written) with backpressure.
async function sendBytes (stream, total, signal) {
  let left = total
  while (left > 0) {
    const n = left >= CHUNK_SIZE ? CHUNK_SIZE : left
    const ok = stream.send(n === CHUNK_SIZE ? CHUNK : CHUNK.subarray(0, n))
    left -= n
    // Keep up to WRITE_HIGH_WATER queued behind a full window, so a window update finds data
    // ready to go instead of waiting for this loop to be scheduled; beyond that, wait.
    while (!ok && stream.writableNeedsDrain && stream.writeBufferLength >= WRITE_HIGH_WATER) {
      await waitDrain(stream, signal)
    }
  }
}

// A received chunk as one Uint8Array (Uint8ArrayList.subarray() concatenates; only used for
// small reads: the perf header and ping payloads).
function asBytes (data) {
  return data instanceof Uint8Array ? data : data.subarray()
}

// ---------------------------------------------------------------------------------------------
// perf server

function u64ToNumber (bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, false)
  // Anything beyond 2^53 is "send until the client stops reading" (the timer-based variant).
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v)
}

async function handlePerf (stream, connection) {
  const signal = AbortSignal.timeout(10 * 60 * 1000)
  const header = new Uint8Array(8)
  let headerLen = 0
  let received = 0
  try {
    await readUntilEnd(stream, (data) => {
      let bytes = data.byteLength
      if (headerLen < 8) {
        const chunk = asBytes(data)
        const take = Math.min(8 - headerLen, chunk.byteLength)
        header.set(chunk.subarray(0, take), headerLen)
        headerLen += take
        bytes -= take
      }
      received += bytes
    }, signal)
    if (headerLen < 8) throw new Error(`perf: stream ended after ${headerLen} of 8 header bytes`)
    const want = u64ToNumber(header)
    await sendBytes(stream, want, signal)
    await stream.close({ signal })
    emit({ event: 'perf:served', peerId: connection.remotePeer.toString(), received, sent: want })
  } catch (err) {
    emit({ event: 'perf:error', peerId: connection.remotePeer.toString(), received, message: errMessage(err) })
    if (process.env.PEER_DEBUG) process.stderr.write(`${err.stack}\n`)
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
}

// ---------------------------------------------------------------------------------------------
// perf client

async function perfOne (conn, upload, download, t0, signal) {
  const stream = await conn.newStream(PERF_PROTOCOL, { signal, maxOutboundStreams: STREAM_LIMIT })
  let got = 0
  let tFirst = null
  const reading = readUntilEnd(stream, (data) => {
    if (tFirst == null) tFirst = performance.now()
    got += data.byteLength
    if (got > download) throw new Error(`perf: server sent more than the ${download} bytes asked for`)
  }, signal)
  // Don't leave the read promise unhandled while we are still writing.
  reading.catch(() => {})
  const header = new Uint8Array(8)
  new DataView(header.buffer).setBigUint64(0, BigInt(download), false)
  stream.send(header)
  await sendBytes(stream, upload, signal)
  await stream.close({ signal })
  await reading
  const tEnd = performance.now()
  if (got !== download) throw new Error(`perf: got ${got} of ${download} bytes`)
  // The server only answers after it has read our EOF, so the first byte back marks the end of
  // the upload as seen by the server; with nothing to download the end of stream does.
  const tUp = download > 0 && tFirst != null ? tFirst : tEnd
  return { tUp: tUp - t0, tEnd: tEnd - t0 }
}

async function runPerf (conn, opts, signal) {
  const { perfUpload: up, perfDownload: down, streams } = opts
  const t0 = performance.now()
  const results = await Promise.all(
    Array.from({ length: streams }, () => perfOne(conn, up, down, t0, signal)))
  const total = (performance.now() - t0) / 1000
  const upSeconds = Math.max(...results.map(r => r.tUp)) / 1000
  const downStart = Math.min(...results.map(r => r.tUp)) / 1000
  const downSeconds = Math.max(...results.map(r => r.tEnd)) / 1000 - downStart
  const gbps = (bytes, s) => (bytes > 0 && s > 0 ? +(bytes * 8 / s / 1e9).toFixed(4) : null)
  emit({
    event: 'perf',
    streams,
    upload: up * streams,
    download: down * streams,
    seconds: +total.toFixed(6),
    uploadSeconds: +upSeconds.toFixed(6),
    downloadSeconds: +downSeconds.toFixed(6),
    uploadGbps: gbps(up * streams, upSeconds),
    downloadGbps: gbps(down * streams, downSeconds)
  })
}

// ---------------------------------------------------------------------------------------------
// ping client: N round trips on one stream (what go/rust do, and it exercises the server's
// echo loop), or with --ping-new-stream js-libp2p's own ping service (one stream per ping).

async function runPing (node, conn, count, newStream, signal) {
  if (newStream) {
    for (let seq = 1; seq <= count; seq++) {
      const rtt = await node.services.ping.ping(conn.remoteAddr, { signal })
      emit({ event: 'ping', seq, rtt })
    }
    return
  }
  const stream = await conn.newStream(PING_PROTOCOL, { signal, maxOutboundStreams: STREAM_LIMIT })
  const pending = []
  let waiter = null
  let failure = null
  let avail = 0
  const take = () => {
    // Assemble exactly PING_LENGTH bytes from the front of the queue.
    const out = new Uint8Array(PING_LENGTH)
    let off = 0
    while (off < PING_LENGTH) {
      const head = pending[0]
      const n = Math.min(head.byteLength, PING_LENGTH - off)
      out.set(head.subarray(0, n), off)
      off += n
      if (n === head.byteLength) pending.shift()
      else pending[0] = head.subarray(n)
    }
    avail -= PING_LENGTH
    return out
  }
  const reading = readUntilEnd(stream, (data) => {
    const b = asBytes(data)
    pending.push(b)
    avail += b.byteLength
    if (waiter != null && avail >= PING_LENGTH) { const w = waiter; waiter = null; w.resolve() }
  }, signal)
  reading.then(() => {
    failure = failure ?? new Error('ping: remote closed the stream')
    waiter?.reject(failure)
  }, (err) => { failure = err; waiter?.reject(err) })
  for (let seq = 1; seq <= count; seq++) {
    const payload = crypto.getRandomValues(new Uint8Array(PING_LENGTH))
    const t = performance.now()
    stream.send(payload)
    if (avail < PING_LENGTH) {
      if (failure != null) throw failure
      waiter = Promise.withResolvers()
      await waiter.promise
    }
    const rtt = performance.now() - t
    const echo = take()
    if (!echo.every((v, i) => v === payload[i])) throw new Error(`ping ${seq}: echo differs from payload`)
    emit({ event: 'ping', seq, rtt: +rtt.toFixed(3) })
  }
  if (avail !== 0) throw new Error(`ping: ${avail} unexpected extra bytes`)
  await stream.close({ signal })
  // The server echoes until our EOF and then closes its side; wait for that (briefly).
  await Promise.race([reading.catch(() => {}), new Promise(resolve => setTimeout(resolve, 1000).unref())])
}

// ---------------------------------------------------------------------------------------------
// identify

function identifyLine (result) {
  let publicKeyMatchesPeerId = false
  let publicKeyType = null
  try {
    if (result.publicKey != null) {
      const key = publicKeyFromProtobuf(result.publicKey)
      publicKeyType = key.type
      publicKeyMatchesPeerId = peerIdFromPublicKey(key).equals(result.peerId)
    }
  } catch {
    publicKeyMatchesPeerId = false
  }
  return {
    event: 'peer:identify',
    peerId: result.peerId.toString(),
    agentVersion: result.agentVersion ?? null,
    protocolVersion: result.protocolVersion ?? null,
    protocols: result.protocols,
    listenAddrs: result.listenAddrs.map(a => a.toString()),
    observedAddr: result.observedAddr?.toString() ?? null,
    signedPeerRecord: result.signedPeerRecord != null
      ? { seq: result.signedPeerRecord.seq.toString(), addrs: result.signedPeerRecord.addresses.map(a => a.toString()) }
      : null,
    publicKeyType,
    publicKeyMatchesPeerId
  }
}

// ---------------------------------------------------------------------------------------------
// the node

async function makeNode (opts) {
  const privateKey = opts.key != null
    ? privateKeyFromProtobuf(new Uint8Array(readFileSync(opts.key)))
    : await generateKeyPair('Ed25519')
  const config = {
    privateKey,
    nodeInfo: { name: 'js-libp2p-interop', version: '1', userAgent: opts.agent },
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({
      maxInboundStreams: STREAM_LIMIT,
      maxOutboundStreams: STREAM_LIMIT,
      // a peer may open its streams right after the upgrade, before libp2p listens for them
      maxEarlyStreams: 256
    })],
    connectionManager: {
      // the tests connect many times per second from 127.0.0.1 (good and bad peers)
      inboundConnectionThreshold: 10_000,
      maxIncomingPendingConnections: 256,
      maxConnections: 1024
    },
    // js-libp2p pings every connection every 10 s by default and aborts it when a ping fails;
    // off unless asked for, so the tests are deterministic.
    connectionMonitor: opts.monitor > 0
      ? { enabled: true, pingInterval: opts.monitor * 1000 }
      : { enabled: false },
    services: {
      // identify runs from our own connection:open listener so failures are reported
      identify: identify({ runOnConnectionOpen: false, maxInboundStreams: 8, maxOutboundStreams: 8 }),
      ping: ping({ maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT })
    }
  }
  if (opts.psk != null) {
    config.connectionProtector = preSharedKey({ psk: new Uint8Array(readFileSync(opts.psk)) })
  }
  const node = await createLibp2p(config)
  if (opts.perfServer) {
    await node.handle(PERF_PROTOCOL, handlePerf, {
      maxInboundStreams: STREAM_LIMIT,
      maxOutboundStreams: STREAM_LIMIT
    })
  }
  return node
}

function connInfo (conn) {
  return {
    peerId: conn.remotePeer.toString(),
    remote: conn.remoteAddr.toString(),
    direction: conn.direction,
    encryption: conn.encryption ?? null,
    multiplexer: conn.multiplexer ?? null
  }
}

// connection id -> promise of its identify result (started once per connection)
const identifies = new Map()

function startIdentify (node, conn) {
  let p = identifies.get(conn.id)
  if (p == null) {
    // peer:identify is emitted (and printed) by libp2p before this promise resolves
    p = node.services.identify.identify(conn)
    p.catch((err) => emit({ event: 'identify:error', peerId: conn.remotePeer.toString(), message: errMessage(err) }))
    identifies.set(conn.id, p)
  }
  return p
}

// pnet in use: whether the xsalsa20 workaround is on (null: no pnet)
let pnetWorkaround = null

async function stopAndExit (node, code) {
  if (node != null) {
    await Promise.race([
      node.stop().catch(() => {}),
      new Promise(resolve => setTimeout(resolve, 2000).unref())
    ])
  }
  if (pnetWorkaround != null) emit(pnetLine(pnetWorkaround))
  process.exit(code)
}

async function main () {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (err) {
    emit({ event: 'error', message: err.message })
    process.exit(2)
  }

  let node = null
  let exiting = false
  const fail = (err) => {
    if (exiting) return
    exiting = true
    emit({ event: 'error', message: errMessage(err) })
    stopAndExit(node, 1)
  }
  const finish = () => {
    if (exiting) return
    exiting = true
    stopAndExit(node, 0)
  }
  process.on('SIGTERM', finish)
  process.on('SIGINT', finish)
  // Errors inside libp2p's background tasks must not kill a listener that serves many peers.
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`peer.mjs: unhandled rejection: ${errMessage(err)}\n`)
  })

  const controller = new AbortController()
  const signal = controller.signal
  let deadline = null
  if (opts.dial != null) {
    deadline = setTimeout(() => {
      const err = new Error(`timeout after ${opts.timeout} s`)
      controller.abort(err)
      fail(err)
    }, opts.timeout * 1000).unref()
  }

  try {
    if (opts.psk != null) {
      hookXSalsa20(opts.pnetWorkaround)
      pnetWorkaround = opts.pnetWorkaround
    }
    node = await makeNode(opts)
    node.addEventListener('connection:open', (evt) => {
      const conn = evt.detail
      emit({ event: 'connection:open', ...connInfo(conn) })
      if (opts.autoIdentify && !opts.identify) startIdentify(node, conn).catch(() => {})
    })
    node.addEventListener('connection:close', (evt) => {
      identifies.delete(evt.detail.id)
      emit({ event: 'connection:close', ...connInfo(evt.detail) })
    })
    node.addEventListener('peer:identify', (evt) => emit(identifyLine(evt.detail)))
    await node.start()

    if (opts.listen.length > 0) {
      emit({
        event: 'listening',
        addrs: node.getMultiaddrs().map(a => a.toString()),
        peerId: node.peerId.toString()
      })
    }

    if (opts.dial != null) {
      emit({ event: 'dialing', peerId: node.peerId.toString(), target: opts.dial })
      const conn = await node.dial(multiaddr(opts.dial), { signal })
      if (opts.identify) await startIdentify(node, conn)
      if (opts.ping > 0) await runPing(node, conn, opts.ping, opts.pingNewStream, signal)
      if (opts.perfUpload != null) await runPerf(conn, opts, signal)
      emit({ event: 'done' })
      clearTimeout(deadline) // --hold is not bounded by --timeout
      if (opts.hold == null) return finish()
    }

    if (opts.hold != null) setTimeout(finish, opts.hold * 1000)
    // otherwise: serve until SIGTERM / SIGINT
  } catch (err) {
    fail(err)
  }
}

main()
