/**
 * Keeps `npm start`'s children running. A child that exits on its own is started again after a delay that doubles
 * with each crash in a row (1 s up to 30 s, back to 1 s once it has stayed up for 60 s); only a child that keeps
 * crashing (5 exits within 2 minutes) is given up on, and the caller then stops everything. The others never notice:
 * each child is watched on its own.
 *
 * Processes are not started here: the caller hands in a `launch` function that starts the child and resolves once it
 * passes its readiness check. The clock is injected, so the policy is tested without real waiting.
 */
import { describeExit, type ProcessExit } from './managed-process';

export interface RestartPolicyOptions {
  /** Delay before the first restart of a crash series, ms (1 s); doubled for each further crash in a row. */
  initialDelayMs: number;
  /** The longest delay, ms (30 s). */
  maxDelayMs: number;
  /** Up (ready) this long, ms (60 s), a child is healthy again: its next crash starts a new series. */
  stableAfterMs: number;
  /** This many unexpected exits (5) within `crashLoopWindowMs` (2 min) give up on the child. */
  crashLoopLimit: number;
  crashLoopWindowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  stableAfterMs: 60_000,
  crashLoopLimit: 5,
  crashLoopWindowMs: 120_000,
};

export type RestartDecision =
  { action: 'restart'; delayMs: number; restart: number } | { action: 'give-up'; crashes: number; windowMs: number };

/** One child's restart policy, as a pure function of the times it was up and exited (ms on one clock). */
export class RestartPolicy {
  private readonly opts: RestartPolicyOptions;
  private crashes: number[] = [];
  private inARow = 0;
  private restartCount = 0;
  private upSince: number | undefined;

  constructor(opts: Partial<RestartPolicyOptions> = {}) {
    this.opts = { ...DEFAULT_RESTART_POLICY, ...opts };
  }

  /** The child passed its readiness check at `now`. */
  up(now: number): void {
    this.upSince = now;
  }

  /** The child exited (or failed to become ready) at `now`, unasked. */
  exited(now: number): RestartDecision {
    const { initialDelayMs, maxDelayMs, stableAfterMs, crashLoopLimit, crashLoopWindowMs } = this.opts;
    if (this.upSince !== undefined && now - this.upSince >= stableAfterMs) this.inARow = 0;
    this.upSince = undefined;
    this.crashes = this.crashes.filter((at) => now - at < crashLoopWindowMs);
    this.crashes.push(now);
    if (this.crashes.length >= crashLoopLimit) {
      return { action: 'give-up', crashes: this.crashes.length, windowMs: crashLoopWindowMs };
    }
    const delayMs = Math.min(initialDelayMs * 2 ** this.inARow, maxDelayMs);
    this.inARow += 1;
    this.restartCount += 1;
    return { action: 'restart', delayMs, restart: this.restartCount };
  }

  /** Restarts decided so far. */
  restarts(): number {
    return this.restartCount;
  }
}

/** A started child, as far as supervision needs it. */
export interface SupervisedProcess {
  readonly pid: number;
  readonly exited: Promise<ProcessExit>;
  outputTail: () => string;
  stop: () => Promise<unknown>;
}

/** Starts the child again; resolves once it is ready, rejects (having stopped it) when it is not. */
export type Launch = (signal: AbortSignal) => Promise<SupervisedProcess>;

/** Thrown by a launch whose child did not become ready: the exit, when it exited, and its last output. */
export class LaunchError extends Error {
  override readonly name = 'LaunchError';
  constructor(
    message: string,
    readonly exit: ProcessExit | undefined,
    readonly outputTail: string,
  ) {
    super(message);
  }
}

export interface Clock {
  now: () => number;
  /** Runs `fn` after `ms`; the returned function cancels it. */
  after: (ms: number, fn: () => void) => () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** A child given up on: it kept crashing. */
export interface CrashLoop {
  name: string;
  /** Its last exit; absent when the last attempt failed its readiness check without exiting (a timeout). */
  exit?: ProcessExit;
  crashes: number;
  windowMs: number;
  /** Its last output lines, oldest first. */
  outputTail: string;
  /** One line for the operator. */
  message: string;
}

export type ChildState = 'running' | 'waiting' | 'starting' | 'given-up' | 'stopped';

export interface ChildStatus {
  name: string;
  state: ChildState;
  /** The running process's pid; absent while waiting, starting, or after the end. */
  pid?: number;
  restarts: number;
}

export interface SupervisorOptions {
  policy?: Partial<RestartPolicyOptions>;
  clock?: Clock;
  log?: (line: string) => void;
  /** Called once per child that keeps crashing; the caller decides to stop everything. */
  onCrashLoop: (loop: CrashLoop) => void;
}

interface Supervised {
  name: string;
  launch: Launch;
  policy: RestartPolicy;
  state: ChildState;
  current?: SupervisedProcess;
  cancelWait?: () => void;
  abortLaunch?: AbortController;
  launching?: Promise<void>;
}

export class Supervisor {
  private readonly children = new Map<string, Supervised>();
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private halted = false;

