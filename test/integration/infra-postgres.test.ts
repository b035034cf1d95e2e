import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { assertDurableSettings, createPool } from '../../infra/db/pool';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../infra/local/postgres';
import { readTestEnv } from '../support/test-env';
import { isRunning } from '../support/process-alive';

jest.setTimeout(120_000);

let dir: string;
let server: EmbeddedPostgres | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-pg-'));
  // As root the cluster runs as the postgres OS user, which must be able to enter this directory.
  chmodSync(dir, 0o711);
});

afterEach(async () => {
  await server?.stop();
  server = undefined;
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('startEmbeddedPostgres', () => {
  it('initialises an empty data dir, then reuses it with its data and password after a restart', async () => {
    const dataDir = join(dir, 'reuse');
    const env = { ...process.env, HOLDFAST_PG_PASSWORD: '' };

    server = await startEmbeddedPostgres({ dataDir, env });
    const firstUrl = server.url;
    const pool = createPool(server.url);
    await pool.query('CREATE TABLE kept (v text)');
    await pool.query("INSERT INTO kept VALUES ('before restart')");
    await pool.end();
    const firstPid = server.pid;
    await server.stop();
    server = undefined;
    expect(isRunning(firstPid)).toBe(false);

    server = await startEmbeddedPostgres({ dataDir, env });
    const again = createPool(server.url);
    const { rows } = await again.query<{ v: string }>('SELECT v FROM kept');
    await again.end();

    expect(rows).toEqual([{ v: 'before restart' }]);
    expect(new URL(server.url).password).toBe(new URL(firstUrl).password);
    expect(new URL(server.url).pathname).toBe('/holdfast');
    expect(statSync(join(dataDir, 'password')).mode & 0o777).toBe(0o600);
    if (process.getuid?.() === 0) expect(statSync(join(dataDir, 'pgdata')).uid).not.toBe(0);
  });

  it('runs with fsync and synchronous_commit on and listens on 127.0.0.1 only', async () => {
    server = await startEmbeddedPostgres({ dataDir: join(dir, 'durable') });
    const pool = createPool(server.url);
    try {
      await expect(assertDurableSettings(pool)).resolves.toBeUndefined();
      const { rows } = await pool.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses', 'fsync', 'synchronous_commit', 'full_page_writes') ORDER BY name",
      );
      expect(Object.fromEntries(rows.map((r) => [r.name, r.setting]))).toEqual({
        fsync: 'on',
        full_page_writes: 'on',
        listen_addresses: '127.0.0.1',
        synchronous_commit: 'on',
      });
    } finally {
      await pool.end();
    }
  });

  it('takes the password from HOLDFAST_PG_PASSWORD and says so when it does not match the cluster', async () => {
    const dataDir = join(dir, 'env-password');
    server = await startEmbeddedPostgres({ dataDir, env: { ...process.env, HOLDFAST_PG_PASSWORD: 'first-secret' } });
    expect(decodeURIComponent(new URL(server.url).password)).toBe('first-secret');
    await server.stop();
    server = undefined;

    const attempt = startEmbeddedPostgres({ dataDir, env: { ...process.env, HOLDFAST_PG_PASSWORD: 'other-secret' } });

    await expect(attempt).rejects.toThrow(/HOLDFAST_PG_PASSWORD .* does not match/);
  });

  it('refuses a port that is already taken', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as AddressInfo).port;
    try {
      await expect(startEmbeddedPostgres({ dataDir: join(dir, 'busy'), port })).rejects.toThrow(
        `PostgreSQL port 127.0.0.1:${port} is already in use`,
      );
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});

describe('assertDurableSettings', () => {
  it('rejects a session whose commits are not durable', async () => {
    const url = new URL(readTestEnv().databaseUrl);
    url.searchParams.set('options', '-c synchronous_commit=off');
    const pool = createPool(url.toString());
    try {
      await expect(assertDurableSettings(pool)).rejects.toThrow(/synchronous_commit = off/);
    } finally {
      await pool.end();
    }
  });
});
