import type pg from 'pg';

/**
 * The simulator's own tables, in a schema of its own (default `sap_sim`; tests pass a unique one). Identifiers cannot
 * be bound as parameters, so the schema name is checked against a strict pattern and quoted; every value is bound.
 */
export function quoteSchema(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(`invalid simulator schema name "${schema}" (lower-case letters, digits and _ only)`);
  }
  return `"${schema}"`;
}

/** Stock types as in API_MATERIAL_STOCK_SRV's `InventoryStockType`: 01 unrestricted-use is widely seen in public
 * callers; 07 for blocked is recalled, not verified (see README). */
export const STOCK_TYPE = { unrestricted: '01', blocked: '07' } as const;
export type StockType = (typeof STOCK_TYPE)[keyof typeof STOCK_TYPE];

function schemaSql(s: string): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${s};

CREATE SEQUENCE IF NOT EXISTS ${s}.quality_notification_number START WITH 200000001;
CREATE SEQUENCE IF NOT EXISTS ${s}.material_document_number START WITH 4900000001;

CREATE TABLE IF NOT EXISTS ${s}.quality_notification (
  notification             text PRIMARY KEY,
  notification_type        text NOT NULL,
  notification_text        text NOT NULL DEFAULT '',
  material                 text NOT NULL DEFAULT '',
  plant                    text NOT NULL DEFAULT '',
  batch                    text NOT NULL DEFAULT '',
  supplier                 text NOT NULL DEFAULT '',
  purchasing_document      text NOT NULL DEFAULT '',
  purchasing_document_item text NOT NULL DEFAULT '',
  -- 1 outstanding, 2 postponed, 3 in process, 4 completed (QMEL-PHASE).
  processing_phase         text NOT NULL DEFAULT '1',
  created_by_user          text NOT NULL,
  created_at               timestamptz NOT NULL DEFAULT now(),
  -- ChangedDateTime, whole milliseconds: the notification's ETag, moved by every change of it or of its items.
  changed_at               timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
  completed_at             timestamptz
);
-- Holdfast's look-up before create lists a batch's notifications of one type.
CREATE INDEX IF NOT EXISTS quality_notification_batch_idx ON ${s}.quality_notification (material, plant, batch);

CREATE TABLE IF NOT EXISTS ${s}.quality_notification_item (
  notification                 text NOT NULL REFERENCES ${s}.quality_notification (notification),
  item                         text NOT NULL,
  item_text                    text NOT NULL DEFAULT '',
  defect_code_catalog          text NOT NULL DEFAULT '',
  defect_code_group            text NOT NULL DEFAULT '',
  defect_code                  text NOT NULL DEFAULT '',
  internal_defective_quantity  numeric(13, 3) NOT NULL DEFAULT 0,
  external_defective_quantity  numeric(13, 3) NOT NULL DEFAULT 0,
  defective_quantity_unit      text NOT NULL DEFAULT '',
  created_at                   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (notification, item)
);
-- A schema made by the OData V2 simulator (kept across restarts, e.g. sap_sim) gets the V4 columns; its V2-only
-- columns have defaults and stay unused.
ALTER TABLE ${s}.quality_notification
  ADD COLUMN IF NOT EXISTS purchasing_document text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS purchasing_document_item text NOT NULL DEFAULT '';
ALTER TABLE ${s}.quality_notification_item
  ADD COLUMN IF NOT EXISTS internal_defective_quantity numeric(13, 3) NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS external_defective_quantity numeric(13, 3) NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS defective_quantity_unit text NOT NULL DEFAULT '';

CREATE TABLE IF NOT EXISTS ${s}.material_document (
  document_year        text NOT NULL,
  material_document    text NOT NULL,
  goods_movement_code  text NOT NULL,
  header_text          text NOT NULL DEFAULT '',
  reference_document   text NOT NULL DEFAULT '',
  posting_date         date NOT NULL,
  document_date        date NOT NULL,
  created_by_user      text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  -- Every other property the POST sent, in its V2 JSON form, so a read returns what was posted.
  properties           jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (document_year, material_document)
);
ALTER TABLE ${s}.material_document ADD COLUMN IF NOT EXISTS properties jsonb NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS material_document_header_text_idx ON ${s}.material_document (header_text);

