import { z } from 'zod'
import { ACK_WINDOW_MS_DEFAULT } from '../persistence/options.js'

// The one configuration schema. Every key has a description (it feeds `mqlite --help` and the
// README reference) and a default where one makes sense, so an empty config is a working broker.

const port = z.number().int().min(0).max(65535)

const tlsOptions = z
  .object({
    cert: z.string().min(1).describe('PEM certificate chain file'),
    key: z.string().min(1).describe('PEM private key file'),
    ca: z.string().min(1).optional().describe('PEM CA bundle used to verify client certificates'),
    requestCert: z.boolean().default(false).describe('ask clients for a certificate'),
    rejectUnauthorized: z
      .boolean()
      .default(true)
      .describe('with requestCert: refuse clients whose certificate does not verify against ca'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('lowest TLS version accepted'),
    ciphers: z.string().min(1).optional().describe('OpenSSL cipher list (TLS 1.2 and below)'),
  })
  .strict()

const baseListener = {
  host: z.string().min(1).default('127.0.0.1').describe('address to bind'),
  name: z.string().min(1).optional().describe('label used in logs and metrics (default: type:port)'),
  allowAnonymous: z
    .boolean()
    .optional()
    .describe('accept clients without user name or certificate here (default: auth.allowAnonymous, else only on loopback addresses)'),
  certificateIdentity: z
    .enum(['cn', 'san', 'none'])
    .optional()
    .describe('tls/wss: take the user name from the verified client certificate (default: auth.certificateIdentity)'),
  maxConnections: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('open connections this listener accepts (default: no per-listener limit; 0 = none either)'),
}

const wsPath = z
  .string()
  .regex(/^\//, 'must start with "/"')
  .default('/mqtt')
  .describe('HTTP path that accepts the WebSocket upgrade')

export const listenerSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('tcp'), port: port.default(1883).describe('port to bind (0 picks a free one)'), ...baseListener }).strict(),
  z.object({ type: z.literal('tls'), port: port.default(8883).describe('port to bind (0 picks a free one)'), ...baseListener, tls: tlsOptions }).strict(),
  z.object({ type: z.literal('ws'), port: port.default(8080).describe('port to bind (0 picks a free one)'), path: wsPath, ...baseListener }).strict(),
  z
    .object({ type: z.literal('wss'), port: port.default(8081).describe('port to bind (0 picks a free one)'), path: wsPath, ...baseListener, tls: tlsOptions })
    .strict(),
])

const storeSchema = z
  .object({
    type: z.enum(['sqlite', 'memory']).default('sqlite').describe('sqlite (durable, default) or memory (volatile)'),
    path: z
      .string()
      .min(1)
      .optional()
      .describe('SQLite database file (default: <dataDir>/mqlite.db)'),
    synchronous: z
      .enum(['normal', 'full'])
      .default('normal')
      .describe('normal survives a process crash; full also survives power loss (slower)'),
    maxQueuedMessages: z
      .number()
      .int()
      .min(0)
      .default(100_000)
      .describe('per-session limit of queued messages (0 = unlimited)'),
    maxQueuedBytes: z
      .number()
      .int()
      .min(0)
      .default(64 * 1024 * 1024)
      .describe('per-session limit of queued payload bytes (0 = unlimited)'),
    queuePolicy: z
      .enum(['drop-oldest', 'refuse'])
      .default('drop-oldest')
      .describe('what happens to a full session queue: drop its oldest message, or refuse the new one'),
    ackWindowMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(ACK_WINDOW_MS_DEFAULT)
      .describe('ms a QoS 1 message for one connected persistent session waits in memory for its PUBACK before it is written (0 = written at once)'),
  })
  .strict()

