import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { AuthFileError } from '../auth/errors.js'
import { hashPassword } from '../auth/password-hash.js'
import { checkUserName, parsePasswordFile, readText, updatePasswordFile } from '../auth/password-file.js'

export interface PasswdFlags {
  /** batch mode: the password from the command line (visible in `ps`; prefer the prompt) */
  batch?: string
  delete?: boolean
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
  updatePasswordFile(file, user, await hashPassword(password), existing)
  return 0
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
