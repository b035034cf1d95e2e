import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES, type ActivityPreset } from './contracts';

/** A named preset from temporal.yaml as Temporal activity options; business rejections are never retried. */
export function activityOptions(preset: ActivityPreset): ActivityOptions {
  return {
    startToCloseTimeout: preset.startToCloseTimeout,
    ...(preset.scheduleToCloseTimeout ? { scheduleToCloseTimeout: preset.scheduleToCloseTimeout } : {}),
    retry: {
      initialInterval: preset.retry.initialInterval,
      backoffCoefficient: preset.retry.backoffCoefficient,
      maximumInterval: preset.retry.maximumInterval,
      ...(preset.retry.maximumAttempts ? { maximumAttempts: preset.retry.maximumAttempts } : {}),
      nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES,
    },
  };
}

/**
 * Local activities for short idempotent calls on the containment path (Holdfast's own PostgreSQL writes, the MES and
 * ERP containment postings): they run inside the workflow task on the same worker, so they add no server round trip
 * and no history events beyond a marker.
 */
export function localActivityOptions(preset: ActivityPreset): LocalActivityOptions {
  const remote = activityOptions(preset);
  return { startToCloseTimeout: preset.startToCloseTimeout, ...(remote.retry ? { retry: remote.retry } : {}) };
}
