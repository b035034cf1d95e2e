/**
 * Ingest: every result is stored before the answer, the whole batch in one transaction, and each new failure gets
 * its outbox row in that same transaction (docs/reliability.md#outbox). eventId is the producer's idempotency key.
 */
import type pg from 'pg';
import { findSite, findStation, sitePolicy } from '../config/load';
import type { HoldfastConfig } from '../config/schema';
import { currentTraceparent, inSpan } from '../observability/trace-context';
import { type NewOutboxRow, insertOutboxRows } from '../outbox/outbox.repository';
import {
  type DefectDetection,
  type DetectionDispatch,
  lotCaseWorkflowId,
  shadowWorkflowId,
} from '../../workflows/contracts';
import { type InspectionRecord, insertInspections, payloadHashes } from './inspection.repository';
import type { IngestResponse, InspectionResult } from './inspection.schema';
import { canonicalJson, sha256Hex } from './canonical-json';

export type IngestOutcome =
  | { kind: 'stored'; response: IngestResponse }
  /** Re-sent event ids whose payload differs from the stored one; nothing of the batch was stored. */
  | { kind: 'conflict'; eventIds: string[] };

export function ingestInspections(
  pool: pg.Pool,
  config: HoldfastConfig,
  results: readonly InspectionResult[],
): Promise<IngestOutcome> {
  return inSpan('ingest inspections', { attributes: { 'holdfast.inspections': results.length } }, () =>
    ingest(pool, config, results),
  );
}

async function ingest(
  pool: pg.Pool,
  config: HoldfastConfig,
  results: readonly InspectionResult[],
): Promise<IngestOutcome> {
  const records = results.map((r) => toRecord(config, r));

  // The same event id twice in one request: the first occurrence counts, a differing repeat is a conflict.
  const firstByEventId = new Map<string, InspectionRecord>();
  const conflicts = new Set<string>();
  for (const rec of records) {
    const first = firstByEventId.get(rec.eventId);
    if (!first) firstByEventId.set(rec.eventId, rec);
    else if (first.payloadSha256 !== rec.payloadSha256) conflicts.add(rec.eventId);
  }
  if (conflicts.size > 0) return { kind: 'conflict', eventIds: [...conflicts] };
  const unique = [...firstByEventId.values()];

  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // Concurrent sends of one event id wait on the primary key here and then see each other as duplicates.
    const inserted = await insertInspections(client, unique);
    const existing = unique.filter((r) => !inserted.has(r.eventId));
    const stored = await payloadHashes(
      client,
      existing.map((r) => r.eventId),
    );
    for (const rec of existing) {
      if (stored.get(rec.eventId) !== rec.payloadSha256) conflicts.add(rec.eventId);
    }
    if (conflicts.size > 0) {
      await client.query('ROLLBACK');
      return { kind: 'conflict', eventIds: [...conflicts] };
    }
    const traceparent = currentTraceparent();
    const outboxRows: NewOutboxRow[] = unique
      .filter((r) => r.result === 'fail' && inserted.has(r.eventId))
      .map((r) => ({
        eventId: r.eventId,
        workflowId: workflowOf(r),
        payload: detectionDispatch(config, r),
        ...(traceparent ? { traceparent } : {}),
      }));
    await insertOutboxRows(client, outboxRows);
    await client.query('COMMIT');

    const seen = new Set<string>();
    const responseResults = records.map((r) => {
      const status: 'accepted' | 'duplicate' =
        inserted.has(r.eventId) && !seen.has(r.eventId) ? 'accepted' : 'duplicate';
      seen.add(r.eventId);
      return {
        eventId: r.eventId,
        status,
        ...(r.result === 'fail' ? { workflowId: workflowOf(r) } : {}),
      };
    });
    const accepted = responseResults.filter((r) => r.status === 'accepted').length;
    return {
      kind: 'stored',
      response: { accepted, duplicates: responseResults.length - accepted, results: responseResults },
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

function toRecord(config: HoldfastConfig, result: InspectionResult): InspectionRecord {
  return {
    eventId: result.eventId,
    site: result.site,
    line: result.line,
    station: result.station,
    partId: result.partId,
    sku: result.sku,
    lotId: result.lotId,
    workOrder: result.workOrder,
    result: result.result,
    defects: result.defects,
    modelVersion: result.modelVersion,
    recipeVersion: result.recipeVersion,
    inspectedAt: result.inspectedAt,
    ...(result.imageRef !== undefined ? { imageRef: result.imageRef } : {}),
    ...(result.inspectionKind !== undefined ? { inspectionKind: result.inspectionKind } : {}),
    ...(result.frame ? { frameId: result.frame.id, frameSha256: result.frame.sha256 } : {}),
    payloadSha256: sha256Hex(canonicalJson(result)),
    mode: findStation(config, result)?.mode ?? 'production',
  };
}

/** The workflow that takes a failed part: its lot's case, or a shadow station's record of what would be done. */
function workflowOf(rec: InspectionRecord): string {
  return rec.mode === 'shadow' ? shadowWorkflowId(rec.eventId) : lotCaseWorkflowId(rec.site, rec.lotId);
}

/** Fixed at ingest: the policy recorded is the one in force when the defect was seen. */
function detectionDispatch(config: HoldfastConfig, rec: InspectionRecord): DetectionDispatch {
  const site = findSite(config, rec.site);
  if (!site) throw new Error(`site ${rec.site} passed validation but is not configured`);
  const detection: DefectDetection = {
    eventId: rec.eventId,
    site: rec.site,
    line: rec.line,
    station: rec.station,
    partId: rec.partId,
    sku: rec.sku,
    lotId: rec.lotId,
    workOrder: rec.workOrder,
    defects: rec.defects,
    modelVersion: rec.modelVersion,
    recipeVersion: rec.recipeVersion,
    inspectedAt: rec.inspectedAt,
    ...(rec.imageRef !== undefined ? { imageRef: rec.imageRef } : {}),
  };
  return {
    detection,
    policy: sitePolicy(config, site),
    taskQueue: config.taskQueues.quality,
    ...(rec.mode === 'shadow' ? { mode: rec.mode } : {}),
  };
}
