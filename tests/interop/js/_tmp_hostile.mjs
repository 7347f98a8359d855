import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], connectionMonitor: { enabled: false } })
const conn = await node.dial(multiaddr(process.argv[2]))
let s
const h = new Uint8Array(8)
// 2. reset mid-upload
s = await conn.newStream('/perf/1.0.0')
new DataView(h.buffer).setBigUint64(0, 1000n)
s.send(h); s.send(new Uint8Array(100000))
await new Promise(r => setTimeout(r, 100))
s.abort(new Error('bye'))
// 3. huge download request (timer variant), read 1 MiB then abort
s = await conn.newStream('/perf/1.0.0')
new DataView(h.buffer).setBigUint64(0, 0xffffffffffffffffn)
let got = 0
const done = new Promise(r => s.addEventListener('message', e => { got += e.data.byteLength; if (got > 1 << 20) r() }))
s.send(h); await s.close(); await done
s.abort(new Error('enough'))
console.log('infinite download got', got)
await new Promise(r => setTimeout(r, 300))
await node.stop()
