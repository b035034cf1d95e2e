/**
 * The one error every connector throws. `kind` is the classification the activity boundary turns into
 * Temporal's retry decision: only `transient` is retried.
 */
export type ExternalErrorKind = 'transient' | 'validation' | 'rejected' | 'not-found';

export class ExternalSystemError extends Error {
  override readonly name = 'ExternalSystemError';
  constructor(
    readonly system: string,
    readonly kind: ExternalErrorKind,
    message: string,
    readonly httpStatus?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Maps an HTTP status from an external system to an error kind (429 and 5xx are transient). */
export function kindForHttpStatus(status: number): ExternalErrorKind {
  if (status === 404) return 'not-found';
  if (status === 408 || status === 429 || status >= 500) return 'transient';
  if (status === 400 || status === 422) return 'validation';
  return 'rejected';
}
