import { ActivityFailure, ApplicationFailure, condition } from '@temporalio/workflow';
import type { RetryFailedStepResult, StepFailure } from '../contracts';

export interface StepHooks {
  /**
   * A step failed for good: show it (stage, search attribute, details). `parked` is every step waiting for the
   * operator now, this one included, in the order they failed: parallel steps can fail together, and one retry
   * runs all of them again.
   */
  onFailure(failure: StepFailure, parked: readonly StepFailure[]): Promise<void>;
  /** An operator asked for a retry and the step is about to run again. */
  onRetry(step: string): Promise<void>;
}

/**
 * Runs workflow steps so that a step that fails for good (a non-retryable business error, or retries exhausted)
 * does not fail the workflow: it parks in a visible "needs attention" state until an operator fixes the cause
 * and sends the retryFailedStep update, then runs again with the same idempotency key.
 */
export function createStepRunner(hooks: StepHooks) {
  let retryGeneration = 0;
  // Keyed by attempt, not by step name: the same step may be parked for two parts at once.
  const parked = new Map<number, StepFailure>();
  let parkings = 0;

  /** `part`: the part the step is for, so that an operator sees whose step waits; absent for the lot's own steps. */
  async function step<T>(name: string, run: () => Promise<T>, part?: { eventId: string; partId: string }): Promise<T> {
    for (;;) {
      const generation = retryGeneration;
      try {
        return await run();
      } catch (err) {
        // A regular activity's failure arrives as ActivityFailure with the cause inside; a local activity's
        // non-retryable failure can arrive as the ApplicationFailure itself.
        if (!(err instanceof ActivityFailure) && !(err instanceof ApplicationFailure)) throw err;
        const cause = err instanceof ActivityFailure ? err.cause : err;
        const failure: StepFailure = {
          step: name,
          errorType:
            cause instanceof ApplicationFailure ? (cause.type ?? 'ApplicationFailure') : (cause?.name ?? 'Error'),
          message: cause?.message ?? err.message,
          at: new Date().toISOString(),
          ...(part ? { eventId: part.eventId, partId: part.partId } : {}),
        };
        parked.set(++parkings, failure);
        await hooks.onFailure(failure, [...parked.values()]);
        await condition(() => retryGeneration > generation);
        await hooks.onRetry(name);
      }
    }
  }

  return {
    step,
    /** True while at least one step waits for an operator. */
    get waiting(): boolean {
      return parked.size > 0;
    },
    /** Releases every parked step to run again; the answer names them, in the order they failed. */
    requestRetry(): RetryFailedStepResult {
      const steps = [...parked.values()].map((f) => f.step);
      parked.clear();
      retryGeneration++;
      return { steps };
    },
  };
}

/** The parked steps as an operator reads them in the Web UI's details: each step and its error. */
export function describeParked(parked: readonly StepFailure[]): string {
  return parked
    .map((f) => `Step \`${f.step}\`${f.partId ? ` (part \`${f.partId}\`)` : ''} failed: ${f.message}`)
    .join('\n\n');
}
