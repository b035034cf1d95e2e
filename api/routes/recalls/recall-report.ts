/**
 * A recall's records on request (docs/recall.md#records): the recall report (scope, timeline, every affected lot and
 * customer with quantities, reconciliation, findings) as JSON, CSV, HTML or PDF, and the FSMA 204 sheet of its lots.
 */
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { authorizeSite } from '../../../infra/identity/route-access';
import { notFound } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import { buildFsma204Rows, readFsma204FactsOfLots } from '../../../infra/genealogy/fsma204';
import type { RecallReport } from '../../../infra/recall/recall-store';
import type { RecallStage } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import { RecallParamsSchema } from '../../schemas/recall.schema';
import { SpreadsheetSchema } from '../../schemas/records.schema';
import { toCsv } from '../../support/csv';
import { escapeHtml, htmlTable, htmlToPdf, printablePage } from '../../support/printable';
import { READERS } from '../../support/access';
import type { SignatureView } from '../../schemas/disposition.schema';
import { verifiedRecallSignatures } from '../../services/e-signature.service';
import { sendFsma204 } from '../../support/fsma204-sheet';

export interface RecallReportLot {
  lotKey: string;
  material: string | null;
  erpBatch: string | null;
  mesLotId: string | null;
  reachedBy: string;
  depth: number;
  class: string | null;
  quantity: number | null;
  unit: string | null;
  shipped: number;
  consumed: number;
  inProcess: number;
  scrapped: number;
  /** A real recall's containment of the lot (docs/recall.md#contain); null where it was not to be contained. */
  containment: { state: string; holdId: string | null; blocked: number; materialDocuments: string[] } | null;
}

export interface RecallReportCustomer {
  customer: string;
  shipTo: string;
  quantity: number;
  deliveries: { delivery: string; item: string; lotKey: string; quantity: number }[];
  /** A real recall's notice to this customer and ship-to (docs/recall.md#notify); null before it was planned. */
  notification: {
    notificationId: string;
    sentAt: string | null;
    acknowledgedAt: string | null;
    acknowledgedBy: string | null;
    escalations: number;
  } | null;
}

export interface RecallReportDocument {
  recallId: string;
  site: string;
  kind: 'mock' | 'real';
  scope: Record<string, unknown>;
  reason: string;
  requestedBy: string;
  state: string;
  createdAt: string;
  completedAt: string | null;
  generatedAt: string;
  timeline: RecallStage[];
  score: RecallReport['score'] | null;
  reconciliation: { produced: number; accounted: number; unreconciledLots: number } | null;
  lots: RecallReportLot[];
  customers: RecallReportCustomer[];
  findings: { kind: string; subject: string; detail: Record<string, unknown> }[];
  /** A real recall's requester's signature, verified as the report is read. */
  signatures: SignatureView[];
}

const QuerySchema = z.strictObject({ format: z.enum(['json', 'csv', 'html', 'pdf']).default('json') });
const SheetQuerySchema = z.strictObject({ format: z.enum(['csv', 'xlsx']).default('csv') });

/** A recall's own row: what every read of it starts from. */
export interface RecallHead {
  recall_id: string;
  site: string;
  kind: 'mock' | 'real';
  scope: Record<string, unknown>;
  reason: string;
  requested_by: string;
  state: string;
  report: RecallReport | null;
  created_at: Date;
  completed_at: Date | null;
  /** A real recall's requester's sealed signature. */
  signature: unknown;
}

/** What the requester's signature covers, as the row holds it now. */
export const recallSigned = (r: RecallHead) => ({
  recallId: r.recall_id,
  site: r.site,
  kind: r.kind,
  scope: r.scope,
  reason: r.reason,
  requestedBy: r.requested_by,
  signature: r.signature,
});

async function readHead(deps: ApiDeps, recallId: string): Promise<RecallHead> {
  const { rows } = await deps.pool.query<RecallHead>(
    `SELECT recall_id, site, kind, scope, reason, requested_by, state, report, created_at, completed_at, signature
       FROM holdfast.recall WHERE recall_id = $1`,
    [recallId],
  );
  if (!rows[0]) throw notFound(`no recall ${recallId}`);
  return rows[0];
}

