// Cross-check dmsnet's identity keys against js-libp2p (@libp2p/crypto 5, @libp2p/peer-id 6).
//
//   node keys-crosscheck.mjs --tool PATH/key_tool [--dmsnet PATH/dmsnet] [--count 5]
//
// For Ed25519, secp256k1 and ECDSA P-256, keys made on each side are read by the other:
// private key files are byte-identical after a round trip, peer IDs agree, signatures made
// on one side verify on the other, and tampered signatures fail on both. Exits 1 with one
// "MISMATCH: ..." line per problem.
//
// Known js-libp2p deviations for ECDSA (checked here so a change in js shows up):
//  - js writes the ECDSA public key Data as SEQUENCE { 1, [0] curve, [1] point } instead of
//    the SubjectPublicKeyInfo the spec, go-libp2p and rust-libp2p use, and cannot parse SPKI;
//  - js signs ECDSA as raw r || s (WebCrypto) instead of DER, and verifies only that form;
//  - @libp2p/peer-id refuses ECDSA keys (UnsupportedKeyTypeError).
// dmsnet writes the spec forms and reads both, so for ECDSA the peer ID is checked against
// the spec rule (sha2-256 multihash of the PublicKey protobuf) and C's DER signatures are
// converted to r || s before js verifies them.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf, publicKeyFromProtobuf,
  publicKeyToProtobuf
} from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { base58btc } from 'multiformats/bases/base58'
import { sha256 } from 'multiformats/hashes/sha2'

const args = process.argv.slice(2)
const opt = (name, def) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : def
}
const tool = opt('--tool')
const dmsnet = opt('--dmsnet')
const count = Number(opt('--count', '5'))
if (!tool) {
  console.error('usage: keys-crosscheck.mjs --tool PATH [--dmsnet PATH] [--count N]')
  process.exit(2)
}

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => Uint8Array.from(Buffer.from(s, 'hex'))
const work = mkdtempSync(join(tmpdir(), 'dn-keys-'))
const failures = []
let checks = 0
function check (cond, msg) {
  checks++
  if (!cond) {
    failures.push(msg)
    console.error(`MISMATCH: ${msg}`)
  }
}

// Run a C program; returns { status, out, err }.
function run (prog, ...argv) {
  const r = spawnSync(prog, argv, { encoding: 'utf8' })
  if (r.error) throw r.error
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() }
}
// key_tool that must succeed: returns its stdout.
function c (...argv) {
  const r = run(tool, ...argv)
  if (r.status !== 0) {
    check(false, `key_tool ${argv.join(' ')} exited ${r.status}: ${r.err}`)
    return ''
  }
  return r.out
}
const cVerify = (pubpb, msg, sig) => run(tool, 'verify', hex(pubpb), hex(msg), hex(sig)).status

// DER ECDSA-Sig-Value -> r || s (32 bytes each), for js's WebCrypto verifier.
function derToRaw (der) {
  let i = 2
  if (der[0] !== 0x30 || der[1] !== der.length - 2) throw new Error('not a DER sequence')
  const part = () => {
    if (der[i] !== 0x02) throw new Error('not a DER integer')
    const len = der[i + 1]
    let v = der.subarray(i + 2, i + 2 + len)
    i += 2 + len
    while (v.length > 32 && v[0] === 0) v = v.subarray(1)
    const out = new Uint8Array(32)
    out.set(v, 32 - v.length)
    return out
  }
  const r = part()
  const s = part()
  return Uint8Array.from([...r, ...s])
}

function tamper (sig) {
  const t = Uint8Array.from(sig)
  t[Math.floor(t.length / 2)] ^= 0x01
  return t
}

// The spec rule for keys whose PublicKey protobuf is over 42 bytes.
async function specPeerId (pubpb) {
  if (pubpb.length <= 42) throw new Error('short key: identity multihash')
  const mh = await sha256.digest(pubpb)
  return base58btc.baseEncode(mh.bytes)
}

