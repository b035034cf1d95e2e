import { Counter, type Registry } from 'prom-client';

/** Where inspection results came in: POST /v1/inspections, or the inference worker's own results. */
export type IngestSource = 'api' | 'inference';

/**
 * Why inspection results were not stored: refused as invalid (400), re-sent with a different payload (409: the whole
 * batch), too large to read (413), not JSON (415), or the store was unavailable (5xx).
 */
export type IngestRefusal = (typeof REFUSALS)[number];
const REFUSALS = ['invalid', 'payload-conflict', 'too-large', 'unsupported-media-type', 'unavailable'] as const;

export interface IngestMetrics {
  /** One committed ingest: each result with what became of it. */
  stored(results: readonly { result: 'pass' | 'fail' }[], statuses: readonly ('accepted' | 'duplicate')[]): void;
  refused(reason: IngestRefusal, inspections: number): void;
}

/** The counters of one process's ingest; `source` labels every series, so the API and the worker can be summed. */
export function createIngestMetrics(registry: Registry, source: IngestSource): IngestMetrics {
  const accepted = new Counter({
    name: 'holdfast_inspections_accepted_total',
    help: 'Inspection results stored (new event ids), by source and result (a fail starts a defect workflow).',
    labelNames: ['source', 'result'],
    registers: [registry],
  });
  const duplicates = new Counter({
    name: 'holdfast_inspections_duplicate_total',
    help: 'Inspection results re-sent with an event id already stored (the first stands; nothing changes).',
    labelNames: ['source'],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'holdfast_inspections_refused_total',
    help: 'Inspection results not stored, by source and reason (invalid, payload-conflict, too-large, unsupported-media-type, unavailable).',
    labelNames: ['source', 'reason'],
    registers: [registry],
  });
  // Every series from the start at 0, so rate() and alerts see the first increase.
  for (const result of ['pass', 'fail']) accepted.inc({ source, result }, 0);
  duplicates.inc({ source }, 0);
  for (const reason of REFUSALS) refused.inc({ source, reason }, 0);
  return {
    stored(results, statuses) {
      results.forEach((r, i) => {
        if (statuses[i] === 'accepted') accepted.inc({ source, result: r.result });
        else duplicates.inc({ source });
      });
    },
    refused(reason, inspections) {
      refused.inc({ source, reason }, inspections);
    },
  };
}
