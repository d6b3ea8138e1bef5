// The common case without a scenario file: a single-profile fleet described by CLI flags, and
// flag overrides applied on top of a scenario file. Both go through resolveScenario, so flags
// get exactly the same validation as files.

export interface FleetFlags {
  url?: string
  protocol?: string
  username?: string
  password?: string
  ca?: string
  cert?: string
  key?: string
  insecure?: boolean
  devices?: string
  rate?: string
  qos?: string
  topic?: string
  clientId?: string
  connectRate?: string
  payloadSize?: string
  retain?: boolean
  count?: string
  duration?: string
  jitter?: string
  persistent?: boolean
  observers?: string
  shared?: string
  grace?: string
  seed?: string
  workers?: string
}

const num = (value: string | undefined): number | undefined => (value === undefined ? undefined : Number(value))

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

function brokerOverrides(flags: FleetFlags): Record<string, unknown> {
  return defined({
    url: flags.url,
    protocol: num(flags.protocol),
    username: flags.username,
    password: flags.password,
    ca: flags.ca,
    cert: flags.cert,
    key: flags.key,
    rejectUnauthorized: flags.insecure ? false : undefined,
  })
}

/** Raw scenario data (unvalidated) for a fleet described entirely by flags. */
export function scenarioFromFlags(flags: FleetFlags): Record<string, unknown> {
  const count = num(flags.count)
  return {
    name: 'cli',
    broker: { url: 'mqtt://127.0.0.1:1883', ...brokerOverrides(flags) },
    ...defined({ seed: num(flags.seed), workers: num(flags.workers), grace: flags.grace }),
    // With neither a duration nor a count, run for a short default.
    ...(flags.duration !== undefined ? { duration: flags.duration } : count === undefined ? { duration: '10s' } : {}),
    observers: defined({ count: num(flags.observers) ?? 1, shared: flags.shared }),
    profiles: [
      {
        name: 'sim',
        count: num(flags.devices) ?? 10,
        clientId: flags.clientId ?? 'sim-{index}',
        ...defined({ connectRate: flags.connectRate }),
        ...(flags.persistent ? { session: { clean: false, expiry: '1h' } } : {}),
        publish: {
          topic: flags.topic ?? 'sim/{deviceId}/telemetry',
          rate: flags.rate ?? '1/s',
          qos: num(flags.qos) ?? 0,
          retain: flags.retain ?? false,
          ...defined({ count, jitter: flags.jitter }),
          payload:
            flags.payloadSize !== undefined
              ? { format: 'binary', size: num(flags.payloadSize) }
              : { format: 'json', fields: { temperature: { type: 'randomWalk', min: -10, max: 40, step: 0.2 } } },
        },
      },
    ],
  }
}

/** Applies the flags a user gave explicitly on top of a scenario file's raw data. */
export function applyFlagOverrides(raw: unknown, flags: FleetFlags): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw
  const o = raw as Record<string, unknown>
  const broker = typeof o.broker === 'object' && o.broker !== null ? (o.broker as Record<string, unknown>) : {}
  return {
    ...o,
    broker: { ...broker, ...brokerOverrides(flags) },
    ...defined({ seed: num(flags.seed), workers: num(flags.workers), duration: flags.duration, grace: flags.grace }),
  }
}
