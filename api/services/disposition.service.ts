/**
 * Lot dispositions with an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header,
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
import type { DispositionRequest } from '../../workflows/contracts';
import { DispositionRejectedError, WorkflowNotFoundError } from '../../infra/temporal/gateway';
import type { ApiDeps } from '../deps';
import type { AuditActor, AuditEntry } from '../../infra/audit/audit-record';
import { type Problem, ProblemError, httpProblem, problemType } from '../../infra/http/problem-details';
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  releaseIdempotencyKey,
} from '../repositories/idempotency.repository';
import { sitesOfLot } from '../../infra/ingest/inspection.repository';
import { type DispositionBody, DispositionOutcomeSchema } from '../schemas/disposition.schema';
import { canonicalJson, sha256Hex } from '../../infra/ingest/canonical-json';

export const DISPOSITION_SCOPE = 'lot-disposition';

/** An in-flight key older than this belonged to a process that died mid-request (updates time out after 60 s). */
const IN_FLIGHT_STALE_MS = 5 * 60_000;

export interface StoredAnswer {
  status: number;
  contentType: string;
  /** Canonical JSON: the stored copy serialises to the same bytes on every replay. */
  body: string;
}

export async function submitLotDisposition(
  deps: ApiDeps,
  lotId: string,
  idempotencyKey: string,
  body: DispositionBody,
  actor: AuditActor,
): Promise<StoredAnswer> {
  const fingerprint = sha256Hex(canonicalJson({ lotId, body }));
  const claim = await claimIdempotencyKey(
    deps.pool,
    DISPOSITION_SCOPE,
    idempotencyKey,
    fingerprint,
    IN_FLIGHT_STALE_MS,
  );
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
    final = await decide(deps, lotId, idempotencyKey, body, actor);
  } catch (err) {
    // Not a final answer (Temporal unreachable, ambiguous lot, a bug): free the key so a retry can run.
    await releaseIdempotencyKey(deps.pool, DISPOSITION_SCOPE, idempotencyKey);
    if (err instanceof ProblemError) throw err;
    throw new ProblemError(
      {
        type: problemType('workflow-service-unavailable'),
        title: 'Service Unavailable',
        status: 503,
        detail: 'the workflow service could not be reached; retry with the same Idempotency-Key',
      },
      { 'retry-after': '5' },
    );
  }
  await deps.audit.inTransaction(async (client) => {
    await completeIdempotencyKey(client, DISPOSITION_SCOPE, idempotencyKey, final.status, final.body);
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

/** Resolves the lot case and runs the update; returns only answers that are final for this key. */
async function decide(
  deps: ApiDeps,
  lotId: string,
  requestId: string,
  body: DispositionBody,
  actor: AuditActor,
): Promise<FinalAnswer> {
  const sites = await sitesOfLot(deps.pool, lotId);
  let site: string;
  if (body.site !== undefined) {
    if (!sites.includes(body.site))
      return problemAnswer(httpProblem(404, `lot ${lotId} has not been seen at site ${body.site}`));
    site = body.site;
  } else if (sites.length === 0) {
    return problemAnswer(httpProblem(404, `lot ${lotId} has never been inspected`));
  } else if (sites.length > 1) {
    throw new ProblemError({
      type: problemType('ambiguous-lot'),
      title: 'Lot id exists at more than one site',
      status: 400,
      detail: `lot ${lotId} exists at sites ${sites.join(', ')}; send "site" in the body`,
      sites,
    });
  } else {
    site = sites[0]!;
  }

  const request: DispositionRequest = {
    decision: body.decision,
    reason: body.reason,
    decidedBy: body.decidedBy,
    ...(body.signature ? { signature: body.signature } : {}),
    requestId,
  };
  const workflowId = lotCaseWorkflowId(site, lotId);
  const audit = (outcome: 'accepted' | 'refused', detail: unknown): AuditEntry => ({
    actor,
    action: 'lot-case.disposition',
    recordType: 'lot-case',
    recordId: workflowId,
    // The update's validator takes a disposition only from a case awaiting one, so an accepted one replaced that;
    // a refused one replaced nothing, and its detail says what the case was doing instead.
    old: outcome === 'accepted' ? { stage: 'awaiting-disposition', disposition: null } : null,
    new: { disposition: request },
    reason: body.reason,
    outcome,
    detail,
  });
  try {
    const outcome = DispositionOutcomeSchema.parse(await deps.gateway.submitDisposition(workflowId, request));
    return { status: 200, body: outcome, audit: audit('accepted', outcome) };
  } catch (err) {
    let refusal: Problem | undefined;
    if (err instanceof DispositionRejectedError) {
      refusal = {
        type: problemType('disposition-rejected'),
        title: 'Disposition rejected by the lot case',
        status: 409,
        detail: err.message,
      };
    } else if (err instanceof WorkflowNotFoundError) {
      refusal = httpProblem(404, `lot ${lotId} at site ${site} has no open lot case`);
    }
    if (!refusal) throw err;
    return { ...problemAnswer(refusal), audit: audit('refused', refusal) };
  }
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
