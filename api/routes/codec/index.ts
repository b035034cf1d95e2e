import type { PayloadCodec } from '@temporalio/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ProblemError, problemType } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import { type JsonPayload, payloadFromJson, payloadToJson } from '../../../infra/temporal/payload-codec';
import type { RouteAccess } from '../../../infra/identity/access';
import type { ApiDeps } from '../../deps';

/** Decoded payloads show personal and signed data: quality staff and auditors only. */
const CODEC_ACCESS: RouteAccess = { roles: ['quality-engineer', 'quality-manager', 'auditor'] };

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** Temporal's remote codec protocol: proto3 JSON, so metadata values and data are base64. */
const JsonPayloadSchema = z.object({
  metadata: z.record(z.string(), z.base64()).nullish(),
  data: z.base64().nullish(),
}) satisfies z.ZodType<JsonPayload>;
const PayloadsBody = z.object({ payloads: z.array(JsonPayloadSchema) });
const PayloadsHeaders = z.looseObject({
  'x-namespace': z.string().min(1).optional(),
});

const CODEC_BODY_LIMIT_BYTES = 16 * 1024 * 1024;
const ALLOWED_HEADERS = 'Content-Type, X-Namespace, Authorization';

type CodecDeps = ApiDeps & { payloadCodec: PayloadCodec };

/**
 * POST /codec/decode and /codec/encode, the remote codec the Temporal Web UI and CLI call to show payloads that the
 * workers encrypted (infra/temporal/payload-codec.ts). The browser calls it from the UI's origin, so the routes answer
 * CORS preflights for the configured origins only.
 */
const codecRoutes: FastifyPluginAsyncZod<{ deps: CodecDeps }> = async (app, { deps }) => {
  const origins = new Set(
    (deps.config.api.codecUiOrigins ?? [deps.config.api.temporalUiUrl]).map((url) => new URL(url).origin),
  );
  const localUi = deps.config.api.codecAccess === 'local-ui';
  if (localUi && !['127.0.0.1', '::1', 'localhost'].includes(deps.config.api.host)) {
    throw new Error(`api.codecAccess local-ui needs the API on loopback; api.host is ${deps.config.api.host}`);
  }
  const allowOrigin = (request: FastifyRequest, reply: FastifyReply) => {
    const origin = request.headers.origin;
    if (origin && origins.has(origin)) {
      reply.header('Access-Control-Allow-Origin', origin);
      // The UI's includeCredentials setting sends cookies; it only works when the answer allows credentials.
      reply.header('Access-Control-Allow-Credentials', 'true');
    }
    reply.header('Vary', 'Origin');
  };

  for (const [path, direction] of [
    ['/codec/decode', 'decode'],
    ['/codec/encode', 'encode'],
  ] as const) {
    // A browser's CORS preflight carries no credentials, by the Fetch standard: it is answered to anyone.
    app.options(path, { config: { access: 'public' }, schema: { hide: true } }, async (request, reply) => {
      allowOrigin(request, reply);
      reply.header('Access-Control-Allow-Methods', 'POST, OPTIONS');
      reply.header('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      reply.header('Access-Control-Max-Age', '600');
      return reply.code(204).send();
    });

    app.post(path, {
      config: { access: localUi ? 'public' : CODEC_ACCESS },
      // A Temporal payload may be 2 MB, a third more in base64, and the UI may send several at once.
      bodyLimit: CODEC_BODY_LIMIT_BYTES,
      onRequest: async (request, reply) => {
        allowOrigin(request, reply);
        if (localUi && !(LOOPBACK.has(request.ip) && origins.has(request.headers.origin ?? ''))) {
          throw new ProblemError({
            type: problemType('forbidden'),
            title: 'Forbidden',
            status: 403,
            detail: 'api.codecAccess is local-ui: only the Web UI on this machine may call the codec without a token',
          });
        }
      },
      schema: {
        summary:
          direction === 'decode'
            ? 'Decrypts Temporal payloads for the Web UI and CLI (Temporal remote codec protocol)'
            : 'Encrypts Temporal payloads the Web UI or CLI sends (signals, starts) as the workers expect them',
        tags: ['temporal'],
        headers: PayloadsHeaders,
        body: PayloadsBody,
        response: { 200: PayloadsBody, 400: ProblemSchema, 422: ProblemSchema },
      },
      handler: async (request) => {
        const namespace = request.headers['x-namespace'];
        if (namespace !== undefined && namespace !== deps.namespace) {
          throw new ProblemError({
            type: problemType('validation'),
            title: 'Request validation failed',
            status: 400,
            detail: `X-Namespace: this codec holds the keys of namespace ${deps.namespace}, not ${namespace}`,
            errors: [{ field: 'X-Namespace', message: `not ${deps.namespace}` }],
          });
        }
        const payloads = request.body.payloads.map(payloadFromJson);
        let converted;
        try {
          converted = await deps.payloadCodec[direction](payloads);
        } catch (err) {
          throw new ProblemError({
            type: problemType('payload-codec'),
            title: `Payloads cannot be ${direction}d`,
            status: 422,
            detail: (err as Error).message,
          });
        }
        return { payloads: converted.map(payloadToJson) };
      },
    });
  }
};

export default codecRoutes;
