import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type Pool } from 'pg';
import { DEFAULT_MIGRATIONS_DIR, migrate } from '../../infra/db/migrate';
import { createPool } from '../../infra/db/pool';
import { readTestEnv } from '../support/test-env';

// Each test gets its own database on the run's server, because the tracking table is per database.
const created: string[] = [];
const pools: Pool[] = [];
let migrationsDir: string;

async function admin<T>(work: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: readTestEnv().databaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function freshDatabasePool(max = 3): Promise<Pool> {
  const name = `holdfast_migrate_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`));
  created.push(name);
  const url = new URL(readTestEnv().databaseUrl);
  url.pathname = `/${name}`;
  const pool = createPool(url.toString(), { max });
  pools.push(pool);
  return pool;
}

beforeEach(() => {
  migrationsDir = mkdtempSync(join(tmpdir(), 'holdfast-migrations-'));
});

afterEach(() => {
  rmSync(migrationsDir, { recursive: true, force: true });
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await admin(async (c) => {
    for (const name of created) await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
  });
});

describe('migrate', () => {
  it('applies the repository migrations to an empty database, then nothing on a second run', async () => {
    const pool = await freshDatabasePool();

    const first = await migrate(pool);
    const second = await migrate(pool);

    expect(first).toContain('0001_core');
    expect(first).toEqual([...first].sort());
    expect(second).toEqual([]);
    const { rows } = await pool.query<{ version: string; sha256: string }>(
      'SELECT version, sha256 FROM holdfast.schema_migrations ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual(first);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.sha256))).toBe(true);
    // 0001 creates the holdfast schema with IF NOT EXISTS after the tracking table already put it there.
    const tables = await pool.query("SELECT to_regclass('holdfast.inspection') AS t");
    expect(tables.rows[0].t).toBe('holdfast.inspection');
    expect(DEFAULT_MIGRATIONS_DIR).toMatch(/infra[/\\]db[/\\]migrations$/);
  });

  it('applies files in name order, only new ones on a later run', async () => {
    const pool = await freshDatabasePool();
    writeFileSync(join(migrationsDir, '0002_b.sql'), 'INSERT INTO holdfast.t (v) VALUES (2);');
    writeFileSync(join(migrationsDir, '0001_a.sql'), 'CREATE TABLE holdfast.t (n serial, v int);');
    writeFileSync(join(migrationsDir, 'notes.txt'), 'not a migration');

    expect(await migrate(pool, migrationsDir)).toEqual(['0001_a', '0002_b']);
    writeFileSync(join(migrationsDir, '0003_c.sql'), 'INSERT INTO holdfast.t (v) VALUES (3);');
    expect(await migrate(pool, migrationsDir)).toEqual(['0003_c']);

    const { rows } = await pool.query<{ v: number }>('SELECT v FROM holdfast.t ORDER BY n');
    expect(rows.map((r) => r.v)).toEqual([2, 3]);
  });

  it('refuses to run when an applied file has changed, naming the file, and applies nothing new', async () => {
    const pool = await freshDatabasePool();
    writeFileSync(join(migrationsDir, '0001_a.sql'), 'CREATE TABLE holdfast.t (v int);');
    await migrate(pool, migrationsDir);

    writeFileSync(join(migrationsDir, '0001_a.sql'), 'CREATE TABLE holdfast.t (v bigint);');
    writeFileSync(join(migrationsDir, '0002_b.sql'), 'CREATE TABLE holdfast.u (v int);');

    await expect(migrate(pool, migrationsDir)).rejects.toThrow(/0001_a\.sql was changed after it was applied/);
    const u = await pool.query("SELECT to_regclass('holdfast.u') AS t");
    expect(u.rows[0].t).toBeNull();
  });

  it('rolls back a failing file completely and names it', async () => {
    const pool = await freshDatabasePool();
    writeFileSync(join(migrationsDir, '0001_a.sql'), 'CREATE TABLE holdfast.t (v int);');
    writeFileSync(
      join(migrationsDir, '0002_bad.sql'),
      'CREATE TABLE holdfast.half (v int);\nSELECT nope FROM nowhere;',
    );

    await expect(migrate(pool, migrationsDir)).rejects.toThrow(/0002_bad\.sql failed: relation "nowhere"/);

    const state = await pool.query<{ version: string }>('SELECT version FROM holdfast.schema_migrations');
    expect(state.rows.map((r) => r.version)).toEqual(['0001_a']);
    const half = await pool.query("SELECT to_regclass('holdfast.half') AS t");
    expect(half.rows[0].t).toBeNull();
  });

  it('is safe when several processes migrate the same database at once', async () => {
    // Separate pools stand in for separate processes: separate sessions contending for the advisory lock.
    const first = await freshDatabasePool(1);
    const url = new URL(readTestEnv().databaseUrl);
    url.pathname = `/${created[created.length - 1]}`;
    const others = [1, 2, 3].map(() => createPool(url.toString(), { max: 1 }));
    pools.push(...others);
    // Not idempotent on purpose: a second application of any file would fail or double the rows.
    writeFileSync(join(migrationsDir, '0001_a.sql'), 'CREATE TABLE holdfast.t (v int);');
    writeFileSync(join(migrationsDir, '0002_b.sql'), 'INSERT INTO holdfast.t SELECT 1 FROM pg_sleep(0.2);');
    writeFileSync(join(migrationsDir, '0003_c.sql'), 'INSERT INTO holdfast.t VALUES (3);');

    const results = await Promise.all([first, ...others].map((p) => migrate(p, migrationsDir)));

    expect(results.flat().sort()).toEqual(['0001_a', '0002_b', '0003_c']);
    const { rows } = await first.query<{ v: number }>('SELECT v FROM holdfast.t ORDER BY v');
    expect(rows.map((r) => r.v)).toEqual([1, 3]);
  });

  it('names the directory when it cannot be read', async () => {
    const pool = await freshDatabasePool();
    await expect(migrate(pool, join(migrationsDir, 'missing'))).rejects.toThrow(
      /cannot read migrations directory .*missing/,
    );
  });
});
