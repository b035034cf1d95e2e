import { randomUUID } from 'node:crypto';
import { PURCHASE_ORDER_SERVICE, SUPPLIER_EVALUATION_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import {
  keyPredicateText,
  parseODataDate,
  SapODataError,
  toODataDate,
  toODataDecimal,
  type KeyPredicate,
} from './odata';
import { type Entity, type ODataService, type ServiceContext } from './odata-service';

/**
 * API_PURCHASEORDER_PROCESS_SRV, A_PurchaseOrderItem: the items the simulator knows are those batches were received on
 * (batch_receipt). Only PurchasingDocumentDeletionCode can be changed ('' or 'S', blocked; 'L' deletes and is
 * refused here); each change that changes something is kept as a change document. Shape unconfirmed (README.md).
 */
interface ItemRow {
  purchase_order: string;
  purchase_order_item: string;
  material: string;
  plant: string;
  deletion_code: string;
}

function itemKey(key: KeyPredicate): { po: string; item: string } {
  const po = key.named.PurchaseOrder;
  const item = key.named.PurchaseOrderItem;
  if (!po || !item) {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/020', 'Key PurchaseOrder and PurchaseOrderItem are required');
  }
  return { po, item };
}

async function readItem(ctx: ServiceContext, po: string, item: string): Promise<ItemRow> {
  const { rows } = await ctx.pool.query<ItemRow>(
    `SELECT r.purchase_order, r.purchase_order_item, min(r.material) AS material, min(r.plant) AS plant,
            COALESCE(min(st.deletion_code), '') AS deletion_code
       FROM ${ctx.s}.batch_receipt r
       LEFT JOIN ${ctx.s}.purchase_order_item_state st
         ON st.purchase_order = r.purchase_order AND st.purchase_order_item = r.purchase_order_item
      WHERE r.purchase_order = $1 AND r.purchase_order_item = $2
      GROUP BY 1, 2`,
    [po, item],
  );
  const row = rows[0];
  if (!row) throw new SapODataError(404, 'ME/006', `Purchase order item ${po} ${item} does not exist`);
  return row;
}

function itemEntity(ctx: ServiceContext, r: ItemRow): Entity {
  const keys = { PurchaseOrder: r.purchase_order, PurchaseOrderItem: r.purchase_order_item };
  const uri = `${ctx.serviceUrl}/A_PurchaseOrderItem${keyPredicateText(keys)}`;
  return {
    __metadata: { id: uri, uri, type: `${PURCHASE_ORDER_SERVICE}.A_PurchaseOrderItemType` },
    ...keys,
    Material: r.material,
    Plant: r.plant,
    PurchasingDocumentDeletionCode: r.deletion_code,
  };
}

export const purchaseOrderService: ODataService = {
  name: PURCHASE_ORDER_SERVICE,
  entitySets: {
    A_PurchaseOrderItem: {
      async get(ctx, key) {
        const { po, item } = itemKey(key);
        return itemEntity(ctx, await readItem(ctx, po, item));
      },
      async update(ctx, key, body) {
        const { po, item } = itemKey(key);
        const fields = (body ?? {}) as Record<string, unknown>;
        const unknown = Object.keys(fields).filter((f) => f !== 'PurchasingDocumentDeletionCode' && f !== '__metadata');
        if (unknown.length > 0) {
          throw new SapODataError(400, '/IWBEP/CM_MGW_RT/005', `Property '${unknown[0]}' cannot be changed`);
        }
        const code = fields.PurchasingDocumentDeletionCode;
        if (code !== '' && code !== 'S') {
          throw new SapODataError(400, 'ME/083', `Deletion indicator '${String(code)}' is not allowed here`);
        }
        const before = await readItem(ctx, po, item);
        if (before.deletion_code === code) return;
        await ctx.pool.query(
          `INSERT INTO ${ctx.s}.purchase_order_item_state (purchase_order, purchase_order_item, deletion_code)
           VALUES ($1, $2, $3)
           ON CONFLICT (purchase_order, purchase_order_item) DO UPDATE SET deletion_code = EXCLUDED.deletion_code`,
          [po, item, code],
        );
        await ctx.pool.query(
          `INSERT INTO ${ctx.s}.purchase_order_item_change
             (purchase_order, purchase_order_item, field, old_value, new_value, changed_by_user)
           VALUES ($1, $2, 'LOEKZ', $3, $4, $5)`,
          [po, item, before.deletion_code, code, ctx.user],
        );
      },
    },
  },
};

interface ScoreRow {
  uuid: string;
  supplier: string;
  material: string;
  criterion: string;
  period_start: Date;
  period_end: Date;
  score: string;
  external_reference: string;
}

function scoreEntity(ctx: ServiceContext, r: ScoreRow): Entity {
  const uri = `${ctx.serviceUrl}/A_SuplrEvalExternalScore('${r.uuid}')`;
  return {
    __metadata: { id: uri, uri, type: `${SUPPLIER_EVALUATION_SERVICE}.A_SuplrEvalExternalScoreType` },
    SuplrEvalExternalScoreUUID: r.uuid,
    Supplier: r.supplier,
    Material: r.material,
    SuplrEvalCriterion: r.criterion,
    SuplrEvalPeriodStartDate: toODataDate(r.period_start),
    SuplrEvalPeriodEndDate: toODataDate(r.period_end),
    SuplrEvalScore: toODataDecimal(r.score, 2),
    SuplrEvalExternalReference: r.external_reference,
  };
}

/** Scores from an external system (Holdfast), one row per POST; like SAP, no de-duplication. */
export const supplierEvaluationService: ODataService = {
  name: SUPPLIER_EVALUATION_SERVICE,
  entitySets: {
    A_SuplrEvalExternalScore: {
      async list(ctx, q) {
        const ref = q.filter.find((f) => f.property === 'SuplrEvalExternalReference' && f.operator === 'eq');
        const { rows } = await ctx.pool.query<ScoreRow>(
          `SELECT * FROM ${ctx.s}.supplier_eval_score WHERE ($1::text IS NULL OR external_reference = $1)
            ORDER BY created_at, uuid`,
          [ref?.value ?? null],
        );
        return rows.map((r) => scoreEntity(ctx, r));
      },
      async create(ctx, body) {
        const b = (body ?? {}) as Record<string, unknown>;
        const text = (name: string, max: number) => {
          const v = b[name];
          if (typeof v !== 'string' || v.length === 0 || v.length > max) {
            throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', `Invalid value for property '${name}'`);
          }
          return v;
        };
        const score = Number(b.SuplrEvalScore);
        if (!Number.isFinite(score) || score < 0 || score > 100) {
          throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', `Invalid value for property 'SuplrEvalScore'`);
        }
        const { rows } = await ctx.pool.query<ScoreRow>(
          `INSERT INTO ${ctx.s}.supplier_eval_score
             (uuid, supplier, material, criterion, period_start, period_end, score, external_reference, created_by_user)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
          [
            randomUUID(),
            text('Supplier', 10),
            text('Material', 40),
            text('SuplrEvalCriterion', 10),
            parseODataDate(b.SuplrEvalPeriodStartDate, 'SuplrEvalPeriodStartDate'),
            parseODataDate(b.SuplrEvalPeriodEndDate, 'SuplrEvalPeriodEndDate'),
            score,
            text('SuplrEvalExternalReference', 80),
            ctx.user,
          ],
        );
        return scoreEntity(ctx, rows[0]!);
      },
    },
  },
};
