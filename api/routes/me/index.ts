/**
 * `GET /v1/me`: who is signed in, with the sites they may read. The dashboard shapes its navigation on it (a
 * quality engineer sees the decide buttons, an operator does not); every route still decides each call itself.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../infra/http/schemas';
import { ROLES, sitesOf } from '../../../infra/identity/principal';
import { LOCAL_ISSUER } from '../../../infra/identity/authenticate';
import { MeResponseSchema } from '../../schemas/dashboard.schema';
import type { ApiDeps } from '../../deps';
import { temporalUiNamespaceUrl } from '../../support/temporal-ui';

const meRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/me', {
    // Every person may ask who they are; machines have no page to shape.
    config: { access: { roles: ROLES.filter((r) => r !== 'admin') } },
    schema: {
      summary: 'The signed-in person: name, roles and the sites they may read',
      tags: ['auth'],
      response: { 200: MeResponseSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const principal = request.principal!;
      const allowed = sitesOf(principal);
      const sites = deps.config.sites
        .filter((s) => allowed === 'all' || allowed.includes(s.id))
        .map((s) => ({
          id: s.id,
          name: s.name ?? null,
          lines: s.lines.map((l) => l.id),
          fpyTarget: s.fpyTarget ?? null,
          lineFpyTargets: Object.fromEntries(
            s.lines.flatMap((l) => {
              const target = l.fpyTarget ?? s.fpyTarget;
              return target === undefined ? [] : [[l.id, target] as const];
            }),
          ),
        }));
      return {
        id: principal.id,
        name: principal.displayName,
        roles: [...principal.roles],
        sites,
        method: principal.kind === 'user' && principal.issuer !== LOCAL_ISSUER ? ('oidc' as const) : ('local' as const),
        temporalUiUrl: temporalUiNamespaceUrl(deps.config.api.temporalUiUrl, deps.namespace),
      };
    },
  });
};

export default meRoutes;