export async function readRecallReport(deps: ApiDeps, head: RecallHead): Promise<RecallReportDocument> {
  const { recall_id: recallId } = head;
  const [lots, customers, findings] = await Promise.all([
    deps.pool.query<RecallReportLot>(
      `SELECT r.lot_key AS "lotKey", l.material, l.erp_batch AS "erpBatch", l.mes_lot_id AS "mesLotId",
              r.reached_by AS "reachedBy", r.depth, r.class, r.quantity::float8 AS quantity, r.unit,
              r.shipped::float8 AS shipped, r.consumed::float8 AS consumed, r.in_process::float8 AS "inProcess",
              r.scrapped::float8 AS scrapped,
              CASE WHEN c.lot_key IS NULL THEN NULL
                   ELSE jsonb_build_object('state', c.state, 'holdId', c.hold_id,
                          'blocked', (SELECT coalesce(sum((b->>'quantity')::numeric), 0) FROM jsonb_array_elements(c.erp_blocks) b),
                          'materialDocuments', (SELECT coalesce(jsonb_agg(b->>'materialDocument'), '[]'::jsonb)
                                                  FROM jsonb_array_elements(c.erp_blocks) b
                                                 WHERE b ? 'materialDocument')) END AS containment
         FROM holdfast.recall_lot r LEFT JOIN holdfast.material_lot l USING (lot_key)
         LEFT JOIN holdfast.recall_containment c ON c.recall_id = r.recall_id AND c.lot_key = r.lot_key
        WHERE r.recall_id = $1
        ORDER BY CASE r.reached_by WHEN 'scope' THEN 0 WHEN 'forward' THEN 1 ELSE 2 END, r.depth, r.lot_key`,
      [recallId],
    ),
    // Who received what: the deliveries of the scope's lots and of every lot made from them (a source lot reached
    // backward did not carry the problem to its customers).
    deps.pool.query<RecallReportCustomer>(
      `WITH shipped AS (
         SELECT d->>'customer' AS customer, d->>'shipTo' AS "shipTo",
                sum((d->>'quantity')::numeric)::float8 AS quantity,
                jsonb_agg(jsonb_build_object('delivery', d->>'delivery', 'item', d->>'item', 'lotKey', r.lot_key,
                                             'quantity', (d->>'quantity')::numeric)
                          ORDER BY d->>'delivery', d->>'item', r.lot_key) AS deliveries
           FROM holdfast.recall_lot r, jsonb_array_elements(r.deliveries) d
          WHERE r.recall_id = $1 AND r.reached_by <> 'backward'
          GROUP BY 1, 2)
       SELECT s.*,
              CASE WHEN n.notification_id IS NULL THEN NULL
                   ELSE jsonb_build_object('notificationId', n.notification_id, 'sentAt', n.sent_at,
                                           'acknowledgedAt', n.acknowledged_at, 'acknowledgedBy', n.acknowledged_by,
                                           'escalations', jsonb_array_length(n.escalations)) END AS notification
         FROM shipped s
         LEFT JOIN holdfast.recall_notification n
           ON n.recall_id = $1 AND n.customer = s.customer AND n.ship_to = s."shipTo"
        ORDER BY 1, 2`,
      [recallId],
    ),
    deps.pool.query<{ kind: string; subject: string; detail: Record<string, unknown> }>(
      `SELECT kind, subject, detail FROM holdfast.recall_finding WHERE recall_id = $1 ORDER BY kind, subject`,
      [recallId],
    ),
  ]);
  const stages = head.report?.stages ?? [];
  const reconcile = stages.find((s) => s.name === 'reconcile')?.counts;
  return {
    recallId,
    site: head.site,
    kind: head.kind,
    scope: head.scope,
    reason: head.reason,
    requestedBy: head.requested_by,
    state: head.state,
    createdAt: head.created_at.toISOString(),
    completedAt: head.completed_at?.toISOString() ?? null,
    generatedAt: new Date().toISOString(),
    timeline: stages,
    score: head.report?.score ?? null,
    reconciliation: reconcile
      ? {
          produced: reconcile['produced'] ?? 0,
          accounted: reconcile['accounted'] ?? 0,
          unreconciledLots: reconcile['unreconciledLots'] ?? 0,
        }
      : null,
    lots: lots.rows,
    customers: customers.rows,
    findings: findings.rows,
    signatures: await verifiedRecallSignatures(deps, recallSigned(head)),
  };
}

const CSV_COLUMNS = ['section', 'id', 'time', 'class', 'quantity', 'detail'];

