import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { BoundAddress } from '../listeners/listener.js'
import { bindServer, closeServer, hostForUrl, trackSockets } from '../listeners/net-server.js'

export interface MetricsServerOptions {
  host: string
  port: number
  /** the exposition body and its content type */
  scrape(): Promise<{ body: string; contentType: string }>
  /** the broker's lifecycle state; only 'ready' is ready */
  state(): string
  onError?(err: unknown): void
}

export interface MetricsServer {
  readonly address: BoundAddress
  /** e.g. `http://127.0.0.1:9234` */
  readonly url: string
  /** Idempotent. */
  close(): Promise<void>
}

/**
 * The operator's HTTP endpoint, separate from the MQTT listeners:
 * - `/metrics`: Prometheus text exposition;
 * - `/healthz`: 200 as long as the process can answer at all (liveness);
 * - `/readyz`: 200 only while the broker is ready (listeners bound, store open), 503 while it is
 *   starting or shutting down, so a load balancer stops sending clients before they are refused.
 */
export async function createMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    route(req, res, options).catch((err: unknown) => {
      options.onError?.(err)
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'metrics collection failed\n')
      else res.destroy()
    })
  })
  // Keep-alive connections from a scraper would otherwise hold close() open.
  const sockets = trackSockets(server)
  const address = await bindServer(server, options.host, options.port, 'metrics listener')
  let closing: Promise<void> | undefined
  return {
    address,
    url: `http://${hostForUrl(address.host)}:${address.port}`,
    close: () => (closing ??= closeServer(server, sockets)),
  }
}

async function route(req: IncomingMessage, res: ServerResponse, options: MetricsServerOptions): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0]
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD')
    return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n')
  }
  switch (path) {
    case '/metrics': {
      const { body, contentType } = await options.scrape()
      return send(res, 200, contentType, body)
    }
    case '/healthz':
      return send(res, 200, 'text/plain; charset=utf-8', 'ok\n')
    case '/readyz': {
      const state = options.state()
      return send(res, state === 'ready' ? 200 : 503, 'text/plain; charset=utf-8', `${state}\n`)
    }
    default:
      return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n')
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}
