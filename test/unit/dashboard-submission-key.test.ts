/**
 * The page's Idempotency-Key per form submission (api/ui/idempotency.ts): a retry of the same submission must reach
 * the API with the first key, so the API answers the first outcome instead of deciding twice.
 */
import { SubmissionKey } from '../../api/ui/idempotency';

const scrap = { decision: 'scrap', reason: 'cracked flange', signature: { meaning: 'approval' } };

test('the same submission sent again keeps its key; a changed one gets a new key', () => {
  const keys = new SubmissionKey();
  const first = keys.keyFor(scrap);
  expect(first).toMatch(/^[0-9a-f-]{36}$/);
  expect(keys.keyFor({ ...scrap })).toBe(first);
  const changed = keys.keyFor({ ...scrap, reason: 'cracked flange, beyond rework' });
  expect(changed).not.toBe(first);
  // Back to the first text is a new submission too: only the latest one is retried.
  expect(keys.keyFor(scrap)).not.toBe(first);
});

test('once a submission has its answer, the next one gets a new key even with the same content', () => {
  const keys = new SubmissionKey();
  const first = keys.keyFor(scrap);
  keys.settle();
  expect(keys.keyFor(scrap)).not.toBe(first);
});
