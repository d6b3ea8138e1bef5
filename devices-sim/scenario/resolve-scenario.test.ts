import { describe, expect, it } from 'vitest'
import { parseScenarioText } from './load-scenario.js'
import { resolveScenario } from './resolve-scenario.js'
import { ScenarioError } from './scenario-error.js'

const minimal = () => ({
  broker: { url: 'mqtt://127.0.0.1:1883' },
  duration: '10s',
  profiles: [{ count: 3, publish: { topic: 'sensors/{deviceId}/temp', qos: 1 } }],
})

function issuesOf(input: unknown): readonly string[] {
  try {
    resolveScenario(input)
  } catch (error) {
    expect(error).toBeInstanceOf(ScenarioError)
    return (error as ScenarioError).issues
  }
  throw new Error('expected the scenario to be rejected')
}

describe('resolveScenario', () => {
  it('fills defaults and converts units', () => {
    const s = resolveScenario({ ...minimal(), seed: 7, profiles: [{ count: 3, publish: { topic: 'a/{deviceId}', rate: '2/s', jitter: '10%' } }] })
    expect(s.durationMs).toBe(10_000)
    expect(s.graceMs).toBe(5000)
    expect(s.seed).toBe(7)
    expect(s.broker.protocol).toBe(5)
    const profile = s.profiles[0]!
    expect(profile.name).toBe('profile0')
    expect(profile.clientId).toBe('{profile}-{index}')
    expect(profile.publish[0]).toMatchObject({ intervalMs: 500, jitterMs: 50, qos: 0, retain: false })
    expect(s.observers).toEqual({ count: 1, topics: ['a/+'], shared: undefined, qos: 0 })
    expect(Object.isFrozen(s.profiles[0]!.publish[0])).toBe(true)
  })

  it('names the field of a bad QoS', () => {
    const input = minimal()
    ;(input.profiles[0]!.publish as { qos: number }).qos = 3
    expect(issuesOf(input)).toEqual(['profiles[0].publish.qos: expected 0, 1 or 2'])
  })

  it('names array positions inside a list of publish streams', () => {
    const issues = issuesOf({ ...minimal(), profiles: [{ count: 1, publish: [{ topic: 'a' }, { topic: 'b/#' }] }] })
    expect(issues).toEqual(['profiles[0].publish[1].topic: a publish topic cannot contain "+" or "#"'])
  })

  it('reports every problem at once, including unknown fields and missing ones', () => {
    const issues = issuesOf({ broker: { url: 'http://x' }, duration: 'soon', profiles: [{ count: 0, colour: 'red', publish: { topic: 't' } }], extra: 1 })
    expect(issues).toContain('broker.url: expected mqtt://, mqtts://, ws:// or wss:// URL')
    expect(issues.some((i) => i.startsWith('duration: expected a duration'))).toBe(true)
    expect(issues.some((i) => i.startsWith('profiles[0].count:'))).toBe(true)
    expect(issues).toContain('profiles[0].colour: unknown field')
    expect(issues).toContain('extra: unknown field')
  })

  it('requires a field that is missing', () => {
    expect(issuesOf({ broker: { url: 'mqtt://h' }, duration: '1s' })).toEqual(['profiles: required'])
  })

  it('applies cross-field rules', () => {
    const issues = issuesOf({
      broker: { url: 'mqtt://h', cert: 'c.pem' },
      profiles: [
        {
          count: 2,
          clientId: 'dev',
          publish: { topic: 'x/{devId}', interval: '1s', rate: '1/s', jitter: '2s', payload: { format: 'json', fields: { seq: { type: 'counter' }, t: { type: 'randomWalk', min: 5, max: 1 } } } },
          commands: { topic: 'cmd' },
          session: { clean: false },
        },
      ],
      commander: { rate: '1/s' },
    })
    expect(issues).toEqual(
      expect.arrayContaining([
        "profiles[0].clientId: must contain {index} when count > 1, or devices would take over each other's sessions",
        expect.stringMatching(/^profiles\[0\]\.publish\.topic: unknown placeholder \{devId\}/),
        'profiles[0].publish.rate: set either interval or rate, not both',
        'profiles[0].publish.jitter: must not exceed the interval (1000ms)',
        'profiles[0].publish.payload.fields.seq: "seq" is reserved for the measurement envelope',
        'profiles[0].publish.payload.fields.t.max: must be greater than min',
        'profiles[0].commands.topic: must contain {deviceId} or {index} so each device has its own command topic',
        'profiles[0].session.expiry: a persistent MQTT 5 session needs an expiry greater than 0',
        'duration: required unless every publish stream sets count',
        'broker.key: cert and key must be given together',
      ]),
    )
  })

  it('accepts a count-limited run without duration and validates observer filters', () => {
    const s = resolveScenario({ broker: { url: 'mqtt://h' }, profiles: [{ count: 1, publish: { topic: 't', count: 5 } }] })
    expect(s.durationMs).toBeUndefined()
    expect(issuesOf({ ...minimal(), observers: { topics: ['a/#/b'] } })).toEqual(['observers.topics[0]: "#" must be a whole last level in "a/#/b"'])
  })
})

describe('parseScenarioText', () => {
  it('parses YAML with generators', () => {
    const s = parseScenarioText(`
broker: { url: mqtt://127.0.0.1:1883, protocol: 4 }
duration: 1m
profiles:
  - name: thermo
    count: 2
    publish:
      topic: t/{deviceId}
      interval: 500ms
      payload:
        format: json
        fields:
          temp: { type: sine, min: 10, max: 30, period: 10m, noise: 0.2 }
`)
    expect(s.durationMs).toBe(60_000)
    expect(s.broker.protocol).toBe(4)
    const payload = s.profiles[0]!.publish[0]!.payload
    expect(payload).toEqual({ format: 'json', fields: { temp: { type: 'sine', min: 10, max: 30, period: 600_000, noise: 0.2, decimals: 2 } } })
  })

  it('reports YAML syntax errors with a line number', () => {
    expect(() => parseScenarioText('broker: {url: x\nprofiles: [', 'bad.yaml')).toThrow(/invalid scenario in bad\.yaml:\n {2}- line \d+/)
  })

  it('names a bad generator type', () => {
    expect(() =>
      parseScenarioText(JSON.stringify({ ...minimal(), profiles: [{ count: 1, publish: { topic: 't', payload: { format: 'json', fields: { x: { type: 'saw' } } } } }] })),
    ).toThrow('profiles[0].publish.payload.fields.x.type: expected a generator with type randomWalk, sine, counter, boolean, gps or constant')
  })
})
