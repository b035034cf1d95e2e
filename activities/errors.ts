/**
 * The error vocabulary the ports speak. Connectors (infra/connectors) throw these; the activity boundary
 * (boundary.ts) turns them into Temporal's retry decision, so both sides import them from here, next to the ports.
 */

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

/** Holdfast's own configuration cannot serve the request (an unknown site, a missing connector): never retried. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The intent ledger holds another request under this idempotency key (activities/ports.ts `IntentLedger`): the caller
 * derived one key for two different creates. Never retried: every attempt would meet the same record.
 */
export class IntentConflictError extends Error {
  override readonly name = 'IntentConflictError';
  constructor(
    readonly key: string,
    /** The step of the intent recorded first under the key. */
    readonly step: string,
  ) {
    super(`idempotency key ${key} is already recorded for another request (${step}): one key must name one create`);
  }
}
