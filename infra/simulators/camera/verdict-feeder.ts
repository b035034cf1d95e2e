/**
 * The simulator's ground truth, handed to Holdfast as verdicts for stations in shadow mode: what a labelled
 * validation set is to a plant. Holdfast's shadow report (GET /v1/stations/.../shadow-report) then measures those
 * stations against it. Pages through published frames in order and posts them, at most `pageSize` per request.
 */
import type { ConnectorLogger } from '../../connectors/define';
import type { CameraTruthStore } from './camera.store';

export interface VerdictFeeder {
  stop(): Promise<void>;
}

export function startVerdictFeeder(opts: {
  store: CameraTruthStore;
  apiUrl: string;
  /** Holdfast API keys allowed `verdicts:write`, by site (HOLDFAST_API_KEYS); without one the API answers 401. */
  apiKeys?: Record<string, string>;
  /** `${site}/${line}/${station}` of the stations to feed. */
  stations: Set<string>;
  intervalMs?: number;
  pageSize?: number;
  log: ConnectorLogger;
}): VerdictFeeder {
  const pageSize = opts.pageSize ?? 200;
  let cursor: { since?: string; after?: string } = {};
  let stopped = false;
  let running: Promise<void> = Promise.resolve();

  const feedOnce = async () => {
    for (;;) {
      const page = await opts.store.listPublished({ ...cursor, limit: pageSize });
      if (page.length === 0) return;
      const byStation = new Map<string, typeof page>();
      for (const t of page) {
        const key = `${t.site}/${t.line}/${t.station}`;
        if (!opts.stations.has(key)) continue;
        byStation.set(key, [...(byStation.get(key) ?? []), t]);
      }
      for (const [key, truths] of byStation) {
        const apiKey = opts.apiKeys?.[key.split('/')[0]!];
        const res = await fetch(`${opts.apiUrl}/v1/stations/${key}/verdicts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(apiKey ? { 'x-api-key': apiKey } : {}) },
          body: JSON.stringify({
            verdicts: truths.map((t) => ({
              frameId: t.frameId,
              verdict: t.class === 'good' ? 'pass' : 'fail',
              ...(t.class === 'good' ? {} : { defectClass: t.class }),
              source: 'ground-truth',
              decidedBy: 'camera-simulator',
            })),
          }),
        });
        if (!res.ok) throw new Error(`POST verdicts for ${key}: HTTP ${res.status} ${await res.text()}`);
      }
      const last = page[page.length - 1]!;
      cursor = { since: last.publishedAt, after: last.frameId };
      if (page.length < pageSize) return;
    }
  };

  const timer = setInterval(() => {
    running = running
      .then(feedOnce)
      .catch((err: unknown) => opts.log.warn('ground truth not fed to Holdfast yet', { error: String(err) }));
  }, opts.intervalMs ?? 5_000);

  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
