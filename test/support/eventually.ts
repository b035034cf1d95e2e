import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';

export interface EventuallyOptions {
  /** How long to keep reading (default 30 s: generous, because the CI machine is small and shared). */
  timeoutMs?: number;
  /**
   * A fixed pause between reads. By default the pause starts at 10 ms and doubles up to 200 ms, so a condition that
   * holds at once is seen at once and a slow one is not read dozens of times a second.
   */
  intervalMs?: number;
}

type Read<T> = () => T | Promise<T>;

/** Not yet: nothing read (undefined or null) or a plain `false`. */
const isSomething = (value: unknown) => value !== undefined && value !== null && value !== false;

/**
 * Reads until what it read is something (not undefined, null or false) and returns it, or fails after the timeout
 * naming `what`, the last value read and the last error.
 */
export function eventually<T>(
  what: string,
  read: Read<T>,
  options?: EventuallyOptions,
): Promise<Exclude<T, undefined | null | false>>;
/** Reads until `holds` accepts what it read and returns that value; the timeout error shows the last value read. */
export function eventually<T>(
  what: string,
  read: Read<T>,
  holds: (value: T) => boolean,
  options?: EventuallyOptions,
): Promise<T>;
/**
 * Polls `read`. A read (or a `holds`) that throws counts as "not yet": the workflow not started, the row not written,
 * the server not listening. The failure is the timeout, which names what was awaited, the last value read and the
 * last error, because those say why it never happened.
 */
export async function eventually<T>(
  what: string,
  read: Read<T>,
  holdsOrOptions?: ((value: T) => boolean) | EventuallyOptions,
  maybeOptions?: EventuallyOptions,
): Promise<T> {
  const holds = typeof holdsOrOptions === 'function' ? holdsOrOptions : isSomething;
  const { timeoutMs = 30_000, intervalMs } =
    (typeof holdsOrOptions === 'function' ? maybeOptions : holdsOrOptions) ?? {};
  const deadline = Date.now() + timeoutMs;
  let reads = 0;
  let lastValue: { value: T } | undefined;
  let lastError: unknown;
  let pause = intervalMs ?? 10;
  for (;;) {
    try {
      reads += 1;
      const value = await read();
      lastValue = { value };
      if (holds(value)) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const value = lastValue ? show(lastValue.value) : '(no read succeeded)';
      const error =
        lastError === undefined
          ? ''
          : `; last error: ${lastError instanceof Error ? lastError.message : show(lastError)}`;
      throw new Error(
        `timed out after ${timeoutMs} ms (${reads} reads) waiting for ${what}; last value read: ${value}${error}`,
      );
    }
    await sleep(Math.min(pause, Math.max(0, deadline - Date.now())));
    if (intervalMs === undefined) pause = Math.min(pause * 2, 200);
  }
}

function show(value: unknown): string {
  const text = inspect(value, { depth: 4, breakLength: Infinity, maxArrayLength: 20, maxStringLength: 300 });
  return text.length > 1_500 ? `${text.slice(0, 1_500)}…` : text;
}
