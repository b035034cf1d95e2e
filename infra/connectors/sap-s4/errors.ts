import { z } from 'zod';
import { describeNetworkError, errorLike, kindForHttpStatus, malformedResponseError } from '../errors';
import { ExternalSystemError, type ExternalErrorKind } from '../../../activities/errors';

/**
 * Everything the SAP connector throws is an ExternalSystemError whose `kind` decides Temporal's retry: only
 * `transient` is retried. Messages name the system, the operation, the HTTP status and SAP's message text; they never
 * carry credentials, cookies or the CSRF token.
 */

/**
 * SAP answers business refusals with HTTP 400, the same status as a malformed request, so the ABAP message decides.
 * M7/021 "Deficit of … stock" (recalled standard message); ZHFS_SIM/010 "notification completed" is the in-repo
 * simulator's code for a refusal whose real message number is not verified (infra/simulators/sap-s4/README.md).
 */
const BUSINESS_REJECTION_CODES: ReadonlySet<string> = new Set(['M7/021', 'ZHFS_SIM/010']);

const SapErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.union([z.object({ value: z.string() }), z.string()]),
  }),
});

export interface SapErrorDetail {
  code?: string;
  message?: string;
}

/** Reads SAP Gateway's `{"error":{"code","message":{"value"}}}`, or the first line of a plain-text body. */
export function parseSapError(text: string): SapErrorDetail {
  try {
    const parsed = SapErrorBody.safeParse(JSON.parse(text));
    if (parsed.success) {
      const { code, message } = parsed.data.error;
      return { code, message: typeof message === 'string' ? message : message.value };
    }
    const loose = JSON.parse(text) as { error?: unknown };
    if (typeof loose.error === 'string') return { message: loose.error };
  } catch {
    // Not JSON: SAP answers CSRF and logon failures in plain text or HTML.
  }
  const firstLine =
    text
      .replace(/<[^>]*>/g, ' ')
      .trim()
      .split('\n')[0] ?? '';
  return firstLine ? { message: firstLine.slice(0, 200) } : {};
}

export function kindForSapError(status: number, code: string | undefined): ExternalErrorKind {
  if (status === 400 && code !== undefined && BUSINESS_REJECTION_CODES.has(code)) return 'rejected';
  return kindForHttpStatus(status);
}

/** A non-2xx answer: 429/5xx transient, 400/422 validation (unless SAP's message is a business refusal), 404 not-found, other 4xx rejected. */
export function sapHttpError(system: string, operation: string, status: number, bodyText: string): ExternalSystemError {
  const detail = parseSapError(bodyText);
  const code = detail.code ? ` ${detail.code}` : '';
  const message = detail.message ? `: ${detail.message.slice(0, 300)}` : '';
  return new ExternalSystemError(
    system,
    kindForSapError(status, detail.code),
    `SAP ${system} ${operation}: HTTP ${status}${code}${message}`,
    status,
  );
}

/**
 * No usable HTTP answer: refused or reset connections, a response dropped after SAP committed ("socket hang up",
 * undici's "other side closed"), DNS failures and our own timeout. All are transient: the change may or may not have
 * been applied, which is why every create looks its idempotency token up before posting again.
 */
export function sapTransportError(
  system: string,
  operation: string,
  err: unknown,
  timeoutMs: number,
): ExternalSystemError {
  if (err instanceof ExternalSystemError) return err;
  const name = errorLike(err)?.name ?? '';
  const why =
    name === 'TimeoutError'
      ? `no response within ${timeoutMs} ms`
      : name === 'AbortError'
        ? 'aborted because the connector is closing'
        : `network error (${describeNetworkError(err)})`;
  return new ExternalSystemError(system, 'transient', `SAP ${system} ${operation}: ${why}`, undefined, { cause: err });
}

/** A 2xx answer that is not the OData V2 JSON the service documents: retrying would get the same (OWASP API10). */
export function sapMalformedResponse(
  system: string,
  operation: string,
  status: number,
  problem: string | z.ZodError,
): ExternalSystemError {
  return malformedResponseError(system, `SAP ${system}`, operation, status, problem, 3);
}
