/**
 * Credentials for tests that call the API or the inference edge: tokens signed with a key of this test file (as
 * POST /v1/auth/token signs them, without an account row or argon2 per test), and real machine keys in PostgreSQL.
 */
import type pg from 'pg';
import { createAccounts, type NewKey } from '../../infra/identity/accounts';
import { issueLocalToken } from '../../infra/identity/authenticate';
import type { Role, Sites } from '../../infra/identity/principal';
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
