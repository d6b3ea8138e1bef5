import { Aedes, type AedesOptions, type Client, type Subscription } from 'aedes'
import type { Authorizer } from '../auth/authorizer.js'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log/logger.js'
import { hardenStore, usePrototypeFreeMaps, type HardenedStore } from './hardening.js'

/** Fields of the beta's Client that mqlite reads or sets; not part of aedes's typings. */
export interface ClientInternals {
  _serverKeepAlive?: number
}

export interface CreateAedesOptions {
  config: Config
  store: HardenedStore
  authorizer: Authorizer
  logger: Logger
}

/**
 * Builds the aedes broker from the validated config: options, authorization hooks and the
 * hardening the pre-release needs. Starting it also runs the store's `setup()`.
 */
export async function createAedes({ config, store, authorizer, logger }: CreateAedesOptions): Promise<Aedes> {
  const reportError = (err: unknown): void => logger.error({ err }, 'store error')
  hardenStore(store, (client, filter) => authorizer.canSubscribe(client, filter), reportError)
  const { mqtt } = config
  const options: AedesOptions = {
    ...(config.brokerId ? { id: config.brokerId } : {}),
    persistence: store,
    connectTimeout: mqtt.connectTimeout,
    maxClientsIdLength: mqtt.maxClientIdLength,
    maxTopicLevels: mqtt.maxTopicLevels,
    topicAliasMaximum: mqtt.topicAliasMaximum,
    maximumPacketSize: mqtt.maxPacketSize,
    receiveMaximum: mqtt.receiveMaximum,
    sessionExpiryIntervalLimit: mqtt.maxSessionExpiryInterval,
    // Not aedes's keepaliveLimit: it refuses 3.1.1 clients with a return code 3.1.1 does not define.
    keepaliveLimit: 0,
    preConnect: (client, packet, callback) => {
      applyServerKeepAlive(client, packet.protocolVersion ?? 4, packet.keepalive ?? 0, mqtt.maxKeepAlive)
      callback(null, true)
    },
    authenticate: (client, username, password, callback) => {
      Promise.resolve(authorizer.authenticate(client, username, password)).then(
        (ok) => callback(null, ok),
        (err: unknown) => {
          logger.error({ err, clientId: client.id }, 'authentication failed with an error')
          callback(null, false)
        },
      )
    },
    authorizePublish: (client, packet, callback) => {
      callback(authorizer.canPublish(client, packet.topic) ? null : new Error('not authorized to publish'))
    },
    authorizeSubscribe: (client, sub, callback) => {
      callback(null, authorizer.canSubscribe(client, sub.topic) ? sub : (null as unknown as Subscription))
    },
    ...(authorizer.canReceive ? { authorizeForward: forwardIfReadable(authorizer.canReceive) } : {}),
  }
  const broker = await Aedes.createBroker(options)
  usePrototypeFreeMaps(broker)
  return broker
}

/**
 * [MQTT-3.2.2-21] Server Keep Alive: a v5 client asking for no keep-alive or more than the limit
 * is told the limit in CONNACK and held to it. 3.1.1 has no way to say so; those clients keep
 * their own value rather than being refused.
 */
function applyServerKeepAlive(client: Client, version: number, keepalive: number, limit: number): void {
  if (limit > 0 && version === 5 && (keepalive === 0 || keepalive > limit)) {
    ;(client as Client & ClientInternals)._serverKeepAlive = limit
  }
}

/** Re-checks read access on every delivery, queued ones included, so a revoked grant takes effect. */
function forwardIfReadable(canReceive: NonNullable<Authorizer['canReceive']>): AedesOptions['authorizeForward'] {
  return (client, packet) => (canReceive(client, packet.topic) ? packet : null)
}
