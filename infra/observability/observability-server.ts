/**
 * GET /metrics and GET /health for a process without an HTTP edge of its own (the Temporal worker, the line PLC
 * simulator). Plain node:http: two read-only routes need no framework.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { PROBLEM_CONTENT_TYPE, httpProblem } from '../http/problem-details';
import { type HealthCheck, healthAnswer, runHealthChecks } from './health-checks';

export interface ObservabilityServerOptions {
  host: string;
  /** 0: any free port (tests). */
  port: number;
  registry: Registry;
  health: readonly HealthCheck[];
}

export interface ObservabilityServer {
  /** http://host:port, the port as bound. */
  url: string;
  close(): Promise<void>;
}

export async function startObservabilityServer(opts: ObservabilityServerOptions): Promise<ObservabilityServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = async (): Promise<{ statusCode: number; contentType: string; body: string }> => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return problem(httpProblem(405, 'only GET /metrics and GET /health'));
      }
      if (path === '/metrics') {
        return { statusCode: 200, contentType: opts.registry.contentType, body: await opts.registry.metrics() };
      }
      if (path === '/health') {
        const health = healthAnswer(await runHealthChecks(opts.health));
        return { ...health, body: JSON.stringify(health.body) };
      }
      return problem(httpProblem(404, 'only GET /metrics and GET /health'));
    };
    answer().then(
      ({ statusCode, contentType, body }) => {
        res.writeHead(statusCode, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body);
      },
      () => {
        res.writeHead(500, { 'content-type': PROBLEM_CONTENT_TYPE }).end(JSON.stringify(httpProblem(500)));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // A scraper's keep-alive connection would hold close() open until it times out.
        server.closeIdleConnections();
      }),
  };
}

function problem(body: object & { status: number }): { statusCode: number; contentType: string; body: string } {
  return { statusCode: body.status, contentType: PROBLEM_CONTENT_TYPE, body: JSON.stringify(body) };
}
