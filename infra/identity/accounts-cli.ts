/**
 * `npm run users -- add|disable|enable|reset|list` and `npm run keys -- create|rotate|revoke|list`: local accounts and
 * machine keys (docs/identity.md#local-accounts). A new password or key is printed once and never stored.
 *
 *   npm run users -- add jane --role quality-engineer --site PLANT1 --name "Jane Doe"
 *   npm run keys -- create --name "camera S1" --site PLANT1 --line L1 --station S1 --action inspections:write
 *
 * Whoever runs it holds the database's credentials: the audit records name the OS user as a `system` actor, as they
 * cannot name a signed-in person. Env: DATABASE_URL (required), HOLDFAST_CONFIG (identity.local).
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { createAuditTrail } from '../audit/audit-trail';
import type { AuditActor } from '../audit/audit-record';
import { parseDurationMs } from '../config/duration';
import { loadConfig } from '../config/load';
import { createPool } from '../db/pool';
import { migrate } from '../db/migrate';
import { type Accounts, createAccounts } from './accounts';
import { MACHINE_ACTIONS, type MachineAction, ROLES, type Role } from './principal';

const USAGE = `usage:
  npm run users -- add <username> --role <role>... [--site <site>... | --all-sites] [--name <display name>]
  npm run users -- disable|enable|reset <username>
  npm run users -- list
  npm run keys -- create --name <name> --site <site> [--line <line> [--station <station>]] --action <action>...
  npm run keys -- rotate|revoke <key id>
  npm run keys -- list
roles: ${ROLES.join(', ')}
actions: ${MACHINE_ACTIONS.join(', ')}
`;

class UsageError extends Error {}

const out = (line: string) => process.stdout.write(`${line}\n`);

function oneOf<T extends string>(values: readonly T[], given: string[], what: string): T[] {
  const bad = given.filter((v) => !values.includes(v as T));
  if (bad.length > 0) throw new UsageError(`unknown ${what}: ${bad.join(', ')}`);
  return given as T[];
}

async function users(accounts: Accounts, actor: AuditActor, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      role: { type: 'string', multiple: true, default: [] },
      site: { type: 'string', multiple: true, default: [] },
      'all-sites': { type: 'boolean', default: false },
      name: { type: 'string' },
    },
  });
  const [command, username] = positionals;
  if (command === 'list') {
    for (const u of await accounts.listUsers()) {
      const state = u.disabled
        ? 'disabled'
        : u.lockedUntil && Date.parse(u.lockedUntil) > Date.now()
          ? 'locked'
          : 'active';
      const sites = u.sites === 'all' ? '*' : u.sites.join(',');
      out(`${u.username}\t${u.displayName}\t${u.roles.join(',')}\t${sites}\t${state}`);
    }
    return;
  }
  if (!username) throw new UsageError('a username is required');
  if (command === 'add') {
    const roles = oneOf<Role>(ROLES, values.role, 'role');
    if (roles.length === 0) throw new UsageError('at least one --role');
    if (values.site.length === 0 && !values['all-sites']) throw new UsageError('--site (one or more) or --all-sites');
    const { password } = await accounts.addUser(actor, {
      username,
      ...(values.name ? { displayName: values.name } : {}),
      roles,
      sites: values['all-sites'] ? 'all' : values.site,
    });
    out(`user ${username} created; one-time password (shown once): ${password}`);
  } else if (command === 'reset') {
    const password = await accounts.resetPassword(actor, username);
    if (!password) throw new UsageError(`no user ${username}`);
    out(`password of ${username} reset and its lock lifted; new password (shown once): ${password}`);
  } else if (command === 'disable' || command === 'enable') {
    if (!(await accounts.setDisabled(actor, username, command === 'disable')))
      throw new UsageError(`no user ${username}`);
    out(`user ${username} ${command}d`);
  } else {
    throw new UsageError(`unknown users command ${String(command)}`);
  }
}

async function keys(accounts: Accounts, actor: AuditActor, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      site: { type: 'string' },
      line: { type: 'string' },
      station: { type: 'string' },
      action: { type: 'string', multiple: true, default: [] },
      role: { type: 'string', multiple: true, default: [] },
    },
  });
  const [command, id] = positionals;
  const show = (created: { record: { id: string }; key: string }) =>
    out(`key ${created.record.id} created; the key (shown once): ${created.key}`);
  if (command === 'list') {
    for (const k of await accounts.listKeys()) {
      const scope = [k.scope.site, k.scope.line, k.scope.station].filter(Boolean).join('/');
      const state = k.revokedAt ? `revoked ${k.revokedAt}` : 'active';
      out(`${k.id}\t${k.name}\t${scope}\t${k.actions.join(',')}\tlast used ${k.lastUsedAt ?? 'never'}\t${state}`);
    }
  } else if (command === 'create') {
    if (!values.name || !values.site) throw new UsageError('--name and --site are required');
    if (values.station && !values.line) throw new UsageError('--station needs --line');
    const actions = oneOf<MachineAction>(MACHINE_ACTIONS, values.action, 'action');
    if (actions.length === 0) throw new UsageError('at least one --action');
    show(
      await accounts.createKey(actor, {
        name: values.name,
        scope: {
          site: values.site,
          ...(values.line ? { line: values.line } : {}),
          ...(values.station ? { station: values.station } : {}),
        },
        actions,
        roles: oneOf<Role>(ROLES, values.role, 'role'),
      }),
    );
  } else if (command === 'rotate') {
    const created = id ? await accounts.rotateKey(actor, id) : undefined;
    if (!created) throw new UsageError(`no active key ${String(id)}`);
    show(created);
    out(`key ${id} is revoked`);
  } else if (command === 'revoke') {
    if (!id || !(await accounts.revokeKey(actor, id))) throw new UsageError(`no active key ${String(id)}`);
    out(`key ${id} revoked`);
  } else {
    throw new UsageError(`unknown keys command ${String(command)}`);
  }
}

async function main(): Promise<number> {
  const [what, ...args] = process.argv.slice(2);
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    process.stderr.write(
      'DATABASE_URL is not set. For the PostgreSQL `npm start` runs: ' +
        'DATABASE_URL=postgres://postgres:$(cat .holdfast/data/postgres/password)@127.0.0.1:54329/holdfast\n',
    );
    return 2;
  }
  const { local } = loadConfig().identity;
  const pool = createPool(databaseUrl, { max: 1, applicationName: 'holdfast-accounts' });
  try {
    await migrate(pool);
    const accounts = createAccounts(pool, createAuditTrail(pool), {
      maxFailedSignIns: local.maxFailedSignIns,
      lockForMs: parseDurationMs(local.lockFor),
    });
    const actor: AuditActor = { kind: 'system', id: 'accounts-cli', displayName: userInfo().username };
    if (what === 'users') await users(accounts, actor, args);
    else if (what === 'keys') await keys(accounts, actor, args);
    else throw new UsageError('users or keys?');
    return 0;
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof TypeError)) throw err;
    process.stderr.write(`${err.message}\n${USAGE}`);
    return 64;
  } finally {
    await pool.end();
  }
}

main().then(
  (status) => process.exit(status),
  (err: unknown) => {
    process.stderr.write(`failed: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
