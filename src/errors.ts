// Named errors with stable codes, so callers (and the CLI's exit path) can tell them apart
// without matching message text.

export class MqliteError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** The configuration was refused: every problem is listed, each naming its key. */
export class ConfigError extends MqliteError {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super('ERR_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.problems = problems
  }
}

/** A listener could not be started (port in use, unreadable certificate, ...). */
export class ListenerError extends MqliteError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_LISTENER', message, options)
  }
}

/**
 * One PUBLISH was refused (ACL, publish rate) and the connection stays up. aedes reports it as a
 * client error; it is counted in the metrics, so it is not worth a log line per message.
 */
export class PublishRefusedError extends MqliteError {
  constructor(message: string) {
    super('ERR_PUBLISH_REFUSED', message)
  }
}