const containmentText = (c: NonNullable<RecallReportLot['containment']>) =>
  `containment ${c.state}${c.holdId ? `, hold ${c.holdId}` : ''}` +
  `${c.blocked ? `, blocked ${c.blocked} (${c.materialDocuments.join(' ')})` : ''}`;
const notificationText = (n: NonNullable<RecallReportCustomer['notification']>) =>
  `notice ${n.notificationId} ${n.sentAt ? `sent ${n.sentAt}` : 'not sent'}` +
  `${n.acknowledgedAt ? `, acknowledged ${n.acknowledgedAt} (recorded by ${n.acknowledgedBy})` : ', not acknowledged'}` +
  `${n.escalations ? `, escalated ${n.escalations}×` : ''}`;
const signatureText = (s: SignatureView) =>
  `signed by ${s.signer.name} (${s.signer.id}), meaning ${s.meaning}: ` +
  `${s.valid ? 'signature verified' : `SIGNATURE INVALID${s.problem ? `: ${s.problem}` : ''}`}`;
const num = (n: number | null) => (n === null ? '' : String(n));

/** One row per stage, lot, customer delivery and finding, so the whole recall sorts and filters in one sheet. */
export function recallReportCsv(report: RecallReportDocument): string {
  const rows: string[][] = [CSV_COLUMNS];
  rows.push(['recall', report.recallId, report.createdAt, report.kind, '', `${report.state}: ${report.reason}`]);
  for (const s of report.timeline) {
    const counts = Object.entries(s.counts ?? {})
      .map(([k, v]) => `${k} ${v}`)
      .join('; ');
    rows.push(['stage', s.name, s.startedAt ?? '', s.state, num(s.durationMs ?? null), counts]);
  }
  for (const l of report.lots) {
    rows.push([
      'lot',
      l.lotKey,
      '',
      l.class ?? '',
      num(l.quantity),
      `${l.reachedBy} depth ${l.depth}; shipped ${l.shipped}, consumed ${l.consumed}, in process ${l.inProcess}, ` +
        `scrapped ${l.scrapped}${l.containment ? `; ${containmentText(l.containment)}` : ''}`,
    ]);
  }
  for (const c of report.customers) {
    for (const d of c.deliveries) {
      rows.push([
        'delivery',
        `${d.delivery}/${d.item}`,
        '',
        c.customer,
        num(d.quantity),
        `ship-to ${c.shipTo}; lot ${d.lotKey}${c.notification ? `; ${notificationText(c.notification)}` : ''}`,
      ]);
    }
  }
  for (const sig of report.signatures) {
    rows.push(['signature', sig.signatureId, sig.signedAt, sig.meaning, '', signatureText(sig)]);
  }
  for (const f of report.findings) rows.push(['finding', f.subject, '', f.kind, '', JSON.stringify(f.detail)]);
  return toCsv(rows);
}

