import type { z } from 'zod';
import { describeNetworkError, errorLike, kindForHttpStatus, malformedResponseError } from '../errors';
import { ExternalSystemError } from '../../../activities/errors';

/** The parts of an RFC 9457 problem body the MES sends with every refusal. */
export interface MesProblemBody {
  code?: string;
  detail?: string;
  title?: string;
}

/**
 * An HTTP refusal: 429 and 5xx are transient, 400/422 validation, 404 not-found, 409 and other 4xx rejected
 * (kindForHttpStatus). The message names the system, the operation, the status and the MES error code.
 */
export function mesHttpError(
  system: string,
  operation: string,
  status: number,
  problem: MesProblemBody | undefined,
): ExternalSystemError {
  const code = problem?.code ? ` ${problem.code}` : '';
  const detail = problem?.detail ?? problem?.title;
  return new ExternalSystemError(
    system,
    kindForHttpStatus(status),
    `${system} ${operation}: HTTP ${status}${code}${detail ? `: ${detail}` : ''}`,
    status,
  );
}

/**
 * No usable HTTP answer: refused or reset connections, a response dropped mid-flight ("socket hang up",
 * undici's "other side closed"), DNS failures and our own timeout. All are transient: the request may or may not
 * have been applied, which is why every create looks its externalReference up before posting again.
 */
export function mesTransportError(
  system: string,
  operation: string,
  err: unknown,
  timeoutMs: number,
): ExternalSystemError {
  if (err instanceof ExternalSystemError) return err;
  const name = errorLike(err)?.name;
  if (name === 'TimeoutError') {
    return new ExternalSystemError(
      system,
      'transient',
      `${system} ${operation}: no response within ${timeoutMs} ms`,
      undefined,
      {
        cause: err,
      },
    );
  }
  if (name === 'AbortError') {
    return new ExternalSystemError(
      system,
      'transient',
      `${system} ${operation}: aborted because the connector is closing`,
      undefined,
      {
        cause: err,
      },
    );
  }
  return new ExternalSystemError(
    system,
    'transient',
    `${system} ${operation}: network error (${describeNetworkError(err)})`,
    undefined,
    { cause: err },
  );
}

/** A 2xx answer whose body is not what the API documents: retrying would get the same answer. */
export function mesMalformedResponse(
  system: string,
  operation: string,
  status: number,
  problem: string | z.ZodError,
): ExternalSystemError {
  return malformedResponseError(system, system, operation, status, problem);
}
