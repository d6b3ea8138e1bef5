// Reads a scenario file (YAML, or JSON which YAML also parses) and validates it.
import { readFile } from 'node:fs/promises'
import { parseDocument } from 'yaml'
import { resolveScenario } from './resolve-scenario.js'
import type { Scenario } from './resolve-scenario.js'
import { ScenarioError } from './scenario-error.js'

export interface LoadOptions {
  /** Adjusts the raw data before validation (the CLI applies flag overrides here). */
  transform?: (raw: unknown) => unknown
}

export function parseScenarioText(text: string, source = 'scenario', options: LoadOptions = {}): Scenario {
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    throw new ScenarioError(
      // The first few errors locate the problem; later ones are usually consequences of it.
      doc.errors.slice(0, 3).map((e) => `${e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(syntax)'}: ${(e.message.split('\n')[0] ?? e.code).replace(/ at line \d+, column \d+:?$/, '')}`),
      { source },
    )
  }
  const raw: unknown = doc.toJS()
  return resolveScenario(options.transform ? options.transform(raw) : raw, source)
}

export async function loadScenarioFile(path: string, options: LoadOptions = {}): Promise<Scenario> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new ScenarioError([`cannot read file: ${(error as Error).message}`], { source: path, cause: error })
  }
  return parseScenarioText(text, path, options)
}
