/**
 * Anchors of the audit chain outside the database (docs/audit-trail.md#anchors): every `audit.anchorInterval` the API
 * writes the chain head (seq, hash, time) as one JSON line to a file in the data directory. A chain alone cannot show
 * that someone with the database's superuser rewrote the whole table and recomputed every hash; the anchors can,
 * because the rewritten records no longer have the hashes the file wrote down earlier.
 *
 * Before it anchors a new head, the job checks the records since the last anchor: it never vouches for a chain that
 * does not follow from what it anchored before. A broken chain is logged and counted at every pass, and nothing more
 * is anchored until it is repaired or explained.
 */
import { open, mkdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type pg from 'pg';
import { z } from 'zod';
import type { HoldfastConfig } from '../config/schema';
import { canonicalJson } from '../ingest/canonical-json';
import { type AuditAnchor, type ChainProblem, verifySince } from './audit-chain';

/** `audit.anchorFile`, relative to the data directory (HOLDFAST_DATA_DIR, default .holdfast/data) unless absolute. */
export function auditAnchorFile(config: HoldfastConfig, env: NodeJS.ProcessEnv = process.env): string {
  const file = config.audit.anchorFile;
  return isAbsolute(file) ? file : join(resolve(env.HOLDFAST_DATA_DIR ?? '.holdfast/data'), file);
}

export class AnchorFileError extends Error {
  override readonly name = 'AnchorFileError';
}

const AnchorLine = z.strictObject({
  seq: z.number().int().positive(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  anchoredAt: z.iso.datetime({ offset: true }),
});

/** Every anchor in the file, in file order; none when the file does not exist. Throws naming a line it cannot read. */
export async function readAnchors(file: string): Promise<{ exists: boolean; anchors: AuditAnchor[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, anchors: [] };
    throw err;
  }
  const anchors: AuditAnchor[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new AnchorFileError(`${file} line ${i + 1} is not JSON`);
    }
    const anchor = AnchorLine.safeParse(parsed);
    if (!anchor.success) {
      throw new AnchorFileError(`${file} line ${i + 1} is not an anchor: ${anchor.error.issues[0]?.message ?? ''}`);
    }
    anchors.push(anchor.data);
  });
  return { exists: true, anchors };
}

/** Appends one line and flushes it to disk before returning: an anchor is only worth something once it is durable. */
export async function appendAnchor(file: string, anchor: AuditAnchor): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const handle = await open(file, 'a', 0o644);
  try {
    await handle.appendFile(`${canonicalJson(anchor)}\n`, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** What the job reports (infra/observability/audit-metrics.ts counts it). */
export interface AnchorObserver {
  anchored(anchor: AuditAnchor): void;
  chainBroken(problem: ChainProblem): void;
}

export type AnchorPass =
  { kind: 'anchored'; anchor: AuditAnchor } | { kind: 'unchanged' } | { kind: 'broken'; problem: ChainProblem };

export interface AuditAnchoring {
  /** One pass now: check the records since the last anchor, then anchor the head if it moved. */
  anchorNow(): Promise<AnchorPass>;
  /** Stops the timer, waits for a pass in progress and anchors once more, so this run's last records are anchored. */
  stop(): Promise<void>;
}

export interface AuditAnchoringOptions {
  pool: pg.Pool;
  file: string;
  intervalMs: number;
  /** pino-shaped, so the API's logger is passed as it is. */
  log: { info(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
  observer?: AnchorObserver;
}

export function startAuditAnchoring(opts: AuditAnchoringOptions): AuditAnchoring {
  const { pool, file, log } = opts;
  let last: AuditAnchor | undefined;
  let lastRead = false;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  /** Passes run one after another, whether the timer or a caller asked. */
  let queue: Promise<unknown> = Promise.resolve();

  async function pass(): Promise<AnchorPass> {
    if (!lastRead) {
      last = (await readAnchors(file)).anchors.reduce<AuditAnchor | undefined>(
        (latest, a) => (latest === undefined || a.seq >= latest.seq ? a : latest),
        undefined,
      );
      lastRead = true;
    }
    const check = await verifySince(pool, last);
    if (check.problem) {
      opts.observer?.chainBroken(check.problem);
      log.error(
        { seq: check.problem.seq, kind: check.problem.kind, detail: check.problem.detail, anchorFile: file },
        'audit chain broken: nothing anchored (run npm run audit:verify)',
      );
      return { kind: 'broken', problem: check.problem };
    }
    if (check.head.seq === 0 || check.head.seq === last?.seq) return { kind: 'unchanged' };
    const anchor: AuditAnchor = { ...check.head, anchoredAt: new Date().toISOString() };
    await appendAnchor(file, anchor);
    last = anchor;
    opts.observer?.anchored(anchor);
    return { kind: 'anchored', anchor };
  }

  const anchorNow = (): Promise<AnchorPass> => {
    const run = queue.then(pass);
    queue = run.catch(() => undefined);
    return run;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      anchorNow()
        .catch((err: unknown) => log.error({ err, anchorFile: file }, 'audit anchor pass failed; trying again later'))
        .finally(schedule);
    }, opts.intervalMs);
  };
  schedule();

  return {
    anchorNow,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await anchorNow().catch((err: unknown) =>
        log.error({ err, anchorFile: file }, 'audit anchor at stop failed; the next start anchors the head'),
      );
    },
  };
}
