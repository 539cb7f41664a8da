import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/fixtures.ts'],
    testTimeout: 60_000,
    hookTimeout: 600_000,
    // Namespace and emulator tests spawn real processes; two cores run two files at once.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
  },
});
