import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseDurationMs } from '../../../infra/config/duration';
import { ProblemError, problemType } from '../../../infra/http/problem-details';
import { signInRateLimit } from '../../../infra/http/rate-limit';
import { ProblemSchema } from '../../../infra/http/schemas';
import { issueLocalToken } from '../../../infra/identity/authenticate';
import type { ApiDeps } from '../../deps';

const SignInBodySchema = z.strictObject({
  username: z.string().min(1).max(64),
  password: z.string().min(1).max(1024),
});

const TokenSchema = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  /** Seconds. */
  expires_in: z.number().int(),
});

const authRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const { local } = deps.config.identity;
  if (!local.enabled) return;
  const ttlSeconds = Math.floor(parseDurationMs(local.tokenTtl) / 1000);

  app.post('/v1/auth/token', {
    // Public by nature: this is where a person without a token gets one.
    // Rate-limited per client address besides the account lock-out: guessing across many usernames is bounded too.
    config: { access: 'public', rateLimit: signInRateLimit(deps.config.api.rateLimit) },
    schema: {
      summary: 'Sign in with a local account: a short-lived bearer token for every other route',
      description:
        'For sites without an OpenID provider (and `npm start`). After `identity.local.maxFailedSignIns` wrong ' +
        'passwords in a row the account is locked for `identity.local.lockFor`; the answer does not say which of ' +
        'unknown user, wrong password, locked or disabled it was (the audit trail does).',
      tags: ['auth'],
      body: SignInBodySchema,
      response: { 200: TokenSchema, 400: ProblemSchema, 401: ProblemSchema, 429: ProblemSchema },
    },
    handler: async (request) => {
      const outcome = await deps.accounts.signIn({ ...request.body, address: request.ip });
      if (!outcome.ok) {
        throw new ProblemError({
          type: problemType('sign-in-refused'),
          title: 'Sign-in refused',
          status: 401,
          detail: 'unknown user, wrong password, or the account is locked or disabled',
        });
      }
      const token = await issueLocalToken(deps.signingKey, outcome.user, ttlSeconds);
      return { access_token: token, token_type: 'Bearer' as const, expires_in: ttlSeconds };
    },
  });
};

export default authRoutes;
