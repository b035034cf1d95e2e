/**
 * Checking the audit trail's chain (docs/audit-trail.md#verifying): every record in sequence, its hash right for its
 * content, its link to the record before, its filter columns equal to its content, and the anchors written outside
 * the table matching the records they name. The walk reads keyset pages in one REPEATABLE READ snapshot, so it
 * holds one page in memory and sees the table as of one instant while writers go on.
 */
import type pg from 'pg';
import { withTransaction } from '../db/pool';
import { type AuditContent, GENESIS_HASH, chainHash } from './audit-record';

export type ChainProblemKind =
  /** A sequence number is missing: the record was deleted. */
  | 'seq-gap'
  /** The record's hash is not sha256(prev_hash + content): its content or hash was changed. */
  | 'content-hash-mismatch'
  /** The record's prev_hash is not the hash of the record before: that record, or this link, was changed. */
  | 'prev-link-broken'
  /** A filter column (time, actor, record) differs from the hashed content. */
  | 'column-mismatch'
  /** A record lies beyond the chain head: it was not appended through the chain. */
  | 'beyond-head'
  /** The chain head names another hash than the last record's. */
  | 'head-mismatch'
  /** An anchor names a hash the record at its seq does not have: the table was rewritten up to there. */
  | 'anchor-mismatch'
  /** An anchor names a record the table no longer has: the table's end was cut off. */
  | 'anchor-beyond-end';

export interface ChainProblem {
  /** The first record the problem is at. */
  seq: number;
  kind: ChainProblemKind;
  detail: string;
}

/** The chain head as written to the anchor file. */
export interface AuditAnchor {
  seq: number;
  hash: string;
  anchoredAt: string;
}

export interface ChainLink {
  seq: number;
  hash: string;
}

export interface ChainCheck {
  /** Records checked. */
  records: number;
  /** The last record checked (seq 0 and the genesis hash for an empty trail). */
  last: ChainLink;
  /** The chain head table's row. */
  head: ChainLink;
  anchorsChecked: number;
  /** The first thing wrong, in sequence order; absent when everything holds. */
  problem?: ChainProblem;
}

export const GENESIS: ChainLink = { seq: 0, hash: GENESIS_HASH };
const DEFAULT_PAGE_SIZE = 1000;

interface RecordRow {
  seq: string;
  content: string;
  prev_hash: string;
  hash: string;
  recorded_at: string;
  actor_id: string;
  record_type: string;
  record_id: string;
}

/** The whole trail: from record 1 to the last row, the chain head, and every anchor. */
export async function verifyAuditTrail(
  pool: pg.Pool,
  opts: { anchors: readonly AuditAnchor[]; pageSize?: number },
): Promise<ChainCheck> {
  return inSnapshot(pool, async (client) => {
    const head = await readHead(client);
    const anchors = [...opts.anchors].sort((a, b) => a.seq - b.seq);
    const walked = await walk(client, GENESIS, { head, anchors, pageSize: opts.pageSize ?? DEFAULT_PAGE_SIZE });
    const check = { ...walked, head };
    if (walked.problem) return check;
    const { last } = walked;
    const next = last.seq + 1;
    if (head.seq > last.seq) {
      return problem(
        check,
        next,
        'seq-gap',
        `records ${next} to ${head.seq} are missing: the chain head is ${head.seq}`,
      );
    }
    const lost = anchors.find((a) => a.seq > last.seq);
    if (lost) {
      return problem(
        check,
        next,
        'anchor-beyond-end',
        `the anchor of ${lost.anchoredAt} names record ${lost.seq}, but the table ends at ${last.seq}: records from ` +
          `${next} on were removed`,
      );
    }
    if (head.hash !== last.hash) {
      return problem(check, last.seq, 'head-mismatch', `the chain head's hash ${head.hash} is not this record's`);
    }
    return check;
  });
}

/**
 * The records after `from` (an anchor, or GENESIS) up to the chain head: what the anchoring job checks before it
 * anchors a new head, so it never vouches for records that do not follow from the last anchor.
 */
export async function verifySince(
  pool: pg.Pool,
  from: AuditAnchor | undefined,
  opts: { pageSize?: number } = {},
): Promise<ChainCheck> {
  return inSnapshot(pool, async (client) => {
    const head = await readHead(client);
    const start = from ? { seq: from.seq, hash: from.hash } : GENESIS;
    const empty = { records: 0, last: start, head, anchorsChecked: 0 };
    if (from) {
      const res = await client.query<{ hash: string }>(`SELECT hash FROM holdfast.audit_record WHERE seq = $1`, [
        from.seq,
      ]);
      const stored = res.rows[0]?.hash;
      if (stored === undefined) {
        return problem(empty, from.seq, 'anchor-beyond-end', `the last anchor names record ${from.seq}; it is gone`);
      }
      if (stored !== from.hash) {
        return problem(empty, from.seq, 'anchor-mismatch', anchorMismatch(from, stored));
      }
      if (head.seq < from.seq) {
        return problem(
          empty,
          head.seq + 1,
          'anchor-beyond-end',
          `the chain head is record ${head.seq}, behind the last anchor (record ${from.seq}): it was moved back`,
        );
      }
    }
    const walked = await walk(client, start, {
      head,
      anchors: [],
      pageSize: opts.pageSize ?? DEFAULT_PAGE_SIZE,
      throughSeq: head.seq,
    });
    const check = { ...walked, head, anchorsChecked: from ? 1 : 0 };
    if (walked.problem) return check;
    if (walked.last.seq !== head.seq) {
      return problem(
        check,
        walked.last.seq + 1,
        'seq-gap',
        `records ${walked.last.seq + 1} to ${head.seq} are missing`,
      );
    }
    if (walked.last.hash !== head.hash) {
      return problem(check, head.seq, 'head-mismatch', `the chain head's hash ${head.hash} is not this record's`);
    }
    return check;
  });
}

