/**
 * Who is calling, from a request's headers (docs/identity.md#credentials):
 * - `Authorization: Bearer <JWT>`: a person. Tokens of Holdfast's local sign-in (signed with its own ES256 key) and
 *   of the plant's OpenID provider (keys from its discovery document's `jwks_uri`) take the same path: issuer,
 *   audience, expiry and an allow-listed asymmetric algorithm are checked by jose, then roles and sites are read from
 *   the configured claims.
 * - `X-Api-Key: hfk_<id>_<secret>`: a machine. A header of its own rather than a second Authorization scheme, so that
 *   device firmware and proxies that know only "send this header" can use it, and a person's token and a machine's key
 *   can never be confused.
 */
import {
  type JWTPayload,
  type JWTVerifyGetKey,
  SignJWT,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { HoldfastConfig } from '../config/schema';
import type { Accounts, UserAccount } from './accounts';
import { parseApiKey, secretMatches } from './api-key';
import { ROLES, type Principal, type Role, type Sites, type UserPrincipal } from './principal';
import { SIGNING_ALG, type SigningKey } from './signing-key';

/** The `iss` and `aud` of Holdfast's own tokens. */
export const LOCAL_ISSUER = 'urn:holdfast:local';
export const LOCAL_AUDIENCE = 'holdfast';

/** Credentials were presented but are not good: 401, with the reason for the caller. */
export class AuthenticationError extends Error {
  override readonly name = 'AuthenticationError';
}

export interface Authenticator {
  /** The principal, undefined when the request carries no credentials; throws AuthenticationError for bad ones. */
  authenticate(headers: Record<string, string | string[] | undefined>): Promise<Principal | undefined>;
}

export interface AuthenticatorOptions {
  identity: HoldfastConfig['identity'];
  /** Holdfast's own key (its public half verifies local tokens); absent: local tokens are not accepted. */
  signingKey?: Pick<SigningKey, 'publicKey'>;
  /** Machine keys, and local accounts' status; absent: X-Api-Key is refused, local tokens are checked by signature. */
  accounts?: Pick<Accounts, 'findKey' | 'markKeyUsed' | 'userStatus'>;
}

/**
 * How long a local account's status (disabled, last changed) is reused before PostgreSQL is asked again: a token of
 * an account disabled or reset stops working within this, and a person's requests cost one database read per this
 * interval rather than one each. API keys are not cached: their lookup is the authentication itself.
 */
export const ACCOUNT_STATUS_TTL_MS = 5_000;

export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  const { identity } = opts;
  const oidcKeys = identity.issuer ? discoveredKeys(identity.issuer) : undefined;
  const accountStatus = opts.accounts && cachedUserStatus(opts.accounts);

  async function person(token: string): Promise<UserPrincipal> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      throw new AuthenticationError('bearer token is not a JWT');
    }
    const local = unverified.iss === LOCAL_ISSUER && identity.local.enabled && opts.signingKey;
    const oidc = identity.issuer !== undefined && unverified.iss === identity.issuer;
    if (!local && !oidc) throw new AuthenticationError(`token issuer ${String(unverified.iss)} is not trusted`);
    // jose checks the algorithm against the list too; saying it here gives `none` and HS* a clear reason.
    const algorithms = local ? [SIGNING_ALG] : identity.algorithms;
    if (!header.alg || !algorithms.includes(header.alg)) {
      throw new AuthenticationError(`token algorithm ${String(header.alg)} is not accepted`);
    }
    try {
      const { payload } = local
        ? await jwtVerify(token, opts.signingKey!.publicKey, {
            issuer: LOCAL_ISSUER,
            audience: LOCAL_AUDIENCE,
            algorithms,
          })
        : await jwtVerify(token, oidcKeys!, { issuer: identity.issuer!, audience: identity.audience!, algorithms });
      const user = userFrom(payload, local ? { rolesClaim: 'roles', sitesClaim: 'sites' } : identity);
      if (local && accountStatus) await refuseStaleLocalToken(user.id, payload.iat ?? 0, accountStatus);
      return user;
    } catch (err) {
      if (err instanceof AuthenticationError) throw err;
      if (err instanceof joseErrors.JOSEError) throw new AuthenticationError(`token refused: ${joseReason(err)}`);
      throw err;
    }
  }

  async function machine(presented: string): Promise<Principal> {
    const parsed = parseApiKey(presented);
    const record = parsed && (await opts.accounts?.findKey(parsed.id));
    if (!parsed || !record || record.revokedAt !== null || !secretMatches(parsed.secret, record.secretSha256)) {
      throw new AuthenticationError('API key unknown, revoked or wrong');
    }
    void opts.accounts!.markKeyUsed(record.id).catch(() => undefined);
    return {
      kind: 'api-key',
      id: record.id,
      displayName: record.name,
      roles: record.roles,
      scope: record.scope,
      actions: record.actions,
    };
  }

  return {
    async authenticate(headers) {
      const apiKey = single(headers['x-api-key']);
      const authorization = single(headers.authorization);
      if (apiKey !== undefined && authorization !== undefined) {
        throw new AuthenticationError('send either Authorization or X-Api-Key, not both');
      }
      if (apiKey !== undefined) return machine(apiKey);
      if (authorization === undefined) return undefined;
      const [scheme, token] = authorization.trim().split(/\s+/, 2);
      if (scheme?.toLowerCase() !== 'bearer' || !token) {
        throw new AuthenticationError('Authorization must be `Bearer <token>` (machines: X-Api-Key)');
      }
      return person(token);
    },
  };
}

