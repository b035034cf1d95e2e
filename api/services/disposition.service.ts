/**
 * Signed lot dispositions and their countersignatures (docs/e-signatures.md): the API seals the signer's signature
 * over the decision and hands both to the lot case, whose validators decide what it takes.
 *
 * Both with an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header,
 * docs/reliability.md#api-idempotency-key):
 * same key and body → the stored answer, byte for byte; same key, other body → 422; same key still running → 409.
 * The key is also the Temporal update id, so a retry after a lost answer reaches the same update.
 *
 * Audit (docs/audit-trail.md): the disposition changes the lot case, a workflow, not a row of ours, so no transaction
 * can hold both. What the API can state for certain is the request and the lot case's answer, once the update has
 * returned; that record is written in the same transaction as the stored final answer, so a key has its answer and
 * its audit record together or neither (then the key stays in flight and a retry with it reaches the same update and
 * records it). A request that never reached a lot case (unknown lot, Temporal unreachable) changed nothing and is not
 * recorded; a replay of a stored answer records nothing new.
 */
import { lotCaseWorkflowId } from '../../workflows/contracts';
import type { DispositionOutcome, DispositionRequest } from '../../workflows/contracts';
import { DispositionRejectedError, WorkflowNotFoundError } from '../../infra/temporal/gateway';
import type { ApiDeps } from '../deps';
import type { AuditActor, AuditEntry } from '../../infra/audit/audit-record';
import {
  type Problem,
  ProblemError,
  httpProblem,
  problemType,
  workflowServiceUnavailable,
} from '../../infra/http/problem-details';
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  releaseIdempotencyKey,
} from '../repositories/idempotency.repository';
import {
  type CountersignBody,
  type DispositionBody,
  DispositionOutcomeSchema,
  type SignatureInput,
} from '../schemas/disposition.schema';
import { canonicalJson, sha256Hex } from '../../infra/ingest/canonical-json';
import {
  type DispositionPlace,
  type Signer,
  dispositionContent,
  signDisposition,
  verifiedSignatures,
} from './e-signature.service';

export const DISPOSITION_SCOPE = 'lot-disposition';
export const COUNTERSIGN_SCOPE = 'lot-disposition-countersign';

/** An in-flight key older than this belonged to a process that died mid-request (updates time out after 60 s). */
const IN_FLIGHT_STALE_MS = 5 * 60_000;

export interface StoredAnswer {
  status: number;
  contentType: string;
  /** Canonical JSON: the stored copy serialises to the same bytes on every replay. */
  body: string;
}

/** A lot at the site the route resolved for its caller. */
export interface LotAtSite {
  site: string;
  lotId: string;
}

/** The decider signs the decision; the case takes it (a use-as-is then waits for its second signature). */
export function submitLotDisposition(
  deps: ApiDeps,
  lot: LotAtSite,
  idempotencyKey: string,
  body: DispositionBody,
  signer: Signer,
  actor: AuditActor,
): Promise<StoredAnswer> {
  const fingerprint = sha256Hex(canonicalJson({ ...lot, body: withoutSecret(body) }));
  return idempotent(deps, DISPOSITION_SCOPE, idempotencyKey, fingerprint, async () => {
    const place = placeOf(lot);
    const decided = { decision: body.decision, reason: body.reason, decidedBy: signer.principal.id };
    const signature = await signDisposition(
      deps,
      signer,
      body.signature.meaning,
      dispositionContent(place, { ...decided, requestId: idempotencyKey }),
    );
    const request: DispositionRequest = { ...decided, signatures: [signature], requestId: idempotencyKey };
    return runUpdate(deps, place, actor, {
      action: 'lot-case.disposition',
      // The update's validator takes a disposition only from a case awaiting one, so an accepted one replaced that.
      old: { stage: 'awaiting-disposition', disposition: null },
      new: { disposition: request },
      reason: body.reason,
      update: () => deps.gateway.submitDisposition(place.lotCaseWorkflowId, request),
    });
  });
}

/**
 * The second signature of a use-as-is: a quality manager signs the very content the first signer signed, read from
 * the case; the case's validator refuses the same person twice or a signer without the role, with the reason.
 */
export function countersignLotDisposition(
  deps: ApiDeps,
  lot: LotAtSite,
  idempotencyKey: string,
  body: CountersignBody,
  signer: Signer,
  actor: AuditActor,
): Promise<StoredAnswer> {
  const fingerprint = sha256Hex(canonicalJson({ ...lot, body: withoutSecret(body) }));
  return idempotent(deps, COUNTERSIGN_SCOPE, idempotencyKey, fingerprint, async () => {
    const place = placeOf(lot);
    const state = await deps.gateway.lotCaseState(place.lotCaseWorkflowId);
    if (!state) return problemAnswer(httpProblem(404, `lot ${lot.lotId} at site ${lot.site} has no open lot case`));
    const pending = state.decision;
    const refused = (detail: string): FinalAnswer => {
      const problem = rejection(detail);
      return { ...problemAnswer(problem), audit: countersignAudit('refused', problem) };
    };
    const countersignAudit = (outcome: 'accepted' | 'refused', detail: unknown): AuditEntry => ({
      actor,
      action: 'lot-case.countersign',
      recordType: 'lot-case',
      recordId: place.lotCaseWorkflowId,
      old: null,
      new: null,
      reason: null,
      outcome,
      detail,
    });
    if (!pending) return refused(`lot ${lot.lotId} has no disposition waiting for a second signature`);
    const signature = await signDisposition(deps, signer, body.signature.meaning, dispositionContent(place, pending));
    return runUpdate(deps, place, actor, {
      action: 'lot-case.countersign',
      old: { signatures: pending.signatures.length },
      new: { signature },
      reason: null,
      update: () =>
        deps.gateway.countersignDisposition(place.lotCaseWorkflowId, { signature, requestId: idempotencyKey }),
    });
  });
}

