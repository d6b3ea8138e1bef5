// Live progress: one line rewritten in place on a TTY, plain periodic lines otherwise (CI logs).
import type { ProgressSample } from '../fleet/fleet-run.js'

export function formatProgress(sample: ProgressSample): string {
  const secs = (sample.elapsedMs / 1000).toFixed(0).padStart(4)
  const r = (v: number): string => Math.round(v).toLocaleString('en-US')
  return `${secs}s ${sample.phase.padEnd(9)} devices ${r(sample.connected)}/${r(sample.devicesTotal)}  out ${r(sample.rateOut)}/s  in ${r(sample.rateIn)}/s  p99 ${sample.p99Ms.toFixed(1)}ms  errors ${r(sample.errors)}  cpu ${Math.round(sample.cpuPercent)}%`
}

export interface ProgressPrinter {
  update(sample: ProgressSample): void
  /** Ends the live line so later output starts on a fresh line. Idempotent. */
  close(): void
}

export function createProgressPrinter(stream: NodeJS.WriteStream = process.stderr): ProgressPrinter {
  const live = stream.isTTY === true
  let dirty = false
  return {
    update(sample) {
      const line = formatProgress(sample)
      if (live) {
        const width = stream.columns ?? 120
        stream.write(`\r${line.slice(0, width - 1).padEnd(Math.min(width - 1, line.length))}\x1b[K`)
        dirty = true
      } else {
        stream.write(`${line}\n`)
      }
    },
    close() {
      if (dirty) stream.write('\n')
      dirty = false
    },
  }
}
