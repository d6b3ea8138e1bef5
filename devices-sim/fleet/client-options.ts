// Builds mqtt.js connect options from the scenario's broker section, shared by devices,
// observers and the commander so they all speak the same protocol version and TLS settings.
import { readFileSync } from 'node:fs'
import type { IClientOptions } from 'mqtt'
import type { Scenario } from '../scenario/resolve-scenario.js'

export interface TlsMaterial {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
}

/** Reads certificate files once per worker, not once per device. */
export function loadTlsMaterial(broker: Scenario['broker']): TlsMaterial {
  return {
    ...(broker.ca ? { ca: readFileSync(broker.ca) } : {}),
    ...(broker.cert ? { cert: readFileSync(broker.cert) } : {}),
    ...(broker.key ? { key: readFileSync(broker.key) } : {}),
  }
}

export interface ClientIdentity {
  clientId: string
  clean: boolean
  sessionExpiryMs?: number
  keepalive?: number
  will?: IClientOptions['will']
  /** Automatic reconnects; observers and devices want them, one-shot clients do not. */
  reconnect?: boolean
}

export function buildClientOptions(broker: Scenario['broker'], tls: TlsMaterial, identity: ClientIdentity): IClientOptions {
  const options: IClientOptions = {
    clientId: identity.clientId,
    protocolVersion: broker.protocol,
    clean: identity.clean,
    keepalive: identity.keepalive ?? broker.keepalive,
    connectTimeout: broker.connectTimeoutMs,
    reconnectPeriod: identity.reconnect === false ? 0 : broker.reconnectPeriodMs,
    rejectUnauthorized: broker.rejectUnauthorized,
    // Devices publish only while connected; queueing QoS 0 offline would skew send timestamps.
    queueQoSZero: false,
    ...tls,
  }
  if (broker.protocol === 3) options.protocolId = 'MQIsdp'
  if (broker.username !== undefined) options.username = broker.username
  if (broker.password !== undefined) options.password = broker.password
  if (identity.will) options.will = identity.will
  if (broker.protocol === 5 && identity.sessionExpiryMs) {
    options.properties = { sessionExpiryInterval: Math.ceil(identity.sessionExpiryMs / 1000) }
  }
  return options
}

/** A short, stable reason for a connection failure, for the "failures by reason" table. */
export function failureReason(error: unknown): string {
  if (error && typeof error === 'object') {
    const e = error as { code?: unknown; message?: unknown }
    if (typeof e.code === 'string') return e.code
    if (typeof e.message === 'string' && e.message) return typeof e.code === 'number' ? `${e.message} (${e.code})` : e.message
  }
  return String(error)
}
