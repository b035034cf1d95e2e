import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Pool } from 'pg';
import { createPool } from '../../infra/db/pool';

/** What jest's global setup started for this run (test/support/global-setup.ts). */
export interface TestEnv {
  databaseUrl: string;
  temporalAddress: string;
  namespace: string;
  temporalCliPath: string;
}

export const TEST_ENV_FILE = resolve(__dirname, '../../.holdfast/test-env.json');

/** The variables global setup exports; they win over the file, which another run in the same tree may overwrite. */
export const TEST_ENV_VARS = {
  databaseUrl: 'HOLDFAST_TEST_DATABASE_URL',
  temporalAddress: 'HOLDFAST_TEST_TEMPORAL_ADDRESS',
  namespace: 'HOLDFAST_TEST_NAMESPACE',
  temporalCliPath: 'HOLDFAST_TEST_TEMPORAL_CLI',
} as const satisfies Record<keyof TestEnv, string>;

export function readTestEnv(env: NodeJS.ProcessEnv = process.env): TestEnv {
  const fromEnv = Object.fromEntries(
    Object.entries(TEST_ENV_VARS).map(([key, variable]) => [key, env[variable]]),
  ) as Partial<TestEnv>;
  if (Object.values(fromEnv).every((v) => typeof v === 'string' && v.length > 0)) return fromEnv as TestEnv;

  if (!existsSync(TEST_ENV_FILE)) {
    throw new Error(
      `No test environment: neither ${Object.values(TEST_ENV_VARS).join(', ')} nor ${TEST_ENV_FILE} exist. ` +
        'Run tests through jest (its globalSetup test/support/global-setup.ts starts PostgreSQL and Temporal).',
    );
  }
  const parsed = JSON.parse(readFileSync(TEST_ENV_FILE, 'utf8')) as Partial<TestEnv>;
  const missing = (Object.keys(TEST_ENV_VARS) as (keyof TestEnv)[]).filter((k) => !parsed[k]);
  if (missing.length > 0) throw new Error(`${TEST_ENV_FILE} lacks ${missing.join(', ')}; rerun jest to rewrite it`);
  return parsed as TestEnv;
}

/** A pool on the run's migrated test database; close it in afterAll (`await pool.end()`). */
export function testPool(): Pool {
  return createPool(readTestEnv().databaseUrl, { max: 5 });
}
