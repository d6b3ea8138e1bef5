import { brokerMetricDefinitions } from '../../src/metrics/broker-metrics.js'
import { emptySnapshot } from '../../src/metrics/broker-snapshot.js'
import { createBrokerStats } from '../../src/metrics/broker-stats.js'

/** Every metric family the broker can serve (security families included), from fresh counters. */
export function allMetricDefinitions() {
  return brokerMetricDefinitions({
    stats: createBrokerStats(),
    version: '0',
    startedAt: 0,
    listenerNames: () => [],
    snapshot: emptySnapshot,
    security: { authFailures: {}, denied: {}, limitHits: {} },
  })
}
