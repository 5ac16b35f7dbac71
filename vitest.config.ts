import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // One throwaway PostgreSQL and one MariaDB for the whole run; tests isolate by database name.
    globalSetup: ['tests/harness/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    // Child processes (the CLI, dump tools) behave more predictably under forks than threads.
    pool: 'forks',
    // Two cores: more workers only make the database servers and dump tools compete.
    maxWorkers: 2,
    // The JSON report feeds the fault-matrix summary that CI prints (scripts/fault-matrix.mjs).
    reporters: ['default', ['json', { outputFile: 'tmp/vitest-results.json' }]],
  },
});
