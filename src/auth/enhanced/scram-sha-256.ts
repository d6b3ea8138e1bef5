import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { AuthStep, EnhancedAuthenticator } from './authenticator.js'
import { decodeUtf8, hmac, sha256, SCRAM_DEFAULT_ITERATIONS, SCRAM_SHA_256, type ScramCredential } from './scram-credential.js'
import { saslprep } from './saslprep.js'

// The server side of SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash), mapped onto MQTT 5 as §4.12's
// example shows: client-first in the CONNECT (or AUTH 0x19), server-first in AUTH 0x18,
// client-final in the client's AUTH 0x18, server-final in the CONNACK (or AUTH 0x00).
// Channel binding is not offered (no SCRAM-SHA-256-PLUS): "n" and "y" are accepted, "p=" refused.

export interface ScramOptions {
  /** The stored keys of a (SASLprep-ed) user name; read at each exchange, so reloads apply. */
  credentials(username: string): ScramCredential | undefined
  /** The server's part of the nonce; random by default (tests pin it to the RFC's vectors). */
  nonce?: () => string
}

/** printable = %x21-2B / %x2D-7E (RFC 5802 §7): any visible ASCII but ",". */
const PRINTABLE = /^[\x21-\x2B\x2D-\x7E]+$/
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

const fail = (reason: string, username?: string): AuthStep => ({ kind: 'failure', reason, ...(username !== undefined ? { username } : {}) })

