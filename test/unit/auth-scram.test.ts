import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import type { AuthStep } from '../../src/auth/enhanced/authenticator.js'
import { EnhancedAuthRegistry } from '../../src/auth/enhanced/authenticator.js'
import { saslprep, SaslprepError } from '../../src/auth/enhanced/saslprep.js'
import {
  deriveScramCredential,
  formatScramCredential,
  parseScramCredential,
  verifyScramPassword,
  type ScramCredential,
} from '../../src/auth/enhanced/scram-credential.js'
import { createScramSha256 } from '../../src/auth/enhanced/scram-sha-256.js'
import { parseHash } from '../../src/auth/password-hash.js'
import { parsePasswordFile } from '../../src/auth/password-file.js'
import { runPasswd } from '../../src/cli/passwd.js'
import { scramClient } from '../helpers/scram-client.js'
import { tempDir } from '../helpers/stores.js'

// RFC 7677 §3: user "user", password "pencil"
const RFC = {
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
}

const rfcCredential = (): Promise<ScramCredential> =>
  deriveScramCredential('pencil', { salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), iterations: 4096 })

async function serverFor(users: Record<string, ScramCredential>, nonce = () => RFC.serverNonce) {
  return createScramSha256({ credentials: (name) => users[name], nonce })
}

function expectContinue(step: AuthStep): Extract<AuthStep, { kind: 'continue' }> {
  if (step.kind !== 'continue') throw new Error(`expected continue, got ${JSON.stringify(step)}`)
  return step
}

const buf = (text: string): Buffer => Buffer.from(text, 'utf8')

describe('SCRAM-SHA-256 server (RFC 5802, RFC 7677)', () => {
  it('reproduces the RFC 7677 exchange byte for byte', async () => {
    const server = await serverFor({ user: await rfcCredential() })
    const first = expectContinue(await server.start('c1', buf(RFC.clientFirst)))
    expect(first.data.toString()).toBe(RFC.serverFirst)

    // the test client, from the password alone, computes the RFC's client-final
    const client = scramClient('user', 'pencil', 'rOprNGfwEbeRWgbNEkqO')
    expect(client.first).toBe(RFC.clientFirst)
    expect(await client.final(RFC.serverFirst)).toBe(RFC.clientFinal)

    const last = await first.next(buf(RFC.clientFinal))
    expect(last).toEqual({ kind: 'success', username: 'user', data: buf(RFC.serverFinal) })
    expect(client.verifyServer(RFC.serverFinal)).toBe(true)
  })

  it('refuses a wrong password with the same number of steps', async () => {
    const server = await serverFor({ user: await rfcCredential() }, () => 'srv')
    const client = scramClient('user', 'not-pencil')
    const first = expectContinue(await server.start('c1', buf(client.first)))
    const last = await first.next(buf(await client.final(first.data.toString())))
    expect(last).toMatchObject({ kind: 'failure', reason: 'invalid proof', username: 'user' })
  })

  it('answers an unknown user like a known one (a stable decoy salt), then refuses', async () => {
    const server = await serverFor({}, () => 'srv')
    const a = expectContinue(await server.start('c1', buf('n,,n=ghost,r=abc')))
    const b = expectContinue(await server.start('c2', buf('n,,n=ghost,r=abc')))
    expect(a.data.toString()).toMatch(/^r=abcsrv,s=[A-Za-z0-9+/]+=*,i=4096$/)
    expect(b.data.toString()).toBe(a.data.toString())
    const client = scramClient('ghost', 'whatever', 'abc')
    expect(await a.next(buf(await client.final(a.data.toString())))).toMatchObject({ kind: 'failure', reason: 'unknown user' })
  })

  it.each([
    ['p=tls-unique,,n=user,r=x', /channel binding requested but not supported/],
    ['n,,m=ext,n=user,r=x', /mandatory extension/],
    ['n,,n=us=41er,r=x', /invalid encoding/],
    ['n,,r=x,n=user', /expected n= and r=/],
    ['x,,n=user,r=x', /malformed gs2/],
    ['n,a=other,n=user,r=x', /authorization identity differs/],
    ['n,,n=user,r=a b,c', /malformed/],
    ['n,,n=\u0007bell,r=x', /SASLprep/],
  ])('refuses client-first %j', async (message, reason) => {
    const server = await serverFor({ user: await rfcCredential() })
    const step = await server.start('c1', buf(message))
    expect(step.kind).toBe('failure')
    expect((step as { reason: string }).reason).toMatch(reason)
  })

  it('accepts "y" (client could bind, server does not offer it) and an authzid naming the user', async () => {
    const server = await serverFor({ user: await rfcCredential() })
    expect((await server.start('c1', buf('y,,n=user,r=x'))).kind).toBe('continue')
    expect((await server.start('c1', buf('n,a=user,n=user,r=x'))).kind).toBe('continue')
  })

  it('decodes =2C and =3D in user names', async () => {
    const server = await serverFor({ 'a,b=c': await rfcCredential() })
    const client = scramClient('a,b=c', 'pencil')
    expect(client.first).toBe(`n,,n=a=2Cb=3Dc,r=${client.first.split('r=')[1]}`)
    const first = expectContinue(await server.start('c1', buf(client.first)))
    expect(await first.next(buf(await client.final(first.data.toString())))).toMatchObject({ kind: 'success', username: 'a,b=c' })
  })

  it.each([
    ['a changed nonce', (final: string) => final.replace(/r=([^,]+)/, 'r=$1x'), /nonce mismatch/],
    ['another channel binding', (final: string) => final.replace('c=biws', 'c=eSws'), /channel binding mismatch/],
    ['no proof', (final: string) => final.replace(/,p=.*$/, ''), /proof missing/],
    ['a short proof', (final: string) => final.replace(/p=.*$/, 'p=AAAA'), /wrong length/],
  ])('refuses a client-final with %s', async (_name, mangle, reason) => {
    const server = await serverFor({ user: await rfcCredential() })
    const first = expectContinue(await server.start('c1', buf(RFC.clientFirst)))
    const step = await first.next(buf(mangle(RFC.clientFinal)))
    expect(step.kind).toBe('failure')
    expect((step as { reason: string }).reason).toMatch(reason)
  })

  it('refuses a missing or non-UTF-8 client-first', async () => {
    const server = await serverFor({})
    expect((await server.start('c1', undefined)).kind).toBe('failure')
    expect((await server.start('c1', Buffer.from([0x6e, 0x2c, 0x2c, 0xff]))).kind).toBe('failure')
  })
})

