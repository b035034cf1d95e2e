import type pg from 'pg';
import { createPool, type PoolOptions } from '../infra/db/pool';

export interface ClosablePool {
  pool: pg.Pool;
  /**
   * Ends the pool and waits until every connection is closed. `pool.end()` alone resolves once its clients are told
   * to end, before their sockets close: PostgreSQL stopped right after would still terminate them, and each would
   * report "terminating connection due to administrator command" as the last line of the run.
   */
  close(): Promise<void>;
}

export function openPool(url: string, opts: PoolOptions = {}): ClosablePool {
  const pool = createPool(url, opts);
  const open = new Set<Promise<void>>();
  pool.on('connect', (client) => {
    const ended: Promise<void> = new Promise<void>((resolve) => client.once('end', () => resolve())).then(() => {
      open.delete(ended);
    });
    open.add(ended);
  });
  let closing: Promise<void> | undefined;
  return {
    pool,
    close() {
      closing ??= (async () => {
        await pool.end();
        await Promise.all([...open]);
      })();
      return closing;
    },
  };
}
