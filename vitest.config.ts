import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['proto/src/**/*.test.ts', 'lib/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'scripts/**/*.test.ts'],
    globalSetup: ['lib/src/testing/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real servers and processes; two cores run two files at once.
    maxWorkers: 2,
  },
});
