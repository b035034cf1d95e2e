/**
 * CPU time of a benchmark's whole process tree (this process and every process it started: PostgreSQL and its
 * backends, the Temporal dev server, the simulators, the worker, the API), read from Linux /proc. On two shared cores
 * the question behind most latency figures is "how much CPU does one defect cost, and in which process": a benchmark
 * takes one snapshot before its window and one after, and reports the difference by process role.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';

/** Clock ticks per second of /proc's utime and stime: USER_HZ, which Linux fixes at 100 for user space. */
const TICKS_PER_S = 100;

export type CpuSnapshot = Map<number, { role: string; ticks: number }>;

/** The role PostgreSQL's own processes (postmaster, WAL writer, checkpointer, autovacuum) are counted under. */
export const POSTGRES_SHARED = 'postgresql';

/** A benchmark names a process's role in its environment when the entry file alone cannot tell (a second simulator). */
export const ROLE_ENV = 'HOLDFAST_BENCH_ROLE';

/** Roles by entry file or executable, as `npm start` names its processes. */
const ROLES: [RegExp, string][] = [
  [/bench\/direct-baseline\.ts/, 'direct-baseline'],
  [/workers\/main\.ts/, 'worker'],
  [/workers\/inference\.worker\.ts/, 'inference'],
  [/api\/server\.ts/, 'api'],
  [/simulators\/sap-s4\//, 'sap-sim'],
  [/simulators\/mes\//, 'mes-sim'],
  [/simulators\/line-plc\//, 'line-plc'],
  [/simulators\/camera\//, 'camera-sim'],
  [/(^|\/)temporal(\0|$)/, 'temporal'],
  [/(^|\/)postgres(\0|:|$)/, POSTGRES_SHARED],
];

/**
 * A backend names its client in its process title (`postgres: <user> <database> <host>(<port>) <activity>`), so its
 * CPU can be counted for the user and database it serves: `postgresql <user>@<database>`.
 */
const BACKEND_TITLE = /^postgres: (\S+) (\S+) (?:\S+\(\d+\)|\[local\])/;

export function postgresBackendRole(user: string, database: string): string {
  return `${POSTGRES_SHARED} ${user}@${database}`;
}

export function roleOf(pid: number, cmdline: string, environ = ''): string {
  if (pid === process.pid) return 'bench';
  const named = environ.split('\0').find((kv) => kv.startsWith(`${ROLE_ENV}=`));
  if (named) return named.slice(ROLE_ENV.length + 1);
  const backend = BACKEND_TITLE.exec(cmdline);
  if (backend) return postgresBackendRole(backend[1]!, backend[2]!);
  for (const [pattern, role] of ROLES) if (pattern.test(cmdline)) return role;
  return basename(cmdline.split('\0')[0] ?? '') || String(pid);
}

/** Every process under `root` (itself included) with its CPU ticks so far; empty where /proc is not Linux's. */
export function snapshotCpu(root = process.pid): CpuSnapshot {
  const parentOf = new Map<number, number>();
  const ticksOf = new Map<number, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return new Map();
  }
  for (const d of pids) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: the fields after it start at the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(d), Number(fields[1]));
      ticksOf.set(Number(d), Number(fields[11]) + Number(fields[12]));
    } catch {
      // Exited between the listing and the read.
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
      if (p === root) return true;
      p = parentOf.get(p);
    }
    return false;
  };
  const snapshot: CpuSnapshot = new Map();
  for (const [pid, ticks] of ticksOf) {
    if (!inTree(pid)) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    let environ = '';
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      // Another user's process when we are not root: its role comes from the command line alone.
    }
    snapshot.set(pid, { role: roleOf(pid, cmdline, environ), ticks });
  }
  return snapshot;
}

/**
 * CPU seconds spent between two snapshots, in all and by role: `byProcess` rounded to 10 ms and largest first, `byRole`
 * unrounded (a process started in between counts from zero; one that ended in between is missing, so the figures are
 * a floor).
 */
export function cpuSecondsBetween(
  before: CpuSnapshot,
  after: CpuSnapshot,
): { totalS: number; byProcess: Record<string, number>; byRole: Record<string, number> } {
  const byRole = new Map<string, number>();
  let totalS = 0;
  for (const [pid, { role, ticks }] of after) {
    const spent = (ticks - (before.get(pid)?.ticks ?? 0)) / TICKS_PER_S;
    if (spent <= 0) continue;
    byRole.set(role, (byRole.get(role) ?? 0) + spent);
    totalS += spent;
  }
  const byProcess = Object.fromEntries(
    [...byRole].sort((a, b) => b[1] - a[1]).map(([role, s]) => [role, Math.round(s * 100) / 100]),
  );
  return { totalS, byProcess, byRole: Object.fromEntries(byRole) };
}

/**
 * CPU seconds by role summed into buckets (`bucketOf`; a role it does not know goes to `other`). PostgreSQL's backends
 * go where their user and database say (`postgresBackendRole`); its shared processes (`POSTGRES_SHARED`: WAL writer,
 * checkpointer, autovacuum, postmaster) serve every client at once, so they are split between the buckets in
 * proportion to the CPU of each bucket's backends (all to `sharedFallback` while no backend spent any).
 */
export function cpuByBucket(
  byRole: Readonly<Record<string, number>>,
  bucketOf: (role: string) => string | undefined,
  sharedFallback: string,
): Record<string, number> {
  const buckets: Record<string, number> = {};
  const backendS: Record<string, number> = {};
  let sharedS = 0;
  for (const [role, s] of Object.entries(byRole)) {
    if (role === POSTGRES_SHARED) {
      sharedS += s;
      continue;
    }
    const bucket = bucketOf(role) ?? 'other';
    buckets[bucket] = (buckets[bucket] ?? 0) + s;
    if (role.startsWith(`${POSTGRES_SHARED} `)) backendS[bucket] = (backendS[bucket] ?? 0) + s;
  }
  const backendTotal = Object.values(backendS).reduce((a, b) => a + b, 0);
  if (sharedS > 0) {
    if (backendTotal > 0) {
      for (const [bucket, s] of Object.entries(backendS))
        buckets[bucket] = buckets[bucket]! + (sharedS * s) / backendTotal;
    } else {
      buckets[sharedFallback] = (buckets[sharedFallback] ?? 0) + sharedS;
    }
  }
  return buckets;
}
