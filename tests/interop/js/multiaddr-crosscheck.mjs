// Cross-check dmsnet's multiaddr codec against js @multiformats/multiaddr 13.
//
// Generates random multiaddrs over every protocol dmsnet supports (seeded,
// the seed is printed; rerun with --seed N), asks js for the bytes and the
// string of each, and runs the C tool (tests/tools/ma_tool.c) on the same
// input strings, on js's canonical strings and on js's bytes. Bytes and
// strings must be identical. The one known difference in text form is
// unix: js 13 writes the path as one percent-encoded segment
// (/unix/%2Ftmp%2Fsock), dmsnet writes the path as is (/unix/tmp/sock, the
// go-multiaddr form) and reads both; the bytes are the same.
//
// Usage: node multiaddr-crosscheck.mjs [--tool path/to/ma_tool] [--seed N] [--count N]
import { spawnSync } from 'node:child_process'
import { multiaddr } from '@multiformats/multiaddr'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'

function arg (name, def) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : def
}
const buildDir = process.env.DN_BUILD_DIR ?? 'build'
const tool = arg('--tool', process.env.MA_TOOL ?? `${buildDir}/bin/ma_tool`)
const seed = Number(arg('--seed', process.env.MA_SEED ?? '20261125')) >>> 0
const count = Number(arg('--count', '400'))
console.log(`multiaddr cross-check: seed ${seed}, ${count} addresses, tool ${tool}`)

// mulberry32: small, deterministic, good enough to pick test cases.
let state = seed
function rnd () {
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const int = (n) => Math.floor(rnd() * n)
const pick = (a) => a[int(a.length)]
const bytes = (n) => Uint8Array.from({ length: n }, () => int(256))
const hex = (b) => Buffer.from(b).toString('hex')

function ip4 () {
  return pick([() => [0, 0, 0, 0], () => [255, 255, 255, 255], () => [127, 0, 0, 1],
    () => [...bytes(4)]])().join('.')
}

// ip6 bytes with zero runs of random placement, then a text form chosen to
// exercise parsing: fully expanded, upper case, or ::ffff:a.b.c.d.
function ip6 () {
  const w = Array.from({ length: 8 }, () => pick([0, 0, 1, int(0x10000), int(0x100)]))
  const kind = int(8)
  if (kind === 0) return '::'
  if (kind === 1) return '::1'
  if (kind === 2) return `::ffff:${ip4()}`
  if (kind === 3) return `64:ff9b::${ip4()}`
  const full = w.map((x) => x.toString(16)).join(':')
  if (kind === 4) return full.toUpperCase()
  if (kind === 5) return w.map((x) => x.toString(16).padStart(4, '0')).join(':')
  return full
}

function dnsName () {
  const label = () => Array.from({ length: 1 + int(12) },
    () => pick('abcdefghijklmnopqrstuvwxyz0123456789-'.split(''))).join('')
  const labels = Array.from({ length: 1 + int(4) }, label)
  if (int(10) === 0) labels.unshift(pick(['bücher', 'пример', '例え']))
  return labels.join('.')
}

// Peer ids: identity multihash of an Ed25519 or secp256k1 key protobuf, or
// sha2-256 (RSA/ECDSA keys). Only the multihash shape matters here.
function peerMultihash () {
  switch (int(3)) {
    case 0: return Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...bytes(32)])
    case 1: return Uint8Array.from([0x00, 0x25, 0x08, 0x02, 0x12, 0x21, 2 + int(2), ...bytes(32)])
    default: return Uint8Array.from([0x12, 0x20, ...bytes(32)])
  }
}
function peerText (mh) {
  if (int(3) === 0) {
    return CID.createV1(0x72, Digest.decode(mh)).toString() // base32 "b..."
  }
  return base58btc.encode(mh).slice(1) // bare base58btc, no multibase 'z'
}

function unixPath () {
  const seg = () => Array.from({ length: 1 + int(10) },
    () => pick('abcdefghijklmnopqrstuvwxyzABCXYZ0123456789._-% ü'.split(''))).join('')
  return '/' + Array.from({ length: 1 + int(4) }, seg).join('/')
}

// One component as [jsInput, cInput] text (both start with '/').
function component (last) {
  const kinds = ['ip4', 'ip6', 'tcp', 'udp', 'dns', 'dns4', 'dns6', 'dnsaddr', 'p2p', 'ipfs',
    'quic-v1', 'ws', 'wss', 'tls', 'p2p-circuit']
  if (last) kinds.push('unix')
  const k = pick(kinds)
  switch (k) {
    case 'ip4': { const v = ip4(); return [`/ip4/${v}`, `/ip4/${v}`] }
    case 'ip6': { const v = ip6(); return [`/ip6/${v}`, `/ip6/${v}`] }
    case 'tcp': case 'udp': {
      const v = pick([0, 1, 80, 443, 65535, int(65536)])
      return [`/${k}/${v}`, `/${k}/${v}`]
    }
    case 'dns': case 'dns4': case 'dns6': case 'dnsaddr': {
      const v = dnsName(); return [`/${k}/${v}`, `/${k}/${v}`]
    }
    case 'p2p': case 'ipfs': {
      const v = peerText(peerMultihash()); return [`/${k}/${v}`, `/${k}/${v}`]
    }
    case 'unix': {
      const p = unixPath()
      return [`/unix/${encodeURIComponent(p)}`, `/unix${p}`]
    }
    default: return [`/${k}`, `/${k}`]
  }
}

