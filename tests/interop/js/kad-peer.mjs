// A js-libp2p 3 node with @libp2p/kad-dht 16 in server mode, for dmsnet's DHT interop test
// (../dht_js.test.sh). It listens on --listen (default /ip4/127.0.0.1/tcp/0), dials each --dial,
// speaks --protocol (default /dmsnet/kad/1.0.0), and runs the commands it reads from standard
// input, one JSON object per line, in order. It prints one JSON object per line:
//   {"event":"listening","peerId":...,"addrs":[...]}
//   {"event":"<op>","ok":true|false,...}   one per command, with its results or "error"
// Commands:
//   {"op":"wait_table","n":N}               until N peers are in the routing table (30 s)
//   {"op":"wait_peer","peer":ID}            until that peer is in the routing table (30 s)
//   {"op":"put","key":K,"value":B64}        K: "/pk/<base58 multihash>" or any text
//   {"op":"get","key":K}                    -> value (base64), from (peer id)
//   {"op":"provide","cid":C}  {"op":"findprovs","cid":C} -> providers [peer id]
//   {"op":"findpeer","peer":ID}             -> addrs, local (found without asking anybody)
//   {"op":"pk"}                             a fresh key: key "/pk/<its peer id>", value (base64 of
//                                           the public key protobuf; js checks the key's multihash)
//   {"op":"cid","data":TEXT}                -> cid (CIDv1, raw, sha2-256 of TEXT)
//   {"op":"peers"}                          -> peers [connected peer ids]
// --no-self-query: never look ourselves up (so this node learns no peer it was not told of).
// The pitfalls (DESIGN.md): js admits a peer to its table only after identify lists the exact
// protocol and a ping answers (hence ping), defaults to client mode (clientMode: false) and
// drops private addresses (passthroughMapper keeps loopback). The /dmsnet/ namespace gets a
// validator that accepts any value: js cannot check dmsnet's signed envelopes, only hold them.

import process from 'node:process'
import { createInterface } from 'node:readline'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const opts = { listen: [], dial: [], protocol: '/dmsnet/kad/1.0.0', timeout: 120, selfQuery: true }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const v = argv[i + 1]
  switch (argv[i]) {
    case '--listen': opts.listen.push(v); i++; break
    case '--dial': opts.dial.push(v); i++; break
    case '--protocol': opts.protocol = v; i++; break
    case '--timeout': opts.timeout = Number(v); i++; break
    case '--no-self-query': opts.selfQuery = false; break
    default:
      emit({ event: 'error', message: `unknown argument ${argv[i]}` })
      process.exit(2)
  }
}
if (opts.listen.length === 0) opts.listen.push('/ip4/127.0.0.1/tcp/0')

const enc = new TextEncoder()
const b64 = (u8) => Buffer.from(u8).toString('base64')
// "/pk/<base58btc multihash>" -> "/pk/" + the multihash bytes (the wire key); other keys as text.
function keyBytes (k) {
  if (k.startsWith('/pk/')) {
    const mh = base58btc.decode('z' + k.slice(4))
    const out = new Uint8Array(4 + mh.length)
    out.set(enc.encode('/pk/'))
    out.set(mh, 4)
    return out
  }
  return enc.encode(k)
}

const never = 24 * 3600 * 1000
const node = await createLibp2p({
  addresses: { listen: opts.listen },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionMonitor: { enabled: false },
  services: {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: opts.protocol,
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      validators: { dmsnet: async () => {} },
      selectors: { dmsnet: () => 0 },
      ...(opts.selfQuery ? {} : { querySelfInterval: never, initialQuerySelfInterval: never })
    })
  }
})
const dht = node.services.dht
emit({ event: 'listening', peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(a => a.toString().replace(/\/p2p\/[^/]+$/, '')) })

const stop = async (code) => {
  try { await node.stop() } catch {}
  process.exit(code)
}
process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))
setTimeout(() => stop(0), opts.timeout * 1000).unref()

for (const a of opts.dial) {
  try {
    await node.dial(multiaddr(a))
  } catch (err) {
    emit({ event: 'dial', ok: false, error: err.message })
  }
}

const signal = () => AbortSignal.timeout(30000)

async function run (cmd) {
  switch (cmd.op) {
    case 'wait_table': {
      const end = Date.now() + 30000
      while (dht.routingTable.size < cmd.n && Date.now() < end) await new Promise(r => setTimeout(r, 100))
      return { size: dht.routingTable.size, ok: dht.routingTable.size >= cmd.n }
    }
    case 'wait_peer': {
      const id = peerIdFromString(cmd.peer)
      const end = Date.now() + 30000
      while ((await dht.routingTable.find(id)) == null && Date.now() < end) await new Promise(r => setTimeout(r, 100))
      return { ok: (await dht.routingTable.find(id)) != null }
    }
    case 'put': {
      let sent = 0
      for await (const ev of dht.put(keyBytes(cmd.key), Buffer.from(cmd.value, 'base64'), { signal: signal() })) {
        if (ev.name === 'PEER_RESPONSE') sent++
      }
      return { responses: sent }
    }
    case 'get': {
      for await (const ev of dht.get(keyBytes(cmd.key), { signal: signal() })) {
        if (ev.name === 'VALUE') return { value: b64(ev.value), from: ev.from.toString() }
      }
      return { ok: false, error: 'not found' }
    }
    case 'provide': {
      for await (const ev of dht.provide(CID.parse(cmd.cid), { signal: signal() })) { void ev }
      return {}
    }
    case 'findprovs': {
      const providers = new Set()
      for await (const ev of dht.findProviders(CID.parse(cmd.cid), { signal: signal() })) {
        if (ev.name === 'PROVIDER') for (const p of ev.providers) providers.add(p.id.toString())
      }
      return { providers: [...providers] }
    }
    case 'findpeer': {
      for await (const ev of dht.findPeer(peerIdFromString(cmd.peer), { signal: signal() })) {
        if (ev.name === 'FINAL_PEER') {
          return { addrs: ev.peer.multiaddrs.map(m => m.toString()), local: ev.path?.index === -1 }
        }
      }
      return { ok: false, error: 'not found' }
    }
    case 'pk': {
      const key = await generateKeyPair('Ed25519')
      // js's /pk/ validator: the key is "/pk/" + the key's multihash (its peer id's bytes)
      const pb = publicKeyToProtobuf(key.publicKey)
      return { key: '/pk/' + base58btc.encode(key.publicKey.toMultihash().bytes).slice(1), value: b64(pb) }
    }
    case 'cid': {
      const cid = CID.create(1, raw.code, await sha256.digest(enc.encode(cmd.data)))
      return { cid: cid.toString(), v0: cid.multihash.code === 0x12 ? CID.createV0(cid.multihash).toString() : null }
    }
    case 'peers':
      return { peers: node.getPeers().map(p => p.toString()) }
    default:
      return { ok: false, error: `unknown op ${cmd.op}` }
  }
}

const rl = createInterface({ input: process.stdin })
for await (const line of rl) {
  if (!line.trim()) continue
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch {
    emit({ event: 'error', message: 'not JSON: ' + line })
    continue
  }
  try {
    emit({ event: cmd.op, ok: true, ...(await run(cmd)) })
  } catch (err) {
    emit({ event: cmd.op, ok: false, error: `${err.name}: ${err.message}` })
  }
}
await new Promise(() => {}) // stdin closed: keep serving until SIGTERM or --timeout
