// What the host charges for a system call. Mosquitto makes one or more per packet, mqlite
// about one per connection per event-loop turn, so the ratios between them move with it (two to
// three times between two hosts of this project); the bench prints it beside them.
import { spawnSync } from 'node:child_process'

/** Seconds from GNU dd's summary line ("... copied, 0.25 s, 800 kB/s"), in the C locale. */
export function parseDdSeconds(stderr: string): number | undefined {
  const match = /copied, ([0-9.]+(?:e-?[0-9]+)?) s,/.exec(stderr)
  if (!match) return undefined
  const seconds = Number(match[1])
  return Number.isFinite(seconds) && seconds > 0 ? seconds : undefined
}

/**
 * Microseconds per system call, from `dd` copying `bytes` one byte at a time (a read and a write
 * each), on `core` when given (the bench passes the brokers' core when it pins them); undefined
 * where dd is missing or prints something else.
 */
export function measureSyscallMicros(bytes = 200_000, core?: number): number | undefined {
  const dd = ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=1', `count=${bytes}`]
  const [file, args] = core === undefined ? [dd[0]!, dd.slice(1)] : ['taskset', ['-c', String(core), ...dd]]
  const result = spawnSync(file, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
  if (result.status !== 0) return undefined
  const seconds = parseDdSeconds(result.stderr)
  return seconds === undefined ? undefined : (seconds * 1e6) / (2 * bytes)
}
