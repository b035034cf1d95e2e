/**
 * Scheduling advice's rule without a database or Temporal: the exact binomial tail against values computed with exact
 * rational arithmetic, the trip rule, the choice between holding a lot and using it on less critical orders, and the
 * send activity's exactly-once and its refusal when the MES offers no resequencing.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import type { AdviceStore, StoredAdvice } from '../../activities/advice/advice.ports';
import { chooseAction, createAdviceActivities, resequencingRequest } from '../../activities/advice/advice.activities';
import { binomialUpperTail, oneSidedBinomialTest, trips } from '../../activities/advice/binomial-test';
import type { MesLineOrder, MesResequencing } from '../../activities/ports';
import { ErrorType } from '../../workflows/contracts';
import { mesWithoutResequencing, ResequencingMes } from '../support/advice-fakes';
import { MemoryIntentLedger } from '../support/fake-ports';

describe('binomialUpperTail (P(X ≥ k), X ~ Binomial(n, p))', () => {
  // Reference values: Σ C(n,i) p^i (1−p)^(n−i) for i ≥ k in exact rationals, rounded once to a double.
  test.each([
    [10, 8, 0.5, 0.0546875],
    [20, 3, 0.05, 0.07548367378849634],
    [100, 10, 0.05, 0.028188294163416106],
    [1000, 20, 0.01, 0.0032883597877274664],
    [50, 5, 0.02, 0.00320974202607939],
    [500, 60, 0.1, 0.08098716222703263],
  ])('n=%i k=%i p=%f', (n, k, p, expected) => {
    expect(binomialUpperTail(n, k, p)).toBeCloseTo(expected, 12);
  });

  test('edges: k ≤ 0 is certain, k > n impossible, p of 0 or 1', () => {
    expect(binomialUpperTail(200, 0, 0.1)).toBe(1);
    expect(binomialUpperTail(5, 6, 0.5)).toBe(0);
    expect(binomialUpperTail(5, 1, 0)).toBe(0);
    expect(binomialUpperTail(5, 5, 1)).toBe(1);
    expect(() => binomialUpperTail(5, 1, 1.5)).toThrow(RangeError);
  });

  test('large n stays finite and exact enough (no factorial overflow)', () => {
    // 100 000 parts at exactly the threshold rate: the tail from the mean is about one half.
    const p = binomialUpperTail(100_000, 1000, 0.01);
    expect(p).toBeGreaterThan(0.49);
    expect(p).toBeLessThan(0.52);
  });

  test('the test reports the observed rate and the tail as its p-value', () => {
    expect(oneSidedBinomialTest({ parts: 100, defective: 10, threshold: 0.05 })).toEqual({
      rate: 0.1,
      pValue: binomialUpperTail(100, 10, 0.05),
    });
  });
});

describe('trips', () => {
  const rule = { thresholdRate: 0.05, minParts: 50, significance: 0.05 };
  test('enough parts, rate above the threshold and p ≤ α: trips', () => {
    expect(trips({ parts: 100, defective: 10 }, rule).tripped).toBe(true);
  });
  test('the same rate without significance does not (p = 0.0755 > 0.05)', () => {
    expect(trips({ parts: 20, defective: 3 }, { ...rule, minParts: 10 }).tripped).toBe(false);
  });
  test('below the minimum sample size nothing trips, however extreme', () => {
    expect(trips({ parts: 10, defective: 10 }, rule).tripped).toBe(false);
  });
  test('a rate at or under the threshold never trips', () => {
    expect(trips({ parts: 1000, defective: 50 }, rule).tripped).toBe(false);
  });
});

const order = (workOrder: string, sku: string, sequence: number, customerCriticality: number, status = 'RELEASED') =>
  ({ workOrder, sku, line: 'L1', status, sequence, customerCriticality, plannedQuantity: 100 }) satisfies MesLineOrder;

describe('chooseAction', () => {
  test('orders of the lot’s SKUs below the running order’s criticality take it, in sequence', () => {
    const orders = [
      order('W3', 'BRKT-200', 3, 1),
      order('W1', 'BRKT-200', 1, 5, 'RUNNING'),
      order('W2', 'BRKT-200', 2, 2),
      order('W4', 'COVER-1', 4, 1),
      order('W5', 'BRKT-200', 5, 5),
    ];
    expect(chooseAction({ skus: ['BRKT-200'] }, orders)).toEqual({
      action: 'use-on-less-critical',
      orders: ['W2', 'W3'],
      currentOrder: { workOrder: 'W1', customerCriticality: 5 },
    });
  });
  test('no less critical order of its SKUs: hold what is left', () => {
    const orders = [order('W1', 'BRKT-200', 1, 1, 'RUNNING'), order('W2', 'BRKT-200', 2, 3)];
    expect(chooseAction({ skus: ['BRKT-200'] }, orders).action).toBe('hold-remaining');
  });
  test('an MES that lists no line orders: hold what is left', () => {
    expect(chooseAction({ skus: ['BRKT-200'] }, undefined)).toEqual({
      action: 'hold-remaining',
      orders: [],
      currentOrder: null,
    });
  });
});

function acceptedAdvice(id: string): StoredAdvice {
  return {
    adviceId: id,
    site: 'PLANT1',
    line: 'L1',
    componentLot: 'erp:1010/CMP-1/C1',
    lotId: 'C1',
    material: 'CMP-1',
    action: 'hold-remaining',
    orders: [],
    currentOrder: null,
    evidence: {
      parts: 100,
      defective: 10,
      rate: 0.1,
      pValue: 0.028,
      test: 'one-sided exact binomial, H0: p <= threshold',
      thresholdRate: 0.05,
      significance: 0.05,
      minParts: 50,
      window: { from: '2026-12-01T00:00:00.000Z', to: '2026-12-07T00:00:00.000Z' },
    },
    proposedBy: 'test',
    state: 'accepted',
    createdAt: '2026-12-07T00:00:00.000Z',
    decidedAt: '2026-12-07T00:01:00.000Z',
    decidedBy: 'local:qe',
    decisionReason: 'confirmed at the bench',
    signature: null,
    resequencing: null,
    sentAt: null,
  };
}

/** The store's send side in memory: accepted until recordSent. */
function memoryStore(advice: StoredAdvice[]): AdviceStore & { sent: Map<string, MesResequencing> } {
  const sent = new Map<string, MesResequencing>();
  return {
    sent,
    lotDefectCounts: async () => [],
    propose: async () => undefined,
    acceptedUnsent: async () => advice.filter((a) => !sent.has(a.adviceId)),
    get: async (id) => advice.find((a) => a.adviceId === id),
    recordSent: async (id, r) => void sent.set(id, r),
  };
}

