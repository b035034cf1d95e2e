import type pg from 'pg';
import {
  entitySetOf,
  JOURNAL_ENTRY_SERVICE,
  PRODUCT_SERVICE,
  PRODUCTION_ORDER_CONFIRMATION_SERVICE,
} from '../../vendor-apis/sap-s4/metadata';
import { withTransaction } from '../../db/pool';
import {
  checkPayload,
  keyPredicateText,
  parseODataDate,
  SapODataError,
  toODataDecimal,
  type ODataValue,
  type QueryOptions,
} from './odata';
import {
  checkExpand,
  filterSql,
  navigationArray,
  notFound,
  pagingSql,
  requireKey,
  type Entity,
  type ODataService,
  type ServiceContext,
} from './odata-service';
import { quoteSchema } from './sap-s4.schema';

/**
 * The services the ERP feed posts to (docs/analytics.md#the-erp-feed): production order confirmations
 * (API_PROD_ORDER_CONFIRMATION_2_SRV), material valuation (API_PRODUCT_SRV, read only) and journal entries (a
 * stand-in service, README). Payloads are checked against metadata.ts; like SAP, nothing is de-duplicated.
 */

const CONFIRMATION_SET = entitySetOf(PRODUCTION_ORDER_CONFIRMATION_SERVICE, 'ProdnOrdConf2');
const JOURNAL_ENTRY_SET = entitySetOf(JOURNAL_ENTRY_SERVICE, 'JournalEntry');
const JOURNAL_ENTRY_ITEM_SET = entitySetOf(JOURNAL_ENTRY_SERVICE, 'JournalEntryItem');
const JE_ITEMS_NAV = 'to_JournalEntryItem';

interface ConfirmationRow {
  confirmation_group: string;
  confirmation_count: string;
  properties: Record<string, ODataValue>;
}

function confirmationEntity(ctx: ServiceContext, r: ConfirmationRow): Entity {
  const keys = { ConfirmationGroup: r.confirmation_group, ConfirmationCount: r.confirmation_count };
  const uri = `${ctx.serviceUrl}/ProdnOrdConf2${keyPredicateText(keys)}`;
  return {
    __metadata: { id: uri, uri, type: `${PRODUCTION_ORDER_CONFIRMATION_SERVICE}.ProdnOrdConf2Type` },
    ...r.properties,
    ...keys,
  };
}

const CONFIRMATION_COLUMNS = {
  ConfirmationGroup: 'confirmation_group',
  ConfirmationCount: 'confirmation_count',
  OrderID: 'order_id',
  OrderOperation: 'order_operation',
};

