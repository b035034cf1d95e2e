/**
 * A webhook that takes JSON: what the escalation and recall-notice connectors share. Each POST carries its
 * idempotency key in `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): a webhook cannot be asked whether
 * it has a message already, so a retry after a lost answer POSTs again under the same key, for the receiver to drop.
 * The URL may come from the environment (it often carries a secret) and must then be on an allowed host (OWASP API7);
 * no redirect is followed.
 */
import { z } from 'zod';
import { ConfigError, ExternalSystemError } from '../../activities/errors';
import { resolveEnvRef } from '../config/load';
import { EnvRef } from '../config/schema';
import { redactUrl } from '../local/redact-url';
import type { ConnectorContext } from './define';
import { describeNetworkError, kindForHttpStatus } from './errors';
import { createHttpTransport } from './http-transport';

export const HttpUrl = z.url({ protocol: /^https?$/, error: 'expected an http: or https: URL' });

/** `host` or `host:port` as in a URL's authority, no scheme, path or login: `hooks.example.com`, `10.1.2.3:8080`. */
export const AllowedHost = z.string().refine((entry) => parseAllowedHost(entry) !== undefined, {
  error: 'expected a host name or address, optionally with :port (no scheme, login or path)',
});

/** The fields every JSON webhook connector's config has, beside its `kind`. */
export const jsonWebhookFields = {
  url: z.union([EnvRef, HttpUrl]),
  /** The hosts the webhook may be on (OWASP API7). Required when `url` comes from the environment, which is then
   *  checked against it at connect; a literal `url` admits its own host, and is checked too when this is given. */
  allowedHosts: z.array(AllowedHost).min(1).optional(),
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
};

export interface JsonWebhook {
  /** POSTs `body` as JSON; the HTTP status of a 2xx answer, else an ExternalSystemError classified by the status. */
  post(body: unknown, idempotencyKey: string): Promise<number>;
  /** Reachability, not acceptance: many webhooks answer HEAD with 404 or 405, which still shows the receiver is
   *  there. No answer, or a 5xx, fails. */
  healthCheck(): Promise<string>;
  /** Scheme, host and port of the URL: what may be shown (the path may carry a secret). */
  origin: string;
  close(): Promise<void>;
}

export function openJsonWebhook(
  config: { url: string; allowedHosts?: string[] | undefined; timeoutMs: number },
  ctx: Pick<ConnectorContext, 'name' | 'env'>,
): JsonWebhook {
  const key = `connectors.${ctx.name}.url`;
  const url = resolveEnvRef(config.url, key, ctx.env);
  if (!HttpUrl.safeParse(url).success) throw new ConfigError(`${key}: expected an http: or https: URL`);
  checkAllowedHost(url, config, `connectors.${ctx.name}`);
  const http = createHttpTransport({ timeoutMs: config.timeoutMs, maxResponseBytes: 64 * 1024 });
  const unreachable = (what: string, err: unknown) =>
    new ExternalSystemError(ctx.name, 'transient', `${ctx.name} ${what}: ${describeNetworkError(err)}`, undefined, {
      cause: err,
    });
  const origin = new URL(redactUrl(url)).origin;
  return {
    origin,
    async post(body, idempotencyKey) {
      let status: number;
      let headers: Headers;
      try {
        ({ status, headers } = await http.send({
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
          body: JSON.stringify(body),
        }));
      } catch (err) {
        throw unreachable('webhook unreachable', err);
      }
      // The transport follows no redirect: a webhook that sends the POST elsewhere (an internal address, another
      // tenant) fails for good instead, naming where it pointed.
      if (status >= 300 && status < 400) {
        throw new ExternalSystemError(
          ctx.name,
          'rejected',
          `webhook answered HTTP ${status}, a redirect to ${redirectTarget(url, headers.get('location'))}; redirects are not followed`,
          status,
        );
      }
      if (status < 200 || status >= 300) {
        throw new ExternalSystemError(ctx.name, kindForHttpStatus(status), `webhook answered HTTP ${status}`, status);
      }
      return status;
    },
    async healthCheck() {
      let status: number;
      try {
        ({ status } = await http.send({ method: 'HEAD', url }));
      } catch (err) {
        throw unreachable('health check', err);
      }
      if (status >= 500) {
        throw new ExternalSystemError(ctx.name, 'transient', `${ctx.name} health check: HTTP ${status}`, status);
      }
      return `${origin} answered HEAD with HTTP ${status}`;
    },
    close: async () => http.close(),
  };
}

function parseAllowedHost(entry: string): { hostname: string; port: string | undefined } | undefined {
  let parsed: URL;
  try {
    parsed = new URL(`http://${entry}`);
  } catch {
    return undefined;
  }
  if (parsed.username || parsed.password || parsed.pathname !== '/' || parsed.search || parsed.hash) return undefined;
  if (entry.includes('/') || entry.includes('@')) return undefined;
  // URL drops a port equal to the scheme's default; the entry's own text keeps it.
  const port = /:(\d+)$/.exec(entry)?.[1];
  return { hostname: parsed.hostname, port: port === undefined ? undefined : String(Number(port)) };
}

/** The resolved URL's host against `allowedHosts` (an entry without a port admits any port of its host). */
export function checkAllowedHost(
  url: string,
  config: { url: string; allowedHosts?: string[] | undefined },
  prefix: string,
): void {
  const target = new URL(url);
  if (config.allowedHosts === undefined) {
    if (EnvRef.safeParse(config.url).success) {
      throw new ConfigError(
        `${prefix}.allowedHosts: required when ${prefix}.url comes from the environment (the hosts the webhook may be on)`,
      );
    }
    return;
  }
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  const allowed = config.allowedHosts.some((entry) => {
    const host = parseAllowedHost(entry);
    return host !== undefined && host.hostname === target.hostname && (host.port === undefined || host.port === port);
  });
  if (!allowed) {
    throw new ConfigError(
      `${prefix}.url: host ${target.host} is not in ${prefix}.allowedHosts (${config.allowedHosts.join(', ')})`,
    );
  }
}

/** Where a redirect pointed, as scheme, host and port only: the path of a chat webhook may carry its secret. */
export function redirectTarget(url: string, location: string | null): string {
  if (!location) return '(no Location)';
  try {
    return new URL(location, url).origin;
  } catch {
    return '(an unparseable Location)';
  }
}
