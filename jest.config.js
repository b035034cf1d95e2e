/** @type {import('jest').Config} */
// Type errors are tsc's job (npm run typecheck); jest only transpiles (tsconfig has isolatedModules).
const tsJest = ['ts-jest', { diagnostics: false }];
module.exports = {
  testEnvironment: 'node',
  clearMocks: true,
  transform: { '^.+\\.ts$': tsJest },
  // One PostgreSQL and one Temporal dev server for the whole run (2-core CI): started here, shared by every suite.
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
