import { readFileSync } from 'node:fs';
import { Connection } from '@temporalio/client';
import { createPool } from '../../infra/db/pool';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/contracts';
import { readTestEnv, TEST_ENV_FILE, TEST_ENV_VARS, testPool } from '../support/test-env';

describe('jest global setup', () => {
  it('exports the servers it started through HOLDFAST_TEST_* variables', () => {
    const env = readTestEnv();

    expect(process.env[TEST_ENV_VARS.databaseUrl]).toBe(env.databaseUrl);
    expect(process.env[TEST_ENV_VARS.temporalAddress]).toBe(env.temporalAddress);
    expect(env.temporalAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(env.namespace).toBe('default');
    expect(env.temporalCliPath).toMatch(/temporal$/);
  });

  it('falls back to .holdfast/test-env.json when the variables are absent', () => {
    const fromFile = readTestEnv({});
    expect(Object.keys(fromFile).sort()).toEqual(['databaseUrl', 'namespace', 'temporalAddress', 'temporalCliPath']);
    expect(JSON.parse(readFileSync(TEST_ENV_FILE, 'utf8'))).toEqual(fromFile);
  });

  it('hands out a migrated, durable database', async () => {
    const pool = testPool();
    try {
      const { rows } = await pool.query<{ version: string }>('SELECT version FROM holdfast.schema_migrations');
      expect(rows.map((r) => r.version)).toContain('0001_core');
      const settings = await pool.query<{ fsync: string; sync: string }>(
        "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync",
      );
      expect(settings.rows[0]).toEqual({ fsync: 'on', sync: 'on' });
    } finally {
      await pool.end();
    }
  });

  it('runs a Temporal dev server with every Holdfast search attribute registered', async () => {
    const { temporalAddress, namespace } = readTestEnv();
    const connection = await Connection.connect({ address: temporalAddress });
    try {
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      expect(Object.keys(customAttributes ?? {})).toEqual(
        expect.arrayContaining(ALL_SEARCH_ATTRIBUTES.map((k) => k.name)),
      );
    } finally {
      await connection.close();
    }
  });
});

describe('createPool', () => {
  it('names the application and bounds statements', async () => {
    const pool = createPool(readTestEnv().databaseUrl);
    try {
      const { rows } = await pool.query<{ app: string; timeout: string; idle: string }>(
        "SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS timeout, current_setting('idle_in_transaction_session_timeout') AS idle",
      );
      expect(rows[0]).toEqual({ app: 'holdfast', timeout: '30s', idle: '1min' });
      await expect(pool.query("SET statement_timeout = '50ms'; SELECT pg_sleep(1)")).rejects.toThrow(
        /canceling statement due to statement timeout/,
      );
    } finally {
      await pool.end();
    }
  });
});
