/**
 * Electronic signatures on scheduling advice decisions (docs/e-signatures.md, docs/changeover.md#scheduling-advice):
 * what an accept or reject signs, and the stored signature checked against the advice as its row holds it now.
 */
import type { SignatureManifest } from '../../workflows/contracts';
import type { StoredAdvice } from '../../infra/advice/pg-advice-store';
import { signContent, verifySignature } from '../../infra/identity/e-signature';
import type { ApiDeps } from '../deps';
import type { SignatureView } from '../schemas/disposition.schema';
import type { Signer } from './e-signature.service';

export type AdviceDecision = 'accept' | 'reject';

/**
 * The advice as decided: the lot, the action and orders, the evidence, the decision, its reason and decider, so the
 * signature cannot be moved to another advice or kept over changed evidence.
 */
export function adviceContent(
  a: Pick<StoredAdvice, 'adviceId' | 'site' | 'line' | 'componentLot' | 'action' | 'orders' | 'evidence'>,
  d: { decision: AdviceDecision; reason: string; decidedBy: string },
) {
  return {
    record: 'scheduling-advice',
    adviceId: a.adviceId,
    site: a.site,
    line: a.line,
    componentLot: a.componentLot,
    action: a.action,
    orders: a.orders,
    evidence: a.evidence,
    decision: d.decision,
    reason: d.reason,
    decidedBy: d.decidedBy,
  };
}

export function signAdviceDecision(
  deps: ApiDeps,
  signer: Signer,
  meaning: SignatureManifest['meaning'],
  content: ReturnType<typeof adviceContent>,
): Promise<SignatureManifest> {
  return signContent(deps.signatureKey, { signer: signer.principal, meaning, method: signer.method, content });
}

/** The decision's signature, verified against the row as it is now; a malformed one is shown as invalid. */
export async function verifiedAdviceSignatures(
  deps: Pick<ApiDeps, 'signatureKey'>,
  a: StoredAdvice,
): Promise<SignatureView[]> {
  if (a.signature === null || a.signature === undefined || a.state === 'open') return [];
  const decision: AdviceDecision = a.state === 'rejected' ? 'reject' : 'accept';
  const content = adviceContent(a, { decision, reason: a.decisionReason ?? '', decidedBy: a.decidedBy ?? '' });
  const s = a.signature as SignatureManifest;
  if (typeof s !== 'object' || typeof s.seal !== 'string' || typeof s.signer !== 'object') {
    return [
      {
        signatureId: '',
        signer: { id: '', name: '', roles: [] },
        meaning: '',
        signedAt: '',
        method: '',
        contentSha256: '',
        seal: '',
        valid: false,
        problem: 'the stored signature is malformed',
      },
    ];
  }
  const check = await verifySignature([deps.signatureKey], s, content);
  return [{ ...s, signer: { ...s.signer, roles: [...s.signer.roles] }, ...check }];
}
