import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// Every temporary file of a test run (databases, password files, certificates, the data of the
// Redis and Prometheus servers the tests start) goes into one directory, removed when the run
// ends. The helpers' own clean-up at process exit never ran: vitest ends its worker processes
// without an 'exit' event, and /tmp kept thousands of directories.
export default function setup(): () => void {
  const runDir = mkdtempSync(join(tmpdir(), 'mqlite-run-'))
  const previous = process.env.TMPDIR
  // os.tmpdir() reads it; the workers and the brokers they start inherit it
  process.env.TMPDIR = runDir
  return () => {
    if (previous === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = previous
    rmSync(runDir, { recursive: true, force: true })
  }
}
