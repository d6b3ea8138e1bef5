import type { Client } from 'aedes'

// MQTT 5 enhanced authentication (§4.12): a CONNECT names an Authentication Method and the two
// sides exchange Authentication Data in AUTH packets until the server accepts (CONNACK 0x00, or
// AUTH 0x00 when re-authenticating) or refuses. An authenticator knows one method's messages;
// the broker (src/broker/enhanced-auth.ts) moves them between packets.

/** One step of an exchange, as the authenticator decides it. */
export type AuthStep =
  /** more is needed: send `data` to the client in AUTH 0x18 and feed its answer to `next` */
  | { kind: 'continue'; data: Buffer; next: (data: Buffer | undefined) => Promise<AuthStep> }
  /** proven: `username` is who the client is; `data` goes out with the success (server-final) */
  | { kind: 'success'; username: string; data?: Buffer }
  /** refused; `reason` is for logs only, never sent (it could help a guesser) */
  | { kind: 'failure'; reason: string; username?: string }

export interface EnhancedAuthenticator {
  /** the Authentication Method name, compared exactly (it is case-sensitive on the wire) */
  readonly method: string
  /**
   * Starts an exchange with the client's first Authentication Data (from the CONNECT, or from
   * AUTH 0x19 when re-authenticating). Each exchange is independent: state lives in the closures
   * of the steps, never in the authenticator.
   */
  start(clientId: string, data: Buffer | undefined): Promise<AuthStep>
}

/** What the broker reports back when an exchange ends. */
export type EnhancedOutcome =
  | { kind: 'success'; method: string; username: string; reauthentication: boolean }
  | { kind: 'failure'; method: string; username: string | undefined; reason: string; reauthentication: boolean }

/**
 * What an authorizer offers for enhanced authentication: the methods, and the verdict on an
 * exchange's end (it owns identities, failure counters and the failure delay).
 */
export interface EnhancedAuthProvider {
  authenticator(method: string): EnhancedAuthenticator | undefined
  /**
   * Resolves true to accept the client as `outcome.username`. A failure outcome rejects with an
   * AuthenticationError once counted and delayed, as a refused password does.
   */
  conclude(client: Client, outcome: EnhancedOutcome): Promise<boolean>
}

/** Methods by name. */
export class EnhancedAuthRegistry {
  readonly #methods = new Map<string, EnhancedAuthenticator>()

  register(authenticator: EnhancedAuthenticator): this {
    if (this.#methods.has(authenticator.method)) throw new Error(`authentication method ${authenticator.method} is registered twice`)
    this.#methods.set(authenticator.method, authenticator)
    return this
  }

  get(method: string): EnhancedAuthenticator | undefined {
    return this.#methods.get(method)
  }

  names(): string[] {
    return [...this.#methods.keys()]
  }
}
