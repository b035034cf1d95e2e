import type { FastifyRequest } from 'fastify';
import type { AuditActor } from '../audit/audit-record';

/**
 * Who made a request, as far as the request can honestly say; both HTTP edges (the API and the inference worker's)
 * ask here for every audit record. Nobody is authenticated yet, so the actor is `unauthenticated`: its id is the name
 * the request claims (a body's `decidedBy`, `droppedBy`), unverified, and its address the peer's. Identity (OpenID
 * Connect, API keys) replaces this function's body with the verified user or key, and every call site and audit
 * record follows without change.
 */
export function requestActor(request: FastifyRequest, claimedName?: string): AuditActor {
  return { kind: 'unauthenticated', id: claimedName ?? 'anonymous', address: request.ip };
}
