/**
 * A strict reader of the Prometheus text exposition format (0.0.4), enough for tests to assert
 * on what the broker serves: families with their HELP and TYPE, samples with labels. Anything it
 * does not understand is an error, so a malformed line fails the test that scraped it.
 */
export interface PromSample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface PromFamily {
  name: string
  help?: string
  type?: string
  samples: PromSample[]
}

export type Exposition = Map<string, PromFamily>

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y

export function parseExposition(text: string): Exposition {
  const families: Exposition = new Map()
  const family = (name: string): PromFamily => {
    let f = families.get(name)
    if (!f) families.set(name, (f = { name, samples: [] }))
    return f
  }
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string]
      if (kind === 'HELP') family(name).help = rest
      else family(name).type = rest
      continue
    }
    if (line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (!m) throw new Error(`line ${index + 1} is not a sample: ${line}`)
    const [, name, , labelText, valueText] = m as unknown as [string, string, string | undefined, string | undefined, string]
    const labels: Record<string, string> = {}
    if (labelText) {
      LABEL.lastIndex = 0
      while (LABEL.lastIndex < labelText.length) {
        const l = LABEL.exec(labelText)
        if (!l) throw new Error(`line ${index + 1}: bad labels: ${labelText}`)
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
      }
    }
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText)
    // Prometheus reads NaN in any case (Go's ParseFloat); prom-client writes `Nan`.
    if (Number.isNaN(value) && !/^nan$/i.test(valueText)) throw new Error(`line ${index + 1}: bad value ${valueText}`)
    family(familyOf(name, families)).samples.push({ name, labels, value })
  }
  return families
}

/** `x_bucket`, `x_sum`, `x_count` belong to family `x` when `x` is a histogram or summary. */
function familyOf(sample: string, families: Exposition): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue
    const base = sample.slice(0, -suffix.length)
    const type = families.get(base)?.type
    if (type === 'histogram' || type === 'summary') return base
  }
  return sample
}

/** The value of the one sample named `name` whose labels include `labels`; throws if not exactly one. */
export function sampleValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const matches: PromSample[] = []
  for (const family of exposition.values()) {
    for (const s of family.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) matches.push(s)
    }
  }
  if (matches.length !== 1) {
    throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${matches.length}`)
  }
  return matches[0]!.value
}

/** Fetches and parses `<base>/metrics`. */
export async function scrape(baseUrl: string): Promise<Exposition> {
  const res = await fetch(`${baseUrl}/metrics`)
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`)
  return parseExposition(await res.text())
}
