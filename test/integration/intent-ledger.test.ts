/**
 * The intent ledger over the run's PostgreSQL (infra/ledger/pg-intent-ledger.ts): one statement per intent, a
 * recorded key never new again, its outcome returned once recorded, another request under a recorded key refused, and
 * attempts that race on one key agreeing that exactly one of them recorded it.
 */
import { randomUUID } from 'node:crypto';
import { IntentConflictError } from '../../activities/errors';
import { createPgIntentLedger } from '../../infra/ledger/pg-intent-ledger';
import { testPool } from '../support/test-env';

const pool = testPool();
afterAll(() => pool.end());

const intent = (key: string, request: unknown = { lotId: 'L-1', quantity: 1, unit: 'PC' }) => ({
  key,
  step: 'erp-goods-movement',
  system: 'sap-plant1',
  request,
});

test('a new key is fresh in one statement, and stays recorded: the next attempt is not fresh', async () => {
  const statements: string[] = [];
  const ledger = createPgIntentLedger({
    query: ((text: string, values: unknown[]) => {
      statements.push(text);
      return pool.query(text, values);
    }) as typeof pool.query,
  });
  const key = `evt-${randomUUID()}:block-344`;

  expect(await ledger.begin(intent(key))).toEqual({ fresh: true });
  expect(statements).toHaveLength(1);
  expect(await ledger.begin(intent(key))).toEqual({ fresh: false });
  expect(statements).toHaveLength(2);

  const { rows } = await pool.query('SELECT step, system, outcome FROM holdfast.intent WHERE idempotency_key = $1', [
    key,
  ]);
  expect(rows).toEqual([{ step: 'erp-goods-movement', system: 'sap-plant1', outcome: null }]);
});

test('an outcome once recorded comes back with the intent', async () => {
  const ledger = createPgIntentLedger(pool);
  const key = `evt-${randomUUID()}:block-344`;
  await ledger.begin(intent(key));
  await ledger.complete(key, { materialDocument: '4900000001', materialDocumentYear: '2026' });

  expect(await ledger.begin(intent(key))).toEqual({
    fresh: false,
    outcome: { materialDocument: '4900000001', materialDocumentYear: '2026' },
  });
});

test('the request is compared by its canonical JSON: key order does not matter, a changed value is refused', async () => {
  const ledger = createPgIntentLedger(pool);
  const key = `evt-${randomUUID()}:block-344`;
  await ledger.begin(intent(key, { lotId: 'L-1', quantity: 1, unit: 'PC' }));

  expect(await ledger.begin(intent(key, { unit: 'PC', quantity: 1, lotId: 'L-1' }))).toEqual({ fresh: false });
  const refused = await ledger.begin(intent(key, { lotId: 'L-1', quantity: 2, unit: 'PC' })).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(IntentConflictError);
  expect((refused as Error).message).toContain(key);
});

test('attempts racing on one key: exactly one records it, the others learn it exists', async () => {
  // Their own pool, so that the attempts run on separate connections at the same time.
  const racers = testPool();
  try {
    const ledger = createPgIntentLedger(racers);
    const key = `evt-${randomUUID()}:wo-quality`;
    const results = await Promise.all(Array.from({ length: 5 }, () => ledger.begin(intent(key))));
    expect(results.filter((r) => r.fresh)).toHaveLength(1);
    expect(results.filter((r) => !r.fresh)).toHaveLength(4);
  } finally {
    await racers.end();
  }
});
