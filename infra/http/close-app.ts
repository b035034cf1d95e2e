/**
 * Closes an HTTP process's fastify app at shutdown: in-flight requests drain (fastify's close), but connections that
 * carry no request are not waited for longer than `drainMs`. A browser with the dashboard open keeps preconnected
 * sockets that have not sent a request yet; Node counts them neither idle nor busy, so close() would wait for them
 * until its headers timeout (60 s) and Ctrl-C on `npm start` would seem to hang.
 */
import type { FastifyInstance } from 'fastify';

/** How long shutdown waits for requests in flight before it ends every connection. */
export const SHUTDOWN_DRAIN_MS = 10_000;

export async function closeApp(app: FastifyInstance, drainMs = SHUTDOWN_DRAIN_MS): Promise<void> {
  const force = setTimeout(() => app.server.closeAllConnections(), drainMs);
  try {
    await app.close();
  } finally {
    clearTimeout(force);
  }
}
