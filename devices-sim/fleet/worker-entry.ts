// Worker thread entry: wires the runtime to the parent port.
import { parentPort, workerData } from 'node:worker_threads'
import type { CoordinatorMessage, WorkerMessage, WorkerPlan } from './protocol.js'
import { createWorkerRuntime } from './worker-runtime.js'

if (!parentPort) throw new Error('worker-entry must run in a worker thread')
const port = parentPort
const plan = (workerData as { plan: WorkerPlan }).plan
const runtime = createWorkerRuntime(plan, (message: WorkerMessage) => port.postMessage(message))
port.on('message', (message: CoordinatorMessage) => runtime.handle(message))