export function createScramSha256({ credentials, nonce = randomNonce }: ScramOptions): EnhancedAuthenticator {
  // Unknown users get a made-up salt that stays the same for the same name, so the server-first
  // message does not tell a prober which names exist; their proof can never match.
  const decoySecret = randomBytes(32)
  const decoy = (username: string): ScramCredential => ({
    iterations: SCRAM_DEFAULT_ITERATIONS,
    salt: hmac(decoySecret, username).subarray(0, 16),
    storedKey: randomBytes(32),
    serverKey: randomBytes(32),
  })

  return {
    method: SCRAM_SHA_256,
    async start(_clientId, data) {
      const first = data === undefined ? undefined : decodeUtf8(data)
      if (first === undefined) return fail('client-first-message missing or not UTF-8')
      const parsed = parseClientFirst(first)
      if (typeof parsed === 'string') return fail(parsed)
      const { gs2Header, bare, username, clientNonce } = parsed
      const known = credentials(username)
      const credential = known ?? decoy(username)
      const serverNonce = nonce()
      const combinedNonce = clientNonce + serverNonce
      const serverFirst = `r=${combinedNonce},s=${credential.salt.toString('base64')},i=${credential.iterations}`
      return {
        kind: 'continue',
        data: Buffer.from(serverFirst, 'utf8'),
        next: async (answer) => {
          const final = answer === undefined ? undefined : decodeUtf8(answer)
          if (final === undefined) return fail('client-final-message missing or not UTF-8', username)
          const checked = parseClientFinal(final, gs2Header, combinedNonce)
          if (typeof checked === 'string') return fail(checked, username)
          const authMessage = `${bare},${serverFirst},${checked.withoutProof}`
          // ClientKey = ClientProof XOR ClientSignature; it is genuine when H(ClientKey) = StoredKey
          const signature = hmac(credential.storedKey, authMessage)
          const clientKey = Buffer.alloc(signature.length)
          for (let i = 0; i < signature.length; i++) clientKey[i] = checked.proof[i]! ^ signature[i]!
          const genuine = timingSafeEqual(sha256(clientKey), credential.storedKey)
          if (!known) return fail('unknown user', username)
          if (!genuine) return fail('invalid proof', username)
          const serverSignature = hmac(credential.serverKey, authMessage)
          return { kind: 'success', username, data: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8') }
        },
      }
    },
  }
}

interface ClientFirst {
  gs2Header: string
  bare: string
  username: string
  clientNonce: string
}

/** client-first-message = gs2-header client-first-message-bare; a string is the reason it is refused. */
export function parseClientFirst(message: string): ClientFirst | string {
  const firstComma = message.indexOf(',')
  const secondComma = firstComma < 0 ? -1 : message.indexOf(',', firstComma + 1)
  if (secondComma < 0) return 'malformed gs2 header'
  const flag = message.slice(0, firstComma)
  const authzid = message.slice(firstComma + 1, secondComma)
  if (flag.startsWith('p=')) return 'channel binding requested but not supported (use "n,,")'
  // "y": the client could bind but believes the server cannot, which is true here (RFC 5802 §6)
  if (flag !== 'n' && flag !== 'y') return 'malformed gs2 channel binding flag'
  const gs2Header = message.slice(0, secondComma + 1)
  const bare = message.slice(secondComma + 1)
  const attrs = attributes(bare)
  if (typeof attrs === 'string') return attrs
  // a leading m= is a mandatory extension this version does not know: it MUST fail (RFC 5802 §5.1)
  if (attrs[0]?.[0] === 'm') return 'mandatory extension not supported'
  if (attrs[0]?.[0] !== 'n' || attrs[1]?.[0] !== 'r') return 'expected n= and r= attributes'
  const decoded = decodeSaslname(attrs[0][1])
  if (decoded === undefined) return 'invalid encoding of the user name'
  let username: string
  try {
    username = saslprep(decoded)
  } catch {
    return 'user name refused by SASLprep'
  }
  if (username === '') return 'empty user name'
  if (authzid !== '') {
    // Acting as another identity is not offered; naming oneself is harmless.
    const asWhom = authzid.startsWith('a=') ? decodeSaslname(authzid.slice(2)) : undefined
    if (asWhom === undefined || safePrep(asWhom) !== username) return 'authorization identity differs from the user name'
  }
  const clientNonce = attrs[1][1]
  if (!PRINTABLE.test(clientNonce)) return 'malformed client nonce'
  return { gs2Header, bare, username, clientNonce }
}

interface ClientFinal {
  withoutProof: string
  proof: Buffer
}

/** client-final-message = channel-binding "," nonce ["," extensions] "," proof */
export function parseClientFinal(message: string, gs2Header: string, combinedNonce: string): ClientFinal | string {
  const proofAt = message.lastIndexOf(',p=')
  if (proofAt < 0) return 'client proof missing'
  const withoutProof = message.slice(0, proofAt)
  const attrs = attributes(withoutProof)
  if (typeof attrs === 'string') return attrs
  if (attrs[0]?.[0] !== 'c' || attrs[1]?.[0] !== 'r') return 'expected c= and r= attributes'
  // Without channel binding data, c= is the base64 of the gs2 header the client sent first: a
  // mismatch means the two messages were not from the same exchange (or a downgrade attempt).
  if (attrs[0][1] !== Buffer.from(gs2Header, 'utf8').toString('base64')) return 'channel binding mismatch'
  if (attrs[1][1] !== combinedNonce) return 'nonce mismatch'
  const proofText = message.slice(proofAt + 3)
  if (!BASE64.test(proofText)) return 'malformed client proof'
  const proof = Buffer.from(proofText, 'base64')
  if (proof.length !== 32) return 'client proof has the wrong length'
  return { withoutProof, proof }
}

/** `a=x,b=y` into [name, value] pairs, in order; a string is the reason it is malformed. */
function attributes(text: string): Array<[string, string]> | string {
  const out: Array<[string, string]> = []
  for (const part of text.split(',')) {
    if (!/^[A-Za-z]=/.test(part)) return 'malformed attribute'
    out.push([part[0]!, part.slice(2)])
  }
  return out
}

/** saslname: "=2C" is ",", "=3D" is "="; any other "=" is invalid (RFC 5802 §5.1). */
function decodeSaslname(value: string): string | undefined {
  if (/=(?!2C|3D)/.test(value)) return undefined
  return value.replaceAll('=2C', ',').replaceAll('=3D', '=')
}

function safePrep(value: string): string | undefined {
  try {
    return saslprep(value)
  } catch {
    return undefined
  }
}

function randomNonce(): string {
  // base64 never contains ",", so it is always a valid nonce
  return randomBytes(18).toString('base64')
}
