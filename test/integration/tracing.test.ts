/**
 * Tracing on, with nothing mocked but the exporter: a failed inspection posted with a caller's `traceparent` goes
 * through the real pipeline (API → PostgreSQL inspection and outbox row → dispatcher → Temporal dev server → the lot's
 * case in the worker →
 * MES and SAP simulators), and every span it causes, in the sandbox too, lands in one trace.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startTracing, type Tracing } from '../../infra/observability/tracing';
import { eventually } from '../support/eventually';
import { createLot, failedInspection } from '../support/plant';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { readTestEnv, testPool } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

const pool = testPool();
const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let stack: HoldfastStack;

beforeAll(async () => {
  installQuietRuntime();
  tracing = startTracing({ serviceName: 'holdfast-tracing-test', spanProcessor: new SimpleSpanProcessor(exporter) });
  const env = readTestEnv();
  // No prebuilt bundle: the worker bundles the workflow interceptors in, as workers/main.ts does.
  stack = await startHoldfastStack({ pool, temporalAddress: env.temporalAddress, namespace: env.namespace, tracing });
}, 180_000);
afterAll(async () => {
  await stack?.stop();
  await tracing?.shutdown();
  await pool.end();
});

/** Span names from `span` up through its parents, as far as they were exported. */
function ancestry(span: ReadableSpan, spans: ReadableSpan[]): ReadableSpan[] {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const chain = [span];
  for (let parent = byId.get(span.parentSpanId ?? ''); parent; parent = byId.get(parent.parentSpanId ?? '')) {
    chain.push(parent);
  }
  return chain;
}

test('one trace from the ingest request through the outbox, the workflows and activities to the MES and ERP calls', async () => {
  const lotId = `L-TRACE-${randomUUID().slice(0, 8)}`;
  await createLot(stack, { lotId });
  // The camera's own trace: Holdfast's spans continue it.
  const traceId = randomBytes(16).toString('hex');
  const callerSpanId = randomBytes(8).toString('hex');
  const inspection = failedInspection(lotId);

  const res = await stack.api.inject({
    method: 'POST',
    url: '/v1/inspections',
    headers: { ...stack.adminHeaders, traceparent: `00-${traceId}-${callerSpanId}-01` },
    payload: inspection,
  });
  expect(res.statusCode).toBe(202);

  // The trace context crosses PostgreSQL in the outbox row.
  const row = await pool.query<{ traceparent: string }>('SELECT traceparent FROM holdfast.outbox WHERE event_id = $1', [
    inspection.eventId,
  ]);
  expect(row.rows[0]?.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));

  const inTrace = () => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  const spans = await eventually(
    'the MES and ERP calls in the request trace',
    () => {
      const all = inTrace();
      const names = new Set(all.map((s) => s.name));
      const wanted = [
        'SignalWithStartWorkflow:lotCaseWorkflow',
        'mes holdLot',
        'mes recordQualityEvent',
        'erp raiseQualityNotification',
        // The workflow's spans reach the exporter through its sinks, after the activities' own: wait for them too.
        'StartActivity:holdLot',
        'StartActivity:recordWorkOrderQuality',
      ];
      return wanted.every((n) => names.has(n)) ? all : undefined;
    },
    { timeoutMs: 90_000 },
  );

  // The hand-over to the lot's case continues the request's trace through the outbox row.
  const lotCaseStart = spans.find((s) => s.name === 'SignalWithStartWorkflow:lotCaseWorkflow');
  expect(ancestry(lotCaseStart!, spans).map((s) => s.name)).toEqual([
    'SignalWithStartWorkflow:lotCaseWorkflow',
    'outbox dispatch',
    'ingest inspections',
    'POST /v1/inspections',
  ]);
  expect(ancestry(lotCaseStart!, spans).at(-1)!.parentSpanId).toBe(callerSpanId);

  // The case's calls: each under its activity; their workflow span is still open (the case waits for a disposition).
  const open = (name: string) =>
    ancestry(
      spans.find((s) => s.name === name)!,
      spans,
    ).map((s) => s.name);
  expect(open('mes holdLot')).toEqual(['mes holdLot', 'RunActivity:holdLot', 'StartActivity:holdLot']);
  expect(open('mes recordQualityEvent')).toEqual([
    'mes recordQualityEvent',
    'RunActivity:recordWorkOrderQuality',
    'StartActivity:recordWorkOrderQuality',
  ]);
  expect(open('erp raiseQualityNotification')[1]).toBe('RunActivity:raiseQualityNotification');

  // Scrapped, the case closes and its workflow span is exported: every call's chain reaches the caller's span.
  const decided = await stack.api.inject({
    method: 'POST',
    url: `/v1/lots/${lotId}/disposition`,
    headers: { ...stack.engineer.headers, 'idempotency-key': `mrb-${randomUUID()}` },
    payload: {
      decision: 'scrap',
      reason: 'Scratch beyond limit',
      signature: stack.engineer.signature(),
      site: 'PLANT1',
    },
  });
  expect(decided.statusCode).toBe(200);
  const closed = await eventually('the lot case workflow span', () => {
    const all = inTrace();
    return all.some((s) => s.name === 'RunWorkflow:lotCaseWorkflow') ? all : undefined;
  });
  const toRequest = [
    'RunWorkflow:lotCaseWorkflow',
    'SignalWithStartWorkflow:lotCaseWorkflow',
    'outbox dispatch',
    'ingest inspections',
    'POST /v1/inspections',
  ];
  for (const [call, activity] of [
    ['mes holdLot', 'holdLot'],
    ['mes recordQualityEvent', 'recordWorkOrderQuality'],
  ] as const) {
    const chain = ancestry(
      closed.find((s) => s.name === call)!,
      closed,
    );
    expect(chain.map((s) => s.name)).toEqual([
      call,
      `RunActivity:${activity}`,
      `StartActivity:${activity}`,
      ...toRequest,
    ]);
    expect(chain.at(-1)!.parentSpanId).toBe(callerSpanId);
  }
}, 150_000);
