import type { FastifyRequest } from 'fastify';
import type { AuditActor } from '../audit/audit-record';

/**
 * Who made a request, for its audit records; both HTTP edges (the API and the inference worker's) ask here. It is the
 * principal the route's access check authenticated (infra/identity/route-access.ts): a user (subject and display
 * name) or an API key (its id and name). Names a request body claims (`decidedBy`, `droppedBy`) are notes, never the
 * actor. Only a public route has no principal, and public routes change nothing.
 */
export function requestActor(request: FastifyRequest): AuditActor {
  const principal = request.principal;
  if (!principal) return { kind: 'unauthenticated', id: 'anonymous', address: request.ip };
  return { kind: principal.kind, id: principal.id, displayName: principal.displayName, address: request.ip };
}