CREATE TABLE IF NOT EXISTS ${s}.material_document_item (
  document_year        text NOT NULL,
  material_document    text NOT NULL,
  item                 text NOT NULL,
  material             text NOT NULL,
  plant                text NOT NULL,
  storage_location     text NOT NULL,
  batch                text NOT NULL,
  goods_movement_type  text NOT NULL,
  -- The stock type the quantity left (for 122 and 555, the only side that exists).
  stock_type           text NOT NULL,
  supplier             text NOT NULL DEFAULT '',
  quantity             numeric(13, 3) NOT NULL,
  unit                 text NOT NULL,
  item_text            text NOT NULL DEFAULT '',
  purchase_order       text NOT NULL DEFAULT '',
  purchase_order_item  text NOT NULL DEFAULT '',
  properties           jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (document_year, material_document, item),
  FOREIGN KEY (document_year, material_document) REFERENCES ${s}.material_document (document_year, material_document)
);
ALTER TABLE ${s}.material_document_item
  ADD COLUMN IF NOT EXISTS purchase_order text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS purchase_order_item text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS properties jsonb NOT NULL DEFAULT '{}';

-- A genealogy sync follows production orders and deliveries through the items, and pages headers by creation.
CREATE INDEX IF NOT EXISTS material_document_item_order_idx
  ON ${s}.material_document_item ((coalesce(properties->>'ManufacturingOrder', '')));
CREATE INDEX IF NOT EXISTS material_document_item_delivery_idx
  ON ${s}.material_document_item ((coalesce(properties->>'Delivery', '')));
CREATE INDEX IF NOT EXISTS material_document_item_batch_idx ON ${s}.material_document_item (batch);
CREATE INDEX IF NOT EXISTS material_document_created_idx ON ${s}.material_document (created_at);