/**
 * A local token outlives a change to its account until it expires, unless checked: refused when the account is
 * disabled, or was changed by an administrator (reset, disable, enable) after the token was issued (to the second: a
 * token's `iat` has no finer grain). An account with no row is let through: accounts are disabled, never deleted
 * (their ids stay in the audit trail, Part 11 §11.300(b)), and tests sign tokens for users with no row.
 */
async function refuseStaleLocalToken(
  subject: string,
  issuedAt: number,
  status: (username: string) => Promise<{ disabled: boolean; changedAt: Date } | undefined>,
): Promise<void> {
  // Revocation soft-fails: while PostgreSQL cannot be asked, a token that verified is taken as it stands (until it
  // expires, at most identity.local.tokenTtl). Every change of a record needs the database too, so a disabled person
  // can change nothing meanwhile; failing closed would also refuse everyone the answers that need no database.
  const account = await status(subject.replace(/^local:/, '')).catch(() => undefined);
  if (account?.disabled) throw new AuthenticationError('account is disabled');
  if (account && Math.floor(account.changedAt.getTime() / 1000) > issuedAt) {
    throw new AuthenticationError('account changed after the token was issued: sign in again');
  }
}

/** userStatus, each username's answer (or the lookup under way) reused for ACCOUNT_STATUS_TTL_MS. */
function cachedUserStatus(accounts: Pick<Accounts, 'userStatus'>) {
  type Status = Awaited<ReturnType<Accounts['userStatus']>>;
  const cache = new Map<string, { at: number; status: Promise<Status> }>();
  return (username: string): Promise<Status> => {
    const now = Date.now();
    const hit = cache.get(username);
    if (hit && now - hit.at < ACCOUNT_STATUS_TTL_MS) return hit.status;
    // Only signed tokens get here, so the keys are real accounts; stale ones are dropped as new ones come.
    for (const [name, entry] of cache) if (now - entry.at >= ACCOUNT_STATUS_TTL_MS) cache.delete(name);
    const status = accounts.userStatus(username);
    cache.set(username, { at: now, status });
    // A failed read is not kept: the next request asks again.
    status.catch(() => cache.delete(username));
    return status;
  };
}

/** Signs a local account's token: the same claims the OpenID mapping reads (roles, sites), `*` for every site. */
export async function issueLocalToken(key: SigningKey, user: UserAccount, ttlSeconds: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    name: user.displayName,
    roles: user.roles,
    sites: user.sites === 'all' ? ['*'] : user.sites,
    auth_time: now,
  })
    .setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: 'JWT' })
    .setIssuer(LOCAL_ISSUER)
    .setAudience(LOCAL_AUDIENCE)
    .setSubject(`local:${user.username}`)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(key.privateKey);
}

/** The provider's signing keys, from its discovery document, fetched on first use (and again after a failure). */
function discoveredKeys(issuer: string): JWTVerifyGetKey {
  let keys: Promise<JWTVerifyGetKey> | undefined;
  const discover = async () => {
    const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok) throw new Error(`OpenID discovery ${url}: HTTP ${response.status}`);
    const { jwks_uri: jwksUri } = (await response.json()) as { jwks_uri?: string };
    if (!jwksUri) throw new Error(`OpenID discovery ${url}: no jwks_uri`);
    return createRemoteJWKSet(new URL(jwksUri));
  };
  return async (header, token) => {
    keys ??= discover().catch((err: unknown) => {
      keys = undefined;
      throw err;
    });
    return (await keys)(header, token);
  };
}

function userFrom(payload: JWTPayload, claims: { rolesClaim: string; sitesClaim: string }): UserPrincipal {
  if (!payload.sub) throw new AuthenticationError('token has no subject');
  const roles = strings(claimAt(payload, claims.rolesClaim)).filter((r): r is Role => ROLES.includes(r as Role));
  const siteList = strings(claimAt(payload, claims.sitesClaim));
  const sites: Sites = siteList.includes('*') ? 'all' : siteList;
  const name = typeof payload.name === 'string' ? payload.name : (payload.preferred_username as string | undefined);
  const authTime = typeof payload.auth_time === 'number' ? payload.auth_time : payload.iat;
  return {
    kind: 'user',
    id: payload.sub,
    displayName: name ?? payload.sub,
    roles,
    sites,
    issuer: payload.iss!,
    authenticatedAt: authTime ?? 0,
  };
}

function claimAt(payload: JWTPayload, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], payload);
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function joseReason(err: InstanceType<typeof joseErrors.JOSEError>): string {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `${err.claim} claim: ${err.reason}`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature does not verify';
  return err.code;
}
