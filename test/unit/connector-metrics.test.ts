import { SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { ConfigError, ExternalSystemError } from '../../activities/errors';
import { createConnectorObserver } from '../../infra/observability/connector-metrics';
import { startTracing, type Tracing } from '../../infra/observability/tracing';

/** A port written as a class with a private field: the wrapper must call it with the port itself as `this`. */
class FakeMes {
  readonly system = 'mes-line-1';
  #holds = 0;
  failWith: Error | undefined;

  async holdLot(req: { lotId: string; delayMs?: number }): Promise<{ holdId: string }> {
    await new Promise((r) => setTimeout(r, req.delayMs ?? 0));
    if (this.failWith !== undefined) throw this.failWith;
    this.#holds += 1;
    return { holdId: `H-${req.lotId}-${this.#holds}` };
  }

  describe(): string {
    return `${this.system} with ${this.#holds} holds`;
  }
}

/** A histogram's samples carry their own name (`…_count`, `…_sum`, `…_bucket`). */
async function values(registry: Registry, name: string) {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as {
    labels: Record<string, string | number>;
    value: number;
    metricName?: string;
  }[];
}

async function callCount(registry: Registry, labels: Record<string, string>): Promise<number> {
  const all = await values(registry, 'holdfast_connector_call_duration_seconds');
  const match = all.find(
    (v) =>
      v.metricName === 'holdfast_connector_call_duration_seconds_count' &&
      Object.entries(labels).every(([k, want]) => v.labels[k] === want),
  );
  return match?.value ?? 0;
}

async function errorCount(registry: Registry, labels: Record<string, string>): Promise<number> {
  const all = await values(registry, 'holdfast_connector_call_errors_total');
  return all.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value ?? 0;
}

let exporter: InMemorySpanExporter;
let tracing: Tracing;

beforeAll(() => {
  exporter = new InMemorySpanExporter();
  tracing = startTracing({ serviceName: 'connector-metrics-test', spanProcessor: new SimpleSpanProcessor(exporter) });
});
afterAll(() => tracing.shutdown());
beforeEach(() => exporter.reset());

describe('the connector wrapper', () => {
  it('passes the result through and observes the latency under role, system, operation and outcome', async () => {
    const registry = new Registry();
    const mes = createConnectorObserver(registry).observe('mes', new FakeMes());

    const result = await mes.holdLot({ lotId: 'L-1', delayMs: 40 });

    expect(result).toEqual({ holdId: 'H-L-1-1' });
    expect(mes.system).toBe('mes-line-1');
    const ok = { role: 'mes', system: 'mes-line-1', operation: 'holdLot', outcome: 'ok' };
    expect(await callCount(registry, ok)).toBe(1);
    const sum = (await values(registry, 'holdfast_connector_call_duration_seconds')).find(
      (v) => v.metricName === 'holdfast_connector_call_duration_seconds_sum' && v.labels.outcome === 'ok',
    );
    // Timed in seconds: at least the 40 ms the call took, far below a second.
    expect(sum?.value).toBeGreaterThanOrEqual(0.035);
    expect(sum?.value).toBeLessThan(1);
  });

  it('rethrows the very error and counts it by its kind', async () => {
    const registry = new Registry();
    const fake = new FakeMes();
    const mes = createConnectorObserver(registry).observe('mes', fake);
    const labels = { role: 'mes', system: 'mes-line-1', operation: 'holdLot' };
    const failures = [
      new ExternalSystemError('mes-line-1', 'transient', 'HTTP 503'),
      new ExternalSystemError('mes-line-1', 'rejected', 'lot is scrapped', 409),
      new ExternalSystemError('mes-line-1', 'rejected', 'lot is closed', 409),
      new ConfigError('no MES for site X'),
      new TypeError('fetch failed'),
    ];

    for (const error of failures) {
      fake.failWith = error;
      await expect(mes.holdLot({ lotId: 'L-2' })).rejects.toBe(error);
    }

    expect(await errorCount(registry, { ...labels, kind: 'transient' })).toBe(1);
    expect(await errorCount(registry, { ...labels, kind: 'rejected' })).toBe(2);
    expect(await errorCount(registry, { ...labels, kind: 'config' })).toBe(1);
    expect(await errorCount(registry, { ...labels, kind: 'unknown' })).toBe(1);
    expect(await callCount(registry, { ...labels, outcome: 'error' })).toBe(5);
    expect(await callCount(registry, { ...labels, outcome: 'ok' })).toBe(0);
  });

  it('leaves a method that answers synchronously synchronous, and keeps one wrapper per port', async () => {
    const registry = new Registry();
    const observer = createConnectorObserver(registry);
    const fake = new FakeMes();
    const mes = observer.observe('mes', fake);

    await mes.holdLot({ lotId: 'L-3' });
    const described = mes.describe();

    expect(described).toBe('mes-line-1 with 1 holds');
    expect(observer.observe('mes', fake)).toBe(mes);
    expect(await callCount(registry, { operation: 'describe', outcome: 'ok' })).toBe(1);
  });

  it('makes each call a client span, child of the active span, marked failed when the call fails', async () => {
    const fake = new FakeMes();
    const mes = createConnectorObserver(new Registry()).observe('mes', fake);

    const activity = await trace.getTracer('test').startActiveSpan('RunActivity:holdLot', async (span) => {
      await mes.holdLot({ lotId: 'L-5' });
      fake.failWith = new ExternalSystemError('mes-line-1', 'rejected', 'lot is scrapped');
      await expect(mes.holdLot({ lotId: 'L-5' })).rejects.toThrow('scrapped');
      span.end();
      return span.spanContext();
    });

    const calls = exporter.getFinishedSpans().filter((s) => s.name === 'mes holdLot');
    expect(calls).toHaveLength(2);
    for (const call of calls) {
      expect(call.attributes).toMatchObject({
        'holdfast.connector.role': 'mes',
        'holdfast.connector.system': 'mes-line-1',
      });
      expect(call.spanContext().traceId).toBe(activity.traceId);
      expect(call.parentSpanId).toBe(activity.spanId);
    }
    expect(calls.map((c) => c.status.code)).toEqual([SpanStatusCode.UNSET, SpanStatusCode.ERROR]);
  });
});
