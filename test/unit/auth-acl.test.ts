import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { covers, mayPublish, mayReceive, maySubscribe, parseAcl, rulesFor } from '../../src/auth/acl.js'
import { AuthFileError } from '../../src/auth/errors.js'

const FIXTURE = fileURLToPath(new URL('../fixtures/security/acl', import.meta.url))
const acl = parseAcl(readFileSync(FIXTURE, 'utf8'), FIXTURE)

describe('ACL files (Mosquitto syntax)', () => {
  it('gives rules before any user line to clients without a user name, patterns to everyone', () => {
    const anon = rulesFor(acl, undefined, 'sensor-1')
    expect(maySubscribe(anon, 'public/#')).toBe(true)
    expect(mayPublish(anon, 'public/x')).toBe(false)
    expect(mayPublish(anon, 'devices/sensor-1/state')).toBe(true) // %c
    expect(mayPublish(anon, 'devices/sensor-2/state')).toBe(false)
    expect(mayReceive(anon, 'users/alice/inbox')).toBe(false) // %u needs a user name
  })

  it('applies user rules, deny before grants, and %u', () => {
    const alice = rulesFor(acl, 'alice', 'a1')
    expect(mayPublish(alice, 'alice/notes')).toBe(true)
    expect(mayPublish(alice, 'alice/secret/key')).toBe(false)
    expect(mayReceive(alice, 'alice/secret/key')).toBe(false)
    expect(mayReceive(alice, 'users/alice/inbox')).toBe(true)
    expect(mayPublish(alice, 'users/alice/inbox')).toBe(false) // read only
    expect(mayReceive(alice, 'public/news')).toBe(false) // anonymous rules are not hers
    const carol = rulesFor(acl, 'carol', 'c1')
    expect(mayPublish(carol, 'sensors/kitchen/temp')).toBe(true)
    expect(mayReceive(carol, 'sensors/kitchen/temp')).toBe(false)
    expect(maySubscribe(carol, 'sensors/+/temp')).toBe(false)
  })

  it('grants a subscription only when a read rule covers the whole filter and no deny rule does', () => {
    const alice = rulesFor(acl, 'alice', 'a1')
    expect(maySubscribe(alice, 'alice/#')).toBe(true) // overlaps the deny: withheld per message
    expect(maySubscribe(alice, 'alice/secret/#')).toBe(false)
    expect(maySubscribe(alice, 'alice/secret/x')).toBe(false)
    expect(maySubscribe(alice, '#')).toBe(false)
    expect(maySubscribe(alice, '+/notes')).toBe(false)
    expect(maySubscribe(alice, '$SYS/broker/#')).toBe(true)
  })

  it('matches filters against rules as sets of topics', () => {
    expect(covers('a/#', 'a')).toBe(true)
    expect(covers('a/#', 'a/b/+/c')).toBe(true)
    expect(covers('a/+', 'a/b')).toBe(true)
    expect(covers('a/+', 'a/+')).toBe(true)
    expect(covers('a/+', 'a/#')).toBe(false)
    expect(covers('a/+', 'a/b/c')).toBe(false)
    expect(covers('a/b', 'a/+')).toBe(false)
    expect(covers('#', '$SYS/x')).toBe(false) // [MQTT-4.7.2-1]
    expect(covers('+/x', '$SYS/x')).toBe(false)
    expect(covers('$SYS/#', '$SYS/x')).toBe(true)
  })

  it('does not substitute client ids or user names that contain wildcards or separators', () => {
    expect(mayPublish(rulesFor(acl, undefined, '+'), 'devices/other/state')).toBe(false)
    expect(maySubscribe(rulesFor(acl, undefined, '#'), 'devices/#')).toBe(false)
    expect(mayPublish(rulesFor(acl, undefined, 'a/b'), 'devices/a/b/state')).toBe(false)
  })

  it('takes the access word as optional and keeps spaces in filters', () => {
    const parsed = parseAcl('topic a/b\ntopic read with space/x\nuser u v\ntopic deny a/#\n', 'f')
    expect(parsed.anonymous).toEqual([
      { access: 'readwrite', filter: 'a/b' },
      { access: 'read', filter: 'with space/x' },
    ])
    expect(parsed.users.get('u v')).toEqual([{ access: 'deny', filter: 'a/#' }])
  })

  it('refuses unknown keywords and invalid filters, naming each line', () => {
    expect(() => parseAcl('topic a/#/b\nallow x\npattern read a+/b\nuser\n', 'acl')).toThrowError(AuthFileError)
    try {
      parseAcl('topic a/#/b\nallow x\npattern read a+/b\nuser\n', 'acl')
    } catch (err) {
      const message = (err as Error).message
      for (const line of ['line 1', 'line 2', 'line 3', 'line 4']) expect(message).toContain(line)
    }
  })
})
