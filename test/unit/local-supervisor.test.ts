import type { ProcessExit } from '../../infra/local/managed-process';
import {
  LaunchError,
  RestartPolicy,
  Supervisor,
  type Clock,
  type CrashLoop,
  type SupervisedProcess,
} from '../../infra/local/supervisor';

const s = 1_000;

/** Time moves only when the test says so; timers fire in order as it passes them. */
function manualClock(): Clock & { advance: (ms: number) => Promise<void>; pending: () => number } {
  let now = 0;
  let timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => now,
    after: (ms, fn) => {
      const timer = { at: now + ms, fn };
      timers.push(timer);
      return () => {
        timers = timers.filter((t) => t !== timer);
      };
    },
    async advance(ms) {
      const until = now + ms;
      await settle();
      for (;;) {
        const due = timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        timers = timers.filter((t) => t !== due);
        now = due.at;
        due.fn();
        await settle();
      }
      now = until;
      await settle();
    },
    pending: () => timers.length,
  };
}

/** Lets promise callbacks (an exit being noticed, a launch resolving) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

let nextPid = 100;
interface FakeProcess extends SupervisedProcess {
  die: (exit?: ProcessExit) => void;
  stops: number;
}

function fakeProcess(output = 'listening'): FakeProcess {
  let die: (exit: ProcessExit) => void = () => undefined;
  const exited = new Promise<ProcessExit>((resolve) => (die = resolve));
  const proc: FakeProcess = {
    pid: nextPid++,
    exited,
    outputTail: () => output,
    stops: 0,
    die: (exit = { code: null, signal: 'SIGKILL' }) => die(exit),
    stop: async () => {
      proc.stops += 1;
      die({ code: 0, signal: null });
      return exited;
    },
  };
  return proc;
}

function delays(policy: RestartPolicy, crashTimes: number[], upAfterMs = 0): (number | 'give-up')[] {
  return crashTimes.map((at) => {
    const d = policy.exited(at);
    if (d.action === 'give-up') return 'give-up';
    policy.up(at + d.delayMs + upAfterMs);
    return d.delayMs;
  });
}

describe('RestartPolicy', () => {
  it('waits 1 s before the first restart and doubles the wait for each crash in a row, up to 30 s', () => {
    const policy = new RestartPolicy({ crashLoopLimit: 100 });
    // Each crash 3 s after the child came back: never stable, never a crash loop (limit raised).
    const times: number[] = [];
    let t = 0;
    for (let i = 0; i < 8; i++) {
      times.push(t);
      t += 40 * s;
    }
    expect(delays(policy, times)).toEqual([1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s]);
    expect(policy.restarts()).toBe(8);
  });

  it('gives up on the fifth exit within two minutes', () => {
    const policy = new RestartPolicy();
    expect(delays(policy, [0, 5 * s, 15 * s, 30 * s, 100 * s])).toEqual([1 * s, 2 * s, 4 * s, 8 * s, 'give-up']);
    expect(policy.restarts()).toBe(4);
  });

  it('does not give up while fewer than five exits fall within any two minutes', () => {
    const policy = new RestartPolicy({ stableAfterMs: 10 * 60 * s });
    // Five exits in 125 s: the first has left the window when the fifth comes.
    const outcome = delays(policy, [0, 40 * s, 80 * s, 119 * s, 125 * s, 165 * s]);
    expect(outcome).not.toContain('give-up');
    expect(delays(new RestartPolicy(), [0, 30 * s, 60 * s, 90 * s, 119.9 * s])).toContain('give-up');
  });

  it('takes the limit and the window as options', () => {
    expect(delays(new RestartPolicy({ crashLoopLimit: 2 }), [0, 100 * s])).toEqual([1 * s, 'give-up']);
    expect(delays(new RestartPolicy({ crashLoopWindowMs: 10 * s }), [0, 20 * s, 40 * s, 60 * s, 80 * s, 100 * s]))
      // One exit per window never loops; the series still doubles as the child is never up for 60 s.
      .toEqual([1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s]);
  });

  it('starts a new series once the child has stayed up for 60 s', () => {
    const policy = new RestartPolicy();
    expect(policy.exited(0)).toMatchObject({ delayMs: 1 * s });
    policy.up(1 * s);
    expect(policy.exited(10 * s)).toMatchObject({ delayMs: 2 * s });
    policy.up(12 * s);
    // 59.9 s up: not yet stable.
    expect(policy.exited(71.9 * s)).toMatchObject({ delayMs: 4 * s });
    policy.up(76 * s);
    // 60 s up: stable, back to 1 s.
    expect(policy.exited(136 * s)).toMatchObject({ action: 'restart', delayMs: 1 * s, restart: 4 });
    // An exit before the restarted child was ready (never up) continues the series.
    expect(policy.exited(138 * s)).toMatchObject({ delayMs: 2 * s });
  });
});

describe('Supervisor', () => {
  function setup(launches: (() => Promise<SupervisedProcess>)[] = []) {
    const clock = manualClock();
    const lines: string[] = [];
    const loops: CrashLoop[] = [];
    const supervisor = new Supervisor({ clock, log: (l) => lines.push(l), onCrashLoop: (l) => loops.push(l) });
    const signals: AbortSignal[] = [];
    let calls = 0;
    const launch = (signal: AbortSignal) => {
      signals.push(signal);
      const next = launches[calls++];
      if (!next) throw new Error('no more launches planned');
      return next();
    };
    return { clock, lines, loops, supervisor, launch, signals, launched: () => calls };
  }

  it('restarts a killed child after the delay, logs one line, counts it, and leaves the others alone', async () => {
    const back = fakeProcess();
    const { clock, lines, supervisor, launch, launched } = setup([async () => back]);
    const api = fakeProcess();
    const worker = fakeProcess();
    supervisor.supervise('api', api, launch);
    supervisor.supervise('worker', worker, () => Promise.reject(new Error('the worker is not restarted here')));

    api.die({ code: null, signal: 'SIGKILL' });
    await settle();
    expect(lines).toEqual(['api killed by SIGKILL: restart 1 in 1 s']);
    expect(supervisor.status().find((c) => c.name === 'api')).toEqual({ name: 'api', state: 'waiting', restarts: 1 });
    await clock.advance(999);
    expect(launched()).toBe(0);
    await clock.advance(1);

    expect(launched()).toBe(1);
    expect(lines[1]).toBe(`api is back (restart 1, pid ${back.pid})`);
    expect(supervisor.status()).toEqual([
      { name: 'api', state: 'running', pid: back.pid, restarts: 1 },
      { name: 'worker', state: 'running', pid: worker.pid, restarts: 0 },
    ]);
    expect(supervisor.restarts()).toEqual({ api: 1, worker: 0 });
    expect(worker.stops).toBe(0);
  });

  it('counts a restart that fails its readiness check as a crash, and waits twice as long', async () => {
    const back = fakeProcess();
    const { clock, lines, supervisor, launch } = setup([
      () =>
        Promise.reject(
          new LaunchError('api exited with code 1 before it was ready\n---', { code: 1, signal: null }, 'EADDRINUSE'),
        ),
      async () => back,
    ]);
    const api = fakeProcess();
    supervisor.supervise('api', api, launch);

    api.die({ code: 1, signal: null });
    await clock.advance(1 * s);
    expect(lines[1]).toBe('api failed to start again (exited with code 1 before it was ready): restart 2 in 2 s');
    await clock.advance(2 * s);

    expect(supervisor.status()[0]).toEqual({ name: 'api', state: 'running', pid: back.pid, restarts: 2 });
  });

  it('stops restarting a child that keeps crashing and reports it with its last output', async () => {
    const planned = Array.from({ length: 4 }, () => fakeProcess('Error: cannot read temporal.yaml'));
    const { clock, loops, supervisor, launch, launched } = setup(planned.map((p) => async () => p));
    const first = fakeProcess();
    supervisor.supervise('worker', first, launch);

    first.die({ code: 7, signal: null });
    await settle();
    for (const proc of planned) {
      await clock.advance(20 * s);
      proc.die({ code: 7, signal: null });
      await settle();
    }

    expect(launched()).toBe(4);
    expect(loops).toEqual([
      {
        name: 'worker',
        exit: { code: 7, signal: null },
        crashes: 5,
        windowMs: 120 * s,
        outputTail: 'Error: cannot read temporal.yaml',
        message: 'worker exited with code 7: 5 crashes within 120 s, not restarting it again',
      },
    ]);
    expect(supervisor.status()[0]).toMatchObject({ state: 'given-up', restarts: 4 });
    await clock.advance(10 * 60 * s);
    expect(launched()).toBe(4);
  });

  it('does not start a child again when stopped during its restart delay (Ctrl-C)', async () => {
    const { clock, supervisor, launch, launched } = setup([async () => fakeProcess()]);
    const api = fakeProcess();
    supervisor.supervise('api', api, launch);
    api.die();
    await settle();
    expect(clock.pending()).toBe(1);

    await supervisor.stop('api');
    await clock.advance(60 * s);

    expect(launched()).toBe(0);
    expect(clock.pending()).toBe(0);
    expect(supervisor.status()[0]).toEqual({ name: 'api', state: 'stopped', restarts: 1 });
  });

  it('abandons a restart under way when stopped, and waits until that process is gone', async () => {
    let finishLaunch: () => void = () => undefined;
    const { clock, supervisor, launch, signals } = setup([
      () =>
        // Like startChild: an aborted readiness wait stops the process and rejects.
        new Promise<SupervisedProcess>((_, reject) => (finishLaunch = () => reject(new Error('start-up interrupted')))),
    ]);
    const api = fakeProcess();
    supervisor.supervise('api', api, launch);
    api.die();
    await clock.advance(1 * s);
    expect(supervisor.status()[0]!.state).toBe('starting');

    let stopped = false;
    const stopping = supervisor.stop('api').then(() => (stopped = true));
    await settle();
    expect(signals[0]!.aborted).toBe(true);
    expect(stopped).toBe(false);
    finishLaunch();
    await stopping;

    expect(supervisor.status()[0]).toEqual({ name: 'api', state: 'stopped', restarts: 1 });
  });

  it('ignores the exits it caused itself when stopping', async () => {
    const { lines, supervisor, launch, launched } = setup([]);
    const api = fakeProcess();
    supervisor.supervise('api', api, launch);

    await supervisor.stop('api');
    await settle();

    expect(api.stops).toBe(1);
    expect(lines).toEqual([]);
    expect(launched()).toBe(0);
    expect(supervisor.restarts()).toEqual({ api: 0 });
  });
});
