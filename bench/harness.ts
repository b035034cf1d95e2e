/**
 * What every benchmark does around its measurement: stop what it started in reverse order (also when it fails or is
 * interrupted), check that every child process has exited, and print its JSON summary as the very last line.
 *
 * The summary is written only after the clean-up, and the process exits right after it, so nothing a stopping
 * process prints can follow it. Signal handlers stay in place until the end: a Ctrl-C or `timeout` during the
 * clean-up waits for that clean-up instead of killing this process with Node's default action, which skips the
 * 'exit' hooks that stop child processes and would leave them (each in a process group of its own) running.
 */
import { issueLocalToken } from '../infra/identity/authenticate';
import type { SigningKey } from '../infra/identity/signing-key';
import { stopWhenNpmIsGone } from '../infra/local/orphan-watch';
import { ChildWatch } from './children';

export interface Bench {
  /** Progress, on stderr. */
  say(msg: string): void;
  /** `stop` runs at the end, the last registered first: also after a failure or an interrupt. */
  onCleanUp(what: string, stop: () => Promise<unknown>): void;
}

export interface BenchOutcome {
  summary: Record<string, unknown>;
  /** Non-zero when the run measured a failure (a missing hold, a write short of its count); the summary says which. */
  exitCode?: number;
}

const EXIT_ON_SIGNAL: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Runs `measure` as benchmark `name` and exits the process: 0, the outcome's exit code, 1 on failure, 130/143. */
export function runBenchmark(name: string, measure: (bench: Bench) => Promise<BenchOutcome>): void {
  const say = (msg: string) => void process.stderr.write(`[bench:${name}] ${msg}\n`);
  const cleanups: { what: string; stop: () => Promise<unknown> }[] = [];
  const children = new ChildWatch();
  let cleaning: Promise<void> | undefined;
  const cleanUp = () => {
    cleaning ??= (async () => {
      children.note();
      // Requests still in flight fail as their servers stop: expected now, and no reason to die before cleaning up.
      process.on('unhandledRejection', () => undefined);
      for (const { what, stop } of cleanups.splice(0).reverse()) {
        await stop().catch((err: unknown) =>
          say(`stopping ${what}: ${err instanceof Error ? err.message : String(err)}`),
        );
      }
      await children.killLeftovers(say);
    })();
    return cleaning;
  };
  const exit = (code: number, lastLine?: string) => {
    if (lastLine === undefined) process.exit(code);
    process.stdout.write(`${lastLine}\n`, () => process.exit(code));
  };

  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      // A second signal: exit now; the 'exit' hooks of infra/local/managed-process still kill every child's group.
      say(`${signal} again: exiting now`);
      process.exit(EXIT_ON_SIGNAL[signal] ?? 1);
    }
    interrupted = true;
    say(`${signal}: stopping what the benchmark started`);
    void cleanUp().finally(() => exit(EXIT_ON_SIGNAL[signal] ?? 1));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  stopWhenNpmIsGone(onSignal);

  const bench: Bench = { say, onCleanUp: (what, stop) => void cleanups.push({ what, stop }) };
  measure(bench).then(
    async (outcome) => {
      await cleanUp();
      if (interrupted) return;
      exit(outcome.exitCode ?? 0, JSON.stringify(outcome.summary));
    },
    async (err: unknown) => {
      // Interrupted, the measurement fails as what it uses stops: that is the interrupt, already reported.
      if (interrupted) return;
      say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      await cleanUp();
      exit(1);
    },
  );
}

/** `Bearer …` for a day-long integrator token signed with `signingKey`: every benchmark side pays for the access check. */
export async function integratorAuthorization(signingKey: SigningKey): Promise<string> {
  const token = await issueLocalToken(
    signingKey,
    {
      username: 'bench',
      displayName: 'bench',
      roles: ['integrator'],
      sites: 'all',
      disabled: false,
      lockedUntil: null,
    },
    24 * 3600,
  );
  return `Bearer ${token}`;
}

/** A command-line option (parseArgs' `values`) as an integer ≥ `min`; anything else stops the benchmark, naming it. */
export function integerOption(values: Record<string, unknown>, name: string, min: number): number {
  const text = values[name];
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`--${name} must be an integer ≥ ${min}, got "${String(text)}"`);
  }
  return value;
}
