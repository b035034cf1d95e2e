/**
 * What one audit record says and how it is chained (docs/audit-trail.md). A record's content is canonical JSON
 * (infra/ingest/canonical-json.ts: keys sorted at every level, no whitespace), and its hash is
 * sha256(prevHash + content) in lowercase hex; the first record's prevHash is GENESIS_HASH. Nothing here touches the
 * database, so an exported copy can be checked with these functions alone.
 */
import { canonicalJson, sha256Hex } from '../ingest/canonical-json';

/** The prevHash of record 1. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Who made a change. Until identity (OpenID Connect, API keys) lands, every request is `unauthenticated` and its id
 * is only what the request claims (a body's `decidedBy`), never a verified user; identity fills in `user` and
 * `api-key` (infra/http/request-actor.ts is the one place that decides).
 */
export interface AuditActor {
  kind: 'user' | 'api-key' | 'system' | 'unauthenticated';
  /**
   * user: the identity provider's subject; api-key: the key's id; system: the job that acted on its own;
   * unauthenticated: the name the request claims, or `anonymous` when it claims none.
   */
  id: string;
  displayName?: string;
  /** The request's remote address; absent for system work. */
  address?: string;
}

/**
 * `done`: a change of Holdfast's own rows, recorded in the change's transaction (the record exists only if the change
 * was committed). `accepted` / `refused`: a request handed to a workflow (a Temporal update), recorded with its answer.
 */
export type AuditOutcome = 'done' | 'accepted' | 'refused';

/**
 * What a writer records about one change; the chain adds seq, time and hashes. `old`, `new` and `detail` are plain
 * JSON values (what JSON.stringify keeps is what is hashed and stored).
 */
export interface AuditEntry {
  actor: AuditActor;
  /** `<record type>.<verb>`, e.g. `lot-case.disposition`, `deferred-frame.drop`. */
  action: string;
  recordType: string;
  recordId: string;
  old: unknown;
  new: unknown;
  /** Why, where the action requires a reason (a disposition, a drop). */
  reason: string | null;
  outcome: AuditOutcome;
  /** The workflow's answer or the refusal; null for `done`. */
  detail: unknown;
}

/** The hashed content of a record: the entry with its place in the chain and the server's time. */
export interface AuditContent extends AuditEntry {
  seq: number;
  /** When the record's transaction took its place in the chain: PostgreSQL's clock, UTC, `+00:00`, microseconds. */
  at: string;
}

/** A record as stored and as exported: its content plus the two hashes that chain it. */
export type AuditRecord = AuditContent & { prevHash: string; hash: string };

export function chainHash(prevHash: string, content: string): string {
  return sha256Hex(prevHash + content);
}

/** The content's canonical text, the exact bytes hashed and stored. */
export function contentText(content: AuditContent): string {
  return canonicalJson(content);
}

/**
 * Checks a record as exported by GET /v1/audit (or read from the table): its hash is right for its content and
 * prevHash. The chain link (prevHash = the previous record's hash) is the caller's to check.
 */
export function hashMatches(record: AuditRecord): boolean {
  const { prevHash, hash, ...content } = record;
  return chainHash(prevHash, canonicalJson(content)) === hash;
}
