/** Whether a process with this pid exists (signal 0 checks without signalling); the tests' check that a stop stopped. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
