import { describe, expect, it } from 'vitest'
import type { Client } from 'aedes'
import type { EventEmitter } from 'node:events'
import { brokerInternals, clientInternals } from '../../src/broker/aedes-internals.js'
import { useBroker } from '../helpers/in-process-broker.js'

// Issue #7: an idle connection should cost the broker as little memory as possible. What mqlite
// attaches to each connection is shared between connections until a feature is used (taps,
// listeners, maps): these tests pin that down structurally, since a memory figure would be flaky.
// The figure itself: `npm run bench -- --only idle`.

function listenersOf(emitter: EventEmitter, events: string[]): unknown[] {
  return events.flatMap((event) => emitter.listeners(event))
}

describe('an idle connection', () => {
  // the default configuration: subscription quota, ACL-free authorizer, SCRAM offered
  const { running, pool } = useBroker(() => ({}))

  async function idleClients(count: number, protocolVersion: 4 | 5): Promise<Client[]> {
    const ids = Array.from({ length: count }, (_, i) => `idle-${protocolVersion}-${i}`)
    for (const clientId of ids) await pool.connect(running.url, { clientId, protocolVersion, keepalive: 600 })
    const clients = brokerInternals(running.broker.aedes!).clients
    return ids.map((id) => clients[id] as Client)
  }

  it('has no listener of its own on its stream, its parser or its client object', async () => {
    const [a, b] = await idleClients(2, 4)
    const ca = clientInternals(a!)
    const cb = clientInternals(b!)
    const events = ['close', 'end', 'error', 'finish']
    // aedes's own per-client ones ('readable', the drain handler) aside, every listener is shared
    expect(listenersOf(ca.conn as unknown as EventEmitter, events)).toEqual(listenersOf(cb.conn as unknown as EventEmitter, events))
    expect(ca._parser.listeners('packet')).toEqual(cb._parser.listeners('packet'))
    expect(ca._parser.listeners('error')).toEqual(cb._parser.listeners('error'))
    expect(a!.listeners('error')).toEqual(b!.listeners('error'))
  })

  it('shares one empty inbound topic alias map unless it is MQTT 5 and aliases are offered', async () => {
    const [a, b] = await idleClients(2, 4)
    expect(clientInternals(a!)._topicAliases).toBe(clientInternals(b!)._topicAliases)
    const [c, d] = await idleClients(2, 5)
    expect(clientInternals(c!)._topicAliases).not.toBe(clientInternals(d!)._topicAliases)
  })

  it('keeps prototype-free subscription and dedupe maps', async () => {
    const [a] = await idleClients(1, 4)
    const c = clientInternals(a!)
    for (const map of [c.subscriptions, c.duplicates] as Array<Record<string, unknown>>) {
      expect(map.constructor).toBeUndefined()
      expect(map.toString).toBeUndefined()
      expect(map['__proto__']).toBeUndefined()
    }
  })
})
