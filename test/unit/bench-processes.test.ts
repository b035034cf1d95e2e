/** Which process a benchmark's CPU is counted for, and which processes it must have stopped by its end. */
import { leftovers, type ProcessEntry } from '../../bench/children';
import { cpuByBucket, POSTGRES_SHARED, postgresBackendRole, roleOf, ROLE_ENV } from '../../bench/process-cpu';

describe('process roles', () => {
  it('names a role from the environment first, then a PostgreSQL backend by user and database, then the entry', () => {
    const simulator = '/usr/bin/node\0--import\0tsx\0/repo/infra/simulators/mes/main.ts';
    expect(roleOf(1, simulator)).toBe('mes-sim');
    expect(roleOf(1, simulator, `PATH=/bin\0${ROLE_ENV}=mes-sim-direct\0`)).toBe('mes-sim-direct');
    expect(roleOf(1, 'postgres: postgres holdfast_sims 127.0.0.1(41234) idle')).toBe(
      postgresBackendRole('postgres', 'holdfast_sims'),
    );
    expect(roleOf(1, 'postgres: checkpointer ')).toBe(POSTGRES_SHARED);
    expect(roleOf(1, 'postgres: autovacuum worker holdfast')).toBe(POSTGRES_SHARED);
    expect(roleOf(1, '/opt/pg/bin/postgres\0-D\0/data')).toBe(POSTGRES_SHARED);
    expect(roleOf(process.pid, simulator)).toBe('bench');
  });

  it("splits PostgreSQL's shared processes in proportion to each part's backends", () => {
    const buckets = cpuByBucket(
      {
        worker: 10,
        'mes-sim': 2,
        [postgresBackendRole('postgres', 'holdfast')]: 3,
        [postgresBackendRole('postgres', 'sims')]: 1,
        [POSTGRES_SHARED]: 2,
        esbuild: 0.5,
      },
      (role) =>
        ({ worker: 'holdfast', 'mes-sim': 'simulators' })[role] ??
        (role.endsWith('@holdfast') ? 'holdfast' : role.endsWith('@sims') ? 'simulators' : undefined),
      'holdfast',
    );
    expect(buckets).toEqual({ holdfast: 10 + 3 + 1.5, simulators: 2 + 1 + 0.5, other: 0.5 });
  });

  it('gives the shared processes to the fallback while no backend spent any CPU', () => {
    expect(cpuByBucket({ [POSTGRES_SHARED]: 1, api: 2 }, () => 'holdfast', 'holdfast')).toEqual({ holdfast: 3 });
  });
});

describe('leftovers', () => {
  const self = { pid: 100, pgid: 90, startTicks: 5000 };
  const proc = (p: Partial<ProcessEntry> & { pid: number }): ProcessEntry => ({
    ppid: 1,
    pgid: p.pid,
    startTicks: 6000,
    state: 'S',
    command: `cmd-${p.pid}`,
    ...p,
  });

  it('finds children in groups of their own and their descendants, not this process or its own group', () => {
    const processes = [
      proc({ pid: 100, ppid: 90, pgid: 90 }), // the benchmark itself
      proc({ pid: 90, ppid: 1, pgid: 90 }), // npm, its parent
      proc({ pid: 101, ppid: 100, pgid: 90 }), // tsx's esbuild service: in the benchmark's own group
      proc({ pid: 110, ppid: 100 }), // Mosquitto, left running
      proc({ pid: 111, ppid: 110 }), // a child of a child (a PostgreSQL backend)
      proc({ pid: 112, ppid: 100, state: 'Z' }), // exited, not yet reaped
      proc({ pid: 200, ppid: 1 }), // somebody else's
    ];
    expect(leftovers(processes, self, new Set()).map((p) => p.pid)).toEqual([110, 111]);
  });

  it('finds a grandchild re-parented away from this process by its group, unless it is older than this process', () => {
    const processes = [
      proc({ pid: 100, ppid: 90, pgid: 90 }),
      proc({ pid: 120, ppid: 1, pgid: 115 }), // its leader (a tsx wrapper) exited; it stayed in the group
      proc({ pid: 130, ppid: 1, pgid: 116, startTicks: 10 }), // the group id reused by an older, unrelated process
    ];
    expect(leftovers(processes, self, new Set([115, 116])).map((p) => p.pid)).toEqual([120]);
  });
});
