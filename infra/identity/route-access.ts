/**
 * Every route of a Holdfast HTTP process declares who may call it (`config.access`), and this enforces it: a route
 * without a declaration stops the process at start; a request is authenticated in onRequest (401 before its body is
 * even read) and authorised in preHandler, once the body is parsed and the route can say which site, line and station
 * it acts on (`config.accessTargets`). A route that learns its site from PostgreSQL (a lot, a defect) asks again with
 * authorizeSite.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProblemError, problemType } from '../http/problem-details';
import { type AccessTarget, type RouteAccess, decideAccess } from './access';
import { AuthenticationError, type Authenticator } from './authenticate';
import type { Principal } from './principal';
import { API_KEY_SCHEME, BEARER_SCHEME } from '../http/openapi';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call this route (required on every route: enforceRouteAccess). */
    access?: RouteAccess;
    /** The site, line and station the request acts on, from its path or body (after validation). */
    accessTargets?: (request: FastifyRequest) => AccessTarget[];
  }
  interface FastifyRequest {
    /** The authenticated caller; undefined on public routes. */
    principal?: Principal;
  }
}

/** What a 401 asks for (RFC 9110 §11.6.1): a bearer token, or a machine key. */
const CHALLENGE = 'Bearer realm="holdfast", ApiKey realm="holdfast", header="X-Api-Key"';

export interface RouteAccessOptions {
  authenticator: Authenticator;
  /**
   * Route prefixes served by plugins that cannot carry a declaration (the Swagger UI's static files): public, as the
   * API description is.
   */
  publicPrefixes?: readonly string[];
}

export function enforceRouteAccess(app: FastifyInstance, opts: RouteAccessOptions): void {
  app.decorateRequest('principal', undefined);
  app.addHook('onRoute', (route) => {
    const access = route.config?.access;
    if (access !== undefined) {
      // Before @fastify/swagger's own onRoute hook (registered later) reads the schema: the OpenAPI document says
      // which credentials each operation takes (the schemes are declared in infra/http/openapi.ts).
      if (route.schema && !route.schema.hide) route.schema = { ...route.schema, security: securityOf(access) };
      return;
    }
    if (opts.publicPrefixes?.some((prefix) => route.url.startsWith(prefix))) {
      route.config = { ...route.config, access: 'public' };
      return;
    }
    const method = Array.isArray(route.method) ? route.method.join(',') : route.method;
    throw new Error(
      `route ${method} ${route.url} declares no access (config.access): every route must say who may call it`,
    );
  });

  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    // No route matched (the 404 handler): nothing to protect.
    if (access === undefined || access === 'public') return;
    try {
      request.principal = await opts.authenticator.authenticate(request.headers);
    } catch (err) {
      if (!(err instanceof AuthenticationError)) throw err;
      throw unauthenticated(err.message, true);
    }
    check(request, access, []);
  });

  app.addHook('preHandler', async (request) => {
    const { access, accessTargets } = request.routeOptions.config;
    if (access === undefined || access === 'public' || !accessTargets) return;
    check(request, access, accessTargets(request));
  });
}

/** OpenAPI security requirements: any one of them will do. */
function securityOf(access: RouteAccess): Record<string, string[]>[] {
  if (access === 'public') return [];
  return [
    ...(access.roles.length > 0 ? [{ [BEARER_SCHEME]: [] }] : []),
    ...(access.machine && access.machine.length > 0 ? [{ [API_KEY_SCHEME]: [] }] : []),
  ];
}

/** For a route that finds its site after authorisation (a lot's, from PostgreSQL): 403 unless the caller may act there. */
export function authorizeSite(request: FastifyRequest, target: AccessTarget): void {
  const access = request.routeOptions.config.access;
  if (access === undefined || access === 'public') return;
  check(request, access, [target]);
}

/** Whether the caller may act on `target` under this route's access, without refusing. */
export function mayActAt(request: FastifyRequest, target: AccessTarget): boolean {
  const access = request.routeOptions.config.access;
  return access === undefined || decideAccess(request.principal, access, [target]).allow;
}

function check(request: FastifyRequest, access: RouteAccess, targets: AccessTarget[]): void {
  const decision = decideAccess(request.principal, access, targets);
  if (decision.allow) return;
  if (decision.status === 401) throw unauthenticated(decision.reason, false);
  throw new ProblemError({
    type: problemType('forbidden'),
    title: 'Forbidden',
    status: 403,
    detail: decision.reason,
  });
}

function unauthenticated(detail: string, badCredentials: boolean): ProblemError {
  return new ProblemError(
    { type: problemType('unauthenticated'), title: 'Unauthorized', status: 401, detail },
    { 'www-authenticate': badCredentials ? `${CHALLENGE}, error="invalid_token"` : CHALLENGE },
  );
}
