import { z } from 'zod';
import { describeNetworkError, errorLike, kindForHttpStatus, malformedResponseError } from '../errors';
import { ExternalSystemError, type ExternalErrorKind } from '../../../activities/errors';

/**
 * Everything the SAP connector throws is an ExternalSystemError whose `kind` decides Temporal's retry: only
 * `transient` is retried. Messages name the system, the operation, the HTTP status and SAP's message text; they never
 * carry credentials, cookies or the CSRF token.
 */

/**
 * SAP answers business refusals with HTTP 400, the same status as a malformed request, so the ABAP messages decide.
 * M7/021 "Deficit of … stock" (recalled standard message); ZHFS_SIM/010 "notification completed" is the in-repo
 * simulator's code for a refusal whose real message number is not verified (infra/simulators/sap-s4/README.md).
 */
const BUSINESS_REJECTION_CODES: ReadonlySet<string> = new Set(['M7/021', 'ZHFS_SIM/010']);

/** Gateway's "No service found for namespace …, name …, version …": the service is not registered or not active. */
export const SERVICE_NOT_ACTIVE = '/IWFND/MED/170';

/** OData V4 `@Common.numericSeverity`: 1 success, 2 info, 3 warning, 4 error. */
const V4_SEVERITY: Record<number, SapMessage['severity']> = { 1: 'success', 2: 'info', 3: 'warning', 4: 'error' };

const Detail = z.looseObject({
  code: z.string().optional().catch(undefined),
  message: z.string().optional().catch(undefined),
  severity: z.string().optional().catch(undefined),
  '@Common.numericSeverity': z.number().optional().catch(undefined),
});
const Details = z.array(Detail).optional().catch(undefined);

/** V2 (`message.value`, `innererror.errordetails`) and V4 (`message` as text, `details`) error bodies. */
const SapErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.union([z.object({ value: z.string() }), z.string()]),
    details: Details,
    innererror: z.looseObject({ errordetails: Details }).optional().catch(undefined),
  }),
});

export interface SapMessage {
  code?: string;
  message?: string;
  severity?: 'error' | 'warning' | 'info' | 'success';
}

export interface SapErrorDetail extends SapMessage {
  /** The messages SAP collected while processing (`errordetails` in V2, `details` in V4); absent when none. */
  details?: SapMessage[];
}

function toMessage(d: z.infer<typeof Detail>): SapMessage {
  const numeric = d['@Common.numericSeverity'];
  const severity = numeric !== undefined ? V4_SEVERITY[numeric] : d.severity?.toLowerCase();
  return {
    ...(d.code ? { code: d.code } : {}),
    ...(d.message ? { message: d.message } : {}),
    ...(severity === 'error' || severity === 'warning' || severity === 'info' || severity === 'success'
      ? { severity }
      : {}),
  };
}

/** Reads SAP's error body (OData V2 or V4), or the first line of a plain-text body. */
export function parseSapError(text: string): SapErrorDetail {
  try {
    const json: unknown = JSON.parse(text);
    const parsed = SapErrorBody.safeParse(json);
    if (parsed.success) {
      const { code, message, details, innererror } = parsed.data.error;
      const collected = [...(innererror?.errordetails ?? []), ...(details ?? [])].map(toMessage);
      return {
        code,
        message: typeof message === 'string' ? message : message.value,
        ...(collected.length > 0 ? { details: collected } : {}),
      };
    }
    const loose = json as { error?: unknown };
    if (typeof loose?.error === 'string') return { message: loose.error };
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

/** A detail without a severity counts as an error: SAP marks info and warnings, and a refusal must not be missed. */
const isError = (m: SapMessage) => m.severity === undefined || m.severity === 'error';

/** The top-level code and the code of every error detail: a generic top-level message can hide the real reason. */
function errorCodes(error: SapErrorDetail): string[] {
  const details = (error.details ?? []).filter(isError).map((d) => d.code);
  return [error.code, ...details].filter((c): c is string => c !== undefined);
}

/**
 * The message that says why: the first error detail other than the top-level message itself and Gateway's exception
 * class entries (`/IWBEP/CX_…`), else the top-level message.
 */
export function mostSpecificMessage(error: SapErrorDetail): SapMessage {
  const specific = (error.details ?? []).find(
    (d) => isError(d) && d.message && d.code !== error.code && !d.code?.startsWith('/IWBEP/CX_'),
  );
  return specific ?? error;
}

/**
 * A service that is not active is `rejected`: nothing in the request is wrong (not `validation`), and retrying cannot
 * help until an administrator activates the service in SAP Gateway or the connector names the right version (not
 * `transient`, which would spend the retry budget and hide the cause). The step parks and is retried by an operator.
 */
export function kindForSapError(status: number, error: SapErrorDetail): ExternalErrorKind {
  if (error.code === SERVICE_NOT_ACTIVE) return 'rejected';
  if (status >= 400 && status < 500 && errorCodes(error).some((c) => BUSINESS_REJECTION_CODES.has(c))) {
    return 'rejected';
  }
  return kindForHttpStatus(status);
}

function describe(error: SapErrorDetail): string {
  if (error.code === SERVICE_NOT_ACTIVE) {
    return (
      ` ${SERVICE_NOT_ACTIVE}: the OData service is not active on this SAP system (${error.message ?? ''});` +
      ' activate it in SAP Gateway or correct the service name or version, then retry the step'
    );
  }
  const specific = mostSpecificMessage(error);
  const code = specific.code ? ` ${specific.code}` : '';
  const message = specific.message ? `: ${specific.message.slice(0, 300)}` : '';
  const top = specific !== error && error.code ? ` (${error.code}: ${(error.message ?? '').slice(0, 100)})` : '';
  return `${code}${message}${top}`;
}

/**
 * A non-2xx answer: 429/5xx transient; 400/422 validation unless one of SAP's error messages is a business refusal;
 * 404 not-found; other 4xx rejected. The message shows the most specific of SAP's messages.
 */
export function sapHttpError(system: string, operation: string, status: number, bodyText: string): ExternalSystemError {
  const error = parseSapError(bodyText);
  return new ExternalSystemError(
    system,
    kindForSapError(status, error),
    `SAP ${system} ${operation}: HTTP ${status}${describe(error)}`,
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