export function recallReportHtml(report: RecallReportDocument): string {
  const e = escapeHtml;
  const score = report.score;
  const reconciliation = report.reconciliation;
  const timeline = htmlTable(
    ['Stage', 'State', 'Started', 'Finished', 'Took (ms)', 'Found'],
    report.timeline.map((s) => [
      s.name,
      s.state,
      s.startedAt ?? '',
      s.finishedAt ?? '',
      num(s.durationMs ?? null),
      Object.entries(s.counts ?? {})
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ]),
  );
  const lots = htmlTable(
    [
      'Lot',
      'Material',
      'ERP batch',
      'MES lot',
      'Reached',
      'Class',
      'Quantity',
      'Shipped',
      'Consumed',
      'In process',
      'Scrapped',
    ],
    report.lots.map((l) => [
      l.lotKey,
      l.material ?? '',
      l.erpBatch ?? '',
      l.mesLotId ?? '',
      `${l.reachedBy} (${l.depth})`,
      l.class ?? '',
      `${num(l.quantity)} ${l.unit ?? ''}`.trim(),
      num(l.shipped),
      num(l.consumed),
      num(l.inProcess),
      num(l.scrapped),
      l.containment ? containmentText(l.containment) : '',
    ]),
  );
  const customers = htmlTable(
    ['Customer', 'Ship-to', 'Quantity', 'Deliveries', 'Notice'],
    report.customers.map((c) => [
      c.customer,
      c.shipTo,
      num(c.quantity),
      c.deliveries.map((d) => `${d.delivery}/${d.item} (lot ${d.lotKey}, ${d.quantity})`).join('; '),
      c.notification ? notificationText(c.notification) : '',
    ]),
  );
  const findings = htmlTable(
    ['Finding', 'Subject', 'Detail'],
    report.findings.map((f) => [f.kind, f.subject, JSON.stringify(f.detail)]),
  );
  return printablePage(
    `Recall report ${report.recallId}`,
    `<h1>${e(report.kind === 'mock' ? 'Mock recall' : 'Recall')} ${e(report.recallId)} at ${e(report.site)}</h1>` +
      `<p>${e(report.reason)}. Scope ${e(JSON.stringify(report.scope))}. Requested by ${e(report.requestedBy)} ` +
      `on ${e(report.createdAt)}; ${e(report.state)}${report.completedAt ? ` on ${e(report.completedAt)}` : ''}. ` +
      `Generated ${e(report.generatedAt)}.</p>` +
      (score
        ? `<p>Score: trace ${score.traceMs} ms against ${score.traceWithinMs} ms (${score.traceOnTime ? 'on time' : 'LATE'}); ` +
          `reconciliation ${(score.reconciliation * 100).toFixed(2)} % against ` +
          `${(score.reconciliationAtLeast * 100).toFixed(2)} % (${score.reconciled ? 'reconciled' : 'NOT RECONCILED'}); ` +
          `${score.passed ? 'passed' : 'FAILED'}.</p>`
        : '') +
      (reconciliation
        ? `<p>Produced ${reconciliation.produced}, accounted for ${reconciliation.accounted}, ` +
          `${reconciliation.unreconciledLots} lot(s) unreconciled.</p>`
        : '') +
      (report.signatures.length > 0
        ? `<h2>Signatures</h2><ul>${report.signatures.map((sig) => `<li>${e(signatureText(sig))} on ${e(sig.signedAt)}</li>`).join('')}</ul>`
        : '') +
      `<h2>Timeline</h2>${timeline}<h2>Affected lots (${report.lots.length})</h2>${lots}` +
      `<h2>Customers (${report.customers.length})</h2>${customers}<h2>Findings (${report.findings.length})</h2>${findings}`,
  );
}

const recallReportRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/recalls/:recallId/report', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary:
        'The recall report: scope, timeline, affected lots and customers with quantities, reconciliation, findings',
      description: 'JSON (default), CSV, HTML or PDF (`format`), read from the recall as it stands. docs/recall.md.',
      tags: ['recalls', 'records'],
      params: RecallParamsSchema,
      querystring: QuerySchema,
      response: { 200: z.unknown(), 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request, reply) => {
      const head = await readHead(deps, request.params.recallId);
      authorizeSite(request, { site: head.site });
      const report = await readRecallReport(deps, head);
      const untyped: FastifyReply = reply;
      switch (request.query.format) {
        case 'csv':
          return untyped.type('text/csv; charset=utf-8').send(recallReportCsv(report));
        case 'html':
          return untyped.type('text/html; charset=utf-8').send(recallReportHtml(report));
        case 'pdf':
          return untyped.type('application/pdf').send(await htmlToPdf(recallReportHtml(report)));
        default:
          return report;
      }
    },
  });

  app.get('/v1/recalls/:recallId/fsma204', {
    config: { access: { roles: READERS, machine: ['lots:read'] } },
    schema: {
      summary: "The FSMA 204 sortable spreadsheet of a recall's lots: every critical tracking event, whatever its date",
      description: 'CSV (default) or XLSX (`format=xlsx`), the columns of GET /v1/records/fsma204. docs/fsma-204.md.',
      tags: ['recalls', 'records'],
      params: RecallParamsSchema,
      querystring: SheetQuerySchema,
      response: { 200: SpreadsheetSchema, 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request, reply) => {
      const head = await readHead(deps, request.params.recallId);
      authorizeSite(request, { site: head.site });
      const { rows } = await deps.pool.query<{ lot_key: string }>(
        'SELECT lot_key FROM holdfast.recall_lot WHERE recall_id = $1',
        [head.recall_id],
      );
      const lotKeys = rows.map((r) => r.lot_key);
      const filter = { site: head.site, from: new Date(0), to: new Date('9999-12-31T00:00:00Z'), lots: lotKeys };
      const sheet = buildFsma204Rows(await readFsma204FactsOfLots(deps.pool, lotKeys), filter);
      return sendFsma204(reply, sheet, request.query.format, `fsma204-recall-${head.recall_id}`);
    },
  });
};

export default recallReportRoutes;
