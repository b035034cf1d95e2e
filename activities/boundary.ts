import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, type ErrorTypeName } from '../workflows/contracts';
import { ConfigError, ExternalSystemError, IntentConflictError, type ExternalErrorKind } from './errors';

const NON_RETRYABLE: Record<Exclude<ExternalErrorKind, 'transient'>, ErrorTypeName> = {
  validation: ErrorType.Validation,
  rejected: ErrorType.BusinessRejection,
  'not-found': ErrorType.NotFound,
};

/**
 * The activity boundary: connector errors are classified here, once, into Temporal's retry decision.
 * Transient faults stay plain errors (retried with the preset's backoff); everything else becomes a
 * non-retryable ApplicationFailure whose type the workflow turns into a visible "needs attention" state.
 */
export async function atBoundary<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw classify(operation, err);
  }
}

export function classify(operation: string, err: unknown): Error {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ConfigError) return configurationFailure(`${operation}: ${err.message}`);
  if (err instanceof IntentConflictError) {
    return ApplicationFailure.create({
      message: `${operation}: ${err.message}`,
      type: ErrorType.Validation,
      nonRetryable: true,
      details: [{ idempotencyKey: err.key, step: err.step }],
      cause: err,
    });
  }
  if (err instanceof ExternalSystemError) {
    if (err.kind === 'transient') return err;
    return ApplicationFailure.create({
      message: `${operation}: ${err.message}`,
      type: NON_RETRYABLE[err.kind],
      nonRetryable: true,
      details: [{ system: err.system, kind: err.kind, httpStatus: err.httpStatus ?? null }],
      cause: err,
    });
  }
  return err instanceof Error ? err : new Error(String(err));
}

export function configurationFailure(message: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type: ErrorType.Configuration, nonRetryable: true });
}

/**
 * Test-only crash points (docs/reliability.md#crash-points): with HOLDFAST_CRASH_AT=<name> the worker process dies
 * with SIGKILL at the named point (most right after a side effect, before Temporal hears about it — the window where
 * duplicates are born).
 */
export function crashPoint(name: string): void {
  if (process.env.HOLDFAST_CRASH_AT === name) process.kill(process.pid, 'SIGKILL');
}
