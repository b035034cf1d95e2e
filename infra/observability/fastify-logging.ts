import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from './logger';

/**
 * Fastify's per-request lines at debug instead of info: a simulator answers several requests per defect, and at info
 * they bury everything else. One line per request (when it completes); 5xx errors stay at error.
 */
class RequestsAtDebug extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.trace({ method: request.method, url: request.url }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) return super.requestCompleted(error, request, reply);
    reply.log.debug(
      { method: request.method, url: request.url, statusCode: reply.statusCode, ms: reply.elapsedTime },
      'request completed',
    );
  }

  override defaultErrorLog(error: Error, request: FastifyRequest, reply: FastifyReply): void {
    if (reply.statusCode >= 500) return super.defaultErrorLog(error, request, reply);
    reply.log.debug({ statusCode: reply.statusCode, err: error }, error.message);
  }

  override routeNotFound(request: FastifyRequest): void {
    request.log.debug({ method: request.method, url: request.url }, 'route not found');
  }
}

/** Fastify options that log through `logger` (requests at debug), or log nothing without one (tests). */
export function fastifyLogging(
  logger: Logger | undefined,
): { loggerInstance: FastifyBaseLogger; logController: LogController } | { logger: false } {
  return logger ? { loggerInstance: logger, logController: new RequestsAtDebug() } : { logger: false };
}
