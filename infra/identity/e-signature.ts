/**
 * Electronic signatures (21 CFR Part 11 §11.50, §11.70, §11.200; docs/e-signatures.md).
 *
 * A signature is a manifestation (printed name, time, meaning) bound to the sha256 of the signed content's canonical
 * JSON, and sealed: a compact JWS (ES256) by the API's signature key over every other field. Checking it needs only
 * the record and the public key, so it is checked on every read:
 * - the content hash differs → the record was changed after it was signed;
 * - the seal does not verify, or covers other fields → the manifestation was edited, or copied from another record.
 * Someone who can write the database can change a record, but cannot make a signature that verifies for the change
 * without the private key, which lives in the data directory, not in the database.
 */
import { randomUUID } from 'node:crypto';
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';
import type { SignatureManifest, SignatureMeaning } from '../../workflows/contracts';
import { canonicalJson, sha256Hex } from '../ingest/canonical-json';
import { SIGNING_ALG, type SigningKey } from './signing-key';
import type { UserPrincipal } from './principal';

/** The JWS `typ` of a seal, so that neither a token nor any other JWS of the same key passes for one. */
export const SEAL_TYPE = 'holdfast-esignature+jws';

export type SignatureCheck = { valid: true } | { valid: false; problem: string };

export const contentSha256 = (content: unknown): string => sha256Hex(canonicalJson(content));

export interface SignOptions {
  signer: Pick<UserPrincipal, 'id' | 'displayName' | 'roles'>;
  meaning: SignatureMeaning;
  method: SignatureManifest['method'];
  content: unknown;
  now?: Date;
}

export async function signContent(key: SigningKey, opts: SignOptions): Promise<SignatureManifest> {
  const fields: Omit<SignatureManifest, 'seal'> = {
    signatureId: randomUUID(),
    signer: { id: opts.signer.id, name: opts.signer.displayName, roles: [...opts.signer.roles] },
    meaning: opts.meaning,
    // UTC with its offset written out: a record read in another time zone says which clock it is.
    signedAt: (opts.now ?? new Date()).toISOString().replace('Z', '+00:00'),
    method: opts.method,
    contentSha256: contentSha256(opts.content),
  };
  const seal = await new CompactSign(new TextEncoder().encode(canonicalJson(fields)))
    .setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: SEAL_TYPE })
    .sign(key.privateKey);
  return { ...fields, seal };
}

/**
 * Checks one signature against the content as the record holds it now. `keys`: the current signature key and any
 * retired ones still trusted for reading (by `kid`).
 */
export async function verifySignature(
  keys: readonly Pick<SigningKey, 'kid' | 'publicKey'>[],
  manifest: SignatureManifest,
  content: unknown,
): Promise<SignatureCheck> {
  const { seal, ...fields } = manifest;
  let sealed: string;
  try {
    const header = decodeProtectedHeader(seal);
    const key = keys.find((k) => k.kid === header.kid);
    if (!key) return { valid: false, problem: `sealed by an unknown key (${String(header.kid)})` };
    if (header.typ !== SEAL_TYPE) return { valid: false, problem: 'the seal is not a signature seal' };
    const { payload } = await compactVerify(seal, key.publicKey, { algorithms: [SIGNING_ALG] });
    sealed = new TextDecoder().decode(payload);
  } catch {
    return { valid: false, problem: 'the seal does not verify' };
  }
  if (sealed !== canonicalJson(fields)) {
    return { valid: false, problem: 'the manifestation (signer, time, meaning or hash) was changed after signing' };
  }
  if (fields.contentSha256 !== contentSha256(content)) {
    return { valid: false, problem: 'the signed record was changed after it was signed' };
  }
  return { valid: true };
}