async function inSnapshot<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(pool, async (client) => {
    await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    // A long trail is walked page by page within this transaction; no page may hit the pool's statement limit.
    await client.query('SET LOCAL statement_timeout = 0');
    return work(client);
  });
}

async function readHead(client: pg.PoolClient): Promise<ChainLink> {
  const res = await client.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM holdfast.audit_chain_head`);
  const row = res.rows[0];
  if (!row) throw new Error('holdfast.audit_chain_head has no row: is migration 0007_audit applied?');
  return { seq: Number(row.seq), hash: row.hash };
}

function problem(check: ChainCheck, seq: number, kind: ChainProblemKind, detail: string): ChainCheck {
  return { ...check, problem: { seq, kind, detail } };
}

const anchorMismatch = (anchor: AuditAnchor, stored: string) =>
  `the anchor of ${anchor.anchoredAt} names hash ${anchor.hash}, the table has ${stored}: the records up to here ` +
  `were rewritten after that anchor`;

async function walk(
  client: pg.PoolClient,
  start: ChainLink,
  opts: { head: ChainLink; anchors: readonly AuditAnchor[]; pageSize: number; throughSeq?: number },
): Promise<Omit<ChainCheck, 'head'>> {
  let last = start;
  let records = 0;
  let anchorsChecked = 0;
  let nextAnchor = opts.anchors.findIndex((a) => a.seq > start.seq);
  if (nextAnchor < 0) nextAnchor = opts.anchors.length;
  const result = (p?: ChainProblem) => ({ records, last, anchorsChecked, ...(p ? { problem: p } : {}) });

  for (;;) {
    const page = await client.query<RecordRow>(
      `SELECT seq, content, prev_hash, hash, actor_id, record_type, record_id,
              to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS recorded_at
         FROM holdfast.audit_record
        WHERE seq > $1 AND ($2::bigint IS NULL OR seq <= $2)
        ORDER BY seq LIMIT $3`,
      [last.seq, opts.throughSeq ?? null, opts.pageSize],
    );
    for (const row of page.rows) {
      const seq = Number(row.seq);
      const found = checkRecord(row, seq, last, opts.head);
      if (found) return result(found);
      for (; nextAnchor < opts.anchors.length && opts.anchors[nextAnchor]!.seq === seq; nextAnchor += 1) {
        const anchor = opts.anchors[nextAnchor]!;
        if (anchor.hash !== row.hash)
          return result({ seq, kind: 'anchor-mismatch', detail: anchorMismatch(anchor, row.hash) });
        anchorsChecked += 1;
      }
      last = { seq, hash: row.hash };
      records += 1;
    }
    if (page.rows.length < opts.pageSize) return result();
  }
}

function checkRecord(row: RecordRow, seq: number, before: ChainLink, head: ChainLink): ChainProblem | undefined {
  const expected = before.seq + 1;
  if (seq !== expected) {
    return {
      seq: expected,
      kind: 'seq-gap',
      detail: `record ${expected} is missing${seq > expected + 1 ? ` (and up to ${seq - 1})` : ''}: the next is ${seq}`,
    };
  }
  if (seq > head.seq) {
    return {
      seq,
      kind: 'beyond-head',
      detail:
        `the chain head is record ${head.seq}: this record was not appended through the chain, or the head was ` +
        'moved back',
    };
  }
  if (chainHash(row.prev_hash, row.content) !== row.hash) {
    return {
      seq,
      kind: 'content-hash-mismatch',
      detail: `hash ${row.hash} is not sha256(prev_hash + content): the content or the hash was changed`,
    };
  }
  if (row.prev_hash !== before.hash) {
    return {
      seq,
      kind: 'prev-link-broken',
      detail: `prev_hash ${row.prev_hash} is not record ${before.seq}'s hash ${before.hash}: one of the two was changed`,
    };
  }
  const mismatch = columnMismatch(row, seq);
  if (mismatch) return { seq, kind: 'column-mismatch', detail: mismatch };
  return undefined;
}

function columnMismatch(row: RecordRow, seq: number): string | undefined {
  let content: AuditContent;
  try {
    content = JSON.parse(row.content) as AuditContent;
  } catch {
    return 'the content is not JSON';
  }
  const pairs: [string, unknown, unknown][] = [
    ['seq', seq, content.seq],
    ['recorded_at', row.recorded_at, content.at],
    ['actor_id', row.actor_id, content.actor?.id],
    ['record_type', row.record_type, content.recordType],
    ['record_id', row.record_id, content.recordId],
  ];
  const differ = pairs.filter(([, column, inContent]) => column !== inContent);
  if (differ.length === 0) return undefined;
  return differ
    .map(([name, column, inContent]) => `${name} is ${String(column)}, the content says ${String(inContent)}`)
    .join('; ');
}
