import type { Client } from 'aedes'
import { connectionInfo } from '../broker/connection-info.js'
import type { Config, ListenerConfig } from '../config/schema.js'
import type { Authorizer } from './authorizer.js'
import { mayPublish, mayReceive, maySubscribe, parseAcl, rulesFor, type AclFile, type ClientAcl } from './acl.js'
import { AuthStats, type AuthFailureReason } from './auth-stats.js'
import { certificateIdentity } from './certificate-identity.js'
import { AuthenticationError } from './errors.js'
import { EnhancedAuthRegistry, type EnhancedAuthProvider } from './enhanced/authenticator.js'
import { createScramSha256 } from './enhanced/scram-sha-256.js'
import { resolveListenerAuth, type ListenerAuth } from './listener-auth.js'
import { parsePasswordFile, readText, type PasswordTable } from './password-file.js'

export type AuthConfig = Config['auth']

/** The authorizer mqlite builds from `auth`: password file, ACL file, certificate identity. */
export interface FileAuthorizer extends Authorizer {
  readonly stats: AuthStats
  /** Tells the authorizer how a bound listener authenticates; returns the resolved mode. */
  registerListener(name: string, config: ListenerConfig): ListenerAuth
  /**
   * Re-reads the password and ACL files. All or nothing: on any error (thrown) the previous
   * tables stay in force. Connected clients stay connected; the new ACL applies to their next
   * publish, subscribe and delivery.
   */
  reload(): void
  /** The user name a connected client is known by (CONNECT or certificate), for logs. */
  usernameOf(client: Client): string | undefined
}

interface Identity {
  username: string | undefined
}

interface CompiledAcl {
  generation: number
  rules: ClientAcl
  /** topic → may receive; cleared when full, rebuilt with the rules after a reload */
  receive: Map<string, boolean>
}

/** Per-client delivery decisions kept for this many distinct topics before starting afresh. */
const RECEIVE_CACHE_SIZE = 512

const isSys = (topic: string): boolean => topic === '$SYS' || topic.startsWith('$SYS/')

export function createFileAuthorizer(auth: AuthConfig, stats: AuthStats = new AuthStats()): FileAuthorizer {
  let passwords: PasswordTable | undefined
  let acl: AclFile | undefined
  let generation = 0
  const listeners = new Map<string, ListenerAuth>()
  const identities = new WeakMap<Client, Identity>()
  const compiled = new WeakMap<Client, CompiledAcl>()

  function load(): void {
    const nextPasswords = auth.passwordFile ? parsePasswordFile(readText(auth.passwordFile), auth.passwordFile) : undefined
    const nextAcl = auth.aclFile ? parseAcl(readText(auth.aclFile), auth.aclFile) : undefined
    passwords = nextPasswords
    acl = nextAcl
    generation++
  }
  load()

  function rulesOf(client: Client): CompiledAcl | undefined {
    if (!acl) return undefined
    let entry = compiled.get(client)
    if (!entry || entry.generation !== generation) {
      entry = { generation, rules: rulesFor(acl, identities.get(client)?.username, client.id), receive: new Map() }
      compiled.set(client, entry)
    }
    return entry
  }

  // SCRAM needs stored keys, which only a password file has; the lookup reads the current table,
  // so a SIGHUP reload applies to the next exchange.
  const methods = new EnhancedAuthRegistry()
  if (auth.passwordFile && auth.enhancedMethods.includes('SCRAM-SHA-256')) {
    methods.register(createScramSha256({ credentials: (username) => passwords?.get(username)?.scram }))
  }
  const enhanced: EnhancedAuthProvider = {
    authenticator: (method) => methods.get(method),
    async conclude(client, outcome) {
      if (outcome.kind === 'failure') return refuse(client, 'enhanced_auth_failed', outcome.username)
      // §4.12.1 lets a server refuse a re-authentication that changes the user: the ACL applied
      // so far was the old user's, and switching it mid-connection would surprise everyone.
      const current = identities.get(client)
      if (outcome.reauthentication && current?.username !== outcome.username) return refuse(client, 'enhanced_auth_failed', outcome.username)
      identities.set(client, { username: outcome.username })
      return true
    },
  }

  async function refuse(client: Client, reason: AuthFailureReason, username: string | undefined): Promise<never> {
    const info = connectionInfo(client)
    stats.recordFailure({ reason, clientId: client.id, username, listener: info?.listener, remoteAddress: info?.remoteAddress })
    // A fixed delay before the CONNACK slows password guessing down per connection; the
    // connection-rate limit bounds how many guesses run in parallel.
    if (auth.failureDelay > 0) await new Promise((resolve) => setTimeout(resolve, auth.failureDelay).unref())
    if (reason === 'anonymous_refused') throw new AuthenticationError(5, 'not authorized: anonymous clients are refused on this listener')
    // 0x87 rather than 0x86: the CONNECT's user name and password were not what failed
    if (reason === 'enhanced_auth_failed') throw new AuthenticationError(5, 'not authorized: enhanced authentication failed')
    throw new AuthenticationError(4, 'bad user name or password')
  }

  const authorizer: FileAuthorizer = {
    stats,
    registerListener(name, config) {
      const mode = resolveListenerAuth(config, auth)
      listeners.set(name, mode)
      return mode
    },
    reload: load,
    usernameOf: (client) => identities.get(client)?.username,
    enhanced,

    async authenticate(client, username, password) {
      const listener = connectionInfo(client)?.listener
      // A connection from a listener mqlite did not register gets the strict policy.
      const mode = (listener !== undefined ? listeners.get(listener) : undefined) ?? { allowAnonymous: false, certificateIdentity: 'none' }
      if (username === undefined) {
        const fromCertificate = certificateIdentity(client, mode.certificateIdentity)
        if (fromCertificate !== undefined) {
          identities.set(client, { username: fromCertificate })
          return true
        }
        if (!mode.allowAnonymous) return refuse(client, 'anonymous_refused', undefined)
        identities.set(client, { username: undefined })
        return true
      }
      if (!passwords) {
        // Nothing to check a password against: a name is only a label, and only where anyone may
        // connect anyway.
        if (!mode.allowAnonymous) return refuse(client, 'bad_credentials', username)
        identities.set(client, { username })
        return true
      }
      const hash = passwords.get(username)
      // Unknown users cost as much as known ones would not: the delay in refuse() dominates.
      if (!hash || password === undefined || !(await hash.verify(password))) return refuse(client, 'bad_credentials', username)
      identities.set(client, { username })
      return true
    },

    canPublish(client, topic) {
      if (isSys(topic)) return false
      if (!client) return true
      const entry = rulesOf(client)
      return entry ? mayPublish(entry.rules, topic) : true
    },

    canSubscribe(client, filter) {
      const entry = rulesOf(client)
      return entry ? maySubscribe(entry.rules, shareFilter(filter)) : true
    },

    ...(auth.aclFile
      ? {
          canReceive(client: Client, topic: string): boolean {
            const entry = rulesOf(client)
            if (!entry) return true
            const cached = entry.receive.get(topic)
            if (cached !== undefined) return cached
            const allowed = mayReceive(entry.rules, topic)
            if (entry.receive.size >= RECEIVE_CACHE_SIZE) entry.receive.clear()
            entry.receive.set(topic, allowed)
            return allowed
          },
        }
      : {}),
  }
  return authorizer
}

/** `$share/{group}/{filter}` is checked as `{filter}`: the group name grants nothing. */
function shareFilter(filter: string): string {
  if (!filter.startsWith('$share/')) return filter
  const slash = filter.indexOf('/', 7)
  return slash < 0 ? filter : filter.slice(slash + 1)
}