// js's idea of the peer id, or null when @libp2p/peer-id refuses the key type (ECDSA).
function jsPeerId (key) {
  try {
    return peerIdFromPrivateKey(key).toString()
  } catch (e) {
    if (key.type === 'ECDSA' && e.name === 'UnsupportedKeyTypeError') return null
    throw e
  }
}

async function jsVerify (pub, msg, sig) {
  try {
    return await pub.verify(msg, sig)
  } catch {
    return false
  }
}

const types = [
  { js: 'Ed25519', c: 'ed25519' },
  { js: 'secp256k1', c: 'secp256k1' },
  { js: 'ECDSA', c: 'ecdsa' }
]

for (const t of types) {
  for (let n = 0; n < count; n++) {
    const tag = `${t.js} #${n}`
    const msg = randomBytes(Math.floor(Math.random() * 200))

    // ---- js generates, C reads ----
    const jk = await generateKeyPair(t.js)
    const jfile = join(work, `js-${t.c}-${n}.key`)
    const jpriv = privateKeyToProtobuf(jk)
    writeFileSync(jfile, jpriv, { mode: 0o600 })
    check(c('privpb', jfile) === hex(jpriv), `${tag} js key: C re-encodes the private key differently`)
    const cPub = unhex(c('pubpb', jfile))
    const jPub = publicKeyToProtobuf(jk.publicKey)
    const cId = c('peerid', jfile)
    const jId = jsPeerId(jk)
    if (t.js === 'ECDSA') {
      check(jId === null, `${tag}: @libp2p/peer-id now supports ECDSA (${jId}); compare ids directly`)
      // Same key, two Data forms: both end in the 65-byte uncompressed point.
      check(hex(cPub.subarray(-65)) === hex(jPub.subarray(-65)), `${tag} js key: public points differ`)
      check(cId === await specPeerId(cPub), `${tag} js key: C peer id ${cId} is not sha2-256 of the SPKI key`)
      // C reads js's own public key form; its id follows the bytes received.
      check(c('pubid', hex(jPub)) === await specPeerId(jPub), `${tag}: C peer id of js's public key form`)
    } else {
      check(hex(cPub) === hex(jPub), `${tag} js key: public key protobuf differs\n  C  ${hex(cPub)}\n  js ${hex(jPub)}`)
      check(cId === jId, `${tag} js key: peer id C ${cId} != js ${jId}`)
      check(c('cid', jfile) === peerIdFromString(jId).toCID().toString(), `${tag} js key: CID form differs`)
      check(c('pubid', hex(jPub)) === jId, `${tag} js key: C peer id from the js public key`)
    }
    // js signature -> C verifies (the js public key form, as a js peer would send it)
    const jsig = await jk.sign(msg)
    check(cVerify(jPub, msg, jsig) === 0, `${tag}: C rejects a js signature (${hex(jsig)})`)
    check(cVerify(jPub, msg, tamper(jsig)) === 1, `${tag}: C accepts a tampered js signature`)
    check(cVerify(jPub, Buffer.concat([msg, Buffer.from('x')]), jsig) === 1, `${tag}: C accepts a js signature for another message`)
    if (t.js === 'ECDSA') {
      check(cVerify(cPub, msg, jsig) === 0, `${tag}: C (SPKI form) rejects a js signature`)
    }
    // C signature with the js-made key -> js verifies
    let csig = unhex(c('sign', jfile, hex(msg)))
    if (t.js === 'ECDSA') csig = derToRaw(csig)
    check(await jsVerify(jk.publicKey, msg, csig), `${tag}: js rejects a C signature made with a js key`)
    check(!(await jsVerify(jk.publicKey, msg, tamper(csig))), `${tag}: js accepts a tampered C signature`)

    // ---- C generates, js reads ----
    const cfile = join(work, `c-${t.c}-${n}.key`)
    const genId = c('gen', t.c, cfile)
    const cpriv = readFileSync(cfile)
    let ck
    try {
      ck = privateKeyFromProtobuf(cpriv)
    } catch (e) {
      check(false, `${tag}: js cannot read a C key file: ${e.message} (${hex(cpriv)})`)
      continue
    }
    check(ck.type === t.js, `${tag}: js reads a C key as ${ck.type}`)
    check(hex(privateKeyToProtobuf(ck)) === hex(cpriv), `${tag} C key: js re-encodes the private key differently`)
    const cPub2 = unhex(c('pubpb', cfile))
    const jPub2 = publicKeyToProtobuf(ck.publicKey)
    const jId2 = jsPeerId(ck)
    if (t.js === 'ECDSA') {
      check(hex(cPub2.subarray(-65)) === hex(jPub2.subarray(-65)), `${tag} C key: public points differ`)
      check(genId === await specPeerId(cPub2), `${tag} C key: peer id is not sha2-256 of the SPKI key`)
    } else {
      check(hex(cPub2) === hex(jPub2), `${tag} C key: public key protobuf differs`)
      check(genId === jId2, `${tag} C key: peer id C ${genId} != js ${jId2}`)
      // js parses the public key C would send and derives the same id
      check(peerIdFromPublicKey(publicKeyFromProtobuf(cPub2)).toString() === genId, `${tag} C key: js peer id from the C public key`)
    }
    let csig2 = unhex(c('sign', cfile, hex(msg)))
    if (t.js === 'ECDSA') csig2 = derToRaw(csig2)
    check(await jsVerify(ck.publicKey, msg, csig2), `${tag}: js rejects a C signature (${hex(csig2)})`)
    check(!(await jsVerify(ck.publicKey, msg, tamper(csig2))), `${tag}: js accepts a tampered C signature`)
    const jsig2 = await ck.sign(msg)
    check(cVerify(cPub2, msg, jsig2) === 0, `${tag}: C rejects a js signature made with a C key`)
    check(cVerify(cPub2, msg, tamper(jsig2)) === 1, `${tag}: C accepts a tampered js signature`)
  }
}

