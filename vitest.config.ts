import { defineConfig } from 'vitest/config'

// Three projects: fast pure-logic tests, store contract suites, and tests that start real
// brokers and talk to them over sockets. All use the default `forks` pool (native modules).
export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'devices-sim/**/*.test.ts'] } },
      { test: { name: 'contract', include: ['test/contract/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/conformance/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
})
