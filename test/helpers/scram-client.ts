import { randomBytes } from 'node:crypto'
import { hmac, saltedPassword, sha256 } from '../../src/auth/enhanced/scram-credential.js'

/**
 * The client side of SCRAM-SHA-256 for tests, written from RFC 5802 §3 independently of the
 * server's message handling: it builds client-first and client-final and checks server-final.
 */
export interface ScramClient {
  /** client-first-message ("n,,n=user,r=nonce") */
  first: string
  /** client-final-message for the server-first-message; rejects on a malformed one */
  final(serverFirst: string): Promise<string>
  /** true when server-final ("v=...") proves the server knew the keys */
  verifyServer(serverFinal: string): boolean
}

export function scramClient(user: string, password: string, clientNonce = randomBytes(18).toString('base64')): ScramClient {
  const gs2 = 'n,,'
  const bare = `n=${user.replaceAll('=', '=3D').replaceAll(',', '=2C')},r=${clientNonce}`
  let expectedServerSignature: Buffer | undefined
  return {
    first: gs2 + bare,
    async final(serverFirst) {
      const fields = Object.fromEntries(serverFirst.split(',').map((part) => [part[0], part.slice(2)]))
      const { r: nonce, s: salt, i: iterations } = fields as Record<string, string | undefined>
      if (!nonce?.startsWith(clientNonce) || !salt || !iterations) throw new Error(`bad server-first-message: ${serverFirst}`)
      const salted = await saltedPassword(password, Buffer.from(salt, 'base64'), Number(iterations))
      const clientKey = hmac(salted, 'Client Key')
      const withoutProof = `c=${Buffer.from(gs2).toString('base64')},r=${nonce}`
      const authMessage = `${bare},${serverFirst},${withoutProof}`
      const signature = hmac(sha256(clientKey), authMessage)
      const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!))
      expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage)
      return `${withoutProof},p=${proof.toString('base64')}`
    },
    verifyServer(serverFinal) {
      return expectedServerSignature !== undefined && serverFinal === `v=${expectedServerSignature.toString('base64')}`
    },
  }
}
