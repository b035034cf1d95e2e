import { Counter, type Registry } from 'prom-client';
import type { AnchorObserver } from '../audit/audit-anchor';
import type { AuditObserver } from '../audit/audit-trail';

/** Audit records this process committed, by action; in every process that writes them (API, inference worker). */
export function createAuditMetrics(registry: Registry): AuditObserver {
  const written = new Counter({
    name: 'holdfast_audit_records_written_total',
    help: 'Audit records committed by this process, by action (lot-case.disposition, deferred-frame.drop, ...).',
    labelNames: ['action'],
    registers: [registry],
  });
  return {
    written(entries) {
      for (const entry of entries) written.inc({ action: entry.action });
    },
  };
}

/**
 * The API's anchoring job: anchors written, and passes that found the chain broken. Any increase of the second is an
 * alert: the log line names the record, and `npm run audit:verify` checks the whole trail.
 */
export function createAnchorMetrics(registry: Registry): AnchorObserver {
  const anchors = new Counter({
    name: 'holdfast_audit_anchors_written_total',
    help: 'Audit chain heads written to the anchor file.',
    registers: [registry],
  });
  const broken = new Counter({
    name: 'holdfast_audit_verify_failures_total',
    help: 'Anchoring passes that found the audit chain broken since the last anchor (the log line says where and how).',
    registers: [registry],
  });
  // From the start at 0, so the first increase is seen (an alert on increase() needs the series before it).
  anchors.inc(0);
  broken.inc(0);
  return {
    anchored: () => anchors.inc(),
    chainBroken: () => broken.inc(),
  };
}
