import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { AuthFileError } from '../auth/errors.js'
import { hashPassword } from '../auth/password-hash.js'
import { saslprep, SaslprepError } from '../auth/enhanced/saslprep.js'
import { deriveScramCredential, formatScramCredential, SCRAM_DEFAULT_ITERATIONS } from '../auth/enhanced/scram-credential.js'
import { checkUserName, parsePasswordFile, readText, updatePasswordFile } from '../auth/password-file.js'

export interface PasswdFlags {
  /** batch mode: the password from the command line (visible in `ps`; prefer the prompt) */
  batch?: string
  delete?: boolean
  /**
   * store SCRAM-SHA-256 keys instead of an scrypt hash: the user can then log in with MQTT 5
   * enhanced authentication as well as with a plain password
   */
  scram?: boolean
  /** PBKDF2 iterations of a SCRAM entry (default 4096, the RFC 7677 minimum) */
  iterations?: number
}

/**
 * `mqlite passwd FILE USER`: adds or changes USER's password in FILE (created if missing), or
 * removes USER with `-D`. The password is read from the terminal without echo (twice), from one
 * line of stdin when it is not a terminal, or from `-b`. Other lines are kept as they are, so a
 * Mosquitto file can be managed too. Returns the exit code.
 */
export async function runPasswd(file: string, user: string, flags: PasswdFlags): Promise<number> {
  const fail = (message: string): number => {
    process.stderr.write(`mqlite passwd: ${message}\n`)
    return 1
  }
  const badName = checkUserName(user)
  if (badName) return fail(badName)
  if (flags.scram && !flags.delete) {
    // SCRAM clients send SASLprep-ed names and the broker looks them up as such (RFC 5802 §5.1)
    const prepared = safeSaslprep(user)
    if (prepared !== user) return fail(`user name ${JSON.stringify(user)} is not in SASLprep form${prepared ? ` (use ${JSON.stringify(prepared)})` : ''}, required for SCRAM`)
  }
  let existing: string | undefined
  try {
    if (existsSync(file)) {
      existing = readText(file)
      parsePasswordFile(existing, file) // refuse to edit a file the broker would refuse to load
    }
  } catch (err) {
    return fail(err instanceof AuthFileError ? err.message : String(err))
  }
  if (flags.delete) {
    if (!updatePasswordFile(file, user, undefined, existing)) return fail(`user ${user} is not in ${file}`)
    return 0
  }
  let password = flags.batch
  if (password === undefined) {
    try {
      password = await readPassword()
    } catch (err) {
      return fail((err as Error).message)
    }
  }
  if (password.length === 0) return fail('the password must not be empty')
  let hash: string
  try {
    hash = flags.scram
      ? formatScramCredential(await deriveScramCredential(password, { iterations: flags.iterations ?? SCRAM_DEFAULT_ITERATIONS }))
      : await hashPassword(password)
  } catch (err) {
    if (err instanceof SaslprepError) return fail(`the password ${err.message} (SASLprep, RFC 4013)`)
    if (err instanceof RangeError) return fail(err.message)
    throw err
  }
  updatePasswordFile(file, user, hash, existing)
  return 0
}

function safeSaslprep(value: string): string | undefined {
  try {
    return saslprep(value, { stored: true })
  } catch {
    return undefined
  }
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const first = await readLine('', false)
    return first
  }
  const password = await readLine('Password: ', true)
  const again = await readLine('Reenter password: ', true)
  if (password !== again) throw new Error('the passwords do not match')
  return password
}

/** One line from stdin; with `hidden`, the typed characters are not echoed. */
function readLine(prompt: string, hidden: boolean): Promise<string> {
  let muted = false
  const output = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (!muted) process.stderr.write(chunk)
      callback()
    },
  })
  const rl = createInterface({ input: process.stdin, output, terminal: hidden })
  return new Promise((resolve, reject) => {
    let answered = false
    rl.question(prompt, (answer) => {
      answered = true
      rl.close()
      if (hidden) process.stderr.write('\n')
      resolve(answer)
    })
    muted = hidden
    rl.on('close', () => {
      if (!answered) reject(new Error('no password given'))
    })
  })
}