function randomAddr () {
  // Half realistic stacks, half arbitrary sequences (the codec does not
  // care about semantics, and neither should either implementation).
  if (int(2) === 0) {
    const parts = [pick([() => component(false), () => [`/ip4/${ip4()}`, null],
      () => [`/ip6/${ip6()}`, null], () => [`/dns/${dnsName()}`, null]])()]
    const t = pick(['tcp', 'udp'])
    const port = int(65536)
    parts.push([`/${t}/${port}`, null])
    if (t === 'udp') parts.push(['/quic-v1', null])
    else if (int(2) === 0) parts.push([pick(['/ws', '/wss', '/tls/ws']), null])
    if (int(2) === 0) {
      const v = peerText(peerMultihash())
      parts.push([`/p2p/${v}`, null])
      if (int(3) === 0) parts.push(['/p2p-circuit', null], [`/p2p/${peerText(peerMultihash())}`, null])
    }
    return [parts.map((p) => p[0]).join(''), parts.map((p) => p[1] ?? p[0]).join('')]
  }
  const n = 1 + int(6)
  const parts = Array.from({ length: n }, (_, i) => component(i === n - 1))
  return [parts.map((p) => p[0]).join(''), parts.map((p) => p[1]).join('')]
}

// js's canonical string -> dmsnet's canonical string (only unix differs).
function toDmsnetForm (s) {
  const i = s.indexOf('/unix/')
  if (i < 0) return s
  return s.slice(0, i) + '/unix' + decodeURIComponent(s.slice(i + 6))
}

const cases = []
for (let i = 0; i < count; i++) {
  const [jsIn, cIn] = randomAddr()
  // js keeps the text it was given (a CID stays a CID); its canonical form
  // is what it prints for the bytes.
  const b = multiaddr(jsIn).bytes
  cases.push({ jsIn, cIn, hex: hex(b), jsStr: multiaddr(b).toString() })
}
// Inputs both implementations must refuse.
const invalid = ['/ip4/1.2.3.256', '/ip4/1.2.3', '/tcp/65536', '/udp/-1', '/tcp/8x',
  '/ip6/1:2:3:4:5:6:7:8:9', '/ip6/12345::', '/foo/1', '/ip4', '/dns4', '/p2p',
  '/ip4/1.2.3.4/tcp', 'ip4/1.2.3.4', '/p2p/QmNotAPeerId0', '/unknownproto']
for (const s of invalid) {
  let ok = true
  try { multiaddr(s).bytes } catch { ok = false } // eslint-disable-line no-unused-expressions
  if (ok) console.log(`note: js accepts '${s}', not used as a negative case`)
  else cases.push({ invalid: s })
}

const lines = []
for (const c of cases) {
  if (c.invalid) { lines.push(`str ${c.invalid}`); continue }
  lines.push(`str ${c.cIn}`, `str ${c.jsStr}`, `hex ${c.hex}`)
}
const run = spawnSync(tool, [], { input: lines.join('\n') + '\n', encoding: 'utf8', maxBuffer: 64 << 20 })
if (run.error || run.status !== 0) {
  console.error(`cannot run ${tool}: ${run.error ?? run.stderr}`)
  process.exit(2)
}
const out = run.stdout.split('\n')
let li = 0
const mismatches = []
let checked = 0
for (const c of cases) {
  if (c.invalid) {
    const got = out[li++]
    checked++
    if (!got.startsWith('ERR ')) mismatches.push(`accepted invalid '${c.invalid}': ${got}`)
    continue
  }
  const want = `${c.hex}\t${toDmsnetForm(c.jsStr)}`
  for (const input of [`str ${c.cIn}`, `str ${c.jsStr}`, `hex ${c.hex}`]) {
    const got = out[li++]
    checked++
    if (got !== want) mismatches.push(`input '${input}' (js input '${c.jsIn}')\n    js:      ${want}\n    dmsnet:  ${got}`)
  }
  // And js reads dmsnet's string form back to the same bytes.
  const dmsStr = toDmsnetForm(c.jsStr)
  if (!dmsStr.includes('/unix')) {
    checked++
    const back = hex(multiaddr(dmsStr).bytes)
    if (back !== c.hex) mismatches.push(`js reads '${dmsStr}' as ${back}, not ${c.hex}`)
  }
}
const valid = cases.filter((c) => !c.invalid).length
console.log(`${valid} addresses, ${cases.length - valid} invalid inputs, ${checked} checks, ${mismatches.length} mismatches`)
for (const m of mismatches.slice(0, 10)) console.log(`MISMATCH ${m}`)
process.exit(mismatches.length === 0 ? 0 : 1)
