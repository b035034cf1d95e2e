/**
 * Request rate limits per caller (OWASP API4), answered as 429 problem+json with Retry-After.
 *
 * The limit runs after authentication (route-access.ts authenticates in onRequest), so it counts per identity: a
 * person by id, a machine key by id with its own higher limit, and a caller without credentials (public routes)
 * by client address. Limits live in this process's memory: each API process (and inference edge) counts on its own.
 */
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseDurationMs } from '../config/duration';
import { httpProblem, ProblemError } from './problem-details';

export interface RateLimitConfig {
  max: number;
  machineMax: number;
  timeWindow: string;
  signIn: { max: number; timeWindow: string };
}

const callerKey = (request: FastifyRequest): string =>
  request.principal ? `${request.principal.kind}:${request.principal.id}` : `address:${request.ip}`;

/** On every route of `app` (the API, the inference edge). */
export async function registerRateLimit(
  app: FastifyInstance,
  limits: Pick<RateLimitConfig, 'max' | 'machineMax' | 'timeWindow'>,
): Promise<void> {
  await app.register(fastifyRateLimit, {
    global: true,
    hook: 'preValidation',
    max: (request) => (request.principal?.kind === 'api-key' ? limits.machineMax : limits.max),
    timeWindow: parseDurationMs(limits.timeWindow),
    keyGenerator: callerKey,
    errorResponseBuilder: (_request, context) =>
      new ProblemError(httpProblem(429, `rate limit of ${context.max} requests reached; retry in ${context.after}`)),
  });
}

/** Route config for a sign-in route: a few tries per client address, whatever the username. */
export function signInRateLimit(limits: RateLimitConfig) {
  return {
    max: limits.signIn.max,
    timeWindow: parseDurationMs(limits.signIn.timeWindow),
    keyGenerator: (request: FastifyRequest) => `sign-in:${request.ip}`,
  };
}