/**
 * Lot dispositions and countersignatures with an Idempotency-Key: the same key and body answer what the first
 * request answered; the stored answer and its audit record are written together.
 */
async function idempotent(
  deps: ApiDeps,
  scope: string,
  idempotencyKey: string,
  fingerprint: string,
  decide: () => Promise<FinalAnswer>,
): Promise<StoredAnswer> {
  const claim = await claimIdempotencyKey(deps.pool, scope, idempotencyKey, fingerprint, IN_FLIGHT_STALE_MS);
  switch (claim.kind) {
    case 'fingerprint-mismatch':
      throw new ProblemError({
        type: problemType('idempotency-key-reused'),
        title: 'Idempotency-Key reused with a different request',
        status: 422,
        detail: 'this Idempotency-Key was first used with another lot or body; use a new key for a new request',
      });
    case 'in-flight':
      throw new ProblemError({
        type: problemType('idempotency-key-in-flight'),
        title: 'Request with this Idempotency-Key is still being processed',
        status: 409,
        detail: 'retry after the first request has answered',
      });
    case 'done':
      return answer(claim.status, claim.body);
    case 'claimed':
      break;
  }

  let final: FinalAnswer;
  try {
    final = await decide();
  } catch (err) {
    // Not a final answer (Temporal unreachable, a bug): free the key so a retry can run.
    await releaseIdempotencyKey(deps.pool, scope, idempotencyKey);
    if (err instanceof ProblemError) throw err;
    throw workflowServiceUnavailable('the workflow service could not be reached; retry with the same Idempotency-Key');
  }
  await deps.audit.inTransaction(async (client) => {
    await completeIdempotencyKey(client, scope, idempotencyKey, final.status, final.body);
    return { result: undefined, audit: final.audit ? [final.audit] : [] };
  });
  return answer(final.status, final.body);
}

interface FinalAnswer {
  status: number;
  body: unknown;
  /** Present once the request reached a lot case, accepted or refused. */
  audit?: AuditEntry;
}

interface UpdateCall {
  action: string;
  old: unknown;
  new: unknown;
  reason: string | null;
  update: () => Promise<DispositionOutcome>;
}

/** Runs the lot case's update; returns only answers that are final for this key, each with its audit record. */
async function runUpdate(deps: ApiDeps, place: DispositionPlace, actor: AuditActor, call: UpdateCall) {
  const audit = (outcome: 'accepted' | 'refused', detail: unknown): AuditEntry => ({
    actor,
    action: call.action,
    recordType: 'lot-case',
    recordId: place.lotCaseWorkflowId,
    // A refused request replaced nothing; its detail says what the case was doing instead.
    old: outcome === 'accepted' ? call.old : null,
    new: call.new,
    reason: call.reason,
    outcome,
    detail,
  });
  try {
    const outcome = await call.update();
    const view = DispositionOutcomeSchema.parse({
      ...outcome,
      signatures: await verifiedSignatures(deps, place, outcome),
    });
    return { status: 200, body: view, audit: audit('accepted', view) };
  } catch (err) {
    let refusal: Problem | undefined;
    if (err instanceof DispositionRejectedError) {
      refusal = rejection(err.message);
    } else if (err instanceof WorkflowNotFoundError) {
      refusal = httpProblem(404, `lot ${place.lotId} at site ${place.site} has no open lot case`);
    }
    if (!refusal) throw err;
    return { ...problemAnswer(refusal), audit: audit('refused', refusal) };
  }
}

const placeOf = (lot: LotAtSite): DispositionPlace => ({
  ...lot,
  lotCaseWorkflowId: lotCaseWorkflowId(lot.site, lot.lotId),
});

const rejection = (detail: string): Problem => ({
  type: problemType('disposition-rejected'),
  title: 'Disposition rejected by the lot case',
  status: 409,
  detail,
});

/** The password re-entered for a signature never reaches the stored fingerprint (an unsalted hash of it would). */
function withoutSecret<T extends { signature: SignatureInput }>(body: T) {
  return { ...body, signature: { meaning: body.signature.meaning } };
}

function problemAnswer(problem: Problem): FinalAnswer {
  return { status: problem.status, body: problem };
}

function answer(status: number, body: unknown): StoredAnswer {
  return {
    status,
    contentType: status >= 400 ? 'application/problem+json' : 'application/json',
    body: canonicalJson(body),
  };
}
