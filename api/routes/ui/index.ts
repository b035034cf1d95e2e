/**
 * The quality dashboard (docs/dashboard.md): `/ui` and every path under it answer the same HTML shell (the browser
 * app routes on the path, so a shared link opens the same view), `/ui/assets/*` the bundle. Public, as a sign-in page
 * is: the shell and the code hold no plant data; every figure comes from an authenticated route. Their content
 * security policy is infra/http/security-headers.ts's UI_CSP.
 */
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { notFound } from '../../../infra/http/problem-details';
import { uiBundle } from '../../support/ui-bundle';
import type { ApiDeps } from '../../deps';

const SHELL = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Holdfast quality</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/assets/app.css">
<script type="module" src="/ui/assets/app.js"></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<div id="app"><main id="main" tabindex="-1"><p class="loading">Loading Holdfast…</p></main></div>
<noscript>The Holdfast dashboard needs JavaScript.</noscript>
</body>
</html>
`;

const uiRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app) => {
  const shell = async (_request: unknown, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(SHELL);
  app.get('/ui', { config: { access: 'public' }, schema: { hide: true } }, shell);
  app.get('/ui/*', { config: { access: 'public' }, schema: { hide: true } }, shell);

  app.get('/ui/assets/:file', {
    config: { access: 'public' },
    schema: { hide: true, params: z.object({ file: z.string().max(100) }) },
    handler: async (request, reply) => {
      const asset = (await uiBundle()).get(request.params.file);
      if (!asset) throw notFound(`no asset ${request.params.file}`);
      reply.header('etag', asset.etag).header('cache-control', 'no-cache').header('vary', 'accept-encoding');
      if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
      reply.type(asset.contentType);
      if (/\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) {
        return reply.header('content-encoding', 'gzip').send(asset.gzip);
      }
      return reply.send(asset.body);
    },
  });
};

export default uiRoutes;
