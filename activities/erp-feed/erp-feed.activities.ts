import { atBoundary } from '../boundary';
import { ConfigError, ExternalSystemError } from '../errors';
import { createOnce } from '../intents';
import type {
  ConfirmationFigures,
  CostRow,
  ErpFeedPort,
  ErpFeedSettings,
  ErpFeedStore,
  ErpPort,
  FeedInterval,
  IntentLedger,
  PendingFigures,
} from '../ports';
import type { ErpFeedIntervalResult } from '../../workflows/contracts';

export interface ErpFeedDeps {
  erpFor: (site: string) => ErpPort;
  ledger: IntentLedger;
  /** The feed's records (infra/erp-feed); absent in processes that run no feed. */
  erpFeed?: ErpFeedStore;
}

/** Rounds to the cent, half away from zero. */
export function cents(amount: number): number {
  return (Math.sign(amount) * Math.round(Math.abs(amount) * 100 + 1e-9)) / 100;
}

/** The idempotency key of one order's confirmation for one interval: the business event, nothing else. */
export function erpFeedConfirmationKey(site: string, workOrder: string, interval: FeedInterval): string {
  return `erp-feed:${site}:${workOrder}:${interval.from}/${interval.to}`;
}

/** The idempotency key of an interval's cost-of-quality journal entry. */
export function erpFeedCostKey(site: string, interval: FeedInterval): string {
  return `erp-feed-coq:${site}:${interval.from}/${interval.to}`;
}

/**
 * Each work order's confirmation from the counts at its line's confirming station (docs/analytics.md#the-erp-feed):
 * yield = inspections that passed, scrap = inspections that failed again (after rework or on re-inspection), rework =
 * inspections after rework. A first inspection that failed is not confirmed: the part waits for rework or a second
 * look. Orders with nothing to confirm are left out (SAP refuses an empty confirmation).
 */
export function confirmationsFrom(
  settings: ErpFeedSettings,
  interval: FeedInterval,
  counts: PendingFigures['counts'],
): Omit<ConfirmationFigures, 'confirmationGroup' | 'confirmationCount'>[] {
  const byOrder = new Map<string, Omit<ConfirmationFigures, 'confirmationGroup' | 'confirmationCount'>>();
  for (const c of counts) {
    if (settings.confirmingStations[c.line] !== c.station) continue;
    const order = byOrder.get(c.workOrder) ?? {
      workOrder: c.workOrder,
      line: c.line,
      station: c.station,
      sku: c.sku,
      yieldQuantity: 0,
      scrapQuantity: 0,
      reworkQuantity: 0,
      idempotencyKey: erpFeedConfirmationKey(settings.site, c.workOrder, interval),
    };
    // Weighted by supplier lot: the weights of one inspection add up to 1, rounded below.
    order.yieldQuantity += c.passed;
    order.scrapQuantity += c.scrapped;
    order.reworkQuantity += c.reworked;
    byOrder.set(c.workOrder, order);
  }
  return [...byOrder.values()]
    .map((o) => ({
      ...o,
      yieldQuantity: Math.round(o.yieldQuantity),
      scrapQuantity: Math.round(o.scrapQuantity),
      reworkQuantity: Math.round(o.reworkQuantity),
    }))
    .filter((o) => o.yieldQuantity + o.scrapQuantity + o.reworkQuantity > 0)
    .sort((a, b) => a.workOrder.localeCompare(b.workOrder));
}

/**
 * The interval's cost of quality, one row per line, SKU, order and supplier lot and category: scrap at the material's
 * standard price, rework at minutes × hourly rate, every inspection (all production stations) at the inspection rate,
 * and each completed real recall's shipped quantity at its material's standard price.
 */
export function costsFrom(
  settings: ErpFeedSettings,
  pending: PendingFigures,
  pricePerUnit: ReadonlyMap<string, number>,
): CostRow[] {
  const rows: CostRow[] = [];
  const add = (row: Omit<CostRow, 'amount'>) => {
    const amount = cents(row.quantity * row.unitCost);
    if (amount > 0) rows.push({ ...row, amount });
  };
  const reworkPerPart = (settings.rates.reworkMinutesPerPart / 60) * settings.rates.reworkPerHour;
  for (const c of pending.counts) {
    const dims = { line: c.line, sku: c.sku, workOrder: c.workOrder, supplierLot: c.supplierLot, recallId: null };
    if (settings.confirmingStations[c.line] === c.station) {
      if (c.scrapped > 0) {
        add({
          ...dims,
          category: 'scrap',
          quantity: c.scrapped,
          unitCost: pricePerUnit.get(c.sku) ?? 0,
          glAccount: settings.accounts.scrap,
        });
      }
      if (c.reworked > 0) {
        add({
          ...dims,
          category: 'rework',
          quantity: c.reworked,
          unitCost: reworkPerPart,
          glAccount: settings.accounts.rework,
        });
      }
    }
    add({
      ...dims,
      category: 'inspection',
      quantity: c.inspections,
      unitCost: settings.rates.inspectionPerPart,
      glAccount: settings.accounts.inspection,
    });
  }
  for (const r of pending.recalls) {
    add({
      category: 'external-failure',
      line: null,
      sku: r.material,
      workOrder: null,
      supplierLot: null,
      recallId: r.recallId,
      quantity: r.shipped,
      unitCost: pricePerUnit.get(r.material) ?? 0,
      glAccount: settings.accounts.externalFailure,
    });
  }
  return rows;
}

/** YYYY-MM-DD of an instant in a time zone. */
function localDate(at: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);
}

