import type { Client } from 'aedes'
import { TLSSocket } from 'node:tls'

export type CertificateIdentityMode = 'cn' | 'san' | 'none'

/**
 * The identity in a client's TLS certificate, or undefined when there is none to trust: not a TLS
 * connection, no certificate, or one that did not verify against the listener's CA (a certificate
 * is only evidence of identity when the chain was checked).
 * - `cn`: the subject's Common Name;
 * - `san`: the first Subject Alternative Name of type DNS, URI or email (in certificate order).
 * For MQTT over TCP the TLS socket is the connection itself; for WebSockets it is the socket of
 * the HTTP upgrade request.
 */
export function certificateIdentity(client: Client, mode: CertificateIdentityMode): string | undefined {
  if (mode === 'none') return undefined
  const socket = tlsSocketOf(client)
  if (!socket || !socket.authorized) return undefined
  const cert = socket.getPeerCertificate()
  if (!cert || Object.keys(cert).length === 0) return undefined
  if (mode === 'cn') {
    const cn = (cert.subject as Record<string, string | string[] | undefined> | undefined)?.CN
    const value = Array.isArray(cn) ? cn[0] : cn
    return value && value.length > 0 ? value : undefined
  }
  return firstSubjectAltName(cert.subjectaltname)
}

export function firstSubjectAltName(subjectaltname: string | undefined): string | undefined {
  if (!subjectaltname) return undefined
  for (const entry of subjectaltname.split(/,\s*/)) {
    const colon = entry.indexOf(':')
    const type = entry.slice(0, colon)
    const value = entry.slice(colon + 1)
    if ((type === 'DNS' || type === 'URI' || type === 'email') && value.length > 0) return value
  }
  return undefined
}

function tlsSocketOf(client: Client): TLSSocket | undefined {
  if (client.conn instanceof TLSSocket) return client.conn
  const socket = (client.req as { socket?: unknown } | undefined)?.socket
  return socket instanceof TLSSocket ? socket : undefined
}
