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

/** Roles by entry file or executable, as `npm start` names its processes. */
const ROLES: [RegExp, string][] = [
  [/workers\/main\.ts/, 'worker'],
  [/workers\/inference\.worker\.ts/, 'inference'],
  [/api\/server\.ts/, 'api'],
  [/simulators\/sap-s4\//, 'sap-sim'],
  [/simulators\/mes\//, 'mes-sim'],
  [/simulators\/line-plc\//, 'line-plc'],
  [/simulators\/camera\//, 'camera-sim'],
  [/(^|\/)temporal(\0|$)/, 'temporal'],
  [/(^|\/)postgres(\0|:|$)/, 'postgresql'],
];

function roleOf(pid: number, cmdline: string): string {
  if (pid === process.pid) return 'bench';
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
    snapshot.set(pid, { role: roleOf(pid, cmdline), ticks });
  }
  return snapshot;
}

/**
 * CPU seconds spent between two snapshots, in all and by role, largest first (a process started in between counts from
 * zero; one that ended in between is missing, so the figures are a floor).
 */
export function cpuSecondsBetween(
  before: CpuSnapshot,
  after: CpuSnapshot,
): { totalS: number; byProcess: Record<string, number> } {
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
  return { totalS, byProcess };
}
