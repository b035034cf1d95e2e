import { HARNESS_KEY, type TestHarness } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const harness = (globalThis as Record<string, unknown>)[HARNESS_KEY] as TestHarness | undefined;
  if (!harness) return;
  delete (globalThis as Record<string, unknown>)[HARNESS_KEY];
  await harness.stop();
}
