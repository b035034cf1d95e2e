/**
 * Electronic signatures on the release of a quality escalation (docs/e-signatures.md,
 * docs/analytics.md#statistical-escalation): what a release signs, and the stored signature checked against the
 * escalation as its row holds it now.
 */
import type { SignatureManifest } from '../../workflows/contracts';
import type { StoredEscalation } from '../../infra/quality-rules/pg-quality-rule-store';
import { signContent, verifySignature } from '../../infra/identity/e-signature';
import type { ApiDeps } from '../deps';
import type { SignatureView } from '../schemas/disposition.schema';
import type { Signer } from './e-signature.service';

/**
 * The escalation as released: the rule and version, the evidence, the MES hold, the reason and the releaser, so the
 * signature cannot be moved to another escalation or kept over other evidence.
 */
export function escalationReleaseContent(
  e: Pick<
    StoredEscalation,
    'escalationId' | 'site' | 'line' | 'station' | 'ruleId' | 'version' | 'evidence' | 'policy' | 'hold'
  >,
  d: { reason: string; decidedBy: string },
) {
  return {
    record: 'quality-escalation',
    decision: 'release',
    escalationId: e.escalationId,
    site: e.site,
    line: e.line,
    station: e.station,
    ruleId: e.ruleId,
    version: e.version,
    policy: e.policy,
    holdId: e.hold?.holdId ?? null,
    evidence: e.evidence,
    reason: d.reason,
    decidedBy: d.decidedBy,
  };
}

export function signEscalationRelease(
  deps: ApiDeps,
  signer: Signer,
  meaning: SignatureManifest['meaning'],
  content: ReturnType<typeof escalationReleaseContent>,
): Promise<SignatureManifest> {
  return signContent(deps.signatureKey, { signer: signer.principal, meaning, method: signer.method, content });
}

/** The release's signature, verified against the row as it is now; a malformed one is shown as invalid. */
export async function verifiedEscalationSignatures(
  deps: Pick<ApiDeps, 'signatureKey'>,
  e: StoredEscalation,
): Promise<SignatureView[]> {
  if (e.signature === null || e.signature === undefined || e.decidedAt === null) return [];
  const content = escalationReleaseContent(e, { reason: e.decisionReason ?? '', decidedBy: e.decidedBy ?? '' });
  const s = e.signature as SignatureManifest;
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
