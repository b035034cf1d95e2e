import type pg from 'pg';
import type { HoldfastConfig } from '../config/schema';
import { ingestInspections } from '../ingest/ingest.service';
import type { InspectionResult } from '../ingest/inspection.schema';
import type { IngestMetrics } from '../observability/ingest-metrics';
import type { IngestStatus, InspectionStore, PipelineLog } from './ports';

/**
 * The inference worker writes through the same durable ingest as POST /v1/inspections: inspection rows and outbox
 * rows in one transaction, duplicates by eventId changing nothing.
 */
export function createPgInspectionStore(
  pool: pg.Pool,
  config: HoldfastConfig,
  log: PipelineLog,
  metrics?: IngestMetrics,
): InspectionStore {
  return {
    async ingest(results) {
      const status = new Map<string, IngestStatus>();
      let pending: InspectionResult[] = results;
      while (pending.length > 0) {
        const outcome = await ingestInspections(pool, config, pending);
        if (outcome.kind === 'stored') {
          metrics?.stored(
            pending,
            outcome.response.results.map((r) => r.status),
          );
          // Per event id: a frame delivered twice in one batch is accepted once, and that is what both are told.
          for (const r of outcome.response.results)
            if (status.get(r.eventId) !== 'accepted') status.set(r.eventId, r.status);
          break;
        }
        // A redelivered frame inspected again after its first result was stored, but scored differently (a recipe
        // changed in between): the first result stands and already started whatever it started.
        const conflicting = new Set(outcome.eventIds);
        log.warn('re-inspected frames kept their first result', { eventIds: outcome.eventIds });
        for (const eventId of conflicting) status.set(eventId, 'duplicate');
        const kept = pending.filter((r) => conflicting.has(r.eventId));
        metrics?.stored(
          kept,
          kept.map(() => 'duplicate'),
        );
        pending = pending.filter((r) => !conflicting.has(r.eventId));
      }
      return results.map((r) => status.get(r.eventId) ?? 'duplicate');
    },
    async recordRejectedFrame(r) {
      await pool.query(
        `INSERT INTO holdfast.frame_rejection (topic, frame_id, reason, payload_sha256) VALUES ($1, $2, $3, $4)`,
        [r.topic, r.frameId ?? null, r.reason, r.payloadSha256],
      );
    },
  };
}
