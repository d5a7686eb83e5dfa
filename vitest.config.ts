import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The e2e suites start real registries and processes; two cores do not like more forks.
    pool: 'forks',
    maxWorkers: 2,
  },
});
