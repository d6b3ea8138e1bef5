import { readFileSync } from 'node:fs'
import type { SecureContextOptions, TlsOptions } from 'node:tls'
import { ListenerError } from '../errors.js'
import type { TlsConfig } from '../config/schema.js'

/** Reads the certificate files named in the config; an unreadable file is a clear start-up error. */
export function readTlsFiles(config: TlsConfig, what: string): SecureContextOptions {
  const read = (file: string, key: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw new ListenerError(`${what}: tls.${key} ${file}: ${(err as Error).message}`, { cause: err })
    }
  }
  return {
    cert: read(config.cert, 'cert'),
    key: read(config.key, 'key'),
    ...(config.ca ? { ca: read(config.ca, 'ca') } : {}),
    minVersion: config.minVersion,
    ...(config.ciphers ? { ciphers: config.ciphers } : {}),
  }
}

export function tlsServerOptions(config: TlsConfig, what: string): TlsOptions {
  return {
    ...readTlsFiles(config, what),
    requestCert: config.requestCert,
    rejectUnauthorized: config.requestCert && config.rejectUnauthorized,
  }
}
