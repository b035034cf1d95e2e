import fastifySwagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

export const OPENAPI_JSON_PATH = '/docs/json';

/** The OpenAPI security schemes every protected operation names (docs/identity.md). */
export const BEARER_SCHEME = 'bearerToken';
export const API_KEY_SCHEME = 'apiKey';

/**
 * OpenAPI generated from the route schemas, so the published inventory is the registered routes (OWASP API9):
 * the document at /docs/json, the Swagger UI at /docs.
 *
 * The UI is opt-in: @fastify/swagger-ui pulls in an ESM-only dependency (content-disposition 3) that Node 20 loads
 * with require(esm) but jest's module loader cannot, so tests build the app without it.
 */
export async function registerOpenApi(
  app: FastifyInstance,
  opts: { ui: boolean; info?: { title: string; description: string } },
): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        ...(opts.info ?? {
          title: 'Holdfast API',
          description: 'Inspection ingest, defect and lot reads, and lot dispositions.',
        }),
        version: '0.1.0',
      },
      components: {
        securitySchemes: {
          [BEARER_SCHEME]: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description:
              'A person: a token from POST /v1/auth/token (local accounts) or from the OpenID provider in ' +
              '`identity.issuer`.',
          },
          [API_KEY_SCHEME]: {
            type: 'apiKey',
            in: 'header',
            name: 'X-Api-Key',
            description: 'A machine: `hfk_<id>_<secret>`, scoped to a site, line or station (npm run keys).',
          },
        },
      },
    },
    transform: jsonSchemaTransform,
  });
  if (opts.ui) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fastifySwaggerUi = (require('@fastify/swagger-ui') as typeof import('@fastify/swagger-ui')).default;
    await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  } else {
    app.get(OPENAPI_JSON_PATH, { schema: { hide: true }, config: { access: 'public' } }, async () => app.swagger());
  }
}

export interface ListedRoute {
  method: string;
  url: string;
  /** `schema.hide`: left out of the OpenAPI document on purpose. */
  hidden: boolean;
}

const inventories = new WeakMap<FastifyInstance, ListedRoute[]>();

/**
 * Records every route registered on app from now on (call it first), so that the served OpenAPI document can be
 * checked against what the process really serves (OWASP API9: test/integration/api-owasp.test.ts).
 */
export function recordRoutes(app: FastifyInstance): void {
  const routes: ListedRoute[] = [];
  inventories.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routes.push({ method, url: route.url, hidden: route.schema?.hide === true });
    }
  });
}

/** The routes recordRoutes saw; empty when it was not called. */
export function registeredRoutes(app: FastifyInstance): readonly ListedRoute[] {
  return inventories.get(app) ?? [];
}
