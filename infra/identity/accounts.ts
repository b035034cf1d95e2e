/**
 * Local accounts and machine keys (holdfast.user_account, holdfast.api_key): create, change, sign in. Every change
 * and every sign-in, good or failed, is an audit record (docs/audit-trail.md) with who did it.
 */
import { randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import type pg from 'pg';
import type { AuditActor, AuditEntry } from '../audit/audit-record';
import type { AuditTrail } from '../audit/audit-trail';
import { newApiKey } from './api-key';
import type { KeyScope, MachineAction, Role, Sites } from './principal';

export interface UserAccount {
  username: string;
  displayName: string;
  roles: Role[];
  sites: Sites;
  disabled: boolean;
  lockedUntil: string | null;
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  roles: Role[];
  scope: KeyScope;
  actions: MachineAction[];
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  rotatedFrom: string | null;
}

/** A password or key shown once to whoever created it; never stored. */
const oneTimeSecret = () => randomBytes(18).toString('base64url');

/** argon2id (the library's default), with its own random salt per hash. */
const hashPassword = (password: string) => hash(password);

/** Verified against when the username is unknown, so a sign-in takes as long whether or not the user exists. */
let decoyHash: Promise<string> | undefined;

interface UserRow {
  username: string;
  display_name: string;
  password_hash: string;
  roles: string[];
  sites: string[] | null;
  disabled: boolean;
  failed_sign_ins: number;
  locked_until: Date | null;
}

const toUser = (r: UserRow): UserAccount => ({
  username: r.username,
  displayName: r.display_name,
  roles: r.roles as Role[],
  sites: r.sites ?? 'all',
  disabled: r.disabled,
  lockedUntil: r.locked_until?.toISOString() ?? null,
});

const userView = (u: UserAccount) => ({
  displayName: u.displayName,
  roles: u.roles,
  sites: u.sites,
  disabled: u.disabled,
});

export interface NewUser {
  username: string;
  displayName?: string;
  roles: Role[];
  sites: Sites;
}

export interface Accounts {
  addUser(actor: AuditActor, user: NewUser): Promise<{ user: UserAccount; password: string }>;
  /** A new one-time password, and the lock lifted. */
  resetPassword(actor: AuditActor, username: string): Promise<string | undefined>;
  setDisabled(actor: AuditActor, username: string, disabled: boolean): Promise<boolean>;
  listUsers(): Promise<UserAccount[]>;
  /** The first start's `admin` with a one-time password, when no account exists yet; otherwise undefined. */
  ensureFirstAdmin(): Promise<string | undefined>;
  signIn(attempt: PasswordAttempt): Promise<SignInResult>;
  /**
   * A password re-entered to sign a record electronically (docs/e-signatures.md): checked, counted and locked like a
   * sign-in, a failure on one counts for the other, and each attempt is audited as `e-signature.credentials`.
   */
  confirmSigner(attempt: PasswordAttempt): Promise<SignInResult>;

  createKey(actor: AuditActor, key: NewKey): Promise<{ record: ApiKeyRecord; key: string }>;
  /** A new key with the old one's scope; the old one is revoked in the same transaction. */
  rotateKey(actor: AuditActor, id: string): Promise<{ record: ApiKeyRecord; key: string } | undefined>;
  revokeKey(actor: AuditActor, id: string): Promise<boolean>;
  listKeys(): Promise<ApiKeyRecord[]>;
  /** The stored hash and record of a key id, for authentication (revoked keys included: the caller refuses them). */
  findKey(id: string): Promise<(ApiKeyRecord & { secretSha256: string }) | undefined>;
  markKeyUsed(id: string): Promise<void>;
  /** What a local token's check needs (undefined: no such account): disabled, and when an administrator last changed
   *  the account (password reset, disable, enable). */
  userStatus(username: string): Promise<{ disabled: boolean; changedAt: Date } | undefined>;
}

export interface NewKey {
  name: string;
  scope: KeyScope;
  actions: MachineAction[];
  roles?: Role[];
}

export type SignInResult =
  | { ok: true; user: UserAccount }
  | {
      ok: false;
      reason: 'unknown-or-wrong-password' | 'locked' | 'disabled';
      /** Set when this very attempt locked the account: the caller reports it (Part 11 §11.300(d)). */
      lockedNow?: string;
    };

export interface PasswordAttempt {
  username: string;
  password: string;
  address: string;
}

export interface LockoutPolicy {
  maxFailedSignIns: number;
  lockForMs: number;
}

const SYSTEM: AuditActor = { kind: 'system', id: 'identity' };

export function createAccounts(pool: pg.Pool, audit: AuditTrail, lockout: LockoutPolicy): Accounts {
  const change = <T>(work: (client: pg.PoolClient) => Promise<{ result: T; audit: readonly AuditEntry[] }>) =>
    audit.inTransaction(work);
  const entry = (
    actor: AuditActor,
    action: string,
    recordType: string,
    recordId: string,
    old: unknown,
    next: unknown,
  ) => ({ actor, action, recordType, recordId, old, new: next, reason: null, outcome: 'done', detail: null }) as const;

  const selectUser = async (client: pg.PoolClient | pg.Pool, username: string, lock = false) => {
    const { rows } = await client.query<UserRow>(
      `SELECT * FROM holdfast.user_account WHERE username = $1${lock ? ' FOR UPDATE' : ''}`,
      [username],
    );
    return rows[0];
  };

  const addUser: Accounts['addUser'] = (actor, user) =>
    change(async (client) => {
      const password = oneTimeSecret();
      const { rows } = await client.query<UserRow>(
        `INSERT INTO holdfast.user_account (username, display_name, password_hash, roles, sites)
         VALUES ($1, $2, $3, $4, $5) RETURNING *`,
        [
          user.username,
          user.displayName ?? user.username,
          await hashPassword(password),
          user.roles,
          user.sites === 'all' ? null : user.sites,
        ],
      );
      const created = toUser(rows[0]!);
      return {
        result: { user: created, password },
        audit: [entry(actor, 'user.create', 'user', created.username, null, userView(created))],
      };
    });

  /** A sign-in or a signer's re-entered password: one lock-out counter, one kind of audit record per purpose. */
  function checkPassword(
    action: 'user.sign-in' | 'e-signature.credentials',
    { username, password, address }: PasswordAttempt,
  ): Promise<SignInResult> {
    return change<SignInResult>(async (client) => {
      const row = await selectUser(client, username, true);
      const actor: AuditActor = row
        ? { kind: 'user', id: `local:${row.username}`, displayName: row.display_name, address }
        : { kind: 'unauthenticated', id: username, address };
      const record = (outcome: 'accepted' | 'refused', detail: unknown) =>
        ({
          actor,
          action,
          recordType: 'user',
          recordId: username,
          old: null,
          new: null,
          reason: null,
          outcome,
          detail,
        }) as const;
      const refuse = (reason: 'unknown-or-wrong-password' | 'locked' | 'disabled', extra: object = {}) => ({
        result: { ok: false as const, reason },
        audit: [record('refused', { reason, ...extra })],
      });

      if (!row) {
        await verify(await (decoyHash ??= hashPassword(oneTimeSecret())), password);
        return refuse('unknown-or-wrong-password');
      }
      if (row.disabled) return refuse('disabled');
      if (row.locked_until && row.locked_until.getTime() > Date.now()) {
        return refuse('locked', { lockedUntil: row.locked_until.toISOString() });
      }
      if (!(await verify(row.password_hash, password))) {
        const failed = row.failed_sign_ins + 1;
        const locks = failed >= lockout.maxFailedSignIns;
        const { rows } = await client.query<{ locked_until: Date | null }>(
          `UPDATE holdfast.user_account SET failed_sign_ins = $2,
             locked_until = CASE WHEN $3 THEN now() + $4 * interval '1 millisecond' ELSE NULL END
           WHERE username = $1 RETURNING locked_until`,
          [username, locks ? 0 : failed, locks, lockout.lockForMs],
        );
        const lockedUntil = locks ? rows[0]!.locked_until!.toISOString() : undefined;
        const refused = refuse('unknown-or-wrong-password', { failedSignIns: failed, lockedUntil });
        return lockedUntil ? { ...refused, result: { ...refused.result, lockedNow: lockedUntil } } : refused;
      }
      const { rows } = await client.query<UserRow>(
        `UPDATE holdfast.user_account SET failed_sign_ins = 0, locked_until = NULL WHERE username = $1 RETURNING *`,
        [username],
      );
      return { result: { ok: true as const, user: toUser(rows[0]!) }, audit: [record('accepted', null)] };
    });
  }

  return {
    addUser,

    resetPassword: (actor, username) =>
      change(async (client) => {
        const password = oneTimeSecret();
        const { rowCount } = await client.query(
          `UPDATE holdfast.user_account SET password_hash = $2, failed_sign_ins = 0, locked_until = NULL,
             updated_at = now() WHERE username = $1`,
          [username, await hashPassword(password)],
        );
        if (!rowCount) return { result: undefined, audit: [] };
        return { result: password, audit: [entry(actor, 'user.reset-password', 'user', username, null, null)] };
      }),

    setDisabled: (actor, username, disabled) =>
      change(async (client) => {
        const old = await selectUser(client, username, true);
        if (!old) return { result: false, audit: [] };
        await client.query('UPDATE holdfast.user_account SET disabled = $2, updated_at = now() WHERE username = $1', [
          username,
          disabled,
        ]);
        return {
          result: true,
          audit: [
            entry(
              actor,
              disabled ? 'user.disable' : 'user.enable',
              'user',
              username,
              { disabled: old.disabled },
              { disabled },
            ),
          ],
        };
      }),

    listUsers: async () =>
      (await pool.query<UserRow>('SELECT * FROM holdfast.user_account ORDER BY username')).rows.map(toUser),

    async ensureFirstAdmin() {
      const { rows } = await pool.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM holdfast.user_account) AS any');
      if (rows[0]!.any) return undefined;
      try {
        const { password } = await addUser(SYSTEM, {
          username: 'admin',
          displayName: 'Administrator',
          roles: ['admin'],
          sites: 'all',
        });
        return password;
      } catch (err) {
        // Another process created it at the same moment.
        if ((err as { code?: string }).code === '23505') return undefined;
        throw err;
      }
    },

    signIn: (attempt) => checkPassword('user.sign-in', attempt),
    confirmSigner: (attempt) => checkPassword('e-signature.credentials', attempt),

    createKey: (actor, key) =>
      change(async (client) => {
        const created = await insertKey(client, key, null);
        return {
          result: created,
          audit: [entry(actor, 'api-key.create', 'api-key', created.record.id, null, keyView(created.record))],
        };
      }),

    rotateKey: (actor, id) =>
      change(async (client) => {
        const old = await selectKey(client, id, true);
        if (!old || old.revokedAt) return { result: undefined, audit: [] };
        await client.query('UPDATE holdfast.api_key SET revoked_at = now() WHERE id = $1', [id]);
        const created = await insertKey(client, old, id);
        return {
          result: created,
          audit: [
            entry(actor, 'api-key.rotate', 'api-key', created.record.id, { id }, keyView(created.record)),
            entry(
              actor,
              'api-key.revoke',
              'api-key',
              id,
              { revoked: false },
              { revoked: true, rotatedTo: created.record.id },
            ),
          ],
        };
      }),

    revokeKey: (actor, id) =>
      change(async (client) => {
        const { rowCount } = await client.query(
          'UPDATE holdfast.api_key SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL',
          [id],
        );
        if (!rowCount) return { result: false, audit: [] };
        return {
          result: true,
          audit: [entry(actor, 'api-key.revoke', 'api-key', id, { revoked: false }, { revoked: true })],
        };
      }),

    listKeys: async () =>
      (await pool.query<KeyRow>('SELECT * FROM holdfast.api_key ORDER BY created_at, id')).rows.map(toKey),

    async findKey(id) {
      const row = (await pool.query<KeyRow>('SELECT * FROM holdfast.api_key WHERE id = $1', [id])).rows[0];
      return row ? { ...toKey(row), secretSha256: row.secret_sha256 } : undefined;
    },

    async markKeyUsed(id) {
      // At most once a minute per key: a station posting every frame would otherwise write a row per request.
      await pool.query(
        `UPDATE holdfast.api_key SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
        [id],
      );
    },

    async userStatus(username) {
      const { rows } = await pool.query<{ disabled: boolean; updated_at: Date }>(
        'SELECT disabled, updated_at FROM holdfast.user_account WHERE username = $1',
        [username],
      );
      return rows[0] && { disabled: rows[0].disabled, changedAt: rows[0].updated_at };
    },
  };
}

interface KeyRow {
  id: string;
  name: string;
  secret_sha256: string;
  roles: string[];
  site: string;
  line: string | null;
  station: string | null;
  actions: string[];
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
  rotated_from: string | null;
}

const toKey = (r: KeyRow): ApiKeyRecord => ({
  id: r.id,
  name: r.name,
  roles: r.roles as Role[],
  scope: {
    site: r.site,
    ...(r.line !== null ? { line: r.line } : {}),
    ...(r.station !== null ? { station: r.station } : {}),
  },
  actions: r.actions as MachineAction[],
  createdAt: r.created_at.toISOString(),
  lastUsedAt: r.last_used_at?.toISOString() ?? null,
  revokedAt: r.revoked_at?.toISOString() ?? null,
  rotatedFrom: r.rotated_from,
});

const keyView = (k: ApiKeyRecord) => ({ name: k.name, roles: k.roles, scope: k.scope, actions: k.actions });

async function selectKey(client: pg.PoolClient, id: string, lock: boolean): Promise<ApiKeyRecord | undefined> {
  const { rows } = await client.query<KeyRow>(
    `SELECT * FROM holdfast.api_key WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0] ? toKey(rows[0]) : undefined;
}

async function insertKey(client: pg.PoolClient, key: NewKey, rotatedFrom: string | null) {
  const fresh = newApiKey();
  const { rows } = await client.query<KeyRow>(
    `INSERT INTO holdfast.api_key (id, name, secret_sha256, roles, site, line, station, actions, rotated_from)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
    [
      fresh.id,
      key.name,
      fresh.secretSha256,
      key.roles ?? [],
      key.scope.site,
      key.scope.line ?? null,
      key.scope.station ?? null,
      key.actions,
      rotatedFrom,
    ],
  );
  return { record: toKey(rows[0]!), key: fresh.key };
}
