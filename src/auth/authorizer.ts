import type { Client } from 'aedes'
import type { EnhancedAuthProvider } from './enhanced/authenticator.js'

/**
 * Who may connect, publish, subscribe and receive. The broker calls it from aedes's hooks;
 * `createFileAuthorizer` (password file, ACL file, client certificates) implements it from the
 * `auth` config. The default allows everything except publishing to `$SYS/`, which only the
 * broker itself does.
 */
export interface Authorizer {
  /**
   * Resolves true to accept the CONNECT credentials. To refuse with a specific CONNACK code,
   * reject with an `AuthenticationError` (4: bad user name or password, 5: not authorized);
   * false or any other error refuses with 5.
   */
  authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<boolean> | boolean
  canPublish(client: Client | null, topic: string): boolean
  canSubscribe(client: Client, filter: string): boolean
  /**
   * Optional per-delivery check (also applied to queued messages when a session resumes). Leave it
   * out when reads are never restricted: it runs once per delivered message.
   */
  canReceive?(client: Client, topic: string): boolean
  /**
   * MQTT 5 enhanced authentication (§4.12). Without it every Authentication Method is unknown and
   * such a CONNECT is refused with 0x8C.
   */
  enhanced?: EnhancedAuthProvider
}

export const allowAllAuthorizer: Authorizer = {
  authenticate: () => true,
  canPublish: (_client, topic) => !topic.startsWith('$SYS/') && topic !== '$SYS',
  canSubscribe: () => true,
}
