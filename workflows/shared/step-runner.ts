import { ActivityFailure, ApplicationFailure, condition } from '@temporalio/workflow';
import type { StepFailure } from '../contracts';

export interface StepHooks {
  /** A step failed for good: show it (stage, search attribute, details). */
  onFailure(failure: StepFailure): Promise<void>;
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
  let failing = 0;

  async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
    for (;;) {
      const generation = retryGeneration;
      try {
        return await run();
      } catch (err) {
        // A regular activity's failure arrives as ActivityFailure with the cause inside; a local activity's
        // non-retryable failure can arrive as the ApplicationFailure itself.
        if (!(err instanceof ActivityFailure) && !(err instanceof ApplicationFailure)) throw err;
        const cause = err instanceof ActivityFailure ? err.cause : err;
        failing++;
        await hooks.onFailure({
          step: name,
          errorType:
            cause instanceof ApplicationFailure ? (cause.type ?? 'ApplicationFailure') : (cause?.name ?? 'Error'),
          message: cause?.message ?? err.message,
          at: new Date().toISOString(),
        });
        await condition(() => retryGeneration > generation);
        failing--;
        await hooks.onRetry(name);
      }
    }
  }

  return {
    step,
    /** True while at least one step waits for an operator. */
    get waiting(): boolean {
      return failing > 0;
    },
    requestRetry(): void {
      retryGeneration++;
    },
  };
}
