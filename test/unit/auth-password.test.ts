import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { AuthFileError } from '../../src/auth/errors.js'
import { hashPassword, parseHash } from '../../src/auth/password-hash.js'
import { parsePasswordFile, readPasswordFile, updatePasswordFile } from '../../src/auth/password-file.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/security/', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'mqlite-passwd-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const verify = async (table: ReturnType<typeof parsePasswordFile>, user: string, password: string) =>
  (await table.get(user)?.verify(Buffer.from(password))) ?? false

describe('password hashes', () => {
  it('hashes with scrypt and a fresh salt, and verifies only the right password', async () => {
    const a = await hashPassword('correct horse', { N: 1024, r: 8, p: 1 })
    const b = await hashPassword('correct horse', { N: 1024, r: 8, p: 1 })
    expect(a).toMatch(/^\$mqlite-scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/)
    expect(a).not.toBe(b) // random salt
    const parsed = parseHash(a)
    expect(parsed?.scheme).toBe('mqlite-scrypt')
    expect(await parsed?.verify(Buffer.from('correct horse'))).toBe(true)
    expect(await parsed?.verify(Buffer.from('correct horsf'))).toBe(false)
    expect(await parsed?.verify(Buffer.alloc(0))).toBe(false)
  })

  it('reads Mosquitto $7$ (PBKDF2-SHA512) and $6$ (SHA-512) hashes written by mosquitto_passwd', async () => {
    const table = readPasswordFile(join(FIXTURES, 'mosquitto.passwd'))
    expect(table.get('alice')?.scheme).toBe('mosquitto-pbkdf2')
    expect(table.get('carol')?.scheme).toBe('mosquitto-sha512')
    expect(await verify(table, 'alice', 'alice-pw')).toBe(true)
    expect(await verify(table, 'alice', 'carol-pw')).toBe(false)
    expect(await verify(table, 'carol', 'carol-pw')).toBe(true)
    expect(await verify(table, 'carol', 'carol-pW')).toBe(false)
  })

  it.runIf(existsSync('/usr/bin/mosquitto_passwd'))('verifies a file mosquitto_passwd writes now', async () => {
    const file = join(dir, 'fresh.passwd')
    execFileSync('mosquitto_passwd', ['-c', '-b', file, 'eve', 'pässwörd with spaces'])
    execFileSync('mosquitto_passwd', ['-H', 'sha512', '-b', file, 'frank', 'f'])
    const table = readPasswordFile(file)
    expect(await verify(table, 'eve', 'pässwörd with spaces')).toBe(true)
    expect(await verify(table, 'frank', 'f')).toBe(true)
    expect(await verify(table, 'frank', 'g')).toBe(false)
  })

  it('refuses plain-text passwords, malformed hashes and duplicate users, naming each line', () => {
    const text = ['# comment', '', 'ok:$6$c2FsdA==$aGFzaA==', 'plain:secret', 'nohash', 'bad:$7$0$c2FsdA==$aGFzaA==', 'ok:$6$c2FsdA==$aGFzaA=='].join('\n')
    let error: unknown
    try {
      parsePasswordFile(text, 'f')
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(AuthFileError)
    const message = (error as Error).message
    expect(message).toContain('line 4: user plain')
    expect(message).toContain('line 5: expected user:hash')
    expect(message).toContain('line 6: user bad')
    expect(message).toContain('line 7: user ok appears twice')
  })

  it('bounds the work factors a hash line may ask for', () => {
    expect(parseHash('$mqlite-scrypt$4194304$8$1$c2FsdA==$aGFzaA==')).toBeUndefined() // N = 2^22
    expect(parseHash('$mqlite-scrypt$1000$8$1$c2FsdA==$aGFzaA==')).toBeUndefined() // not a power of 2
    expect(parseHash('$7$99999999$c2FsdA==$aGFzaA==')).toBeUndefined()
  })

  it('updates one user and keeps every other line', () => {
    const file = join(dir, 'update.passwd')
    writeFileSync(file, '# mine\nalice:$6$c2FsdA==$aGFzaA==\nbob:$6$c2FsdA==$aGFzaA==\n')
    updatePasswordFile(file, 'alice', '$6$bmV3$bmV3', readFileSync(file, 'utf8'))
    updatePasswordFile(file, 'zed', '$6$emVk$emVk', readFileSync(file, 'utf8'))
    expect(readFileSync(file, 'utf8')).toBe('# mine\nalice:$6$bmV3$bmV3\nbob:$6$c2FsdA==$aGFzaA==\nzed:$6$emVk$emVk\n')
    expect(updatePasswordFile(file, 'bob', undefined, readFileSync(file, 'utf8'))).toBe(true)
    expect(updatePasswordFile(file, 'nobody', undefined, readFileSync(file, 'utf8'))).toBe(false)
    expect(readFileSync(file, 'utf8')).toBe('# mine\nalice:$6$bmV3$bmV3\nzed:$6$emVk$emVk\n')
  })
})