const clusterSchema = z
  .object({
    redis: z
      .object({
        url: z
          .string()
          .regex(/^rediss?:\/\/\S+$/, 'must be a redis:// or rediss:// URL')
          .describe('Redis server shared by the nodes: redis://[user:password@]host:port[/db] or rediss://'),
        keyPrefix: z.string().min(1).default('mqlite:').describe('prefix of every Redis key and channel (several clusters can share one Redis)'),
      })
      .strict(),
    heartbeatInterval: z
      .number()
      .int()
      .min(100)
      .default(5000)
      .describe('milliseconds between node heartbeats; a node silent for 3 intervals is dead and its wills are published'),
    connectTimeout: z.number().int().min(100).default(10_000).describe('milliseconds to wait for Redis at start before giving up'),
  })
  .strict()

const mqttSchema = z
  .object({
    maxKeepAlive: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(0)
      .describe('longest keep-alive in seconds a client may use (0 = no limit); v5 clients are told via Server Keep Alive'),
    maxPacketSize: z
      .number()
      .int()
      .min(0)
      .max(268_435_455)
      .default(0)
      .describe('largest inbound packet in bytes (0 = protocol maximum); advertised to v5 clients'),
    receiveMaximum: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(0)
      .describe('in-flight QoS 1/2 publishes a v5 client may send unacknowledged (0 = 65535)'),
    sharedSubscriptions: z
      .boolean()
      .default(true)
      .describe('serve $share/{group}/{filter} subscriptions (off: refused with 0x9E for MQTT 5)'),
    maxInflightMessages: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(0)
      .describe(
        'unacknowledged QoS 1/2 messages the broker sends a client before waiting for acks (0 = the client\'s Receive Maximum; unlimited for 3.1.1)',
      ),
    topicAliasMaximum: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(64)
      .describe('inbound topic aliases accepted from v5 clients (0 = none)'),
    maxSessionExpiryInterval: z
      .number()
      .int()
      .min(0)
      .max(0xffffffff)
      .default(0)
      .describe('cap in seconds on the Session Expiry Interval a v5 client may ask for (0 = no cap)'),
    maxTopicLevels: z.number().int().min(1).max(100).default(100).describe('most levels a topic may have'),
    maxClientIdLength: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(23)
      .describe('longest client id accepted from MQTT 3.1 clients (3.1.1 and 5 are not limited)'),
    connectTimeout: z
      .number()
      .int()
      .min(100)
      .default(10_000)
      .describe('milliseconds a new connection has to send CONNECT'),
  })
  .strict()

const authSchema = z
  .object({
    allowAnonymous: z
      .boolean()
      .optional()
      .describe('accept clients without credentials on every listener (default: only on loopback listeners)'),
    passwordFile: z
      .string()
      .min(1)
      .optional()
      .describe('user:hash lines (`mqlite passwd`, or a Mosquitto password file); reloaded on SIGHUP'),
    aclFile: z.string().min(1).optional().describe('Mosquitto-syntax ACL file; without one, clients may use any topic but $SYS. Reloaded on SIGHUP'),
    certificateIdentity: z
      .enum(['cn', 'san', 'none'])
      .default('none')
      .describe('tls/wss listeners: use the verified client certificate\'s CN or first SAN as user name when CONNECT has none'),
    failureDelay: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(1000)
      .describe('milliseconds before a refused login gets its CONNACK (slows password guessing)'),
    enhancedMethods: z
      .array(z.enum(['SCRAM-SHA-256']))
      .default(['SCRAM-SHA-256'])
      .describe('MQTT 5 enhanced authentication methods offered (AUTH packet); SCRAM-SHA-256 uses the password file\'s `mqlite passwd --scram` entries. [] turns it off'),
  })
  .strict()

const rateSchema = (what: string) =>
  z
    .object({
      perSecond: z.number().min(0).default(0).describe(`${what} per second, sustained (0 = no limit)`),
      burst: z.number().int().min(1).optional().describe(`${what} allowed at once above the rate (default: max(1, perSecond))`),
    })
    .strict()

