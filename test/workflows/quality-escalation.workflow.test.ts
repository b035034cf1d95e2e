/**
 * The line evaluator and the escalation workflow on a real Temporal dev server, over the PostgreSQL rule store and a
 * typed fake MES: inspections trip a line-wide consecutive-NC rule, the evaluator starts one escalation for the trip,
 * which alerts, holds the work order once although the MES's first answer is lost, waits for the release decision and
 * releases the hold once. The site is this run's own.
 */
import { randomUUID } from 'node:crypto';
import { runEscalationScenario } from '../support/escalation-fakes';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

test('a trip starts one escalation that holds the order once and releases it once after the decision', async () => {
  const site = `WF${randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase()}`;
  const ids = await runEscalationScenario(harness, site);
  expect(ids.escalation).toMatch(new RegExp(`^quality-escalation-${site}-L1-line-nc2-v1-[0-9a-f]{16}$`));
});
