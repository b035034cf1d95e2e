import { spawn, type ChildProcess } from 'node:child_process';
import { cpuSecondsBetween, snapshotCpu } from '../../bench/process-cpu';

/**
 * A grandchild that burns a fixed amount of CPU (not of wall time: the machine may be busy), says so, and waits to be
 * killed, so both snapshots see it. Started through a shell, as PostgreSQL's backends are started by the postmaster.
 */
function burner(cpuMs: number): { shell: ChildProcess; burnt: Promise<void> } {
  const script =
    `const t=process.cpuUsage();while((process.cpuUsage(t).user+process.cpuUsage(t).system)/1000<${cpuMs}){}` +
    `console.log('burnt');setInterval(()=>{},1000)`;
  const shell = spawn('sh', ['-c', `"${process.execPath}" -e "$BURN" & wait`], {
    env: { ...process.env, BURN: script },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const burnt = new Promise<void>((resolve, reject) => {
    shell.stdout.on('data', (d: Buffer) => d.toString('utf8').includes('burnt') && resolve());
    shell.on('error', reject);
    shell.on('exit', (code) => reject(new Error(`burner exited early (${code})`)));
  });
  return { shell, burnt };
}

test('CPU spent by a process this one started, even two levels down, is counted under its role', async () => {
  const before = snapshotCpu();
  expect(before.get(process.pid)).toMatchObject({ role: 'bench' });
  const { shell, burnt } = burner(300);
  try {
    await burnt;
    const { totalS, byProcess: spent } = cpuSecondsBetween(before, snapshotCpu());
    // The grandchild is a node process with no Holdfast entry file: its role is the executable's name.
    expect(spent.node).toBeGreaterThanOrEqual(0.25);
    expect(totalS).toBeGreaterThanOrEqual(spent.node!);
  } finally {
    process.kill(-shell.pid!, 'SIGKILL');
  }
}, 20_000);

test('processes outside the tree are not counted', () => {
  // PID 1 is never under this process.
  const snapshot = snapshotCpu();
  expect(snapshot.has(1)).toBe(false);
  expect(snapshot.size).toBeGreaterThan(0);
});