const limitsSchema = z
  .object({
    maxConnections: z.number().int().min(0).default(0).describe('open connections over all listeners (0 = no limit)'),
    connectionRate: rateSchema('new connections from one source address')
      .default({ perSecond: 0 })
      .describe('token bucket per source address; excess connections are closed at once'),
    maxClientIdLength: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(256)
      .describe('longest client id, every protocol version (refused with CONNACK 2 / 0x85)'),
    maxTopicLength: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(4096)
      .describe('longest topic name or filter in bytes (a PUBLISH: disconnect, 0x90 for v5; a SUBSCRIBE: refused)'),
    maxSubscriptionsPerClient: z
      .number()
      .int()
      .min(0)
      .default(1000)
      .describe('subscriptions one session may hold (0 = no limit); more are refused with 0x97 (v5) / 0x80'),
    publishRate: rateSchema('PUBLISH packets from one client')
      .extend({
        policy: z
          .enum(['drop', 'disconnect'])
          .default('drop')
          .describe('over the rate: drop the message (still acknowledged; v5: 0x97) or disconnect (v5: 0x96)'),
      })
      .default({ perSecond: 0, policy: 'drop' })
      .describe('token bucket per client'),
    maxRetainedMessages: z
      .number()
      .int()
      .min(0)
      .default(100_000)
      .describe('retained messages kept (0 = no limit); a new retained topic beyond it is delivered but not retained'),
    maxRetainedBytes: z
      .number()
      .int()
      .min(0)
      .default(256 * 1024 * 1024)
      .describe('payload bytes of all retained messages (0 = no limit)'),
  })
  .strict()

const metricsSchema = z
  .object({
    enabled: z.boolean().default(true).describe('serve /metrics, /healthz and /readyz over HTTP'),
    host: z.string().min(1).default('127.0.0.1').describe('address of the HTTP endpoint'),
    port: port.default(9234).describe('port of the HTTP endpoint'),
  })
  .strict()

const sysSchema = z
  .object({
    interval: z
      .number()
      .int()
      .min(0)
      .max(86_400)
      .default(10)
      .describe('seconds between $SYS/broker/... status publishes, retained (0 = no $SYS topics)'),
  })
  .strict()

const logSchema = z
  .object({
    level: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('log level'),
    pretty: z
      .union([z.boolean(), z.literal('auto')])
      .default('auto')
      .describe('human-readable logs (auto: when stdout is a terminal)'),
  })
  .strict()

export const configSchema = z
  .object({
    brokerId: z.string().min(1).optional().describe('unique id of this broker process (default: random)'),
    dataDir: z.string().min(1).default('./data').describe('directory for the database and other state'),
    listeners: z
      .array(listenerSchema)
      .min(1)
      .default([{ type: 'tcp', host: '127.0.0.1', port: 1883 }])
      .describe('MQTT listeners: tcp, tls, ws, wss (any number of each)'),
    store: storeSchema.default(storeSchema.parse({})),
    cluster: clusterSchema
      .optional()
      .describe('cluster mode: with it, every node keeps its state in Redis and routes messages through it (the store settings other than the queue limits do not apply)'),
    mqtt: mqttSchema.default(mqttSchema.parse({})),
    metrics: metricsSchema.default(metricsSchema.parse({})),
    sys: sysSchema.default(sysSchema.parse({})),
    log: logSchema.default(logSchema.parse({})),
    auth: authSchema.default(authSchema.parse({})),
    limits: limitsSchema.default(limitsSchema.parse({})),
    shutdownTimeout: z
      .number()
      .int()
      .min(0)
      .default(10_000)
      .describe('milliseconds a graceful shutdown may take before it is forced'),
  })
  .strict()

/** What a user may write: every key optional. */
export type ConfigInput = z.input<typeof configSchema>
/** What the broker runs with: validated, defaults applied, frozen. */
export type Config = z.output<typeof configSchema>
export type ListenerConfig = z.output<typeof listenerSchema>
export type TlsConfig = z.output<typeof tlsOptions>
