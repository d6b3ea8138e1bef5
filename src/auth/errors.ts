import { MqliteError } from '../errors.js'

/**
 * A CONNECT refused by the authorizer. `returnCode` is the MQTT 3.1.1 CONNACK code aedes sends
 * (and maps to MQTT 5: 2 → 0x85, 3 → 0x88 server unavailable, 4 → 0x86, 5 → 0x87).
 */
export class AuthenticationError extends MqliteError {
  readonly returnCode: 2 | 3 | 4 | 5
  constructor(returnCode: 2 | 3 | 4 | 5, message: string) {
    super('ERR_AUTHENTICATION', message)
    this.returnCode = returnCode
  }
}

/** A password or ACL file could not be read or has lines mqlite cannot use. */
export class AuthFileError extends MqliteError {
  readonly file: string
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('ERR_AUTH_FILE', `${file}: ${message}`, options)
    this.file = file
  }
}
