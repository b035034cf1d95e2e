/**
 * The dashboard's connector tiles: PostgreSQL and Temporal from this process's own health checks, the plant systems
 * (MES, ERP, PLC, MQTT broker) from the GET /health of the processes that hold those connectors
 * (`api.dashboard.healthEndpoints`). Every probe is bounded (500 ms) and its answer kept 5 s, so a page refreshed by
 * many people costs one round of probes, and a hung process shows as down, never as a slow page.
 */
import { z } from 'zod';
import type { HoldfastConfig } from '../../infra/config/schema';
import { type HealthCheck, runHealthChecks } from '../../infra/observability/health-checks';
import type { ConnectorTile } from '../schemas/dashboard.schema';

export const PROBE_TIMEOUT_MS = 500;
export const PROBE_CACHE_MS = 5_000;

type HealthEndpoint = HoldfastConfig['api']['dashboard']['healthEndpoints'][number];

/** The tiles the page always shows, in this order; another configured name is added after them. */
const TILES = ['PostgreSQL', 'Temporal', 'MES', 'ERP', 'PLC', 'MQTT broker'] as const;
/** This process's own checks (api/server.ts, buildApp) by the tile they answer for. */
const OWN_CHECKS: Record<string, string> = { postgres: 'PostgreSQL', temporal: 'Temporal' };

/** What every Holdfast process's /health answers, 200 or 503 alike (infra/observability/health-checks.ts). */
const HealthAnswerSchema = z.object({
  checks: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string().optional() })).optional(),
});

export interface ConnectorHealth {
  tiles(): Promise<ConnectorTile[]>;
}

export function createConnectorHealth(opts: {
  checks: readonly HealthCheck[];
  endpoints: readonly HealthEndpoint[];
  fetch?: typeof fetch;
  now?: () => number;
}): ConnectorHealth {
  const fetchFn = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  let cached: { at: number; tiles: Promise<ConnectorTile[]> } | undefined;

  async function probe(endpoint: HealthEndpoint): Promise<Omit<ConnectorTile, 'name' | 'checkedAt'>> {
    let res: Response;
    try {
      res = await fetchFn(endpoint.url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      return { status: 'unknown', detail: timedOut ? `no answer within ${PROBE_TIMEOUT_MS} ms` : 'unreachable' };
    }
    const body = HealthAnswerSchema.safeParse(await res.json().catch(() => undefined));
    if (endpoint.check === undefined) {
      return res.ok ? { status: 'up' } : { status: 'down', detail: `HTTP ${res.status}` };
    }
    const check = body.success ? body.data.checks?.[endpoint.check] : undefined;
    if (!check) return { status: 'unknown', detail: `its health answer has no check ${endpoint.check}` };
    return { status: check.ok ? 'up' : 'down', ...(check.detail ? { detail: check.detail } : {}) };
  }

  async function collect(): Promise<ConnectorTile[]> {
    const checkedAt = new Date(now()).toISOString();
    const [own, probed] = await Promise.all([
      runHealthChecks(opts.checks, PROBE_TIMEOUT_MS),
      Promise.all(opts.endpoints.map(async (e) => ({ name: e.name, ...(await probe(e)) }))),
    ]);
    const byName = new Map<string, ConnectorTile>();
    for (const [check, result] of Object.entries(own.checks)) {
      const name = OWN_CHECKS[check];
      if (name) byName.set(name, { name, status: result.ok ? 'up' : 'down', detail: result.detail, checkedAt });
    }
    for (const p of probed) {
      // Several endpoints for one tile (a MES per site): down if any is down, unknown if any is unknown.
      const seen = byName.get(p.name);
      const rank = { down: 2, unknown: 1, up: 0 } as const;
      if (!seen || rank[p.status] > rank[seen.status]) byName.set(p.name, { ...p, checkedAt });
    }
    const names = [...TILES, ...[...byName.keys()].filter((n) => !(TILES as readonly string[]).includes(n))];
    return names.map(
      (name) =>
        byName.get(name) ?? {
          name,
          status: 'unknown',
          detail:
            name in { PostgreSQL: 1, Temporal: 1 }
              ? 'not checked by this process'
              : 'no health endpoint configured (api.dashboard.healthEndpoints)',
          checkedAt,
        },
    );
  }

  return {
    tiles() {
      const t = now();
      if (!cached || t - cached.at >= PROBE_CACHE_MS) {
        const tiles = collect();
        cached = { at: t, tiles };
        // A failed round is not kept.
        tiles.catch(() => {
          if (cached?.tiles === tiles) cached = undefined;
        });
      }
      return cached.tiles;
    },
  };
}