describe('SCRAM credentials (RFC 5803 text form)', () => {
  it('round-trips and never contains the password', async () => {
    const credential = await deriveScramCredential('s3cret!')
    const text = formatScramCredential(credential)
    expect(text).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/)
    expect(text).not.toContain('s3cret')
    expect(parseScramCredential(text)).toEqual(credential)
  })

  it('stores the RFC 7677 keys for "pencil"', async () => {
    const credential = await rfcCredential()
    // StoredKey and ServerKey as computed from RFC 7677's SaltedPassword
    expect(formatScramCredential(credential)).toBe(
      'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=',
    )
  })

  it.each([
    'SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA', // keys too short
    'SCRAM-SHA-256$0:c2FsdA==$' + 'A'.repeat(43) + '=:' + 'A'.repeat(43) + '=',
    'SCRAM-SHA-256$99999999999:c2FsdA==$x:y',
    'SCRAM-SHA-256$4096$c2FsdA==$x:y',
  ])('refuses %j', (text) => {
    expect(parseScramCredential(text)).toBeUndefined()
    expect(parseHash(text)).toBeUndefined()
  })

  it('verifies a plain CONNECT password against the stored keys', async () => {
    const credential = await rfcCredential()
    expect(await verifyScramPassword(credential, buf('pencil'))).toBe(true)
    expect(await verifyScramPassword(credential, buf('pencil2'))).toBe(false)
    expect(await verifyScramPassword(credential, Buffer.from([0xff, 0xfe]))).toBe(false)
    // SASLprep applies to the CONNECT password too: a soft hyphen maps to nothing
    expect(await verifyScramPassword(credential, buf('pen\u00ADcil'))).toBe(true)
  })

  it('is one more password-file format, next to the others', async () => {
    const scram = formatScramCredential(await rfcCredential())
    const table = parsePasswordFile(`# users\nuser:${scram}\n`, 'passwd')
    const entry = table.get('user')
    expect(entry?.scheme).toBe('scram-sha-256')
    expect(entry?.scram?.iterations).toBe(4096)
    expect(await entry?.verify(buf('pencil'))).toBe(true)
    expect(() => parsePasswordFile('user:SCRAM-SHA-256$4096:broken\n', 'passwd')).toThrow(/line 1: user user: unsupported or malformed hash/)
  })

  it('refuses too few iterations when writing', async () => {
    await expect(deriveScramCredential('x', { iterations: 1000 })).rejects.toThrow(/4096/)
  })
})

