/**
 * A steady stream of events on an open loop, and latency by its schedule. Each event has a due instant fixed before the
 * run starts; latency is measured from there, never from when the generator got round to sending it. A generator that
 * falls behind (its event loop busy, the machine saturated) would otherwise start late clocks and report the shorter
 * latencies of events it sent late: coordinated omission.
 */

/** The i-th event's due instant (ms since the epoch): t0 + offset + i / rate. */
export function dueAt(t0Ms: number, i: number, perSecond: number, offsetMs = 0): number {
  return t0Ms + offsetMs + (i * 1000) / perSecond;
}

/** From due to done, ms; +Infinity when it never got done. A late send never shortens it. */
export function latencyFromDue(dueMs: number, doneMs: number | undefined): number {
  return doneMs === undefined ? Infinity : doneMs - dueMs;
}

/** The latest of several instants, or undefined when any is missing (a step that never happened). */
export function latestOf(...instants: (number | undefined)[]): number | undefined {
  let latest = -Infinity;
  for (const t of instants) {
    if (t === undefined) return undefined;
    latest = Math.max(latest, t);
  }
  return latest;
}

export interface OpenLoopOutcome {
  /** Per event: how late the generator started it after its due instant, ms (0 when on time). */
  sendLagMs: number[];
}

/**
 * Calls `fn(i, due)` for i in [0, n) at its due instant (`dueAt`, wall clock). Open loop: a call that is slow does not
 * delay later ones, and a generator that is late sends at once without moving later due instants. Resolves when every
 * call has settled; `fn` must not throw (record its failure instead).
 */
export async function openLoop(
  n: number,
  perSecond: number,
  t0Ms: number,
  fn: (i: number, dueMs: number) => Promise<void>,
  offsetMs = 0,
): Promise<OpenLoopOutcome> {
  const inFlight: Promise<void>[] = [];
  const sendLagMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const due = dueAt(t0Ms, i, perSecond, offsetMs);
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sendLagMs.push(Math.max(0, Date.now() - due));
    inFlight.push(fn(i, due));
  }
  await Promise.all(inFlight);
  return { sendLagMs };
}