export const productionOrderConfirmationService: ODataService = {
  name: PRODUCTION_ORDER_CONFIRMATION_SERVICE,
  entitySets: {
    ProdnOrdConf2: {
      async list(ctx, q) {
        checkExpand(q, []);
        const params: unknown[] = [];
        const where = filterSql(q.filter, CONFIRMATION_COLUMNS, params);
        const { rows } = await ctx.pool.query<ConfirmationRow>(
          `SELECT * FROM ${ctx.s}.production_order_confirmation WHERE ${where}
            ORDER BY confirmation_group, confirmation_count${pagingSql(q, params)}`,
          params,
        );
        return rows.map((r) => confirmationEntity(ctx, r));
      },
      async get(ctx, key) {
        const { rows } = await ctx.pool.query<ConfirmationRow>(
          `SELECT * FROM ${ctx.s}.production_order_confirmation WHERE confirmation_group = $1 AND confirmation_count = $2`,
          [requireKey(key, 'ConfirmationGroup'), requireKey(key, 'ConfirmationCount')],
        );
        if (!rows[0]) throw notFound('ProdnOrdConf2');
        return confirmationEntity(ctx, rows[0]);
      },
      async create(ctx, body) {
        const { properties } = checkPayload(CONFIRMATION_SET, body);
        delete properties.ConfirmationGroup;
        delete properties.ConfirmationCount;
        for (const required of ['OrderID', 'OrderOperation', 'ConfirmationUnit'] as const) {
          if (!properties[required]) {
            throw new SapODataError(400, 'RU/100', `Enter a value for '${required}'`, [
              { code: 'RU/100', message: `Enter a value for '${required}'`, severity: 'error', propertyref: required },
            ]);
          }
        }
        const quantities = ['ConfirmationYieldQuantity', 'ConfirmationScrapQuantity', 'ConfirmationReworkQuantity'];
        if (quantities.every((p) => Number(properties[p] ?? 0) === 0)) {
          throw new SapODataError(400, 'RU/505', 'Enter a quantity to be confirmed');
        }
        const orderId = properties.OrderID as string;
        const operation = properties.OrderOperation as string;
        properties.EnteredByUser = ctx.user;
        properties.MfgOrderConfirmationEntryDate = `/Date(${Date.UTC(...utcDateParts(new Date()))})/`;
        const row = await withTransaction(ctx.pool, async (c) => {
          const group = await c.query<{ confirmation_group: string }>(
            `INSERT INTO ${ctx.s}.confirmation_group (order_id, order_operation, confirmation_group)
             VALUES ($1, $2, lpad(nextval('${ctx.s.slice(1, -1)}.confirmation_group_number')::text, 10, '0'))
             ON CONFLICT (order_id, order_operation) DO UPDATE SET order_id = EXCLUDED.order_id
             RETURNING confirmation_group`,
            [orderId, operation],
          );
          const confirmationGroup = group.rows[0]!.confirmation_group;
          await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`conf-${confirmationGroup}`]);
          const { rows } = await c.query<ConfirmationRow>(
            `INSERT INTO ${ctx.s}.production_order_confirmation
               (confirmation_group, confirmation_count, order_id, order_operation, sequence, properties, created_by_user)
             SELECT $1, lpad((count(*) + 1)::text, 8, '0'), $2, $3, $4, $5, $6
               FROM ${ctx.s}.production_order_confirmation WHERE confirmation_group = $1
             RETURNING *`,
            [confirmationGroup, orderId, operation, properties.Sequence ?? '0', properties, ctx.user],
          );
          return rows[0]!;
        });
        return confirmationEntity(ctx, row);
      },
    },
  },
};

function utcDateParts(at: Date): [number, number, number] {
  return [at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()];
}

interface ValuationRow {
  product: string;
  valuation_area: string;
  valuation_type: string;
  standard_price: string;
  price_unit_qty: string;
  currency: string;
}

function valuationEntity(ctx: ServiceContext, r: ValuationRow): Entity {
  const keys = { Product: r.product, ValuationArea: r.valuation_area, ValuationType: r.valuation_type };
  const uri = `${ctx.serviceUrl}/A_ProductValuation${keyPredicateText(keys)}`;
  return {
    __metadata: { id: uri, uri, type: `${PRODUCT_SERVICE}.A_ProductValuationType` },
    ...keys,
    StandardPrice: toODataDecimal(r.standard_price, 2),
    PriceUnitQty: toODataDecimal(r.price_unit_qty, 0),
    Currency: r.currency,
    // S: standard price control (the feed values scrap at the standard price).
    InventoryValuationProcedure: 'S',
  };
}

export const productValuationService: ODataService = {
  name: PRODUCT_SERVICE,
  entitySets: {
    A_ProductValuation: {
      async list(ctx, q) {
        checkExpand(q, []);
        const params: unknown[] = [];
        const where = filterSql(
          q.filter,
          { Product: 'product', ValuationArea: 'valuation_area', ValuationType: 'valuation_type' },
          params,
        );
        const { rows } = await ctx.pool.query<ValuationRow>(
          `SELECT * FROM ${ctx.s}.product_valuation WHERE ${where}
            ORDER BY product, valuation_area, valuation_type${pagingSql(q, params)}`,
          params,
        );
        return rows.map((r) => valuationEntity(ctx, r));
      },
    },
  },
};

interface JournalEntryRow {
  company_code: string;
  fiscal_year: string;
  accounting_document: string;
  properties: Record<string, ODataValue>;
}

