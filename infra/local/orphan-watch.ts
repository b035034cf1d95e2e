/**
 * npm does not pass SIGTERM on to a script it runs: `kill <npm>` (a service manager, `timeout`) ends npm and leaves
 * the script running under init, with PostgreSQL, Temporal and the rest still bound to their ports. A process that
 * npm started watches for that: once its parent is gone (it has been re-parented), it stops as if sent SIGTERM.
 *
 * Only under npm (`npm_lifecycle_event` set): run directly, a process may outlive its shell on purpose (`nohup`).
 */
export function stopWhenNpmIsGone(
  stop: (signal: NodeJS.Signals) => void,
  opts: { intervalMs?: number; env?: NodeJS.ProcessEnv } = {},
): () => void {
  if (!(opts.env ?? process.env).npm_lifecycle_event) return () => undefined;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.stderr.write(`npm (pid ${parent}) is gone: stopping as on SIGTERM\n`);
    stop('SIGTERM');
  }, opts.intervalMs ?? 1_000);
  // The watch never keeps the process alive by itself.
  timer.unref();
  return () => clearInterval(timer);
}