-- API_OUTBOUND_DELIVERY_SRV: deliveries to customers, loaded as history (POST /__sim/history).
CREATE TABLE IF NOT EXISTS ${s}.outbound_delivery (
  delivery_document    text PRIMARY KEY,
  sold_to_party        text NOT NULL,
  ship_to_party        text NOT NULL,
  shipping_point       text NOT NULL DEFAULT '',
  delivery_date        date NOT NULL,
  -- Set once goods issue is posted; status C then, A before.
  goods_movement_date  date,
  created_by_user      text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  properties           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS outbound_delivery_created_idx ON ${s}.outbound_delivery (created_at);
CREATE TABLE IF NOT EXISTS ${s}.outbound_delivery_item (
  delivery_document    text NOT NULL REFERENCES ${s}.outbound_delivery (delivery_document),
  delivery_item        text NOT NULL,
  material             text NOT NULL,
  plant                text NOT NULL,
  storage_location     text NOT NULL DEFAULT '',
  batch                text NOT NULL DEFAULT '',
  quantity             numeric(13, 3) NOT NULL,
  unit                 text NOT NULL,
  properties           jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (delivery_document, delivery_item)
);
CREATE INDEX IF NOT EXISTS outbound_delivery_item_batch_idx ON ${s}.outbound_delivery_item (batch);

-- Stock per batch and stock type; the batches present here are the simulator's master data.
CREATE TABLE IF NOT EXISTS ${s}.stock (
  material          text NOT NULL,
  plant             text NOT NULL,
  storage_location  text NOT NULL,
  batch             text NOT NULL,
  stock_type        text NOT NULL,
  quantity          numeric(13, 3) NOT NULL CHECK (quantity >= 0),
  unit              text NOT NULL,
  PRIMARY KEY (material, plant, storage_location, batch, stock_type)
);

-- The purchase order item a supplier's batch was received on (its goods receipt): a return (122) must name it.
-- A purchase order item's EKPO-LOEKZ (PurchasingDocumentDeletionCode) once changed, and each change as a change
-- document (CDHDR/CDPOS in SAP): how many times a hold was set is what tests count.
CREATE TABLE IF NOT EXISTS ${s}.purchase_order_item_state (
  purchase_order       text NOT NULL,
  purchase_order_item  text NOT NULL,
  deletion_code        text NOT NULL DEFAULT '',
  PRIMARY KEY (purchase_order, purchase_order_item)
);
CREATE TABLE IF NOT EXISTS ${s}.purchase_order_item_change (
  change_id            bigserial PRIMARY KEY,
  purchase_order       text NOT NULL,
  purchase_order_item  text NOT NULL,
  field                text NOT NULL,
  old_value            text NOT NULL,
  new_value            text NOT NULL,
  changed_by_user      text NOT NULL,
  changed_at           timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${s}.supplier_eval_score (
  uuid                 text PRIMARY KEY,
  supplier             text NOT NULL,
  material             text NOT NULL,
  criterion            text NOT NULL,
  period_start         date NOT NULL,
  period_end           date NOT NULL,
  score                numeric(5, 2) NOT NULL,
  external_reference   text NOT NULL,
  created_by_user      text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ${s}.batch_receipt (
  material             text NOT NULL,
  plant                text NOT NULL,
  batch                text NOT NULL,
  purchase_order       text NOT NULL,
  purchase_order_item  text NOT NULL,
  supplier             text NOT NULL,
  PRIMARY KEY (material, plant, batch)
);

-- Production order confirmations (API_PROD_ORDER_CONFIRMATION_2_SRV, ProdnOrdConf2): one confirmation group per order
-- and operation, counted up per confirmation. Never de-duplicated, as in SAP.
CREATE SEQUENCE IF NOT EXISTS ${s}.confirmation_group_number START WITH 1000001;
CREATE TABLE IF NOT EXISTS ${s}.confirmation_group (
  order_id            text NOT NULL,
  order_operation     text NOT NULL,
  confirmation_group  text NOT NULL UNIQUE,
  PRIMARY KEY (order_id, order_operation)
);
CREATE TABLE IF NOT EXISTS ${s}.production_order_confirmation (
  confirmation_group  text NOT NULL,
  confirmation_count  text NOT NULL,
  order_id            text NOT NULL,
  order_operation     text NOT NULL,
  sequence            text NOT NULL DEFAULT '0',
  properties          jsonb NOT NULL,
  created_by_user     text NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (confirmation_group, confirmation_count)
);
CREATE INDEX IF NOT EXISTS production_order_confirmation_order_idx
  ON ${s}.production_order_confirmation (order_id, order_operation);

-- Material valuation (API_PRODUCT_SRV, A_ProductValuation): the standard price per price unit, set by tests.
CREATE TABLE IF NOT EXISTS ${s}.product_valuation (
  product         text NOT NULL,
  valuation_area  text NOT NULL,
  valuation_type  text NOT NULL DEFAULT '',
  standard_price  numeric(11, 2) NOT NULL,
  price_unit_qty  numeric(5, 0) NOT NULL DEFAULT 1,
  currency        text NOT NULL,
  PRIMARY KEY (product, valuation_area, valuation_type)
);

-- Journal entries posted through the stand-in service (ZHFS_JOURNAL_ENTRY_SRV), with their items.
CREATE SEQUENCE IF NOT EXISTS ${s}.accounting_document_number START WITH 100000001;
CREATE TABLE IF NOT EXISTS ${s}.journal_entry (
  company_code         text NOT NULL,
  fiscal_year          text NOT NULL,
  accounting_document  text NOT NULL,
  reference_id         text NOT NULL DEFAULT '',
  properties           jsonb NOT NULL,
  created_by_user      text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (company_code, fiscal_year, accounting_document)
);
CREATE INDEX IF NOT EXISTS journal_entry_reference_idx ON ${s}.journal_entry (company_code, reference_id);
CREATE TABLE IF NOT EXISTS ${s}.journal_entry_item (
  company_code         text NOT NULL,
  fiscal_year          text NOT NULL,
  accounting_document  text NOT NULL,
  item                 text NOT NULL,
  properties           jsonb NOT NULL,
  PRIMARY KEY (company_code, fiscal_year, accounting_document, item),
  FOREIGN KEY (company_code, fiscal_year, accounting_document)
    REFERENCES ${s}.journal_entry (company_code, fiscal_year, accounting_document)
);
`;
}

/** Creates the schema and tables if absent. Serialised by an advisory lock: concurrent CREATE ... IF NOT EXISTS races. */
export async function ensureSimulatorSchema(pool: pg.Pool, schema: string): Promise<void> {
  const s = quoteSchema(schema);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('holdfast-sap-s4-simulator-schema'))");
    await client.query(schemaSql(s));
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export interface UnrestrictedStock {
  material: string;
  plant: string;
  storageLocation: string;
  batch: string;
  quantity: number;
  unit: string;
  /** A batch bought from a supplier: the purchase order item it was received on. */
  receipt?: { purchaseOrder: string; purchaseOrderItem: string; supplier: string };
}

/** Seeds unrestricted stock; rows that exist are left alone, so a restart does not undo postings. */
export async function seedUnrestrictedStock(pool: pg.Pool, schema: string, rows: UnrestrictedStock[]): Promise<void> {
  const s = quoteSchema(schema);
  for (const r of rows) {
    await pool.query(
      `INSERT INTO ${s}.stock (material, plant, storage_location, batch, stock_type, quantity, unit)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
      [r.material, r.plant, r.storageLocation, r.batch, STOCK_TYPE.unrestricted, r.quantity, r.unit],
    );
    if (r.receipt) await saveReceipt(pool, s, r, false);
  }
}

