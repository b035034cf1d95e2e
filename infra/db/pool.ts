import { Pool, type PoolClient, type PoolConfig } from 'pg';

export interface PoolOptions {
  /** Connections per process; PostgreSQL's default max_connections is 100 and several processes share it. */
  max?: number;
  /** Per-statement limit in ms; long-running work (migrations) lifts it with SET LOCAL. */
  statementTimeoutMs?: number;
  applicationName?: string;
}

/** The one way Holdfast code opens PostgreSQL: bounded, named in pg_stat_activity, no statement runs forever. */
export function createPool(url: string, opts: PoolOptions = {}): Pool {
  const config: PoolConfig = {
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'holdfast',
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    // A transaction left open by a crashed handler would hold locks and block the outbox; end it after 60 s.
    idle_in_transaction_session_timeout: 60_000,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  };
  const pool = new Pool(config);
  // An idle client that loses its server (restart, network) emits 'error' on the pool; without a listener Node
  // would crash the process. The next checkout reconnects.
  pool.on('error', (err) => {
    process.stderr.write(`postgres pool: idle client error: ${err.message}\n`);
  });
  return pool;
}

export class DurabilityError extends Error {
  override readonly name = 'DurabilityError';
}

/**
 * Refuses to run on a server that could lose acknowledged commits in a crash (docs/reliability.md#durable-database).
 */
export async function assertDurableSettings(pool: Pool): Promise<void> {
  const { rows } = await pool.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])`,
    [['fsync', 'synchronous_commit']],
  );
  const settings = new Map(rows.map((r) => [r.name, r.setting]));
  const problems: string[] = [];
  if (settings.get('fsync') !== 'on') problems.push(`fsync = ${settings.get('fsync') ?? 'unknown'}`);
  // local, remote_write, remote_apply and on all wait for the local WAL flush; only off does not.
  const syncCommit = settings.get('synchronous_commit');
  if (syncCommit === undefined || syncCommit === 'off')
    problems.push(`synchronous_commit = ${syncCommit ?? 'unknown'}`);
  if (problems.length > 0) {
    throw new DurabilityError(
      `PostgreSQL is not configured for durable commits (${problems.join(', ')}); ` +
        `Holdfast acknowledges records only after they are durable, so set fsync = on and synchronous_commit = on`,
    );
  }
}

/** Runs `work` in one transaction on one pooled client: committed if it resolves, rolled back if it throws. */
export async function withTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
