import { stopWhenNpmIsGone } from '../infra/local/orphan-watch';

/**
 * Stopped from outside (Ctrl-C, a timeout, npm killed), a benchmark stops what it started (PostgreSQL, Temporal,
 * brokers, simulators) instead of leaving them running. Returns the function that removes the handlers.
 */
export function cleanUpOnInterrupt(cleanUp: () => Promise<void>, say: (msg: string) => void): () => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // `timeout` signals npm's whole process group, and npm then exits: both paths arrive here, once is enough.
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping what the benchmark started`);
    // Requests still in flight fail as their servers stop: expected now, and no reason to die before cleaning up.
    process.on('unhandledRejection', () => undefined);
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const unwatch = stopWhenNpmIsGone(onSignal);
  return () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    unwatch();
  };
}
