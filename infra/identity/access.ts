/**
 * What a route lets through, and the one pure function that decides (docs/identity.md#routes). Every route of every
 * Holdfast HTTP process declares a RouteAccess in its `config.access` (route-access.ts refuses to start without it).
 */
import type { MachineAction, Principal, Role } from './principal';
import { sitesOf } from './principal';

export interface ProtectedAccess {
  /** People with any of these roles may call (admin always may). Empty: no person. */
  roles: readonly Role[];
  /** Keys with any of these actions may call. Absent: no machine. */
  machine?: readonly MachineAction[];
}

/** `public`: health, metrics and the API description, which a load balancer or scraper reads without credentials. */
export type RouteAccess = 'public' | ProtectedAccess;

/** The place a request acts on, as far as it is known: a site, and for station routes its line and station. */
export interface AccessTarget {
  site: string;
  line?: string;
  station?: string;
}

export type AccessDecision = { allow: true } | { allow: false; status: 401 | 403; reason: string };

/**
 * Whether `principal` may call a route declared `access` on `targets` (none yet: the route finds its site later, from
 * PostgreSQL, and asks again with it). No principal is 401; a principal without the role, action, site, line or
 * station is 403 with the reason.
 */
export function decideAccess(
  principal: Principal | undefined,
  access: RouteAccess,
  targets: readonly AccessTarget[] = [],
): AccessDecision {
  if (access === 'public') return { allow: true };
  if (!principal) return { allow: false, status: 401, reason: 'credentials required (Bearer token or X-Api-Key)' };

  if (principal.kind === 'user') {
    const admin = principal.roles.includes('admin');
    if (!admin && !access.roles.some((role) => principal.roles.includes(role))) {
      const wanted = access.roles.length > 0 ? access.roles.join(' or ') : 'a machine key';
      return { allow: false, status: 403, reason: `requires ${wanted}` };
    }
  } else {
    const actions = access.machine ?? [];
    if (!actions.some((action) => principal.actions.includes(action))) {
      const wanted = actions.length > 0 ? `a key allowed ${actions.join(' or ')}` : 'a person signed in';
      return { allow: false, status: 403, reason: `requires ${wanted}` };
    }
  }

  const sites = sitesOf(principal);
  for (const target of targets) {
    if (sites !== 'all' && !sites.includes(target.site)) {
      return { allow: false, status: 403, reason: `no access to site ${target.site}` };
    }
    if (principal.kind === 'api-key') {
      const { line, station } = principal.scope;
      // A station's key acts only for its own station (Part 11 §11.10(h), device checks).
      if (line !== undefined && target.line !== undefined && target.line !== line) {
        return { allow: false, status: 403, reason: `key is scoped to line ${line}` };
      }
      if (station !== undefined && (target.station === undefined || target.station !== station)) {
        return { allow: false, status: 403, reason: `key is scoped to station ${line ?? '*'}/${station}` };
      }
      if (line !== undefined && target.line === undefined) {
        return { allow: false, status: 403, reason: `key is scoped to line ${line}` };
      }
    }
  }
  return { allow: true };
}
