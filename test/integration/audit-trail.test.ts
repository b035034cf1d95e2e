/**
 * The audit trail against real PostgreSQL: the database refuses changes to its records, writers chain correctly even
 * when they race, and the verifier (the function and `npm run audit:verify`) names the exact record a superuser
 * altered, deleted, slipped in or rewrote. Every scenario tampers with a database of its own, so the run's shared
 * trail, which other tests write to, stays intact.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Client, type Pool } from 'pg';
import { type AuditEntry, chainHash } from '../../infra/audit/audit-record';
import { type AuditTrail, createAuditTrail } from '../../infra/audit/audit-trail';
import { type AuditAnchor, GENESIS, verifyAuditTrail } from '../../infra/audit/audit-chain';
import { appendAnchor, readAnchors, startAuditAnchoring } from '../../infra/audit/audit-anchor';
import { migrate } from '../../infra/db/migrate';
import { createPool } from '../../infra/db/pool';
import { readTestEnv } from '../support/test-env';

const root = resolve(__dirname, '../..');
const created: string[] = [];
const pools: Pool[] = [];
const dirs: string[] = [];

async function admin<T>(work: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: readTestEnv().databaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A migrated database of its own; the run's server connects as a superuser, as a tamperer would. */
async function freshDatabase(): Promise<{ pool: Pool; url: string; trail: AuditTrail }> {
  const name = `holdfast_audit_${randomBytes(5).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`));
  created.push(name);
  const url = new URL(readTestEnv().databaseUrl);
  url.pathname = `/${name}`;
  const pool = createPool(url.toString(), { max: 6 });
  pools.push(pool);
  await migrate(pool);
  return { pool, url: url.toString(), trail: createAuditTrail(pool) };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-audit-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await admin(async (c) => {
    for (const name of created) await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
  });
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const entry = (n: number): AuditEntry => ({
  actor: { kind: 'unauthenticated', id: `qe.${n}`, address: '127.0.0.1' },
  action: 'station-verdict.record',
  recordType: 'station-verdict',
  recordId: `PLANT1/L1/S1/frame-${n}/manual`,
  old: null,
  new: { verdict: n % 2 === 0 ? 'pass' : 'fail', defectClass: null, decidedBy: `qe.${n}` },
  reason: null,
  outcome: 'done',
  detail: null,
});

/** `count` records, two per transaction as a verdict post of two would write them. */
async function writeRecords(trail: AuditTrail, count: number, from = 1): Promise<void> {
  for (let n = from; n < from + count; n += 2) {
    const entries = [entry(n), ...(n + 1 < from + count ? [entry(n + 1)] : [])];
    await trail.append(entries);
  }
}

