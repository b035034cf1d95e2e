import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Pool, PoolClient } from 'pg';

export const DEFAULT_MIGRATIONS_DIR = resolve(__dirname, 'migrations');

/** Any constant works as long as every Holdfast process uses the same one: it names "schema migration" locks. */
const MIGRATION_LOCK_KEY = '7236911402386761000';

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

interface MigrationFile {
  version: string;
  path: string;
  sql: string;
  sha256: string;
}

/**
 * Applies `*.sql` files from `dir` in name order, each once and in its own transaction, and returns the versions
 * applied by this call. Every step holds a transaction-scoped advisory lock, so processes starting together apply
 * each file exactly once; a file changed after it was applied stops everything before anything new is applied.
 *
 * Files run inside a transaction: no BEGIN/COMMIT of their own and no CREATE INDEX CONCURRENTLY.
 */
export async function migrate(pool: Pool, dir: string = DEFAULT_MIGRATIONS_DIR): Promise<string[]> {
  const files = await readMigrations(dir);
  const client = await pool.connect();
  const appliedNow: string[] = [];
  try {
    await inLockedTransaction(client, async () => {
      // holdfast is also created by 0001_core.sql with IF NOT EXISTS, so either order works.
      await client.query('CREATE SCHEMA IF NOT EXISTS holdfast');
      await client.query(`CREATE TABLE IF NOT EXISTS holdfast.schema_migrations (
        version    text PRIMARY KEY,
        sha256     text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      assertUnchanged(files, await appliedChecksums(client));
    });

    for (const file of files) {
      await inLockedTransaction(client, async () => {
        // Another process may have applied it while we waited for the lock.
        const applied = await appliedChecksums(client);
        if (applied.has(file.version)) {
          assertUnchanged([file], applied);
          return;
        }
        try {
          await client.query(file.sql);
        } catch (err) {
          const e = err as Error & { position?: string };
          throw new MigrationError(
            `migration ${file.path} failed: ${e.message}${e.position ? ` (at character ${e.position})` : ''}`,
          );
        }
        await client.query('INSERT INTO holdfast.schema_migrations (version, sha256) VALUES ($1, $2)', [
          file.version,
          file.sha256,
        ]);
        appliedNow.push(file.version);
      });
    }
  } finally {
    client.release();
  }
  return appliedNow;
}

async function inLockedTransaction(client: PoolClient, work: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    // Migrations may legitimately run longer than the pool's statement timeout.
    await client.query('SET LOCAL statement_timeout = 0');
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    await work();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function appliedChecksums(client: PoolClient): Promise<Map<string, string>> {
  const { rows } = await client.query<{ version: string; sha256: string }>(
    'SELECT version, sha256 FROM holdfast.schema_migrations',
  );
  return new Map(rows.map((r) => [r.version, r.sha256]));
}

function assertUnchanged(files: MigrationFile[], applied: Map<string, string>): void {
  for (const file of files) {
    const recorded = applied.get(file.version);
    if (recorded !== undefined && recorded !== file.sha256) {
      throw new MigrationError(
        `migration ${file.path} was changed after it was applied (recorded sha256 ${recorded}, file now ` +
          `${file.sha256}); restore it and put the change in a new migration file`,
      );
    }
  }
}

async function readMigrations(dir: string): Promise<MigrationFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new MigrationError(`cannot read migrations directory ${dir}: ${(err as Error).message}`);
  }
  const sqlNames = names.filter((n) => n.endsWith('.sql')).sort();
  return Promise.all(
    sqlNames.map(async (name) => {
      const path = join(dir, name);
      const bytes = await readFile(path);
      return {
        version: name.slice(0, -'.sql'.length),
        path,
        sql: bytes.toString('utf8'),
        sha256: createHash('sha256').update(bytes).digest('hex'),
      };
    }),
  );
}
