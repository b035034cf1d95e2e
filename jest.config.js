/** @type {import('jest').Config} */
// Type errors are tsc's job (npm run typecheck); jest only transpiles (tsconfig has isolatedModules).
const tsJest = ['ts-jest', { diagnostics: false }];

// Jest does not pass the root's project options down to inline projects: each project gets them from here.
// jose is ESM only, which jest's module loader cannot require: its files are transpiled to CommonJS like ours.
const esmOnly = [
  'ts-jest',
  { diagnostics: false, tsconfig: { allowJs: true, module: 'commonjs', moduleResolution: 'node10' } },
];
const base = {
  testEnvironment: 'node',
  clearMocks: true,
  transform: { '^.+\\.ts$': tsJest, '/node_modules/jose/.+\\.js$': esmOnly },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
};

// One PostgreSQL and one Temporal dev server for the whole run (2-core CI). Jest 29 runs a project's globalSetup only
// when a selected test belongs to that project, and the same file once however many projects name it: the servers
// start once, and not at all for a run of unit or replay tests only.
const servers = {
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};

/** Every test file belongs to exactly one project (npm run test:projects-cover-all checks it). */
module.exports = {
  projects: [
    {
      ...base,
      displayName: 'unit',
      testMatch: ['<rootDir>/test/unit/**/*.test.ts'],
      // Fakes and in-process servers only: a test that needs more than this is waiting for something it should not.
      setupFilesAfterEnv: ['<rootDir>/test/support/unit-timeout.ts'],
    },
    { ...base, ...servers, displayName: 'workflows', testMatch: ['<rootDir>/test/workflows/**/*.test.ts'] },
    { ...base, displayName: 'replay', testMatch: ['<rootDir>/test/replay/**/*.test.ts'] },
    { ...base, ...servers, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...base, ...servers, displayName: 'contract', testMatch: ['<rootDir>/test/contract/**/*.test.ts'] },
  ],
  // Per test, for the projects that start real processes; test/support/unit-timeout.ts shortens it for unit tests.
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
};