async function journalEntryItems(ctx: ServiceContext, heads: JournalEntryRow[]): Promise<Map<string, Entity[]>> {
  const byDocument = new Map<string, Entity[]>();
  if (heads.length === 0) return byDocument;
  const { rows } = await ctx.pool.query<JournalEntryRow & { item: string }>(
    `SELECT * FROM ${ctx.s}.journal_entry_item
      WHERE (company_code, fiscal_year, accounting_document) IN
            (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
      ORDER BY accounting_document, item`,
    [heads.map((h) => h.company_code), heads.map((h) => h.fiscal_year), heads.map((h) => h.accounting_document)],
  );
  for (const r of rows) {
    const keys = {
      CompanyCode: r.company_code,
      FiscalYear: r.fiscal_year,
      AccountingDocument: r.accounting_document,
      AccountingDocumentItem: r.item,
    };
    const uri = `${ctx.serviceUrl}/JournalEntryItem${keyPredicateText(keys)}`;
    const list = byDocument.get(r.accounting_document) ?? [];
    list.push({
      __metadata: { id: uri, uri, type: `${JOURNAL_ENTRY_SERVICE}.JournalEntryItemType` },
      ...r.properties,
      ...keys,
    });
    byDocument.set(r.accounting_document, list);
  }
  return byDocument;
}

function journalEntryEntity(ctx: ServiceContext, r: JournalEntryRow, items: Entity[] | undefined): Entity {
  const keys = { CompanyCode: r.company_code, FiscalYear: r.fiscal_year, AccountingDocument: r.accounting_document };
  const uri = `${ctx.serviceUrl}/JournalEntry${keyPredicateText(keys)}`;
  return {
    __metadata: { id: uri, uri, type: `${JOURNAL_ENTRY_SERVICE}.JournalEntryType` },
    ...r.properties,
    ...keys,
    [JE_ITEMS_NAV]: items ? { results: items } : { __deferred: { uri: `${uri}/${JE_ITEMS_NAV}` } },
  };
}

async function listJournalEntries(ctx: ServiceContext, q: QueryOptions, where: string, params: unknown[]) {
  checkExpand(q, [JE_ITEMS_NAV]);
  const { rows } = await ctx.pool.query<JournalEntryRow>(
    `SELECT * FROM ${ctx.s}.journal_entry WHERE ${where}
      ORDER BY company_code, fiscal_year, accounting_document${pagingSql(q, params)}`,
    params,
  );
  const items = q.expand.includes(JE_ITEMS_NAV) ? await journalEntryItems(ctx, rows) : undefined;
  return rows.map((r) => journalEntryEntity(ctx, r, items ? (items.get(r.accounting_document) ?? []) : undefined));
}

