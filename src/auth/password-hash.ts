import { createHash, pbkdf2, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { isScramCredential, parseScramCredential, verifyScramPassword, type ScramCredential } from './enhanced/scram-credential.js'

// Password hashes as they appear after `user:` in a password file. mqlite writes its own scrypt
// format; it also verifies Mosquitto's two formats so a Mosquitto password file works unchanged:
//   $mqlite-scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>   (mqlite, written by `mqlite passwd`)
//   $7$<iterations>$<salt b64>$<hash b64>               (Mosquitto ≥ 2.0: PBKDF2-HMAC-SHA512, 64 bytes)
//   $6$<salt b64>$<hash b64>                            (Mosquitto ≤ 1.6: SHA-512(password ‖ salt))
// and SCRAM-SHA-256 keys (written by `mqlite passwd --scram`), which serve both MQTT 5 enhanced
// authentication and plain CONNECT passwords:
//   SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>   (RFC 5803)

const SCRYPT_PREFIX = '$mqlite-scrypt$'
/** N=2^15, r=8, p=1: ~32 MiB and tens of milliseconds per check, OWASP's scrypt minimum or above. */
export const SCRYPT_DEFAULTS = { N: 32768, r: 8, p: 1 } as const
const SALT_BYTES = 16
const KEY_BYTES = 32
// Bounds on what a hash line may ask of the CPU and memory: a crafted file must not stall the broker.
const MAX_SCRYPT_N = 1 << 20
const MAX_PBKDF2_ITERATIONS = 10_000_000

export type HashScheme = 'mqlite-scrypt' | 'mosquitto-pbkdf2' | 'mosquitto-sha512' | 'scram-sha-256'

export interface ParsedHash {
  scheme: HashScheme
  verify(password: Buffer): Promise<boolean>
  /** the stored keys, for SCRAM-SHA-256 enhanced authentication */
  scram?: ScramCredential
}

/** Hashes a password in mqlite's scrypt format with a fresh random salt. */
export async function hashPassword(password: string | Buffer, params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const key = await scryptAsync(toBuffer(password), salt, KEY_BYTES, params)
  return `${SCRYPT_PREFIX}${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

/** Reads a hash string; undefined when it is not one of the supported formats (the caller says why). */
export function parseHash(encoded: string): ParsedHash | undefined {
  if (isScramCredential(encoded)) {
    const scram = parseScramCredential(encoded)
    return scram ? { scheme: 'scram-sha-256', scram, verify: (password) => verifyScramPassword(scram, password) } : undefined
  }
  if (encoded.startsWith(SCRYPT_PREFIX)) {
    const parts = encoded.slice(SCRYPT_PREFIX.length).split('$')
    if (parts.length !== 5) return undefined
    const [n, r, p, saltB64, hashB64] = parts as [string, string, string, string, string]
    const N = positiveInt(n)
    const R = positiveInt(r)
    const P = positiveInt(p)
    const salt = base64(saltB64)
    const expected = base64(hashB64)
    if (!N || !R || !P || N > MAX_SCRYPT_N || (N & (N - 1)) !== 0 || R * P >= 1 << 30 || !salt || !expected) return undefined
    return {
      scheme: 'mqlite-scrypt',
      verify: async (password) => safeEqual(await scryptAsync(password, salt, expected.length, { N, r: R, p: P }), expected),
    }
  }
  if (encoded.startsWith('$7$')) {
    const parts = encoded.slice(3).split('$')
    if (parts.length !== 3) return undefined
    const iterations = positiveInt(parts[0]!)
    const salt = base64(parts[1]!)
    const expected = base64(parts[2]!)
    if (!iterations || iterations > MAX_PBKDF2_ITERATIONS || !salt || !expected) return undefined
    return {
      scheme: 'mosquitto-pbkdf2',
      verify: async (password) => safeEqual(await pbkdf2Async(password, salt, iterations, expected.length), expected),
    }
  }
  if (encoded.startsWith('$6$')) {
    const parts = encoded.slice(3).split('$')
    if (parts.length !== 2) return undefined
    const salt = base64(parts[0]!)
    const expected = base64(parts[1]!)
    if (!salt || !expected) return undefined
    return {
      scheme: 'mosquitto-sha512',
      verify: async (password) => safeEqual(createHash('sha512').update(password).update(salt).digest(), expected),
    }
  }
  return undefined
}

/** Constant time for equal lengths; a length mismatch is not secret (it is in the file). */
function safeEqual(actual: Buffer, expected: Buffer): boolean {
  return actual.length === expected.length && timingSafeEqual(actual, expected)
}

function scryptAsync(password: Buffer, salt: Buffer, keylen: number, { N, r, p }: { N: number; r: number; p: number }): Promise<Buffer> {
  // maxmem must cover 128·N·r (plus slack) or node refuses large N
  const options: ScryptOptions = { N, r, p, maxmem: 128 * N * r + 1024 * 1024 }
  return new Promise((resolve, reject) => scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))))
}

function pbkdf2Async(password: Buffer, salt: Buffer, iterations: number, keylen: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    pbkdf2(password, salt, iterations, keylen, 'sha512', (err, key) => (err ? reject(err) : resolve(key))),
  )
}

function positiveInt(text: string): number | undefined {
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined
  return Number(text)
}

function base64(text: string): Buffer | undefined {
  if (text.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined
  const out = Buffer.from(text, 'base64')
  return out.length > 0 ? out : undefined
}

function toBuffer(password: string | Buffer): Buffer {
  return typeof password === 'string' ? Buffer.from(password, 'utf8') : password
}
