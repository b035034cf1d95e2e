/**
 * What a changeover's signatures sign (docs/changeover.md#routes, docs/e-signatures.md#what-is-signed): a manual
 * changeover's request, and a first article's approval, each bound to its line, order and workflow so a signature
 * cannot be moved to another changeover.
 */
import type { ChangeoverStatus, FirstArticleApproval, SignatureManifest } from '../../workflows/contracts';
import { signContent, verifySignature } from '../../infra/identity/e-signature';
import type { ApiDeps } from '../deps';
import type { ChangeoverStatusView } from '../schemas/changeover.schema';
import type { SignatureView } from '../schemas/disposition.schema';
import type { Signer } from './e-signature.service';

export interface ChangeoverPlace {
  site: string;
  line: string;
  workOrder: string;
  workflowId: string;
}

export function changeoverRequestContent(
  place: ChangeoverPlace,
  r: { sku: string; reason: string; requestedBy: string; requestId: string },
) {
  return {
    record: 'changeover',
    ...place,
    sku: r.sku,
    reason: r.reason,
    requestedBy: r.requestedBy,
    requestId: r.requestId,
  };
}

export function firstArticleApprovalContent(
  place: ChangeoverPlace,
  a: Pick<FirstArticleApproval, 'approvedBy' | 'reason' | 'requestId'>,
) {
  return {
    record: 'changeover-first-article',
    ...place,
    approvedBy: a.approvedBy,
    reason: a.reason,
    requestId: a.requestId,
  };
}

export function signChangeoverContent(
  deps: Pick<ApiDeps, 'signatureKey'>,
  signer: Signer,
  meaning: SignatureManifest['meaning'],
  content: unknown,
): Promise<SignatureManifest> {
  return signContent(deps.signatureKey, { signer: signer.principal, meaning, method: signer.method, content });
}

/** A first article's approval signature checked against the approval as the workflow holds it now. */
export async function verifiedApproval(
  deps: Pick<ApiDeps, 'signatureKey'>,
  place: ChangeoverPlace,
  approval: FirstArticleApproval,
): Promise<SignatureView> {
  const check = await verifySignature(
    [deps.signatureKey],
    approval.signature,
    firstArticleApprovalContent(place, approval),
  );
  return { ...approval.signature, ...check };
}

/** The workflow's status as the API shows it: a first article's approval signature verified on this read. */
export async function changeoverStatusView(
  deps: Pick<ApiDeps, 'signatureKey'>,
  place: ChangeoverPlace,
  status: ChangeoverStatus,
): Promise<ChangeoverStatusView> {
  const { firstArticle, ...rest } = status;
  if (!firstArticle) return rest;
  const { approval, ...decided } = firstArticle;
  return {
    ...rest,
    firstArticle: {
      ...decided,
      ...(approval ? { approval: { ...approval, signature: await verifiedApproval(deps, place, approval) } } : {}),
    },
  };
}
