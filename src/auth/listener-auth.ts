import { isIP } from 'node:net'
import type { Config, ListenerConfig } from '../config/schema.js'
import type { CertificateIdentityMode } from './certificate-identity.js'

/** How one listener authenticates clients, resolved from the listener's keys and `auth`. */
export interface ListenerAuth {
  allowAnonymous: boolean
  certificateIdentity: CertificateIdentityMode
}

/**
 * Safe default: anonymous clients are allowed only on loopback listeners, unless the listener
 * (`allowAnonymous`) or `auth.allowAnonymous` says otherwise, in that order. Certificate identity
 * only applies to TLS listeners.
 */
export function resolveListenerAuth(listener: ListenerConfig, auth: Config['auth']): ListenerAuth {
  const secure = listener.type === 'tls' || listener.type === 'wss'
  return {
    allowAnonymous: listener.allowAnonymous ?? auth.allowAnonymous ?? isLoopback(listener.host),
    certificateIdentity: secure ? (listener.certificateIdentity ?? auth.certificateIdentity) : 'none',
  }
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return isIP(v4) === 4 && v4.startsWith('127.')
}

/** One line for the start-up log: who may connect on this listener. */
export function describeListenerAuth(mode: ListenerAuth, passwordFile: string | undefined): string {
  const parts = [mode.allowAnonymous ? 'anonymous clients allowed' : 'anonymous clients refused']
  parts.push(passwordFile ? `passwords from ${passwordFile}` : 'no password file')
  if (mode.certificateIdentity !== 'none') parts.push(`client certificate ${mode.certificateIdentity.toUpperCase()} is the user name`)
  return parts.join(', ')
}
