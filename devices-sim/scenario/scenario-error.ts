// One error carrying every problem found in a scenario, each prefixed with its field path
// ("profiles[0].publish.qos: expected 0, 1 or 2"), so a user fixes a file in one pass.
import type { z } from 'zod'

export class ScenarioError extends Error {
  readonly code = 'SCENARIO_INVALID'
  readonly issues: readonly string[]

  constructor(issues: readonly string[], options?: { cause?: unknown; source?: string }) {
    const where = options?.source ? ` in ${options.source}` : ''
    super(`invalid scenario${where}:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`, { cause: options?.cause })
    this.name = 'ScenarioError'
    this.issues = issues
  }
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`
    else out += out === '' ? String(segment) : `.${String(segment)}`
  }
  return out === '' ? '(root)' : out
}

export function formatZodIssues(issues: ReadonlyArray<z.core.$ZodIssue>, prefix: ReadonlyArray<PropertyKey> = []): string[] {
  const lines: string[] = []
  for (const issue of issues) {
    const path = [...prefix, ...issue.path]
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) lines.push(`${formatPath([...path, key])}: unknown field`)
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      lines.push(`${formatPath(path)}: required`)
    } else if (issue.code === 'invalid_union') {
      // "object or list of objects": when exactly one alternative matched the input's shape,
      // its own issues are what the user needs, not "Invalid input".
      const plausible = issue.errors.filter((branch) => !branch.every((b) => b.code === 'invalid_type' && b.path.length === 0))
      if (plausible.length === 1) lines.push(...formatZodIssues(plausible[0] ?? [], path))
      else lines.push(`${formatPath(path)}: ${issue.message}`)
    } else {
      lines.push(`${formatPath(path)}: ${issue.message}`)
    }
  }
  return lines
}
