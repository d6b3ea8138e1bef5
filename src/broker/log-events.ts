import type { EventEmitter } from 'node:events'
import type { Aedes, Client } from 'aedes'
import type { Logger } from '../log/logger.js'
import { connectionInfo } from './connection-info.js'
import { PublishRefusedError } from '../errors.js'

/**
 * One log line per connect, disconnect (with its reason) and protocol error. Nothing per message:
 * at the default level the log stays proportional to connections, not traffic.
 */
export function logBrokerEvents(broker: Aedes, logger: Logger): void {
  const describe = (client: Client) => {
    const info = connectionInfo(client)
    return { clientId: client.id, listener: info?.listener, remote: info?.remoteAddress }
  }
  // info lines: nothing is built when info is off (each connect would leave garbage behind)
  broker.on('client', (client) => {
    if (!logger.isLevelEnabled('info')) return
    logger.info({ ...describe(client), protocol: client.version, clean: client.clean }, 'client connected')
  })
  broker.on('clientDisconnect', (client) => {
    if (!logger.isLevelEnabled('info')) return
    const reasonCode = client.disconnectReasonCode
    logger.info(
      { ...describe(client), ...(reasonCode !== null && reasonCode !== undefined ? { reasonCode } : {}) },
      'client disconnected',
    )
  })
  broker.on('keepaliveTimeout', (client) => {
    if (logger.isLevelEnabled('info')) logger.info(describe(client), 'keep-alive timeout')
  })
  broker.on('clientError', (client, err) => {
    // A refused PUBLISH is per message (and counted in the metrics). So is a write to a
    // connection that already closed: aedes reports one for every delivery that was on its way
    // (a hundred and more when a subscriber drops under load), and the close itself is logged.
    const level = err instanceof PublishRefusedError || isWriteAfterClose(err) ? 'debug' : 'warn'
    logger[level]({ ...describe(client), err: err.message }, 'client error')
  })
  broker.on('connectionError', (client, err) => {
    logger.warn({ ...describe(client), err: err.message }, 'connection refused or broken before CONNECT completed')
  })
  // Without a listener, an 'error' event would end the process.
  ;(broker as EventEmitter).on('error', (err: Error) => logger.error({ err }, 'broker error'))
}

/** aedes's error for a packet written after the client's connection closed (lib/write.js). */
function isWriteAfterClose(err: Error): boolean {
  return err.message === 'connection closed'
}