describe('sendAcceptedAdvice', () => {
  test('sends each accepted advice once under a key from its id and stores the MES’s read-back', async () => {
    const mes = new ResequencingMes();
    const ledger = new MemoryIntentLedger();
    const a = acceptedAdvice('a1');
    const store = memoryStore([a]);
    // The first run is lost after the MES answered (before the outcome was stored): the retry must not send again.
    const lossy: AdviceStore = { ...store, recordSent: async () => Promise.reject(new Error('worker lost')) };
    const first = createAdviceActivities({ advice: lossy, mesFor: () => mes, ledger });
    await expect(
      new MockActivityEnvironment().run(first.sendAcceptedAdvice, { site: 'PLANT1', line: 'L1' }),
    ).rejects.toThrow('worker lost');
    const retry = createAdviceActivities({ advice: store, mesFor: () => mes, ledger });
    expect(await new MockActivityEnvironment().run(retry.sendAcceptedAdvice, { site: 'PLANT1', line: 'L1' })).toEqual({
      sent: ['a1'],
    });
    expect(mes.resequencings.size).toBe(1);
    expect(mes.requests[0]).toEqual(resequencingRequest(a));
    expect(mes.requests[0]!.idempotencyKey).toBe('advice:a1:resequence');
    expect(store.sent.get('a1')).toMatchObject({ requestId: 'RS-1', status: 'ACCEPTED', componentLot: 'C1' });
  });

  test('an MES without resequencing fails the send non-retryably, naming the MES', async () => {
    const mes = mesWithoutResequencing();
    const acts = createAdviceActivities({
      advice: memoryStore([acceptedAdvice('a2')]),
      mesFor: () => mes,
      ledger: new MemoryIntentLedger(),
    });
    const failure = await new MockActivityEnvironment()
      .run(acts.sendAcceptedAdvice, { site: 'PLANT1', line: 'L1' })
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).nonRetryable).toBe(true);
    expect((failure as ApplicationFailure).type).toBe(ErrorType.Configuration);
    expect((failure as ApplicationFailure).message).toContain('fake-mes');
  });
});
