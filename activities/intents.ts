import { crashPoint } from './boundary';
import type { CreateIntent, CreateOptions, IntentLedger } from './ports';

export interface CreateOnceOptions {
  /**
   * Whether an outcome the ledger recorded may be returned without asking the system. false where the port's answer
   * carries live state besides the document's identity (a work order's current counts): the create then looks its
   * key up instead, and the fresh answer replaces the recorded one.
   */
  reuseOutcome?: boolean;
}

/**
 * One create on the MES or ERP, exactly once, with a look-up only where an earlier attempt may have reached the
 * system (docs/reliability.md#intent-ledger):
 * - the intent is recorded first; if this call recorded it, no attempt for the key ever began, so the create goes
 *   out at once (`lookupFirst: false`);
 * - if it was recorded before (a retry, or an attempt lost in a crash, which Temporal runs again as attempt 1: the
 *   attempt number cannot tell), the connector looks the key up and creates only when nothing carries it;
 * - once the system has answered, the document is recorded on the intent, and a later attempt returns it as it is.
 *
 * The crash points mark the ledger's own windows: killed after the intent and before the call, and after the call
 * and before its outcome is recorded.
 */
export async function createOnce<T>(
  ledger: IntentLedger,
  intent: CreateIntent,
  create: (opts: CreateOptions) => Promise<T>,
  { reuseOutcome = true }: CreateOnceOptions = {},
): Promise<T> {
  const known = await ledger.begin(intent);
  // The outcome is recorded only after the system answered with it: the document exists, and its id does not change.
  if (known.outcome !== undefined && reuseOutcome) return known.outcome as T;
  crashPoint(`after-intent-${intent.step}`);
  const created = await create({ lookupFirst: !known.fresh });
  crashPoint(`before-outcome-${intent.step}`);
  await ledger.complete(intent.key, created);
  return created;
}
