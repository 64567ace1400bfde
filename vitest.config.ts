import { defineConfig } from 'vitest/config';

// Unit tests are pure and fast; integration tests start real FFmpeg, redis-server and servers,
// so they get long timeouts and run in separate forks (two at a time on a 2-core machine).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          pool: 'forks',
          maxWorkers: 2,
          // Runs after the unit tests, with its own worker limit.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
