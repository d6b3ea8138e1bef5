// Human-readable end-of-run summary.
import type { Report } from './report.js'
import type { LatencySummary } from '../stats/histogram.js'

const n = (value: number): string => Math.round(value).toLocaleString('en-US')
const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2))

function table(rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n')
}

function latencyLine(l: LatencySummary): string {
  if (l.count === 0) return '-'
  return `p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)} ms  (n=${n(l.count)})`
}

function counts(table: Record<string, number>): string {
  const entries = Object.entries(table).sort((a, b) => b[1] - a[1])
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k}: ${n(v)}`).join(', ')
}

export function formatSummary(report: Report): string {
  const m = report.messages
  const d = report.devices
  const s = report.simulator
  const rows: Array<[string, string]> = [
    ['scenario', `${report.scenario} (run ${report.run}, seed ${report.seed}) against ${report.broker.url} MQTT ${report.broker.protocol === 5 ? '5' : report.broker.protocol === 4 ? '3.1.1' : '3.1'}`],
    ['stopped by', `${report.stoppedBy} after ${(report.publishMs / 1000).toFixed(1)}s publishing + ${(report.drainMs / 1000).toFixed(1)}s drain`],
    ['devices', `${n(d.total)} total, peak ${n(d.connectedPeak)} connected, ${n(d.connects)} connects, ${n(d.disconnects)} disconnects, ${n(d.churned)} churned`],
    ['connect time', latencyLine(d.connectMs)],
    ['connect failures', counts(d.connectFailures)],
    ['sent', `${n(m.sent)} (${n(m.rateOut)}/s), acked ${n(m.acked)}, failed ${n(m.failed)}, unacked ${n(m.unacked)}`],
    ['received', `${n(m.received)} (${n(m.unique)} unique, ${n(m.rateIn)}/s), expected ${n(m.expected)}`],
    ['lost', `${n(m.lost)} (${(m.lossRatio * 100).toFixed(m.lost === 0 ? 0 : 3)}%)`],
    ['duplicates', n(m.duplicates)],
    ['out of order', n(m.outOfOrder)],
    ['latency', latencyLine(report.latencyMs)],
  ]
  if (m.unexpected > 0) rows.push(['unexpected', `${n(m.unexpected)} (delivered but never acknowledged)`])
  if (m.foreign > 0) rows.push(['foreign', `${n(m.foreign)} (messages not from this run)`])
  if (Object.keys(m.publishFailures).length > 0) rows.push(['publish failures', counts(m.publishFailures)])
  if (Object.keys(d.clientErrors).length > 0) rows.push(['client errors', counts(d.clientErrors)])
  if (report.commands) {
    const c = report.commands
    rows.push(['commands', `${n(c.sent)} sent, ${n(c.answered)} answered, ${n(c.timedOut)} timed out, ${n(c.failed)} failed`])
    rows.push(['command RTT', latencyLine(c.latencyMs)])
  }
  rows.push([
    'simulator',
    `${s.workers === 0 ? 'in-process' : `${s.workers} workers`}, CPU ${s.cpuPercent}% of one core (${s.cpuPercentOfMachine}% of ${s.cores} cores), event loop delay p99 ${s.eventLoopDelayP99Ms}ms max ${s.eventLoopDelayMaxMs}ms, RSS ${s.rssMb} MB`,
  ])
  if (s.cpuPercentOfMachine > 85 || s.eventLoopDelayP99Ms > 100) rows.push(['warning', 'the simulator itself is near saturation; figures may reflect it rather than the broker'])
  for (const stream of report.streams) {
    if (stream.lost > 0) rows.push([`worst (${stream.name})`, stream.worst.slice(0, 5).map((w) => `${w.source}: ${w.lost} lost from seq ${w.firstLostSeq}`).join('; ')])
  }
  if (report.assertions) {
    for (const a of report.assertions) rows.push([`assert ${a.clause}`, `${a.ok ? 'ok' : 'FAILED'} (actual ${Number.isInteger(a.actual) ? a.actual : a.actual.toFixed(3)})`])
  }
  return table(rows)
}
