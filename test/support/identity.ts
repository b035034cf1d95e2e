/**
 * Credentials for tests that call the API or the inference edge: tokens signed with a key of this test file (as
 * POST /v1/auth/token signs them, without an account row or argon2 per test), and real machine keys in PostgreSQL.
 */
import type pg from 'pg';
import { createAccounts, type NewKey } from '../../infra/identity/accounts';
import { issueLocalToken } from '../../infra/identity/authenticate';
import type { Role, Sites } from '../../infra/identity/principal';
import type { SignatureManifest, SignatureMeaning } from '../../workflows/contracts';
import { generateSigningKey, type SigningKey } from '../../infra/identity/signing-key';
import { createAuditTrail } from '../../infra/audit/audit-trail';

let shared: Promise<SigningKey> | undefined;

/** The signing key of this test file's apps (jest gives each file its own module registry). */
export const testSigningKey = (): Promise<SigningKey> => (shared ??= generateSigningKey());

export interface TestUser {
  username?: string;
  roles: Role[];
  sites?: Sites;
}

/** `Authorization: Bearer …` for a local user with these roles and sites (default every site). */
export async function bearerFor(user: TestUser, key?: SigningKey): Promise<{ authorization: string }> {
  const token = await issueLocalToken(
    key ?? (await testSigningKey()),
    {
      username: user.username ?? user.roles.join('-'),
      displayName: user.username ?? user.roles.join('-'),
      roles: user.roles,
      sites: user.sites ?? 'all',
      disabled: false,
      lockedUntil: null,
    },
    3600,
  );
  return { authorization: `Bearer ${token}` };
}

/** An admin's headers: what existing tests send so that they test their route, not access. */
export const asAdmin = (key?: SigningKey) => bearerFor({ username: 'test-admin', roles: ['admin'] }, key);

/** A real API key in holdfast.api_key; its `X-Api-Key` header. */
export async function machineKey(
  pool: pg.Pool,
  key: NewKey,
): Promise<{ id: string; headers: { 'x-api-key': string } }> {
  const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 5, lockForMs: 60_000 });
  const created = await accounts.createKey({ kind: 'system', id: 'test' }, key);
  return { id: created.record.id, headers: { 'x-api-key': created.key } };
}

/** A station's key: inspections and frames for that one station. */
export const stationKey = (pool: pg.Pool, scope: { site: string; line: string; station: string }) =>
  machineKey(pool, {
    name: `station ${scope.site}/${scope.line}/${scope.station}`,
    scope,
    actions: ['inspections:write', 'frames:write'],
  });

/**
 * A real local account (holdfast.user_account) that can sign electronically: its bearer header, and `signature()`
 * gives the body part that re-enters its password (docs/e-signatures.md).
 */
export async function signerAccount(
  pool: pg.Pool,
  user: { username: string; roles: Role[]; sites?: Sites },
  key?: SigningKey,
): Promise<{
  id: string;
  password: string;
  headers: { authorization: string };
  signature(meaning?: SignatureMeaning): { meaning: SignatureMeaning; password: string };
}> {
  const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 5, lockForMs: 60_000 });
  const { password } = await accounts.addUser(
    { kind: 'system', id: 'test' },
    { username: user.username, roles: user.roles, sites: user.sites ?? 'all' },
  );
  return {
    id: `local:${user.username}`,
    password,
    headers: await bearerFor(user, key),
    signature: (meaning = 'approval') => ({ meaning, password }),
  };
}

/**
 * A signature as the API hands it to a lot case, for workflow tests: the workflow checks who signed and what, never
 * the seal (the API verifies it on every read), so the seal here is a placeholder.
 */
export function caseSignature(
  signer: { id: string; roles: Role[] },
  contentSha256 = 'c'.repeat(64),
): SignatureManifest {
  return {
    signatureId: `sig-${signer.id}-${Math.random().toString(36).slice(2, 8)}`,
    signer: { id: signer.id, name: signer.id, roles: signer.roles },
    meaning: 'approval',
    signedAt: new Date().toISOString().replace('Z', '+00:00'),
    method: 'password',
    contentSha256,
    seal: 'not-sealed-in-workflow-tests',
  };
}
