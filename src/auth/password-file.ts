import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { AuthFileError } from './errors.js'
import { parseHash, type ParsedHash } from './password-hash.js'

// The password file: one `user:hash` per line, the format Mosquitto uses, so either broker's file
// works with the other (for the hash formats both know). Blank lines and lines starting with `#`
// are ignored. A line mqlite cannot use makes the whole file invalid: a typo must not silently
// lock out (or let in) a user.

export type PasswordTable = ReadonlyMap<string, ParsedHash>

/** Parses the file's text; throws one AuthFileError naming every bad line. */
export function parsePasswordFile(text: string, file: string): PasswordTable {
  const users = new Map<string, ParsedHash>()
  const problems: string[] = []
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    const user = colon > 0 ? line.slice(0, colon) : ''
    if (user === '') {
      problems.push(`line ${index + 1}: expected user:hash`)
      continue
    }
    const hash = parseHash(line.slice(colon + 1))
    if (!hash) {
      problems.push(`line ${index + 1}: user ${user}: unsupported or malformed hash (plain-text passwords are not accepted)`)
      continue
    }
    if (users.has(user)) problems.push(`line ${index + 1}: user ${user} appears twice`)
    users.set(user, hash)
  }
  if (problems.length > 0) throw new AuthFileError(file, problems.join('; '))
  return users
}

export function readPasswordFile(file: string): PasswordTable {
  return parsePasswordFile(readText(file), file)
}

/** Reads a file as UTF-8; a missing or unreadable file is an AuthFileError. */
export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new AuthFileError(file, `cannot be read (${(err as Error).message})`, { cause: err })
  }
}

/** User names that cannot be written to the file or sent by a client usefully. */
export function checkUserName(user: string): string | undefined {
  if (user.length === 0) return 'user name must not be empty'
  if (user.includes(':')) return 'user name must not contain ":"'
  if (/[\r\n]/.test(user)) return 'user name must not contain a line break'
  if (user.startsWith('#')) return 'user name must not start with "#" (it would read as a comment)'
  if (user.trim() !== user) return 'user name must not start or end with white space'
  return undefined
}

/**
 * Sets (hash given) or removes (undefined) one user's line, keeping every other line as it was,
 * and writes the file atomically with owner-only permissions. Returns false when removing a user
 * that is not there.
 */
export function updatePasswordFile(file: string, user: string, hash: string | undefined, existing: string | undefined): boolean {
  const lines = existing === undefined || existing === '' ? [] : existing.replace(/\r?\n$/, '').split(/\r?\n/)
  const index = lines.findIndex((line) => line.trim().startsWith(`${user}:`))
  if (hash === undefined) {
    if (index < 0) return false
    lines.splice(index, 1)
  } else if (index >= 0) {
    lines[index] = `${user}:${hash}`
  } else {
    lines.push(`${user}:${hash}`)
  }
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, lines.length > 0 ? `${lines.join('\n')}\n` : '', { mode: 0o600 })
  renameSync(tmp, file)
  return true
}
