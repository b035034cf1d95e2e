import type {
  ConfirmationFigures,
  CostRow,
  CreateOptions,
  ErpCostPostingRequest,
  ErpFeedPort,
  ErpFeedSettings,
  ErpFeedStore,
  ErpOrderConfirmation,
  ErpOrderConfirmationRequest,
  FeedInterval,
  PendingFigures,
} from '../../activities/ports';

/** SAP's side of the feed in memory: confirmations and journal entries by idempotency key, standard prices. */
export class FakeErpFeed implements ErpFeedPort {
  readonly confirmations = new Map<string, ErpOrderConfirmationRequest & ErpOrderConfirmation>();
  readonly entries = new Map<string, ErpCostPostingRequest & { document: string }>();
  constructor(private readonly prices: Record<string, number> = {}) {}

  async postOrderConfirmation(req: ErpOrderConfirmationRequest, _opts?: CreateOptions) {
    const known = this.confirmations.get(req.idempotencyKey);
    if (known) return { confirmationGroup: known.confirmationGroup, confirmationCount: known.confirmationCount };
    const posted = { confirmationGroup: '0001000001', confirmationCount: String(this.confirmations.size + 1) };
    this.confirmations.set(req.idempotencyKey, { ...req, ...posted });
    return posted;
  }

  async standardPrice(material: string, plant: string) {
    const price = this.prices[material];
    return price === undefined ? undefined : { material, plant, pricePerUnit: price, currency: 'EUR' };
  }

  async postCostOfQuality(req: ErpCostPostingRequest, _opts?: CreateOptions) {
    const known = this.entries.get(req.idempotencyKey);
    if (known) return { document: known.document };
    const document = `1010/2026/${100000001 + this.entries.size}`;
    this.entries.set(req.idempotencyKey, { ...req, document });
    return { document };
  }
}

/** Holdfast's feed records in memory, with the intervals and counts a test scripts. */
export class MemoryErpFeedStore implements ErpFeedStore {
  readonly posted = new Map<string, string | null>();
  private readonly fixed = new Map<string, { confirmations: ConfirmationFigures[]; costs: CostRow[] }>();

  constructor(
    private readonly feedSettings: ErpFeedSettings,
    private readonly intervals: FeedInterval[],
    private readonly figures: (interval: FeedInterval) => PendingFigures,
  ) {}

  settings(): ErpFeedSettings {
    return this.feedSettings;
  }
  async dueIntervals(): Promise<FeedInterval[]> {
    return this.intervals.filter((i) => !this.posted.has(i.from));
  }
  async pendingFigures(_site: string, interval: FeedInterval): Promise<PendingFigures> {
    return this.figures(interval);
  }
  async isFixed(_site: string, interval: FeedInterval): Promise<boolean> {
    return this.fixed.has(interval.from);
  }
  async fixFigures(input: Parameters<ErpFeedStore['fixFigures']>[0]): Promise<void> {
    if (this.fixed.has(input.interval.from)) return;
    this.fixed.set(input.interval.from, {
      confirmations: input.confirmations.map((c) => ({ ...c, confirmationGroup: null, confirmationCount: null })),
      costs: input.costs,
    });
  }
  async confirmations(_site: string, interval: FeedInterval): Promise<ConfirmationFigures[]> {
    return this.fixed.get(interval.from)?.confirmations ?? [];
  }
  async recordConfirmation(_site: string, interval: FeedInterval, workOrder: string, p: ErpOrderConfirmation) {
    const c = this.fixed.get(interval.from)?.confirmations.find((x) => x.workOrder === workOrder);
    if (c) Object.assign(c, p);
  }
  async costByAccount(_site: string, interval: FeedInterval) {
    const byAccount = new Map<string, { account: string; category: string; amount: number }>();
    for (const r of this.fixed.get(interval.from)?.costs ?? []) {
      const a = byAccount.get(r.glAccount) ?? { account: r.glAccount, category: r.category, amount: 0 };
      a.amount = Math.round((a.amount + r.amount) * 100) / 100;
      byAccount.set(r.glAccount, a);
    }
    return { accounts: [...byAccount.values()], document: this.posted.get(interval.from) ?? null };
  }
  async recordPosted(_site: string, interval: FeedInterval, costDocument: string | null) {
    this.posted.set(interval.from, costDocument);
  }
  async exclusive<T>(_site: string, _interval: FeedInterval, work: () => Promise<T>): Promise<T> {
    return work();
  }
}
