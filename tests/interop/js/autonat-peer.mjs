// A js-libp2p 3 node running @libp2p/autonat-v2 (client and server), for dmsnet's AutoNAT
// interop test (../autonat_js.test.sh). It listens on --listen addresses, optionally dials
// --dial, and prints one JSON object per line:
//   {"event":"listening","peerId":...,"addrs":[transport addresses]}
//   {"event":"connection:open","remote":...}  {"event":"peer:identify","peerId":...,"protocols":[...]}
//   {"event":"addresses","addrs":[{"multiaddr","verified","type"}]}   whenever they change
//   {"event":"verified","addr":...}   once per listen address js's AutoNAT confirmed
// It runs until SIGTERM/SIGINT or --timeout seconds (exit 0 either way; the test reads the lines).
//
// js-libp2p's AutoNAT v2 refuses loopback and private addresses (on both sides, without an
// option): the test runs this node in a network namespace with public-looking addresses.

import process from 'node:process'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { autoNATv2 } from '@libp2p/autonat-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const opts = { listen: [], dial: [], timeout: 60 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const v = argv[i + 1]
  switch (argv[i]) {
    case '--listen': opts.listen.push(v); i++; break
    case '--dial': opts.dial.push(v); i++; break
    case '--timeout': opts.timeout = Number(v); i++; break
    default:
      emit({ event: 'error', message: `unknown argument ${argv[i]}` })
      process.exit(2)
  }
}

const node = await createLibp2p({
  addresses: { listen: opts.listen },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionMonitor: { enabled: false },
  services: {
    identify: identify(),
    ping: ping(),
    autoNAT: autoNATv2({ startupDelay: 0 })
  }
})

node.addEventListener('connection:open', (evt) => {
  emit({ event: 'connection:open', remote: evt.detail.remoteAddr.toString(), direction: evt.detail.direction })
})
node.addEventListener('peer:identify', (evt) => {
  emit({ event: 'peer:identify', peerId: evt.detail.peerId.toString(), protocols: evt.detail.protocols })
})

const addressManager = node.components.addressManager
let lastAddrs = ''
const verified = new Set()
function report () {
  const addrs = addressManager.getAddressesWithMetadata().map(a => ({
    multiaddr: a.multiaddr.toString(), verified: a.verified, type: a.type
  }))
  const text = JSON.stringify(addrs)
  if (text !== lastAddrs) {
    lastAddrs = text
    emit({ event: 'addresses', addrs })
  }
  // getMultiaddrs() lists only verified addresses (with /p2p)
  for (const ma of node.getMultiaddrs()) {
    const s = ma.toString().replace(/\/p2p\/[^/]+$/, '')
    if (!verified.has(s)) {
      verified.add(s)
      emit({ event: 'verified', addr: s })
    }
  }
}
node.addEventListener('self:peer:update', report)

await node.start()
emit({
  event: 'listening',
  peerId: node.peerId.toString(),
  addrs: node.components.transportManager.getAddrs().map(a => a.toString())
})
const poll = setInterval(report, 200)

let exiting = false
async function finish () {
  if (exiting) return
  exiting = true
  clearInterval(poll)
  report()
  await Promise.race([node.stop().catch(() => {}), new Promise(resolve => setTimeout(resolve, 2000).unref())])
  process.exit(0)
}
process.on('SIGTERM', finish)
process.on('SIGINT', finish)
setTimeout(finish, opts.timeout * 1000).unref()

for (const target of opts.dial) {
  try {
    const conn = await node.dial(multiaddr(target))
    emit({ event: 'dialed', target, remote: conn.remoteAddr.toString() })
  } catch (err) {
    emit({ event: 'dial:error', target, message: err.message })
  }
}
