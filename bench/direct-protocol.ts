/** How bench:latency drives its direct baseline's process (bench/direct-baseline.ts) over the control port. */
import type { PlannedPart } from './plant-data';

/** Printed by the baseline's process once its API app, connectors and control port are up. */
export const DIRECT_READY_LINE = 'direct-baseline ready';

/** POST /runs: a stream of `parts`, the i-th due at t0Ms + offsetMs + i / perSecond. */
export interface DirectRunRequest {
  t0Ms: number;
  perSecond: number;
  offsetMs: number;
  parts: PlannedPart[];
}

/** GET /runs/last. */
export interface DirectRunStatus {
  state: 'idle' | 'running' | 'done';
  /** Parts whose ingest or direct calls failed (their steps then never appear, and the benchmark reports them). */
  failures: { eventId: string; error: string }[];
  /** Per part: how late the process started it after its due instant, ms. */
  sendLagMs: number[];
  /** Per part: due → the API's answer, ms. */
  ingestMs: number[];
}
