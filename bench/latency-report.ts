/**
 * bench:latency's verdict over what the systems recorded: a pure function of the parts sent (with their due instants)
 * and the instants their steps were recorded at, so that no event can drop out of the figures unnoticed.
 */
import { latencyFromDue, latestOf } from './schedule';

export interface SentPart {
  eventId: string;
  partId: string;
  lotId: string;
  /** When the inspection was due by the schedule (ms since the epoch); it is also the inspection's `inspectedAt`. */
  dueMs: number;
}

/** Instants (ms since the epoch) read from each system's own records once the wait is over. */
export interface RecordedSteps {
  /** MES: the lot's hold was created (first hold of the lot). */
  holdAt: ReadonlyMap<string, number>;
  /** MES: the part's work-order quality event was recorded, by part id. */
  qualityEventAt: ReadonlyMap<string, number>;
  /** Holdfast (or the direct baseline): the part's notification item and block are posted, by event id. */
  containedAt: ReadonlyMap<string, number>;
}

export interface LatencyOutcome {
  /** One per lot: its first part's due instant → the lot's hold; +Infinity for a lot whose hold never appeared. */
  holdMs: number[];
  /** One per part: due → the last of hold, quality event and containment; +Infinity when any never happened. */
  allStepsMs: number[];
  /** Lots without a hold when the wait ended, in the order they were due. */
  missingHolds: string[];
  /** Parts (event ids) with a step missing when the wait ended. */
  missingAllSteps: string[];
}

/**
 * Every lot and every part is in the figures: a missing hold or step counts as +Infinity (it sorts after every
 * measured latency, so a percentile that reaches it is infinite) and is listed by id.
 */
export function latencyOutcome(parts: readonly SentPart[], steps: RecordedSteps): LatencyOutcome {
  const firstDue = new Map<string, number>();
  for (const p of parts) firstDue.set(p.lotId, Math.min(p.dueMs, firstDue.get(p.lotId) ?? Infinity));
  const holdMs: number[] = [];
  const missingHolds: string[] = [];
  for (const [lotId, due] of firstDue) {
    const at = steps.holdAt.get(lotId);
    if (at === undefined) missingHolds.push(lotId);
    holdMs.push(latencyFromDue(due, at));
  }
  const allStepsMs: number[] = [];
  const missingAllSteps: string[] = [];
  for (const p of parts) {
    const done = latestOf(
      steps.holdAt.get(p.lotId),
      steps.qualityEventAt.get(p.partId),
      steps.containedAt.get(p.eventId),
    );
    if (done === undefined) missingAllSteps.push(p.eventId);
    allStepsMs.push(latencyFromDue(p.dueMs, done));
  }
  return { holdMs, allStepsMs, missingHolds, missingAllSteps };
}

/** Whether every lot has its hold and every part all its steps. */
export function complete(outcome: LatencyOutcome): boolean {
  return outcome.missingHolds.length === 0 && outcome.missingAllSteps.length === 0;
}
