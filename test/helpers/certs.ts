import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './stores.js'

export interface TestCertificates {
  dir: string
  ca: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
}

/** A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate (openssl). */
export function makeCertificates(): TestCertificates {
  const dir = tempDir('mqlite-certs-')
  const f = (name: string) => join(dir, name)
  const ssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
  ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=mqlite test CA'])
  for (const [name, cn, ext] of [
    ['server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    ['client', 'device-42', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`])
    writeFileSync(f(`${name}.ext`), `${ext}\n`)
    ssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '2', '-extfile', f(`${name}.ext`)])
  }
  return { dir, ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') }
}
