import { EventEmitter } from 'node:events'

/** `enhanced_auth_failed`: an MQTT 5 enhanced authentication exchange (SCRAM) did not prove the user. */
export type AuthFailureReason = 'bad_credentials' | 'anonymous_refused' | 'enhanced_auth_failed'
export type DeniedAction = 'publish' | 'subscribe'

export interface AuthFailure {
  reason: AuthFailureReason
  clientId: string
  username: string | undefined
  listener: string | undefined
  remoteAddress: string | undefined
}

export interface AuthEvents {
  authFailed: [AuthFailure]
  denied: [action: DeniedAction, clientId: string, topic: string]
}

/**
 * What authentication and authorization refused, as plain counters (read them at scrape time) and
 * events (for logs or per-event metrics). Decoupled from any metrics library on purpose.
 */
export class AuthStats extends EventEmitter<AuthEvents> {
  readonly authFailures: Record<AuthFailureReason, number> = { bad_credentials: 0, anonymous_refused: 0, enhanced_auth_failed: 0 }
  readonly denied: Record<DeniedAction, number> = { publish: 0, subscribe: 0 }

  recordFailure(failure: AuthFailure): void {
    this.authFailures[failure.reason]++
    this.emit('authFailed', failure)
  }

  recordDenied(action: DeniedAction, clientId: string, topic: string): void {
    this.denied[action]++
    this.emit('denied', action, clientId, topic)
  }
}