export const journalEntryService: ODataService = {
  name: JOURNAL_ENTRY_SERVICE,
  entitySets: {
    JournalEntry: {
      async list(ctx, q) {
        const params: unknown[] = [];
        const where = filterSql(
          q.filter,
          {
            CompanyCode: 'company_code',
            FiscalYear: 'fiscal_year',
            AccountingDocument: 'accounting_document',
            DocumentReferenceID: 'reference_id',
          },
          params,
        );
        return listJournalEntries(ctx, q, where, params);
      },
      async create(ctx, body) {
        const { properties, navigations } = checkPayload(JOURNAL_ENTRY_SET, body, [JE_ITEMS_NAV]);
        const companyCode = properties.CompanyCode as string | undefined;
        if (!companyCode) throw new SapODataError(400, 'F5/702', "Enter a value for 'CompanyCode'");
        if (!properties.PostingDate) throw new SapODataError(400, 'F5/702', "Enter a value for 'PostingDate'");
        delete properties.AccountingDocument;
        delete properties.FiscalYear;
        const items = navigationArray(navigations[JE_ITEMS_NAV]).map(
          (item) => checkPayload(JOURNAL_ENTRY_ITEM_SET, item).properties,
        );
        if (items.length < 2) throw new SapODataError(400, 'F5/702', 'A journal entry needs at least two items');
        let balance = 0;
        for (const [i, item] of items.entries()) {
          for (const required of ['GLAccount', 'DebitCreditCode', 'AmountInTransactionCurrency'] as const) {
            if (item[required] === undefined) {
              throw new SapODataError(400, 'F5/702', `Item ${i + 1}: enter a value for '${required}'`);
            }
          }
          const amount = Math.round(Number(item.AmountInTransactionCurrency) * 100);
          if (item.DebitCreditCode === 'S') balance += amount;
          else if (item.DebitCreditCode === 'H') balance -= amount;
          else throw new SapODataError(400, 'F5/702', `Item ${i + 1}: DebitCreditCode is S (debit) or H (credit)`);
        }
        // F5/702 is "Balance in transaction currency" in SAP's message class F5.
        if (balance !== 0) throw new SapODataError(400, 'F5/702', `Balance in transaction currency ${balance / 100}`);
        const fiscalYear = String(parseODataDate(properties.PostingDate, 'PostingDate').getUTCFullYear());
        properties.CreatedByUser = ctx.user;
        const seq = `${ctx.s.slice(1, -1)}.accounting_document_number`;
        const head = await withTransaction(ctx.pool, async (c) => {
          const { rows } = await c.query<JournalEntryRow>(
            `INSERT INTO ${ctx.s}.journal_entry
               (company_code, fiscal_year, accounting_document, reference_id, properties, created_by_user)
             VALUES ($1, $2, nextval('${seq}')::text, $3, $4, $5) RETURNING *`,
            [companyCode, fiscalYear, properties.DocumentReferenceID ?? '', properties, ctx.user],
          );
          const row = rows[0]!;
          for (const [i, item] of items.entries()) {
            await c.query(
              `INSERT INTO ${ctx.s}.journal_entry_item (company_code, fiscal_year, accounting_document, item, properties)
               VALUES ($1, $2, $3, $4, $5)`,
              [companyCode, fiscalYear, row.accounting_document, String(i + 1).padStart(3, '0'), item],
            );
          }
          return row;
        });
        const byDocument = await journalEntryItems(ctx, [head]);
        return journalEntryEntity(ctx, head, byDocument.get(head.accounting_document) ?? []);
      },
    },
  },
};

/** Standard prices for tests and the demo (`POST /__sim/standard-price`). */
export async function setStandardPrice(
  pool: pg.Pool,
  schema: string,
  r: { product: string; valuationArea: string; standardPrice: number; priceUnitQty: number; currency: string },
): Promise<void> {
  const s = quoteSchema(schema);
  await pool.query(
    `INSERT INTO ${s}.product_valuation (product, valuation_area, valuation_type, standard_price, price_unit_qty, currency)
     VALUES ($1, $2, '', $3, $4, $5)
     ON CONFLICT (product, valuation_area, valuation_type)
     DO UPDATE SET standard_price = EXCLUDED.standard_price, price_unit_qty = EXCLUDED.price_unit_qty,
                   currency = EXCLUDED.currency`,
    [r.product, r.valuationArea, r.standardPrice, r.priceUnitQty, r.currency],
  );
}

/** Every posted confirmation and journal entry, as the simulator keeps them (`GET /__sim/erp-feed-postings`). */
export async function erpFeedPostings(pool: pg.Pool, schema: string) {
  const s = quoteSchema(schema);
  const confirmations = await pool.query<{
    confirmation_group: string;
    confirmation_count: string;
    order_id: string;
    properties: Record<string, ODataValue>;
    created_at: Date;
  }>(`SELECT * FROM ${s}.production_order_confirmation ORDER BY created_at, confirmation_group, confirmation_count`);
  const entries = await pool.query<{
    company_code: string;
    accounting_document: string;
    reference_id: string;
    properties: Record<string, ODataValue>;
    items: Record<string, ODataValue>[];
  }>(
    `SELECT j.*, coalesce((SELECT jsonb_agg(i.properties ORDER BY i.item) FROM ${s}.journal_entry_item i
                            WHERE (i.company_code, i.fiscal_year, i.accounting_document)
                                = (j.company_code, j.fiscal_year, j.accounting_document)), '[]') AS items
       FROM ${s}.journal_entry j ORDER BY created_at, accounting_document`,
  );
  return {
    confirmations: confirmations.rows.map((r) => ({
      confirmationGroup: r.confirmation_group,
      confirmationCount: r.confirmation_count,
      ...r.properties,
    })),
    journalEntries: entries.rows.map((r) => ({
      accountingDocument: r.accounting_document,
      ...r.properties,
      items: r.items,
    })),
  };
}
