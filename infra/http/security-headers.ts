/**
 * Response headers against misconfiguration (OWASP API8): @fastify/helmet on every HTTP process.
 *
 * - The processes listen on plain HTTP behind a TLS-terminating proxy, so HSTS is the proxy's to send: a header
 *   sent here over plain HTTP is ignored by browsers and would pin a hostname this process cannot vouch for.
 * - The quality dashboard under /ui is a page with its own bundle: its policy allows this origin's scripts, styles and
 *   connections, and nothing inline.
 * - The answers are JSON, so the policy forbids every fetch (`default-src 'none'`) and every framing. The Swagger UI
 *   under /docs is an HTML page with its own scripts, styles and inline images: its pages get a policy allowing
 *   those from this origin only; /docs/json stays under the strict one.
 * - No CORS here: browsers on other origins get no Access-Control-Allow-Origin. The codec routes
 *   (api/routes/codec) grant the Temporal Web UI's origin their own.
 */
import fastifyHelmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import { OPENAPI_JSON_PATH } from './openapi';

export const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
export const DOCS_UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * The quality dashboard (`/ui`, api/routes/ui): scripts, styles and connections to this origin only; images also as
 * blob: (frames fetched with the bearer token) and data:; no inline script or style.
 */
export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; " +
  "font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export async function registerSecurityHeaders(app: FastifyInstance): Promise<void> {
  await app.register(fastifyHelmet, {
    hsts: false,
    // Set per path below: helmet's policy is one for the whole app.
    contentSecurityPolicy: false,
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const path = request.url.split('?')[0] ?? '';
    const docsUi = (path === '/docs' || path.startsWith('/docs/')) && path !== OPENAPI_JSON_PATH;
    const dashboard = path === '/ui' || path.startsWith('/ui/');
    reply.header('content-security-policy', dashboard ? UI_CSP : docsUi ? DOCS_UI_CSP : API_CSP);
    return payload;
  });
}
