import type { z } from 'zod';
import { ExternalSystemError, type ExternalErrorKind } from '../../activities/errors';

/** Maps an HTTP status from an external system to an error kind (429 and 5xx are transient). */
export function kindForHttpStatus(status: number): ExternalErrorKind {
  if (status === 404) return 'not-found';
  if (status === 408 || status === 429 || status >= 500) return 'transient';
  if (status === 400 || status === 422) return 'validation';
  return 'rejected';
}

interface ErrorLike {
  name?: unknown;
  message: string;
  code?: unknown;
  cause?: unknown;
}

/**
 * Duck-typed rather than `instanceof Error`: fetch's errors come from Node's own realm, which is not the realm of code
 * run inside a vm context (jest), so instanceof would miss them there.
 */
export function errorLike(value: unknown): ErrorLike | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const message = (value as { message?: unknown }).message;
  return typeof message === 'string' ? (value as ErrorLike) : undefined;
}

/** fetch() wraps the socket error as `cause`: `ECONNREFUSED`, `ECONNRESET`, `UND_ERR_SOCKET` (other side closed). */
export function describeNetworkError(err: unknown): string {
  const parts: string[] = [];
  let current = errorLike(err);
  for (let depth = 0; current && depth < 4; depth++) {
    parts.push(typeof current.code === 'string' ? `${current.code} ${current.message}` : current.message);
    current = errorLike(current.cause);
  }
  return parts.length > 0 ? parts.join(' <- ') : String(err);
}

/**
 * A 2xx answer whose body is not what the vendor documents: retrying would get the same answer, so 'validation'
 * (OWASP API10, docs/reliability.md#retry-classification). `label` prefixes the message (e.g. "SAP sap-sim"); at
 * most `maxIssues` zod issues are listed.
 */
export function malformedResponseError(
  system: string,
  label: string,
  operation: string,
  status: number,
  problem: string | z.ZodError,
  maxIssues = Infinity,
): ExternalSystemError {
  const why =
    typeof problem === 'string'
      ? problem
      : problem.issues
          .slice(0, maxIssues)
          .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
          .join('; ');
  return new ExternalSystemError(
    system,
    'validation',
    `${label} ${operation}: malformed response (HTTP ${status}): ${why}`,
    status,
  );
}
