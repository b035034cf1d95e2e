import type pg from 'pg';
import type { TraceLinkView } from '../schemas/common.schema';

/** Trace edges touching one node, in either direction, oldest first. */
export async function traceLinksOf(db: Pick<pg.Pool, 'query'>, kind: string, id: string): Promise<TraceLinkView[]> {
  const res = await db.query<{
    from_kind: string;
    from_id: string;
    relation: string;
    to_kind: string;
    to_id: string;
    system: string | null;
    attributes: Record<string, unknown>;
    created_at: Date;
  }>(
    `SELECT from_kind, from_id, relation, to_kind, to_id, system, attributes, created_at
       FROM holdfast.trace_link
      WHERE (from_kind = $1 AND from_id = $2) OR (to_kind = $1 AND to_id = $2)
      ORDER BY id`,
    [kind, id],
  );
  return res.rows.map((r) => ({
    fromKind: r.from_kind,
    fromId: r.from_id,
    relation: r.relation,
    toKind: r.to_kind,
    toId: r.to_id,
    ...(r.system !== null ? { system: r.system } : {}),
    attributes: r.attributes,
    createdAt: r.created_at.toISOString(),
  }));
}
