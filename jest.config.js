/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 60000,
  // Service suites spawn servers and emulators on free ports; two workers fit the 2-core box.
  maxWorkers: 2,
  setupFiles: ['<rootDir>/test/helpers/setup-env.ts'],
};