  constructor(private readonly opts: SupervisorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? (() => undefined);
  }

  /** Watches `proc`, already started and ready, and starts it again with `launch` whenever it exits unasked. */
  supervise(name: string, proc: SupervisedProcess, launch: Launch): void {
    if (this.children.has(name)) throw new Error(`${name} is supervised already`);
    const child: Supervised = { name, launch, policy: new RestartPolicy(this.opts.policy), state: 'starting' };
    this.children.set(name, child);
    if (this.halted) {
      child.state = 'stopped';
      return;
    }
    this.watch(child, proc);
  }

  /** Restarts so far, by child name (for a metric). */
  restarts(): Record<string, number> {
    return Object.fromEntries([...this.children.values()].map((c) => [c.name, c.policy.restarts()]));
  }

  /** Each child's state; its pid only while it runs. */
  status(): ChildStatus[] {
    return [...this.children.values()].map((c) => ({
      name: c.name,
      state: c.state,
      ...(c.current && c.state === 'running' ? { pid: c.current.pid } : {}),
      restarts: c.policy.restarts(),
    }));
  }

  /**
   * No restarts from now on (Ctrl-C, or everything stopping because of a crash loop): waiting restarts are cancelled
   * and restarts under way are abandoned. Call before stopping the children, so none comes back meanwhile.
   */
  halt(): void {
    this.halted = true;
    for (const child of this.children.values()) {
      child.cancelWait?.();
      child.cancelWait = undefined;
      child.abortLaunch?.abort();
    }
  }

  /** Halts, then stops `name`'s process, waiting for an abandoned restart to have stopped its own. */
  async stop(name: string): Promise<void> {
    this.halt();
    const child = this.children.get(name);
    if (!child) return;
    await child.launching;
    const proc = child.current;
    child.current = undefined;
    if (child.state !== 'given-up') child.state = 'stopped';
    await proc?.stop();
  }

  private watch(child: Supervised, proc: SupervisedProcess): void {
    child.current = proc;
    child.state = 'running';
    child.policy.up(this.clock.now());
    void proc.exited.then((exit) => {
      if (this.halted || child.current !== proc) return;
      child.current = undefined;
      this.crashed(child, describeExit(exit), exit, proc.outputTail());
    });
  }

  private crashed(child: Supervised, what: string, exit: ProcessExit | undefined, outputTail: string): void {
    const decision = child.policy.exited(this.clock.now());
    if (decision.action === 'give-up') {
      child.state = 'given-up';
      const window = `${decision.windowMs / 1000} s`;
      // Not logged here: the caller reports it, as it stops everything.
      const message = `${child.name} ${what}: ${decision.crashes} crashes within ${window}, not restarting it again`;
      this.opts.onCrashLoop({
        name: child.name,
        ...(exit ? { exit } : {}),
        crashes: decision.crashes,
        windowMs: decision.windowMs,
        outputTail,
        message,
      });
      return;
    }
    this.log(`${child.name} ${what}: restart ${decision.restart} in ${formatDelay(decision.delayMs)}`);
    child.state = 'waiting';
    child.cancelWait = this.clock.after(decision.delayMs, () => {
      child.cancelWait = undefined;
      if (!this.halted) child.launching = this.relaunch(child, decision.restart);
    });
  }

  private async relaunch(child: Supervised, restart: number): Promise<void> {
    child.state = 'starting';
    const abort = new AbortController();
    child.abortLaunch = abort;
    try {
      const proc = await child.launch(abort.signal);
      if (this.halted) {
        await proc.stop();
        return;
      }
      this.log(`${child.name} is back (restart ${restart}, pid ${proc.pid})`);
      this.watch(child, proc);
    } catch (err) {
      if (this.halted) return;
      const failure = err instanceof LaunchError ? err : undefined;
      const reason = firstLine((err as Error).message).replace(`${child.name} `, '');
      const what = `failed to start again (${reason})`;
      this.crashed(child, what, failure?.exit, failure?.outputTail ?? '');
    } finally {
      child.abortLaunch = undefined;
    }
  }
}

function formatDelay(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? text;
}
