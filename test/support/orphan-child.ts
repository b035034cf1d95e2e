/**
 * Run by test/unit/orphan-watch.test.ts under a shell that exits at once: prints `stopped <signal>` when the watch
 * fires, or `still running` after two seconds if it does not.
 */
import { stopWhenNpmIsGone } from '../../infra/local/orphan-watch';

const done = (line: string) => {
  process.stdout.write(`${line}\n`);
  process.exit(0);
};
stopWhenNpmIsGone((signal) => done(`stopped ${signal}`), { intervalMs: 50 });
setTimeout(() => done('still running'), 2_000);