// ---- the dmsnet CLI, when built: keygen output and id agree with js ----
if (dmsnet) {
  for (const t of types) {
    const f = join(work, `cli-${t.c}.key`)
    const r = run(dmsnet, 'keygen', '--type', t.c, '--out', f)
    check(r.status === 0, `dmsnet keygen --type ${t.c} exited ${r.status}: ${r.err}`)
    if (r.status !== 0) continue
    const k = privateKeyFromProtobuf(readFileSync(f))
    const expect = t.js === 'ECDSA' ? r.out : jsPeerId(k)
    check(r.out === expect, `dmsnet keygen ${t.c}: printed ${r.out}, js says ${expect}`)
    check(hex(privateKeyToProtobuf(k)) === hex(readFileSync(f)), `dmsnet keygen ${t.c}: js re-encodes the file differently`)
    const jf = join(work, `cli-js-${t.c}.key`)
    const jk = await generateKeyPair(t.js)
    writeFileSync(jf, privateKeyToProtobuf(jk), { mode: 0o600 })
    const id = run(dmsnet, 'id', '--identity', jf)
    if (t.js !== 'ECDSA') {
      check(id.status === 0 && id.out === jsPeerId(jk), `dmsnet id of a js ${t.c} key: ${id.out} ${id.err}, js says ${jsPeerId(jk)}`)
      const cid = run(dmsnet, 'id', '--identity', jf, '--cid')
      check(cid.out === peerIdFromPrivateKey(jk).toCID().toString(), `dmsnet id --cid of a js ${t.c} key`)
    } else {
      check(id.status === 0 && id.out === c('peerid', jf), `dmsnet id of a js ecdsa key: ${id.out} ${id.err}`)
    }
  }
}

rmSync(work, { recursive: true, force: true })
if (failures.length > 0) {
  console.error(`keys-crosscheck: ${failures.length} of ${checks} checks failed`)
  process.exit(1)
}
console.log(`keys-crosscheck: ${checks} checks passed (${count} keys per type and direction, Ed25519, secp256k1, ECDSA)`)
