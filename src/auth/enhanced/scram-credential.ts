import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import { saslprep, SaslprepError } from './saslprep.js'

// What a server keeps for one SCRAM-SHA-256 user (RFC 5802 §3): salt, iteration count, StoredKey
// and ServerKey. Never the password: StoredKey = H(ClientKey) proves a client without revealing
// ClientKey, and ServerKey lets the server prove itself. Written in the text form RFC 5803 defines
// for LDAP, which PostgreSQL uses too:
//   SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>

export const SCRAM_SHA_256 = 'SCRAM-SHA-256'
const PREFIX = `${SCRAM_SHA_256}$`
/** RFC 7677 §4: at least 4096. Devices compute the same PBKDF2 at each login: keep it moderate. */
export const SCRAM_DEFAULT_ITERATIONS = 4096
export const SCRAM_MIN_ITERATIONS = 4096
/** A crafted file must not stall the broker (the same bound as Mosquitto's PBKDF2 hashes). */
export const SCRAM_MAX_ITERATIONS = 10_000_000
const KEY_BYTES = 32 // SHA-256 output
const SALT_BYTES = 16

export interface ScramCredential {
  iterations: number
  salt: Buffer
  storedKey: Buffer
  serverKey: Buffer
}

export const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest()
export const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest()

/** SaltedPassword = Hi(Normalize(password), salt, i), with Hi = PBKDF2-HMAC-SHA-256 (RFC 5802 §2.2). */
export function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    pbkdf2(Buffer.from(password, 'utf8'), salt, iterations, KEY_BYTES, 'sha256', (err, key) => (err ? reject(err) : resolve(key))),
  )
}

/** The keys for a new password. Throws SaslprepError when the password has prohibited characters. */
export async function deriveScramCredential(
  password: string,
  { iterations = SCRAM_DEFAULT_ITERATIONS, salt = randomBytes(SALT_BYTES) }: { iterations?: number; salt?: Buffer } = {},
): Promise<ScramCredential> {
  if (!Number.isInteger(iterations) || iterations < SCRAM_MIN_ITERATIONS || iterations > SCRAM_MAX_ITERATIONS) {
    throw new RangeError(`SCRAM iterations must be ${SCRAM_MIN_ITERATIONS}-${SCRAM_MAX_ITERATIONS}`)
  }
  const salted = await saltedPassword(saslprep(password, { stored: true }), salt, iterations)
  return { iterations, salt, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') }
}

export function formatScramCredential(c: ScramCredential): string {
  const b64 = (b: Buffer): string => b.toString('base64')
  return `${PREFIX}${c.iterations}:${b64(c.salt)}$${b64(c.storedKey)}:${b64(c.serverKey)}`
}

export function isScramCredential(encoded: string): boolean {
  return encoded.startsWith(PREFIX)
}

/** Reads the RFC 5803 form; undefined when malformed. */
export function parseScramCredential(encoded: string): ScramCredential | undefined {
  if (!isScramCredential(encoded)) return undefined
  const match = /^(\d{1,10}):([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})$/.exec(encoded.slice(PREFIX.length))
  if (!match) return undefined
  const iterations = Number(match[1])
  const salt = Buffer.from(match[2]!, 'base64')
  const storedKey = Buffer.from(match[3]!, 'base64')
  const serverKey = Buffer.from(match[4]!, 'base64')
  if (iterations < 1 || iterations > SCRAM_MAX_ITERATIONS || salt.length === 0) return undefined
  if (storedKey.length !== KEY_BYTES || serverKey.length !== KEY_BYTES) return undefined
  return { iterations, salt, storedKey, serverKey }
}

/**
 * A plain CONNECT password against a SCRAM entry: derive SaltedPassword → ClientKey → StoredKey
 * and compare, so one password file serves both kinds of login.
 */
export async function verifyScramPassword(c: ScramCredential, password: Buffer): Promise<boolean> {
  const text = decodeUtf8(password)
  if (text === undefined) return false
  let prepared: string
  try {
    prepared = saslprep(text)
  } catch (err) {
    if (err instanceof SaslprepError) return false
    throw err
  }
  const salted = await saltedPassword(prepared, c.salt, c.iterations)
  return timingSafeEqual(sha256(hmac(salted, 'Client Key')), c.storedKey)
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Strict UTF-8 (no replacement characters); undefined for invalid bytes. */
export function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}