/** What a superuser can do: switch the triggers off for one transaction (session_replication_role) and write. */
async function asSuperuserWithoutTriggers(pool: Pool, statements: [string, unknown[]?][]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SET LOCAL session_replication_role = replica');
    for (const [sql, params] of statements) await client.query(sql, params);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

/** A record after the last, well-formed and linked to it, inserted behind the chain head's back. */
async function forgeAfterLast(pool: Pool, last: number): Promise<void> {
  const row = await rowOf(pool, last);
  const content = row.content.replace(`"seq":${last}`, `"seq":${last + 1}`).replace(`"qe.${last}"`, '"qe.forger"');
  await asSuperuserWithoutTriggers(pool, [
    [
      `INSERT INTO holdfast.audit_record (seq, content, prev_hash, hash, recorded_at, actor_id, record_type, record_id)
       SELECT $4, $1, $2, $3, (c ->> 'at')::timestamptz, c -> 'actor' ->> 'id', c ->> 'recordType', c ->> 'recordId'
         FROM (SELECT $1::jsonb AS c) x`,
      [content, row.hash, chainHash(row.hash, content), last + 1],
    ],
  ]);
}

async function rowOf(pool: Pool, seq: number) {
  const res = await pool.query<{ content: string; prev_hash: string; hash: string }>(
    `SELECT content, prev_hash, hash FROM holdfast.audit_record WHERE seq = $1`,
    [seq],
  );
  return res.rows[0]!;
}

async function headOf(pool: Pool): Promise<AuditAnchor> {
  const res = await pool.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM holdfast.audit_chain_head`);
  return { seq: Number(res.rows[0]!.seq), hash: res.rows[0]!.hash, anchoredAt: new Date().toISOString() };
}

const runVerify = async (url: string, dataDir: string) =>
  promisify(execFile)('npm', ['run', '--silent', 'audit:verify'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: url, HOLDFAST_DATA_DIR: dataDir },
  }).then(
    ({ stdout }) => ({ status: 0, stdout }),
    (err: { code: number; stdout: string; stderr: string }) => ({ status: err.code, stdout: err.stdout + err.stderr }),
  );

describe('the database guards the records', () => {
  let pool: Pool;
  let trail: AuditTrail;
  beforeAll(async () => {
    ({ pool, trail } = await freshDatabase());
    await writeRecords(trail, 3);
  });

  it.each([
    ['UPDATE', `UPDATE holdfast.audit_record SET content = content WHERE seq = 2`],
    ['UPDATE', `UPDATE holdfast.audit_record SET record_id = 'x' WHERE seq = 999`],
    ['DELETE', `DELETE FROM holdfast.audit_record WHERE seq = 2`],
    ['TRUNCATE', `TRUNCATE holdfast.audit_record`],
    ['UPDATE', `UPDATE holdfast.audit_chain_head SET seq = 1`],
    ['DELETE', `DELETE FROM holdfast.audit_chain_head`],
  ])('refuses %s: %s', async (op, sql) => {
    await expect(pool.query(sql)).rejects.toThrow(new RegExp(`${op} on holdfast\\.audit_\\w+ refused`));
    expect((await verifyAuditTrail(pool, { anchors: [] })).problem).toBeUndefined();
  });

  it('refuses an insert that does not extend the chain exactly', async () => {
    const last = await rowOf(pool, 3);
    const forged = JSON.stringify({ ...JSON.parse(last.content), seq: 4, reason: 'forged' });
    const insert = (seq: number, prev: string, hash: string) =>
      pool.query(
        `INSERT INTO holdfast.audit_record (seq, content, prev_hash, hash, recorded_at, actor_id, record_type, record_id)
         SELECT $1, $2, $3, $4, (c ->> 'at')::timestamptz, c -> 'actor' ->> 'id', c ->> 'recordType', c ->> 'recordId'
           FROM (SELECT $2::jsonb AS c) x`,
        [seq, forged, prev, hash],
      );

    await expect(insert(4, '0'.repeat(64), chainHash('0'.repeat(64), forged))).rejects.toThrow(/does not extend/);
    await expect(insert(4, last.hash, 'f'.repeat(64))).rejects.toThrow(/hash is not sha256/);
    await expect(insert(5, last.hash, chainHash(last.hash, forged))).rejects.toThrow(/does not extend/);
    expect((await headOf(pool)).seq).toBe(3);
  });

  it('stores nothing of a change that fails: no record, the head where it was', async () => {
    const before = await headOf(pool);
    await expect(
      trail.inTransaction(async (client) => {
        await client.query(`SELECT 1`);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    await expect(
      trail.inTransaction(async (client) => {
        await client.query(`SELECT 1/0`);
        return { result: undefined, audit: [entry(99)] };
      }),
    ).rejects.toThrow(/division by zero/);
    expect(await headOf(pool)).toMatchObject({ seq: before.seq, hash: before.hash });
  });
});

describe('concurrent writers', () => {
  it('queue at the chain head: one unbroken chain, each transaction’s records together, times in order', async () => {
    const { pool, trail } = await freshDatabase();
    await Promise.all(
      Array.from({ length: 24 }, (_, w) =>
        trail.inTransaction(async () => ({ result: undefined, audit: [entry(w * 10 + 1), entry(w * 10 + 2)] })),
      ),
    );

    const check = await verifyAuditTrail(pool, { anchors: [], pageSize: 7 });
    expect(check.problem).toBeUndefined();
    expect(check).toMatchObject({ records: 48, last: { seq: 48 }, head: { seq: 48 } });
    const rows = await pool.query<{ seq: string; content: string }>(
      `SELECT seq, content FROM holdfast.audit_record ORDER BY seq`,
    );
    const contents = rows.rows.map((r) => JSON.parse(r.content) as { recordId: string; at: string });
    for (let i = 0; i < contents.length; i += 2) {
      // Both records of one transaction are adjacent: frame-<w>1 then frame-<w>2.
      expect(contents[i + 1]!.recordId).toBe(contents[i]!.recordId.replace(/1\/manual$/, '2/manual'));
    }
    const times = contents.map((c) => c.at);
    expect(times).toEqual([...times].sort());
  });
});

describe('npm run audit:verify', () => {
  /** A trail of 10 records with an anchor at 6, in a database and data directory of its own. */
  async function anchoredTrail() {
    const db = await freshDatabase();
    const dataDir = tempDir();
    await writeRecords(db.trail, 6);
    await appendAnchor(join(dataDir, 'audit', 'anchors.jsonl'), await headOf(db.pool));
    await writeRecords(db.trail, 4, 7);
    return { ...db, dataDir };
  }

  it('passes a clean trail with its anchors', async () => {
    const { url, dataDir } = await anchoredTrail();
    const clean = await runVerify(url, dataDir);
    expect(clean).toMatchObject({ status: 0 });
    expect(clean.stdout).toContain('audit trail OK: 10 records (seq 1 to 10)');
    expect(clean.stdout).toContain('1 anchors matched');
  });

  it.each([
    [
      'altered',
      (pool: Pool) =>
        asSuperuserWithoutTriggers(pool, [
          [`UPDATE holdfast.audit_record SET content = replace(content, '"qe.4"', '"qe.x"') WHERE seq = 4`],
        ]),
      'record 4: content-hash-mismatch',
    ],
    [
      'deleted',
      (pool: Pool) => asSuperuserWithoutTriggers(pool, [[`DELETE FROM holdfast.audit_record WHERE seq = 4`]]),
      'record 4: seq-gap',
    ],
    ['inserted', (pool: Pool) => forgeAfterLast(pool, 10), 'record 11: beyond-head'],
  ])('names the record after one row is %s by a superuser, and exits 1', async (_how, tamper, named) => {
    const { pool, url, dataDir } = await anchoredTrail();
    await tamper(pool);
    const broken = await runVerify(url, dataDir);
    expect(broken.status).toBe(1);
    expect(broken.stdout).toMatch(new RegExp(`^audit trail BROKEN at ${named}: `));
  });
});

describe('the verifier names the first broken record', () => {
  let pool: Pool;
  let trail: AuditTrail;
  beforeEach(async () => {
    ({ pool, trail } = await freshDatabase());
    await writeRecords(trail, 10);
  });
  const verify = (anchors: AuditAnchor[] = []) => verifyAuditTrail(pool, { anchors, pageSize: 3 });

  it('passes the untouched trail, page by page', async () => {
    const check = await verify([{ ...(await headOf(pool)) }]);
    expect(check.problem).toBeUndefined();
    expect(check).toMatchObject({ records: 10, anchorsChecked: 1, last: { seq: 10 }, head: { seq: 10 } });
  });

  it('(a) a row whose content a superuser altered', async () => {
    await asSuperuserWithoutTriggers(pool, [
      [`UPDATE holdfast.audit_record SET content = replace(content, '"fail"', '"pass"') WHERE seq = 7`],
    ]);
    expect((await verify()).problem).toMatchObject({ seq: 7, kind: 'content-hash-mismatch' });
  });

  it('(a) a row altered with its hash recomputed: the next record no longer links to it', async () => {
    const row = await rowOf(pool, 5);
    // The verdict's author, not the actor: a changed filter column would be caught on its own (next test).
    const content = row.content.replace('"decidedBy":"qe.5"', '"decidedBy":"qe.x"');
    expect(content).not.toBe(row.content);
    await asSuperuserWithoutTriggers(pool, [
      [
        `UPDATE holdfast.audit_record SET content = $1, hash = $2 WHERE seq = 5`,
        [content, chainHash(row.prev_hash, content)],
      ],
    ]);
    expect((await verify()).problem).toMatchObject({ seq: 6, kind: 'prev-link-broken' });
  });

  it('(a) a filter column changed so the record hides from a search', async () => {
    await asSuperuserWithoutTriggers(pool, [[`UPDATE holdfast.audit_record SET actor_id = 'nobody' WHERE seq = 3`]]);
    expect((await verify()).problem).toMatchObject({ seq: 3, kind: 'column-mismatch' });
    expect((await verify()).problem!.detail).toContain('actor_id is nobody, the content says qe.3');
  });

  it('(b) a deleted row, in the middle or at the end', async () => {
    await asSuperuserWithoutTriggers(pool, [[`DELETE FROM holdfast.audit_record WHERE seq = 4`]]);
    expect((await verify()).problem).toMatchObject({ seq: 4, kind: 'seq-gap' });

    const other = await freshDatabase();
    await writeRecords(other.trail, 10);
    await asSuperuserWithoutTriggers(other.pool, [[`DELETE FROM holdfast.audit_record WHERE seq = 10`]]);
    expect((await verifyAuditTrail(other.pool, { anchors: [] })).problem).toMatchObject({
      seq: 10,
      kind: 'seq-gap',
    });
  });

  it('(c) a forged row inserted after the last, well-formed and linked, but not through the chain head', async () => {
    await forgeAfterLast(pool, 10);
    expect((await verify()).problem).toMatchObject({ seq: 11, kind: 'beyond-head' });
  });

  it('(d) the whole table rewritten consistently, head included: the anchor contradicts it', async () => {
    const anchors = [await headOf(pool)];
    await writeRecords(trail, 4, 11);
    anchors.push(await headOf(pool));

    // Record 3 rewritten, and every hash from there on recomputed so the chain itself holds again.
    const rows = (
      await pool.query<{ seq: string; content: string }>(`SELECT seq, content FROM holdfast.audit_record ORDER BY seq`)
    ).rows;
    let prev = GENESIS.hash;
    const statements: [string, unknown[]][] = [];
    for (const row of rows) {
      const content = row.seq === '3' ? row.content.replace('"verdict":"fail"', '"verdict":"pass"') : row.content;
      const hash = chainHash(prev, content);
      statements.push([
        `UPDATE holdfast.audit_record SET content = $2, prev_hash = $3, hash = $4 WHERE seq = $1`,
        [row.seq, content, prev, hash],
      ]);
      prev = hash;
    }
    statements.push([`UPDATE holdfast.audit_chain_head SET hash = $1`, [prev]]);
    await asSuperuserWithoutTriggers(pool, statements);

    expect((await verify()).problem).toBeUndefined();
    expect((await verify(anchors)).problem).toMatchObject({ seq: 10, kind: 'anchor-mismatch' });
  });

  it('the table cut short, head moved back too: the anchor names a record that is gone', async () => {
    const anchors = [await headOf(pool)];
    const eight = await rowOf(pool, 8);
    await asSuperuserWithoutTriggers(pool, [
      [`DELETE FROM holdfast.audit_record WHERE seq > 8`],
      [`UPDATE holdfast.audit_chain_head SET seq = 8, hash = $1`, [eight.hash]],
    ]);
    expect((await verify()).problem).toBeUndefined();
    expect((await verify(anchors)).problem).toMatchObject({ seq: 9, kind: 'anchor-beyond-end' });
  });
});

describe('the anchoring job', () => {
  it('anchors a moved head after checking the records since the last anchor, and once more at stop', async () => {
    const { pool, trail } = await freshDatabase();
    const file = join(tempDir(), 'audit', 'anchors.jsonl');
    const errors: { obj: object; msg?: string }[] = [];
    const log = { info: () => undefined, error: (obj: object, msg?: string) => void errors.push({ obj, msg }) };
    const seen = { anchored: 0, broken: 0 };
    const anchoring = startAuditAnchoring({
      pool,
      file,
      intervalMs: 3_600_000,
      log,
      observer: { anchored: () => void (seen.anchored += 1), chainBroken: () => void (seen.broken += 1) },
    });
    try {
      expect(await anchoring.anchorNow()).toEqual({ kind: 'unchanged' });
      await writeRecords(trail, 3);
      const first = await anchoring.anchorNow();
      expect(first).toMatchObject({ kind: 'anchored', anchor: { seq: 3 } });
      expect(await anchoring.anchorNow()).toEqual({ kind: 'unchanged' });
      await writeRecords(trail, 2, 4);
      expect(await anchoring.anchorNow()).toMatchObject({ kind: 'anchored', anchor: { seq: 5 } });
      expect((await readAnchors(file)).anchors.map((a) => a.seq)).toEqual([3, 5]);
      expect(readFileSync(file, 'utf8')).toMatch(/^\{"anchoredAt":"[^"]+","hash":"[0-9a-f]{64}","seq":3\}\n/);

      // Records after the last anchor tampered with: the job refuses to vouch for them.
      await writeRecords(trail, 2, 6);
      await asSuperuserWithoutTriggers(pool, [
        [`UPDATE holdfast.audit_record SET content = replace(content, 'qe.6', 'qe.x') WHERE seq = 6`],
      ]);
      expect(await anchoring.anchorNow()).toMatchObject({
        kind: 'broken',
        problem: { seq: 6, kind: 'content-hash-mismatch' },
      });
      expect(errors.map((e) => e.msg)).toEqual(['audit chain broken: nothing anchored (run npm run audit:verify)']);
      expect(seen).toEqual({ anchored: 2, broken: 1 });
    } finally {
      await anchoring.stop();
    }
    // The stop's last pass found the chain still broken: nothing more anchored.
    expect((await readAnchors(file)).anchors.map((a) => a.seq)).toEqual([3, 5]);
    expect(seen.broken).toBe(2);
  });

  it('a new job reads the last anchor from the file and anchors at stop what this run wrote', async () => {
    const { pool, trail } = await freshDatabase();
    const file = join(tempDir(), 'anchors.jsonl');
    await writeRecords(trail, 2);
    await appendAnchor(file, await headOf(pool));
    await writeRecords(trail, 2, 3);
    const log = { info: () => undefined, error: () => undefined };
    const anchoring = startAuditAnchoring({ pool, file, intervalMs: 3_600_000, log });
    await anchoring.stop();
    expect((await readAnchors(file)).anchors.map((a) => a.seq)).toEqual([2, 4]);
    expect((await verifyAuditTrail(pool, { anchors: (await readAnchors(file)).anchors })).anchorsChecked).toBe(2);
  });
});
