/**
 * The end-of-run check that a benchmark left nothing running: every process it started (and their children, in their
 * process groups) must have exited once its clean-up is done. Read from Linux /proc; elsewhere it finds nothing.
 */
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcessEntry {
  pid: number;
  ppid: number;
  pgid: number;
  /** Since boot, in clock ticks: tells a process of ours from a later one that reused a group id. */
  startTicks: number;
  /** /proc state letter; Z is a zombie, already dead. */
  state: string;
  command: string;
}

/** Every process on the machine, from /proc/<pid>/stat and cmdline; empty where there is no /proc. */
export function listProcesses(): ProcessEntry[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  const entries: ProcessEntry[] = [];
  for (const d of pids) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: the fields after it start at the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      let command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      try {
        command = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim() || command;
      } catch {
        // Gone meanwhile: the name from stat will do.
      }
      entries.push({
        pid: Number(d),
        state: fields[0]!,
        ppid: Number(fields[1]),
        pgid: Number(fields[2]),
        startTicks: Number(fields[19]),
        command,
      });
    } catch {
      // Exited between the listing and the read.
    }
  }
  return entries;
}

/**
 * Processes left over from `self`. A benchmark starts each child in a process group of its own
 * (infra/local/managed-process), so these are the processes outside `self`'s own group that descend from it, and the
 * members of `groups` (the groups its children led: a grandchild whose parent has exited is re-parented away from
 * `self` but stays in its group) that started after `self` did. A child in `self`'s own group is the runtime's own
 * helper (tsx's esbuild service), which ends with `self`; zombies are already dead.
 */
export function leftovers(
  processes: readonly ProcessEntry[],
  self: { pid: number; pgid: number; startTicks: number },
  groups: ReadonlySet<number>,
): ProcessEntry[] {
  const byPid = new Map(processes.map((p) => [p.pid, p]));
  const descends = (p: ProcessEntry): boolean => {
    for (let at: ProcessEntry | undefined = p, hops = 0; at && hops < 64; hops++) {
      if (at.ppid === self.pid) return true;
      at = byPid.get(at.ppid);
    }
    return false;
  };
  return processes.filter(
    (p) =>
      p.pid !== self.pid &&
      p.state !== 'Z' &&
      p.pgid !== self.pgid &&
      (descends(p) || (groups.has(p.pgid) && p.startTicks >= self.startTicks)),
  );
}

function selfEntry(processes: readonly ProcessEntry[]): { pid: number; pgid: number; startTicks: number } {
  const self = processes.find((p) => p.pid === process.pid);
  return { pid: process.pid, pgid: self?.pgid ?? -1, startTicks: self?.startTicks ?? 0 };
}

/** Watches the process groups this process's children lead, so that a check at the end can find their members. */
export class ChildWatch {
  private readonly groups = new Set<number>();

  /** Remembers the groups of every current descendant (call it while they all still run: before the clean-up). */
  note(): void {
    const processes = listProcesses();
    const self = selfEntry(processes);
    for (const p of leftovers(processes, self, new Set())) this.groups.add(p.pgid);
  }

  /**
   * After the clean-up: waits up to `graceMs` for every child to be gone; whatever is still there is named on stderr
   * through `warn` and killed (SIGKILL, with its group). Returns what was left.
   */
  async killLeftovers(warn: (msg: string) => void, graceMs = 3_000): Promise<ProcessEntry[]> {
    const deadline = Date.now() + graceMs;
    let left: ProcessEntry[];
    for (;;) {
      const processes = listProcesses();
      left = leftovers(processes, selfEntry(processes), this.groups);
      if (left.length === 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const p of left) {
      warn(`warning: pid ${p.pid} (${p.command.slice(0, 160)}) still running after the clean-up: killed`);
      for (const target of this.groups.has(p.pgid) ? [-p.pgid, p.pid] : [p.pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    return left;
  }
}
