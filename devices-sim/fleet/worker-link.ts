// A uniform handle on a worker, whether it is a worker thread or runs in this thread
// (workers: 0, handy for tests, debugging and tiny fleets).
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { CoordinatorMessage, WorkerMessage, WorkerPlan } from './protocol.js'
import { createWorkerRuntime } from './worker-runtime.js'

export interface WorkerLink {
  send(message: CoordinatorMessage): void
  onMessage(listener: (message: WorkerMessage) => void): void
  onExit(listener: (error: Error | undefined) => void): void
  terminate(): Promise<void>
}

export function createInProcessLink(plan: WorkerPlan): WorkerLink {
  const listeners: Array<(message: WorkerMessage) => void> = []
  // Deliver asynchronously, like a real worker, so coordinator code has one behaviour.
  const runtime = createWorkerRuntime(plan, (message) => setImmediate(() => listeners.forEach((l) => l(message))))
  return {
    send: (message) => setImmediate(() => runtime.handle(message)),
    onMessage: (listener) => listeners.push(listener),
    onExit: () => undefined,
    terminate: async () => undefined,
  }
}

function resolveTsxApi(): string {
  // import.meta.resolve gives the ESM entry; some runners (vitest) do not provide it.
  if (typeof import.meta.resolve === 'function') return import.meta.resolve('tsx/esm/api')
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href
}

/**
 * Node 20 cannot load .ts in worker threads even under tsx; when running from source, a tiny
 * eval'd bootstrap registers tsx inside the worker first.
 */
function spawnWorker(plan: WorkerPlan): Worker {
  const entry = new URL(`./worker-entry${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData: { plan } })
  const tsxApi = resolveTsxApi()
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}) })`
  return new Worker(bootstrap, { eval: true, workerData: { plan }, argv: [fileURLToPath(entry)] })
}

export function createThreadLink(plan: WorkerPlan): WorkerLink {
  const worker = spawnWorker(plan)
  let exited = false
  const exitListeners: Array<(error: Error | undefined) => void> = []
  let lastError: Error | undefined
  worker.on('error', (error) => {
    lastError = error
  })
  worker.on('exit', (code) => {
    exited = true
    const error = lastError ?? (code === 0 ? undefined : new Error(`worker ${plan.worker} exited with code ${code}`))
    exitListeners.forEach((l) => l(error))
  })
  return {
    send: (message) => {
      if (!exited) worker.postMessage(message)
    },
    onMessage: (listener) => worker.on('message', listener),
    onExit: (listener) => exitListeners.push(listener),
    terminate: async () => {
      if (!exited) await worker.terminate()
    },
  }
}
