import type pg from 'pg';
import type { HoldfastConfig } from '../../infra/config/schema';
import { ingestInspections } from '../../api/services/ingest.service';
import type { InspectionResult } from '../../api/schemas/inspection.schema';
import type { InspectionStore, PipelineLog } from './inference-pipeline';

/**
 * The inference worker writes through the same durable ingest as POST /v1/inspections: inspection rows and outbox
 * rows in one transaction, duplicates by eventId changing nothing.
 */
export function createPgInspectionStore(pool: pg.Pool, config: HoldfastConfig, log: PipelineLog): InspectionStore {
  return {
    async ingest(results) {
      let pending: InspectionResult[] = results;
      while (pending.length > 0) {
        const outcome = await ingestInspections(pool, config, pending);
        if (outcome.kind === 'stored') return;
        // A redelivered frame inspected again after its first result was stored, but scored differently (a recipe
        // changed in between): the first result stands and already started whatever it started.
        const conflicting = new Set(outcome.eventIds);
        log.warn('re-inspected frames kept their first result', { eventIds: outcome.eventIds });
        pending = pending.filter((r) => !conflicting.has(r.eventId));
      }
    },
    async recordRejectedFrame(r) {
      await pool.query(
        `INSERT INTO holdfast.frame_rejection (topic, frame_id, reason, payload_sha256) VALUES ($1, $2, $3, $4)`,
        [r.topic, r.frameId ?? null, r.reason, r.payloadSha256],
      );
    },
  };
}
