/**
 * What `/health` answers on every Holdfast process: which of its dependencies are up. 200 `{ status: 'ok', checks }`
 * while every required one is; 503 (problem+json, the same `checks` as an extension member) otherwise. A dependency
 * the process can work without for a while (the API without Temporal: the outbox keeps the starts) is reported but
 * not required, so a load balancer does not take the process out for it.
 */
import type pg from 'pg';
import { PROBLEM_CONTENT_TYPE, type Problem, problemType } from '../http/problem-details';
import { oncePerScrape } from './scrape';

export interface HealthCheck {
  name: string;
  /** Default true: the process cannot do its work while this is down, so /health answers 503. */
  required?: boolean;
  /** Resolves when up (optionally with a detail to show); throws when down. */
  check(): Promise<string | void>;
}

export interface CheckResult {
  ok: boolean;
  required: boolean;
  detail: string;
}

export interface HealthReport {
  /** Every required check is up. */
  healthy: boolean;
  checks: Record<string, CheckResult>;
}

/**
 * A down dependency with a detail fit to show: /health answers anyone who can reach the process, so other errors are
 * shown by their code or name only (a driver's message may carry host names or SQL).
 */
export class HealthCheckError extends Error {
  override readonly name = 'HealthCheckError';
}

const DEFAULT_TIMEOUT_MS = 3_000;

/** Runs every check at once, each bounded by `timeoutMs`, so one hung dependency cannot hang the probe. */
export async function runHealthChecks(
  checks: readonly HealthCheck[],
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<HealthReport> {
  const results = await Promise.all(
    checks.map(async (c): Promise<[string, CheckResult]> => {
      const required = c.required ?? true;
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        const detail = await Promise.race([
          c.check(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new HealthCheckError(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
          }),
        ]);
        return [
          c.name,
          { ok: true, required, detail: detail || `answered in ${Math.round(performance.now() - started)} ms` },
        ];
      } catch (err) {
        return [c.name, { ok: false, required, detail: describeDown(err) }];
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const report = Object.fromEntries(results);
  return { healthy: results.every(([, r]) => r.ok || !r.required), checks: report };
}

/** A HealthCheckError's message; otherwise only the error's classification (code, connector kind and reason, HTTP status). */
function describeDown(err: unknown): string {
  if (err instanceof HealthCheckError) return err.message;
  const e = (err ?? {}) as { code?: unknown; kind?: unknown; reason?: unknown; httpStatus?: unknown };
  const parts = [e.code, e.kind, e.reason].filter((p) => typeof p === 'string' || typeof p === 'number').map(String);
  if (typeof e.httpStatus === 'number') parts.push(`HTTP ${e.httpStatus}`);
  return `down (${parts.length > 0 ? parts.join(', ') : err instanceof Error ? err.name : 'error'})`;
}

export type HealthAnswer =
  | { statusCode: 200; contentType: string; body: { status: 'ok'; checks: Record<string, CheckResult> } }
  | { statusCode: 503; contentType: string; body: Problem & { checks: Record<string, CheckResult> } };

/** The answer for a report: status code, content type and body, the same on every process's /health. */
export function healthAnswer(report: HealthReport): HealthAnswer {
  if (report.healthy) {
    return { statusCode: 200, contentType: 'application/json', body: { status: 'ok', checks: report.checks } };
  }
  const down = Object.entries(report.checks)
    .filter(([, r]) => !r.ok && r.required)
    .map(([name]) => name);
  return {
    statusCode: 503,
    contentType: PROBLEM_CONTENT_TYPE,
    body: {
      type: problemType('dependencies-unavailable'),
      title: 'Dependencies unavailable',
      status: 503,
      detail: `down: ${down.join(', ')}`,
      checks: report.checks,
    },
  };
}

/** PostgreSQL answers a query. */
export function postgresCheck(pool: Pick<pg.Pool, 'query'>, name = 'postgres'): HealthCheck {
  return {
    name,
    async check() {
      await pool.query('SELECT 1');
    },
  };
}

/** A connector's answer to its own health check, as the set of connectors a process opened reports it. */
export interface ConnectorHealthAnswer {
  ok: boolean;
  detail: string;
  error?: unknown;
}

/**
 * One check per connector, each answered from the connector's own health check: one round of every connector's check
 * per probe of /health, however many checks read it. A failure shows its classification only (describeDown).
 */
export function connectorHealthChecks(
  health: () => Promise<Record<string, ConnectorHealthAnswer>>,
  checks: readonly { name: string; connector: string; required?: boolean }[],
): HealthCheck[] {
  const probe = oncePerScrape(health);
  return checks.map(({ name, connector, required }) => ({
    name,
    ...(required === undefined ? {} : { required }),
    async check() {
      const answer = (await probe())?.[connector];
      if (!answer) throw new HealthCheckError('no answer from its health check');
      if (!answer.ok)
        throw answer.error instanceof Error ? answer.error : new HealthCheckError('failed its health check');
      return answer.detail;
    },
  }));
}
