import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import { migrate } from '../../infra/db/migrate';
import { assertDurableSettings, createPool } from '../../infra/db/pool';
import { startEmbeddedPostgres } from '../../infra/local/postgres';
import { startTemporalDevServer } from '../../infra/local/temporal-dev-server';
import { resolveTemporalCli } from '../../infra/temporal/cli';
import { generatePayloadKeyEntry, PAYLOAD_KEY_ID_ENV, PAYLOAD_KEYS_ENV } from '../../infra/temporal/payload-codec';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/contracts';
import { TEST_ENV_FILE, TEST_ENV_VARS, type TestEnv } from './test-env';

export const HARNESS_KEY = '__holdfastTestHarness';

export interface TestHarness {
  env: TestEnv;
  stop: () => Promise<void>;
}

const verbose = process.env.HOLDFAST_TEST_VERBOSE === '1';
const say = (msg: string) => process.stderr.write(`[test harness] ${msg}\n`);

/**
 * One PostgreSQL and one in-memory Temporal dev server for the whole jest run (2-core CI). Set TEST_DATABASE_URL to
 * use an existing server instead: a fresh database holdfast_test_<random> is created there and dropped afterwards.
 */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const cleanups: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((err: Error) => say(`cleanup failed: ${err.message}`));
    }
  };

  try {
    say('starting PostgreSQL and the Temporal dev server for this run');
    const workDir = await mkdtemp(join(tmpdir(), 'holdfast-test-'));
    // As root, PostgreSQL runs as the postgres OS user, which must be able to pass through this directory.
    await chmod(workDir, 0o711);
    cleanups.push(async () => rmSync(workDir, { recursive: true, force: true, maxRetries: 3 }));
    // Ctrl-C during a run: stop the servers rather than leaving them behind (they run in their own process groups).
    const onSignal = (signal: NodeJS.Signals) => {
      say(`${signal}: stopping the test servers`);
      void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    cleanups.push(async () => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    });

    const databaseUrl = await prepareDatabase(workDir, cleanups);
    const pool = createPool(databaseUrl, { max: 2 });
    try {
      await assertDurableSettings(pool);
      const applied = await migrate(pool);
      say(`database ready, migrations applied: ${applied.join(', ') || '(none)'}`);
    } finally {
      await pool.end();
    }

    let temporalCliPath: string;
    try {
      temporalCliPath = await resolveTemporalCli(say);
    } catch (err) {
      throw new Error(`Temporal CLI missing: ${(err as Error).message}`);
    }
    const temporal = await startTemporalDevServer({
      cliPath: temporalCliPath,
      uiPort: false,
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      log: verbose ? (line) => say(`temporal: ${line}`) : undefined,
    }).catch((err: Error) => {
      throw new Error(`Temporal dev server did not start: ${err.message}`);
    });
    cleanups.push(() => temporal.stop());

    const env: TestEnv = {
      databaseUrl,
      temporalAddress: temporal.address,
      namespace: temporal.namespace,
      temporalCliPath,
    };
    await mkdir(dirname(TEST_ENV_FILE), { recursive: true });
    const envJson = `${JSON.stringify(env, null, 2)}\n`;
    await writeFile(TEST_ENV_FILE, envJson, { mode: 0o600 });
    // Removed after the run unless another run in the same tree has written its own since.
    cleanups.push(async () => {
      if (existsSync(TEST_ENV_FILE) && readFileSync(TEST_ENV_FILE, 'utf8') === envJson) rmSync(TEST_ENV_FILE);
    });
    for (const [key, variable] of Object.entries(TEST_ENV_VARS)) process.env[variable] = env[key as keyof TestEnv];
    // The whole suite runs with Temporal payloads encrypted, as production does; worker processes inherit the key.
    if (!process.env[PAYLOAD_KEYS_ENV]) {
      process.env[PAYLOAD_KEYS_ENV] = generatePayloadKeyEntry('test');
      process.env[PAYLOAD_KEY_ID_ENV] = 'test';
    }

    const harness: TestHarness = { env, stop: stopAll };
    (globalThis as Record<string, unknown>)[HARNESS_KEY] = harness;
    say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s: Temporal ${temporal.address}`);
  } catch (err) {
    await stopAll();
    throw new Error(`jest global setup failed: ${(err as Error).message}`);
  }
}

async function prepareDatabase(workDir: string, cleanups: (() => Promise<void>)[]): Promise<string> {
  const external = process.env.TEST_DATABASE_URL;
  if (external) {
    const name = `holdfast_test_${randomBytes(6).toString('hex')}`;
    await withAdminClient(external, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`)).catch(
      (err: Error) => {
        throw new Error(`cannot create database ${name} on TEST_DATABASE_URL (needs CREATEDB): ${err.message}`);
      },
    );
    cleanups.push(async () => {
      await withAdminClient(external, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`),
      );
    });
    const url = new URL(external);
    url.pathname = `/${name}`;
    say(`using database ${name} on ${url.host} (TEST_DATABASE_URL)`);
    return url.toString();
  }

  const postgres = await startEmbeddedPostgres({
    dataDir: join(workDir, 'postgres'),
    log: verbose ? (line) => say(`postgres: ${line}`) : undefined,
  }).catch((err: Error) => {
    throw new Error(`embedded PostgreSQL did not start (or set TEST_DATABASE_URL): ${err.message}`);
  });
  cleanups.push(() => postgres.stop());
  return postgres.url;
}

async function withAdminClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
