/**
 * Electronic signatures on lot dispositions (docs/e-signatures.md): who may sign now, what a disposition signature
 * covers, and each signature checked against the record whenever the record is read.
 */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { DispositionRequest, SignatureManifest } from '../../workflows/contracts';
import { SIGNATURE_MEANINGS } from '../../workflows/contracts';
import { LOCAL_ISSUER } from '../../infra/identity/authenticate';
import { signContent, verifySignature } from '../../infra/identity/e-signature';
import type { UserPrincipal } from '../../infra/identity/principal';
import { parseDurationMs } from '../../infra/config/duration';
import { requestActor } from '../../infra/http/request-actor';
import { ProblemError, problemType, validationProblem } from '../../infra/http/problem-details';
import type { ApiDeps } from '../deps';
import type { SignatureInput, SignatureView } from '../schemas/disposition.schema';

/** The person signing and how they proved it was them at this moment. */
export interface Signer {
  principal: UserPrincipal;
  method: SignatureManifest['method'];
}

/** Where a disposition's signature belongs: the lot and its case. */
export interface DispositionPlace {
  site: string;
  lotId: string;
  lotCaseWorkflowId: string;
}

/**
 * What a disposition signature signs (docs/e-signatures.md#what-is-signed): the decision with its reason, decider and
 * request, and the lot case it was made in, so a signature cannot be moved to another lot or another decision.
 */
export function dispositionContent(
  place: DispositionPlace,
  d: Pick<DispositionRequest, 'decision' | 'reason' | 'decidedBy' | 'requestId'>,
) {
  return {
    record: 'lot-disposition',
    site: place.site,
    lotId: place.lotId,
    lotCaseWorkflowId: place.lotCaseWorkflowId,
    decision: d.decision,
    reason: d.reason,
    decidedBy: d.decidedBy,
    requestId: d.requestId,
  };
}

/**
 * Proves that the signed-in person is signing now (Part 11 §11.200(a)): a local account re-enters its password
 * (counted against the account's lock-out like a sign-in); a person from the OpenID provider must have signed in
 * there recently (`auth_time` within identity.signatures.maxAuthAge), else 401 with an RFC 9470 step-up challenge.
 * Every refusal is audited.
 */
export async function authenticateSigner(
  deps: ApiDeps,
  request: FastifyRequest,
  input: SignatureInput,
): Promise<Signer> {
  const principal = request.principal;
  if (principal?.kind !== 'user') {
    throw new ProblemError({ type: problemType('signature-refused'), title: 'Only a person can sign', status: 403 });
  }
  const refusal = async (reason: string, detail: object = {}) =>
    deps.audit.append([
      {
        actor: requestActor(request),
        action: 'e-signature.credentials',
        recordType: 'user',
        recordId: principal.id,
        old: null,
        new: null,
        reason: null,
        outcome: 'refused',
        detail: { reason, ...detail },
      },
    ]);

  if (principal.issuer !== LOCAL_ISSUER) {
    if (input.password !== undefined) {
      throw new ProblemError(
        validationProblem([
          {
            field: 'signature.password',
            message: 'people signed in at the OpenID provider sign with a recent sign-in there, not a password',
          },
        ]),
      );
    }
    const maxAgeSeconds = Math.floor(parseDurationMs(deps.config.identity.signatures.maxAuthAge) / 1000);
    const ageSeconds = Math.floor(Date.now() / 1000) - principal.authenticatedAt;
    if (ageSeconds > maxAgeSeconds) {
      await refusal('reauthentication-required', { ageSeconds, maxAgeSeconds });
      throw new ProblemError(
        {
          type: problemType('reauthentication-required'),
          title: 'Sign in again to sign',
          status: 401,
          detail: `your sign-in is ${ageSeconds} s old; a signature needs one at most ${maxAgeSeconds} s old`,
        },
        {
          'www-authenticate': `Bearer error="insufficient_user_authentication", error_description="a signature needs a recent sign-in", max_age=${maxAgeSeconds}`,
        },
      );
    }
    return { principal, method: 'recent-sign-in' };
  }

  if (input.password === undefined) {
    throw new ProblemError(
      validationProblem([
        { field: 'signature.password', message: 'a local account signs by re-entering its password' },
      ]),
    );
  }
  const username = principal.id.replace(/^local:/, '');
  const checked = await deps.accounts.confirmSigner({ username, password: input.password, address: request.ip });
  if (checked.ok) return { principal, method: 'password' };
  if (checked.lockedNow) {
    // Part 11 §11.300(d): attempts at unauthorised use are reported, not only refused.
    request.log.warn(
      { user: principal.id, lockedUntil: checked.lockedNow },
      'account locked after repeated failed signing attempts',
    );
  }
  if (checked.reason === 'locked' || checked.lockedNow) {
    throw new ProblemError({
      type: problemType('account-locked'),
      title: 'Account locked after repeated failed attempts',
      status: 423,
      detail: 'too many wrong passwords; the account is locked for a while, or until an admin resets it',
    });
  }
  if (checked.reason === 'disabled') {
    throw new ProblemError({ type: problemType('account-disabled'), title: 'Account disabled', status: 403 });
  }
  throw new ProblemError({
    type: problemType('signature-credentials-refused'),
    title: 'The password re-entered for the signature is wrong',
    status: 401,
    detail: 'nothing was signed; repeated failures lock the account',
  });
}