/** Sets unrestricted stock to exactly `quantity`, and the batch's receipt when given (admin control for tests). */
export async function setUnrestrictedStock(pool: pg.Pool, schema: string, r: UnrestrictedStock): Promise<void> {
  const s = quoteSchema(schema);
  await pool.query(
    `INSERT INTO ${s}.stock (material, plant, storage_location, batch, stock_type, quantity, unit)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (material, plant, storage_location, batch, stock_type)
     DO UPDATE SET quantity = EXCLUDED.quantity, unit = EXCLUDED.unit`,
    [r.material, r.plant, r.storageLocation, r.batch, STOCK_TYPE.unrestricted, r.quantity, r.unit],
  );
  if (r.receipt) await saveReceipt(pool, s, r, true);
}

async function saveReceipt(pool: pg.Pool, s: string, r: UnrestrictedStock, replace: boolean): Promise<void> {
  const { purchaseOrder, purchaseOrderItem, supplier } = r.receipt!;
  const onConflict = replace
    ? `DO UPDATE SET purchase_order = EXCLUDED.purchase_order, purchase_order_item = EXCLUDED.purchase_order_item,
         supplier = EXCLUDED.supplier`
    : 'DO NOTHING';
  await pool.query(
    `INSERT INTO ${s}.batch_receipt (material, plant, batch, purchase_order, purchase_order_item, supplier)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (material, plant, batch) ${onConflict}`,
    [r.material, r.plant, r.batch, purchaseOrder, purchaseOrderItem, supplier],
  );
}

export async function countDocuments(
  pool: pg.Pool,
  schema: string,
): Promise<{ notifications: number; notificationItems: number; materialDocuments: number }> {
  const s = quoteSchema(schema);
  const { rows } = await pool.query<{ notifications: string; items: string; documents: string }>(
    `SELECT (SELECT count(*) FROM ${s}.quality_notification) AS notifications,
            (SELECT count(*) FROM ${s}.quality_notification_item) AS items,
            (SELECT count(*) FROM ${s}.material_document) AS documents`,
  );
  const row = rows[0]!;
  return {
    notifications: Number(row.notifications),
    notificationItems: Number(row.items),
    materialDocuments: Number(row.documents),
  };
}