/**
 * The ERP feed's steps (docs/analytics.md#the-erp-feed). An interval's figures are fixed once in Holdfast's tables
 * before anything is posted, so a retried or overlapping run sends the same request under the same key; each create
 * goes through the intent ledger and the connector's look-up before create.
 */
export const createErpFeedActivities = ({ erpFor, ledger, erpFeed }: ErpFeedDeps) => {
  const store = (): ErpFeedStore => {
    if (!erpFeed) throw new ConfigError('this worker has no ERP feed store');
    return erpFeed;
  };
  const feedPort = (site: string): { system: string; feed: ErpFeedPort } => {
    const erp = erpFor(site);
    if (!erp.feed) throw new ConfigError(`the ERP ${erp.system} of site ${site} takes no feed`);
    return { system: erp.system, feed: erp.feed };
  };

  return {
    /** The intervals due at `asOf`, oldest first: where the run starts, including what earlier runs missed. */
    async dueErpFeedIntervals({ site, asOf }: { site: string; asOf: string }): Promise<FeedInterval[]> {
      return atBoundary(`due intervals of the ERP feed of ${site}`, () => store().dueIntervals(site, Date.parse(asOf)));
    },

    /** Fixes one interval's figures (once) and posts its confirmations and cost of quality (each once). */
    async postErpFeedInterval({
      site,
      interval,
    }: {
      site: string;
      interval: FeedInterval;
    }): Promise<ErpFeedIntervalResult> {
      return atBoundary(`ERP feed of ${site} for ${interval.from}/${interval.to}`, async () => {
        const records = store();
        const settings = records.settings(site);
        const { system, feed } = feedPort(site);

        // Fixed once: a retry or a second run posts what was fixed, without reading prices again.
        if (!(await records.isFixed(site, interval))) await fixFigures(records, settings, feed, system, interval);
        return records.exclusive(site, interval, () => postFixed(records, settings, { system, feed }, interval));
      });
    },
  };

  /** Reads the interval's counts and the standard prices they need, and fixes its figures (first run wins). */
  async function fixFigures(
    records: ErpFeedStore,
    settings: ErpFeedSettings,
    feed: ErpFeedPort,
    system: string,
    interval: FeedInterval,
  ): Promise<void> {
    const { site } = settings;
    const pending = await records.pendingFigures(site, interval);
    const materials = new Set<string>([
      ...pending.counts
        .filter((c) => c.scrapped > 0 && settings.confirmingStations[c.line] === c.station)
        .map((c) => c.sku),
      ...pending.recalls.map((r) => r.material),
    ]);
    const prices = new Map<string, number>();
    for (const material of materials) {
      const price = await feed.standardPrice(material, settings.plant);
      if (!price) {
        throw new ExternalSystemError(
          system,
          'not-found',
          `no standard price for material ${material} in plant ${settings.plant}`,
        );
      }
      if (price.currency !== settings.currency) {
        throw new ExternalSystemError(
          system,
          'validation',
          `the standard price of ${material} is in ${price.currency}, the feed posts in ${settings.currency}`,
        );
      }
      prices.set(material, price.pricePerUnit);
    }
    await records.fixFigures({
      site,
      interval,
      confirmations: confirmationsFrom(settings, interval, pending.counts),
      costs: costsFrom(settings, pending, prices),
    });
  }

  /** Posts what is fixed for the interval and not yet posted, and marks the interval posted. */
  async function postFixed(
    records: ErpFeedStore,
    settings: ErpFeedSettings,
    { system, feed }: { system: string; feed: ErpFeedPort },
    interval: FeedInterval,
  ): Promise<ErpFeedIntervalResult> {
    const { site } = settings;

    const postingDate = localDate(Date.parse(interval.to) - 1, settings.timezone);
    const text = `${interval.from.slice(0, 16)}Z`;
    const confirmations = await records.confirmations(site, interval);
    for (const c of confirmations) {
      if (c.confirmationGroup) continue;
      const request = {
        idempotencyKey: c.idempotencyKey,
        order: c.workOrder,
        operation: settings.operation,
        material: c.sku,
        yieldQuantity: c.yieldQuantity,
        scrapQuantity: c.scrapQuantity,
        reworkQuantity: c.reworkQuantity,
        unit: settings.unit,
        postingDate,
        text: `Holdfast ${text}`,
      };
      const intent = { key: c.idempotencyKey, step: 'erp-feed-confirmation', system, request };
      const posted = await createOnce(ledger, intent, (opts) => feed.postOrderConfirmation(request, opts));
      await records.recordConfirmation(site, interval, c.workOrder, posted);
    }

    const cost = await records.costByAccount(site, interval);
    let document = cost.document;
    const total = cents(cost.accounts.reduce((sum, a) => sum + a.amount, 0));
    if (!document && cost.accounts.length > 0) {
      const request = {
        idempotencyKey: erpFeedCostKey(site, interval),
        companyCode: settings.companyCode,
        postingDate,
        text: `CoQ ${site} ${text}`,
        currency: settings.currency,
        costCentre: settings.costCentre,
        offsetAccount: settings.accounts.offset,
        lines: cost.accounts.map((a) => ({
          account: a.account,
          amount: a.amount,
          text: `Cost of quality: ${a.category}`,
        })),
      };
      const intent = { key: request.idempotencyKey, step: 'erp-feed-cost', system, request };
      document = (await createOnce(ledger, intent, (opts) => feed.postCostOfQuality(request, opts))).document;
    }
    await records.recordPosted(site, interval, document);
    return { ...interval, confirmations: confirmations.length, costDocument: document, costTotal: total };
  }
};