export function signDisposition(
  deps: ApiDeps,
  signer: Signer,
  meaning: SignatureManifest['meaning'],
  content: ReturnType<typeof dispositionContent>,
): Promise<SignatureManifest> {
  return signContent(deps.signatureKey, { signer: signer.principal, meaning, method: signer.method, content });
}

const ManifestSchema = z.object({
  signatureId: z.string(),
  signer: z.object({ id: z.string(), name: z.string(), roles: z.array(z.string()) }),
  meaning: z.enum(SIGNATURE_MEANINGS),
  signedAt: z.string(),
  method: z.enum(['password', 'recent-sign-in']),
  contentSha256: z.string(),
  seal: z.string(),
});

/**
 * Each signature of a recorded disposition checked against the disposition as it is stored now. The record is read
 * from workflow state or its PostgreSQL projection, so a signature that no longer has a signature's shape is shown as
 * invalid, not dropped: a tampered record must not lose the evidence that it was signed.
 */
export async function verifiedSignatures(
  deps: Pick<ApiDeps, 'signatureKey'>,
  place: DispositionPlace,
  recorded: Pick<DispositionRequest, 'decision' | 'reason' | 'decidedBy' | 'requestId'> & { signatures?: unknown },
): Promise<SignatureView[]> {
  const content = dispositionContent(place, recorded);
  const signatures = Array.isArray(recorded.signatures) ? recorded.signatures : [];
  return Promise.all(signatures.map((raw: unknown) => verifiedSignature(deps, raw, content)));
}

/** One stored signature checked against the content its record holds now; malformed is shown as invalid. */
async function verifiedSignature(
  deps: Pick<ApiDeps, 'signatureKey'>,
  raw: unknown,
  content: unknown,
): Promise<SignatureView> {
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) return malformed(raw);
  const check = await verifySignature([deps.signatureKey], parsed.data, content);
  return { ...parsed.data, ...check };
}

/** What a recall is: the requester's signature covers all of it (docs/e-signatures.md#what-is-signed). */
export interface RecallSigned {
  recallId: string;
  site: string;
  kind: string;
  scope: unknown;
  reason: string;
  requestedBy: string;
}

/**
 * What a real recall's signature signs: the recall (id, site, kind, scope, reason, requester), so the signature cannot
 * be moved to another recall or kept over a changed scope or reason.
 */
export function recallContent(r: RecallSigned) {
  return {
    record: 'recall',
    recallId: r.recallId,
    site: r.site,
    kind: r.kind,
    scope: r.scope,
    reason: r.reason,
    requestedBy: r.requestedBy,
  };
}

export function signRecall(
  deps: ApiDeps,
  signer: Signer,
  meaning: SignatureManifest['meaning'],
  recall: RecallSigned,
): Promise<SignatureManifest> {
  return signContent(deps.signatureKey, {
    signer: signer.principal,
    meaning,
    method: signer.method,
    content: recallContent(recall),
  });
}

/** A recall's stored signature (none for a mock recall) checked against the recall as its row holds it now. */
export async function verifiedRecallSignatures(
  deps: Pick<ApiDeps, 'signatureKey'>,
  recall: RecallSigned & { signature: unknown },
): Promise<SignatureView[]> {
  if (recall.signature === null || recall.signature === undefined) return [];
  return [await verifiedSignature(deps, recall.signature, recallContent(recall))];
}

function malformed(raw: unknown): SignatureView {
  const r = (raw ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  const signer = (r.signer ?? {}) as Record<string, unknown>;
  return {
    signatureId: text(r.signatureId),
    signer: { id: text(signer.id), name: text(signer.name), roles: [] },
    meaning: text(r.meaning),
    signedAt: text(r.signedAt),
    method: text(r.method),
    contentSha256: text(r.contentSha256),
    seal: text(r.seal),
    valid: false,
    problem: 'the stored signature is malformed',
  };
}