describe('SASLprep (RFC 4013 §3 examples)', () => {
  it.each([
    ['I\u00ADX', 'IX'],
    ['user', 'user'],
    ['USER', 'USER'],
    ['\u00AA', 'a'],
    ['\u2168', 'IX'],
    ['a\u00A0b', 'a b'],
  ])('prepares %j as %j', (input, output) => {
    expect(saslprep(input)).toBe(output)
  })

  it.each([['\u0007'], ['\u0627\u0031'], ['a\uE000'], ['\u{10FFFE}']])('refuses %j', (input) => {
    expect(() => saslprep(input)).toThrow(SaslprepError)
  })

  it('refuses unassigned code points only in stored strings', () => {
    expect(saslprep('a\u0378')).toBe('a\u0378')
    expect(() => saslprep('a\u0378', { stored: true })).toThrow(SaslprepError)
  })
})

describe('EnhancedAuthRegistry', () => {
  it('finds methods by exact name and refuses duplicates', async () => {
    const scram = await serverFor({})
    const registry = new EnhancedAuthRegistry().register(scram)
    expect(registry.get('SCRAM-SHA-256')).toBe(scram)
    expect(registry.get('scram-sha-256')).toBeUndefined()
    expect(registry.names()).toEqual(['SCRAM-SHA-256'])
    expect(() => registry.register(scram)).toThrow(/twice/)
  })
})

describe('mqlite passwd --scram', () => {
  it('writes SCRAM keys (not the password), keeping the other lines', async () => {
    const file = join(tempDir('mqlite-passwd-'), 'passwd')
    writeFileSync(file, '# managed by hand\n')
    expect(await runPasswd(file, 'user', { batch: 'pencil', scram: true, iterations: 5000 })).toBe(0)
    const text = readFileSync(file, 'utf8')
    expect(text).toMatch(/^# managed by hand\nuser:SCRAM-SHA-256\$5000:[^$]+\$[^:]+:[^\n]+\n$/)
    expect(text).not.toContain('pencil')
    const entry = parsePasswordFile(text, file).get('user')
    expect(await entry?.verify(buf('pencil'))).toBe(true)
    // and the exchange works with what was written
    const server = createScramSha256({ credentials: (name) => parsePasswordFile(text, file).get(name)?.scram })
    const client = scramClient('user', 'pencil')
    const first = expectContinue(await server.start('c', buf(client.first)))
    expect(await first.next(buf(await client.final(first.data.toString())))).toMatchObject({ kind: 'success', username: 'user' })
  })

  it('refuses a user name not in SASLprep form, a prohibited password and too few iterations', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      const file = join(tempDir('mqlite-passwd-'), 'passwd')
      expect(await runPasswd(file, 'I\u00ADX', { batch: 'pw', scram: true })).toBe(1)
      expect(await runPasswd(file, 'user', { batch: 'bell\u0007', scram: true })).toBe(1)
      expect(await runPasswd(file, 'user', { batch: 'pw', scram: true, iterations: 100 })).toBe(1)
      expect(stderr.mock.calls.map(([text]) => String(text)).join('')).toMatch(/SASLprep form \(use "IX"\)[\s\S]*prohibited[\s\S]*4096/)
    } finally {
      stderr.mockRestore()
    }
  })
})
