// The scenario file format (YAML or JSON), validated with zod. Quantities arrive as friendly
// strings ("30s", "10/s", "5%") and leave as numbers (ms, per second, fraction) so the rest of
// the simulator never parses units. Cross-field rules live in resolve-scenario.ts.
import { z } from 'zod'
import { parseDuration, parseFraction, parseRate } from '../util/units.js'

function viaParser<T>(parse: (value: string | number) => T) {
  return z.union([z.string(), z.number()]).transform((value, ctx): T => {
    try {
      return parse(value)
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message })
      return z.NEVER
    }
  })
}

export const durationMs = viaParser(parseDuration)
export const ratePerSecond = viaParser(parseRate)
export const fraction = viaParser(parseFraction)
/** "10%" of something, or an absolute duration; resolved once the "something" is known. */
const jitterSpec = z.union([z.string(), z.number()])

const qos = z.literal([0, 1, 2], { error: 'expected 0, 1 or 2' })
const finite = z.number({ error: 'expected a number' }).refine(Number.isFinite, 'expected a finite number')
const decimals = z.int().min(0).max(10).default(2)

const randomWalk = z.strictObject({
  type: z.literal('randomWalk'),
  min: finite,
  max: finite,
  start: finite.optional(),
  /** Largest change per sample; default 1% of the range. */
  step: finite.positive().optional(),
  decimals,
})
const sine = z.strictObject({
  type: z.literal('sine'),
  min: finite,
  max: finite,
  period: durationMs.default(60_000),
  /** Standard deviation of gaussian noise added to each sample, in value units. */
  noise: finite.min(0).default(0),
  decimals,
})
const counter = z.strictObject({
  type: z.literal('counter'),
  start: z.int().default(0),
  step: z.int().default(1),
  /** Wraps back to `start` after passing `max`. */
  max: z.int().optional(),
})
const boolean = z.strictObject({
  type: z.literal('boolean'),
  initial: z.boolean().default(false),
  /** Chance that the value changes between two samples (a door, a relay). */
  flip: fraction.default(0.1),
})
const gps = z.strictObject({
  type: z.literal('gps'),
  lat: finite.min(-90).max(90),
  lon: finite.min(-180).max(180),
  /** Metres per second. */
  speed: finite.min(0).default(10),
  /** The track turns back towards the start when it strays further than this, in metres. */
  radius: finite.positive().default(1000),
  decimals: z.int().min(0).max(10).default(6),
})
const constant = z.strictObject({ type: z.literal('constant'), value: z.json() })

export const generatorSchema = z.discriminatedUnion('type', [randomWalk, sine, counter, boolean, gps, constant], {
  error: 'expected a generator with type randomWalk, sine, counter, boolean, gps or constant',
})

export const RESERVED_PAYLOAD_FIELDS = ['deviceId', 'seq', 'ts', 'run', 'stream', 'profile'] as const

const payloadSchema = z.discriminatedUnion(
  'format',
  [
    z.strictObject({
      format: z.literal('json'),
      fields: z.record(z.string(), generatorSchema).default({}),
    }),
    z.strictObject({
      format: z.literal('binary'),
      /** Total payload size in bytes, header included. */
      size: z.int().min(32).max(256 * 1024 * 1024),
    }),
  ],
  { error: 'expected format "json" or "binary"' },
)

export const publishSchema = z.strictObject({
  topic: z.string().min(1),
  interval: durationMs.optional(),
  rate: ratePerSecond.optional(),
  jitter: jitterSpec.default(0),
  qos: qos.default(0),
  retain: z.boolean().default(false),
  /** Messages per device on this stream; the device stops this stream after that many. */
  count: z.int().positive().optional(),
  payload: payloadSchema.default({ format: 'json', fields: {} }),
})

export const profileSchema = z.strictObject({
  name: z.string().regex(/^[\w.-]+$/, 'expected letters, digits, "_", "." or "-"').optional(),
  count: z.int().positive(),
  clientId: z.string().min(1).default('{profile}-{index}'),
  /** New connections per second for this profile (ramp-up); unlimited when omitted. */
  connectRate: ratePerSecond.optional(),
  session: z
    .strictObject({
      clean: z.boolean().default(true),
      /** MQTT 5 session expiry after disconnect; ignored for 3.1.1. */
      expiry: durationMs.default(0),
    })
    .default({ clean: true, expiry: 0 }),
  keepalive: z.int().min(0).max(65535).optional(),
  publish: z.union([publishSchema, z.array(publishSchema).min(1)]),
  status: z
    .strictObject({
      topic: z.string().min(1),
      online: z.string().default('online'),
      offline: z.string().default('offline'),
      qos: qos.default(1),
    })
    .optional(),
  commands: z
    .strictObject({
      topic: z.string().min(1),
      qos: qos.default(1),
      /** Simulated processing time before the device answers. */
      delay: durationMs.default(0),
    })
    .optional(),
  churn: z
    .strictObject({
      /** Share of this profile's devices that disconnect per minute. */
      perMinute: fraction,
      /** How long a churned device stays offline. */
      offline: durationMs.default(5000),
      /** abrupt: drop the socket (the Last Will fires); graceful: DISCONNECT. */
      mode: z.enum(['abrupt', 'graceful']).default('abrupt'),
    })
    .optional(),
})

export const brokerSchema = z.strictObject({
  url: z.string().regex(/^(mqtts?|wss?):\/\/.+/, 'expected mqtt://, mqtts://, ws:// or wss:// URL'),
  protocol: z.literal([3, 4, 5], { error: 'expected 3, 4 (3.1.1) or 5' }).default(5),
  username: z.string().optional(),
  password: z.string().optional(),
  /** File paths of PEM files for TLS. */
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  rejectUnauthorized: z.boolean().default(true),
  keepalive: z.int().min(0).max(65535).default(60),
  connectTimeout: durationMs.default(10_000),
  reconnectPeriod: durationMs.default(1000),
})

export const observersSchema = z.strictObject({
  count: z.int().min(0).default(1),
  /** Filters to subscribe; default: the publish topics with template segments turned into "+". */
  topics: z.array(z.string().min(1)).min(1).optional(),
  /** Share one subscription between the observers ($share/<group>/<filter>). */
  shared: z.string().regex(/^[^/+#]+$/, 'expected a group name without "/", "+" or "#"').optional(),
  qos: qos.optional(),
})

export const commanderSchema = z.strictObject({
  rate: ratePerSecond,
  timeout: durationMs.default(5000),
  qos: qos.default(1),
})

export const scenarioSchema = z.strictObject({
  name: z.string().default('scenario'),
  broker: brokerSchema,
  seed: z.int().min(0).max(0xffffffff).optional(),
  duration: durationMs.optional(),
  /** After publishing stops, how long observers may still receive before the rest counts as lost. */
  grace: durationMs.default(5000),
  workers: z.int().min(0).max(256).optional(),
  observers: observersSchema.default({ count: 1 }),
  commander: commanderSchema.optional(),
  profiles: z.array(profileSchema).min(1),
})

export type ScenarioInput = z.input<typeof scenarioSchema>
export type ParsedScenario = z.output<typeof scenarioSchema>
export type GeneratorSpec = z.output<typeof generatorSchema>
export type PayloadSpec = z.output<typeof payloadSchema>
