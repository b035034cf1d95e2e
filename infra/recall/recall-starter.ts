/**
 * Starts a recall (docs/recall.md): its row in holdfast.recall, then its workflow. The recall's id is a hash of the
 * site and the request's Idempotency-Key, so a repeated request finds the same row and the same workflow; the same
 * key with another body is refused.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { AuditActor, AuditEntry } from '../audit/audit-record';
import type { AuditTrail } from '../audit/audit-trail';
import type { HoldfastConfig } from '../config/schema';
import {
  recallScopeLabel,
  recallWorkflowId,
  SearchAttributes,
  type RecallInput,
  type RecallKind,
  type RecallScope,
  type SignatureManifest,
} from '../../workflows/contracts';

export const RECALL_WORKFLOW_TYPE = 'recallWorkflow';

export interface RecallRequest {
  site: string;
  kind: RecallKind;
  scope: RecallScope;
  reason: string;
  requestedBy: string;
  idempotencyKey: string;
  /** A model recall's corrected model (name@version); absent: each station's active recipe's model. */
  correctedModelVersion?: string;
  /** A real recall's: the requester's sealed signature of `recallContent` (the API makes it). */
  signature?: SignatureManifest;
}

/** The recall's id: a hash of its site and the request's Idempotency-Key, so a repeated request finds it. */
export function recallIdFor(site: string, idempotencyKey: string): string {
  return `${site}-${createHash('sha256').update(`${site}\n${idempotencyKey}`).digest('hex').slice(0, 16)}`;
}

export type RecallStart =
  | { outcome: 'started' | 'existing'; recallId: string; workflowId: string }
  | { outcome: 'key-reused'; recallId: string };

/** Opens the recall's row, then starts its workflow through `start` (the API's gateway, or a client). */
export async function openRecall(
  db: Pick<pg.Pool, 'query'>,
  config: HoldfastConfig,
  request: RecallRequest,
  start: (input: RecallInput) => Promise<void>,
  /** Given, the new row and its audit record are stored together (a repeat of the request records nothing). */
  audit?: { trail: AuditTrail; actor: AuditActor },
): Promise<RecallStart> {
  const site = config.sites.find((s) => s.id === request.site);
  if (!site) throw new Error(`site ${request.site} is not configured`);
  const sha = (text: string) => createHash('sha256').update(text).digest('hex');
  const recallId = recallIdFor(request.site, request.idempotencyKey);
  const workflowId = recallWorkflowId(recallId);
  const corrected = request.correctedModelVersion;
  // Without a corrected model, the body hashes as before it could name one: stored recalls keep their hash.
  const body = sha(JSON.stringify([request.kind, request.scope, request.reason, ...(corrected ? [corrected] : [])]));
  const insert = (q: Pick<pg.Pool, 'query'>) =>
    q.query(
      `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key, request_sha256,
                                  workflow_id, corrected_model_version, signature)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (recall_id) DO NOTHING`,
      [
        recallId,
        request.site,
        request.kind,
        JSON.stringify(request.scope),
        request.reason,
        request.requestedBy,
        request.idempotencyKey,
        body,
        workflowId,
        corrected ?? null,
        request.signature ? JSON.stringify(request.signature) : null,
      ],
    );
  const opened = audit
    ? await audit.trail.inTransaction(async (client) => {
        const done = (await insert(client)).rowCount === 1;
        const entry: AuditEntry = {
          actor: audit.actor,
          action: 'recall.start',
          recordType: 'recall',
          recordId: recallId,
          old: null,
          new: {
            site: request.site,
            kind: request.kind,
            scope: request.scope,
            workflowId,
            ...(request.signature ? { signatureId: request.signature.signatureId } : {}),
          },
          reason: request.reason,
          outcome: 'accepted',
          detail: null,
        };
        return { result: done, audit: done ? [entry] : [] };
      })
    : (await insert(db)).rowCount === 1;
  if (!opened) {
    const existing = await db.query<{ request_sha256: string }>(
      'SELECT request_sha256 FROM holdfast.recall WHERE recall_id = $1',
      [recallId],
    );
    if (existing.rows[0]?.request_sha256 !== body) return { outcome: 'key-reused', recallId };
  }
  const input: RecallInput = {
    recallId,
    site: request.site,
    kind: request.kind,
    scope: request.scope,
    reason: request.reason,
    requestedBy: request.requestedBy,
    targets: { traceWithin: site.recall.traceWithin, reconciliationAtLeast: site.recall.reconciliationAtLeast },
    preset: config.activityPresets.traceWrite,
    ...(corrected ? { correctedModelVersion: corrected } : {}),
    ...(request.kind === 'real' ? { contain: config.recall.contain } : {}),
  };
  // Started again by a repeat after a crash or an unreachable Temporal between the insert and the start: the same
  // id finds the workflow already there, or starts it now.
  await start(input);
  return { outcome: opened ? 'started' : 'existing', recallId, workflowId };
}

/**
 * The recall's workflow, started, found running or found closed (the same id is the same recall): a repeated request
 * never runs a finished recall again, whose real effects and report are done.
 */
export async function startRecallWorkflow(client: Client, taskQueue: string, input: RecallInput): Promise<void> {
  await client.workflow
    .start(RECALL_WORKFLOW_TYPE, {
      workflowId: recallWorkflowId(input.recallId),
      taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: SearchAttributes.site, value: input.site },
        { key: SearchAttributes.recallKind, value: input.kind },
        { key: SearchAttributes.recallScope, value: recallScopeLabel(input.scope) },
        { key: SearchAttributes.recallState, value: 'running' },
      ],
      staticSummary: `${input.kind} recall at ${input.site}: ${input.reason}`.slice(0, 190),
    })
    .catch((err: unknown) => {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    });
}

/** openRecall with a Temporal client. */
export function startRecall(
  db: Pick<pg.Pool, 'query'>,
  client: Client,
  config: HoldfastConfig,
  request: RecallRequest,
): Promise<RecallStart> {
  return openRecall(db, config, request, (input) => startRecallWorkflow(client, config.taskQueues.quality, input));
}
