/**
 * The baseline of `bench:trace`: a trace answered from the ERP's raw goods movements alone, the way an integrator
 * without Holdfast scripts it against API_MATERIAL_DOCUMENT_SRV (OData V2 `A_MaterialDocumentItem`, `$filter` with
 * `eq`/`and`, Basic auth). Each level of the walk asks its questions in parallel (at most `concurrency` at once), each
 * batch and order once.
 *
 * - Backward from a batch: its `101` receipt; from an order, the order's `261` issues, whose batches are the next
 *   level; from a purchase order, a supplier lot (the end). A batch with no `101` came out of a `309` transfer (a split
 *   or merge): the transfer's items that name it as receiving batch give its sources.
 * - Forward from a batch: every item that moved it: `261` into an order, then that order's `101` receipts (the next
 *   level); `309` into the receiving batch; `601` onto a delivery (collected).
 */

export interface ErpWalkTarget {
  /** The SAP system's base URL (the OData services live under /sap/opu/odata/sap). */
  url: string;
  username: string;
  password: string;
  plant: string;
  /** Requests in flight at once; default 8. */
  concurrency?: number;
}

export interface ErpWalkAnswer {
  /** Batches reached, the start included. */
  batches: Set<string>;
  /** Delivery numbers reached (forward only). */
  deliveries: Set<string>;
  /** OData requests made. */
  requests: number;
}

interface ItemRow {
  Material: string;
  Batch: string;
  GoodsMovementType: string;
  ManufacturingOrder?: string;
  PurchaseOrder?: string;
  IssgOrRcvgBatch?: string;
  IssgOrRcvgMaterial?: string;
  Delivery?: string;
}

const quote = (value: string) => `'${value.replace(/'/g, "''")}'`;

export function createErpWalk(target: ErpWalkTarget) {
  const base = `${target.url.replace(/\/$/, '')}/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem`;
  const authorization = `Basic ${Buffer.from(`${target.username}:${target.password}`).toString('base64')}`;
  const concurrency = target.concurrency ?? 8;

  async function items(filter: Record<string, string>, counter: { requests: number }): Promise<ItemRow[]> {
    const clauses = [
      `Plant eq ${quote(target.plant)}`,
      ...Object.entries(filter).map(([k, v]) => `${k} eq ${quote(v)}`),
    ];
    let next: string | undefined = `${base}?$format=json&$filter=${encodeURIComponent(clauses.join(' and '))}`;
    const rows: ItemRow[] = [];
    while (next) {
      counter.requests++;
      const res = await fetch(next, { headers: { authorization, accept: 'application/json' } });
      if (!res.ok) throw new Error(`GET ${next} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
      const body = (await res.json()) as { d: { results: ItemRow[]; __next?: string } };
      rows.push(...body.d.results);
      next = body.d.__next;
    }
    return rows;
  }

  /** `work` over `inputs`, at most `concurrency` at once. */
  async function inParallel<T, R>(inputs: readonly T[], work: (input: T) => Promise<R[]>): Promise<R[]> {
    const out: R[] = [];
    let at = 0;
    const lane = async () => {
      while (at < inputs.length) out.push(...(await work(inputs[at++]!)));
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, lane));
    return out;
  }

  return {
    async backward(material: string, batch: string): Promise<ErpWalkAnswer> {
      const answer: ErpWalkAnswer = { batches: new Set([batch]), deliveries: new Set(), requests: 0 };
      const orders = new Set<string>();
      let frontier: { material: string; batch: string }[] = [{ material, batch }];
      while (frontier.length > 0) {
        const sources = await inParallel(frontier, async (at) => {
          const receipts = await items({ Material: at.material, Batch: at.batch, GoodsMovementType: '101' }, answer);
          if (receipts.length === 0) {
            const transfers = await items(
              { IssgOrRcvgMaterial: at.material, IssgOrRcvgBatch: at.batch, GoodsMovementType: '309' },
              answer,
            );
            return transfers.map((t) => ({ material: t.Material, batch: t.Batch }));
          }
          const made = receipts.map((r) => r.ManufacturingOrder ?? '').filter((o) => o !== '' && !orders.has(o));
          for (const o of made) orders.add(o);
          const issues = await inParallel(made, (order) =>
            items({ ManufacturingOrder: order, GoodsMovementType: '261' }, answer),
          );
          return issues.map((i) => ({ material: i.Material, batch: i.Batch }));
        });
        frontier = [];
        for (const s of sources) {
          if (answer.batches.has(s.batch)) continue;
          answer.batches.add(s.batch);
          frontier.push(s);
        }
      }
      return answer;
    },

    async forward(material: string, batch: string): Promise<ErpWalkAnswer> {
      const answer: ErpWalkAnswer = { batches: new Set([batch]), deliveries: new Set(), requests: 0 };
      const orders = new Set<string>();
      let frontier: { material: string; batch: string }[] = [{ material, batch }];
      while (frontier.length > 0) {
        const reached = await inParallel(frontier, async (at) => {
          const moved = await items({ Material: at.material, Batch: at.batch }, answer);
          const next: { material: string; batch: string }[] = [];
          const into: string[] = [];
          for (const m of moved) {
            if (m.GoodsMovementType === '601' && m.Delivery) answer.deliveries.add(m.Delivery);
            else if (m.GoodsMovementType === '309' && m.IssgOrRcvgBatch && m.IssgOrRcvgBatch !== at.batch) {
              next.push({ material: m.IssgOrRcvgMaterial || m.Material, batch: m.IssgOrRcvgBatch });
            } else if (m.GoodsMovementType === '261' && m.ManufacturingOrder && !orders.has(m.ManufacturingOrder)) {
              orders.add(m.ManufacturingOrder);
              into.push(m.ManufacturingOrder);
            }
          }
          const receipts = await inParallel(into, (order) =>
            items({ ManufacturingOrder: order, GoodsMovementType: '101' }, answer),
          );
          return [...next, ...receipts.map((r) => ({ material: r.Material, batch: r.Batch }))];
        });
        frontier = [];
        for (const r of reached) {
          if (answer.batches.has(r.batch)) continue;
          answer.batches.add(r.batch);
          frontier.push(r);
        }
      }
      return answer;
    },
  };
}
