-- The genealogy (docs/traceability.md): which material lots went into which work orders, which lots those produced and
-- where they were delivered, modelled after ISA-95's material lot, material actual (consumed / produced within a
-- segment response = work order) and the ERP's delivery. Written only by the ERP and MES sync through
-- infra/genealogy/genealogy-store.ts; read by the trace queries.

-- ISA-95 MaterialLot (and MaterialSubLot: a split is a lot of its own with a `split` edge from its parent).
CREATE TABLE holdfast.material_lot (
  -- Holdfast's key, built by lotKey() in infra/genealogy/genealogy-keys.ts (erp:<plant>/<material>/<batch> or
  -- mes:<site>/<lot id>): one key per physical lot whatever system names it first.
  lot_key          text PRIMARY KEY,
  -- The Holdfast site the lot belongs to (the one authorizeSite checks); for an unknown lot, the site of the
  -- document that referenced it.
  site             text NOT NULL,
  material         text,
  quantity         numeric,
  unit             text,
  origin           text NOT NULL CHECK (origin IN ('purchased', 'produced', 'unknown')),
  mes_site         text,
  mes_lot_id       text,
  erp_plant        text,
  erp_material     text,
  erp_batch        text,
  -- purchased: who sold it, under which of their batches, on which order item, received by which document.
  supplier         text,
  supplier_batch   text,
  purchase_order   text,
  purchase_order_item text,
  goods_receipt    text,
  -- produced: by which work order, where.
  work_order       text,
  line             text,
  source_system    text,
  document         text,
  occurred_at      timestamptz,
  recorded_at      timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CHECK ((mes_site IS NULL) = (mes_lot_id IS NULL))
);
CREATE UNIQUE INDEX material_lot_mes_idx ON holdfast.material_lot (mes_site, mes_lot_id) WHERE mes_lot_id IS NOT NULL;
CREATE UNIQUE INDEX material_lot_erp_idx ON holdfast.material_lot (erp_plant, erp_material, erp_batch)
  WHERE erp_batch IS NOT NULL;
CREATE INDEX material_lot_supplier_idx ON holdfast.material_lot (supplier, supplier_batch) WHERE supplier IS NOT NULL;

-- ISA-95 MaterialActual: one movement between two nodes (lot:<key>, wo:<site>/<order>, delivery:<delivery>/<item>),
-- keyed by the business document that states it, so replaying a document changes nothing.
CREATE TABLE holdfast.genealogy_edge (
  edge_key       text PRIMARY KEY,
  from_node      text NOT NULL,
  to_node        text NOT NULL,
  kind           text NOT NULL
                 CHECK (kind IN ('consumed', 'produced', 'split', 'merged', 'reworked', 'repacked', 'delivered')),
  quantity       numeric,
  unit           text,
  occurred_at    timestamptz NOT NULL,
  site           text NOT NULL,
  source_system  text NOT NULL,
  document       text NOT NULL,
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (from_node <> to_node)
);
-- Covering both directions, so each step of the recursive walk is an index-only lookup.
CREATE INDEX genealogy_edge_forward_idx ON holdfast.genealogy_edge (from_node) INCLUDE (to_node, kind, quantity, unit, edge_key);
CREATE INDEX genealogy_edge_backward_idx ON holdfast.genealogy_edge (to_node) INCLUDE (from_node, kind, quantity, unit, edge_key);

-- Outbound deliveries (the ERP's delivery item): which lot left for which customer. Each also has a `delivered` edge.
CREATE TABLE holdfast.delivery (
  delivery       text NOT NULL,
  item           text NOT NULL,
  site           text NOT NULL,
  customer       text NOT NULL,
  ship_to        text NOT NULL,
  material       text,
  lot_key        text NOT NULL,
  quantity       numeric,
  unit           text,
  shipped_at     timestamptz,
  source_system  text NOT NULL,
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (delivery, item)
);
CREATE INDEX delivery_lot_idx ON holdfast.delivery (lot_key);

-- Every part the MES says it produced, so parts no camera inspected can be found.
CREATE TABLE holdfast.produced_part (
  site           text NOT NULL,
  part_id        text NOT NULL,
  serial         text,
  lot_key        text NOT NULL,
  work_order     text,
  line           text,
  produced_at    timestamptz,
  source_system  text NOT NULL,
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, part_id)
);
CREATE INDEX produced_part_lot_idx ON holdfast.produced_part (lot_key);
CREATE INDEX produced_part_serial_idx ON holdfast.produced_part (serial) WHERE serial IS NOT NULL;
-- Finding a part's inspection (and a part's lot from its inspection).
CREATE INDEX inspection_part_idx ON holdfast.inspection (site, part_id);
CREATE INDEX inspection_model_idx ON holdfast.inspection (model_version, site, lot_id);

-- What the genealogy cannot explain yet, or should not contain: kept and reported, never dropped; resolved_at is set
-- when the missing side arrives.
CREATE TABLE holdfast.trace_gap (
  kind         text NOT NULL CHECK (kind IN ('consumption-without-receipt', 'lot-without-source',
                                             'part-without-inspection', 'shipment-of-held-lot', 'cycle',
                                             'unknown-reference')),
  subject      text NOT NULL,
  site         text NOT NULL,
  detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
  found_at     timestamptz NOT NULL DEFAULT now(),
  resolved_at  timestamptz,
  resolved_by  text,
  PRIMARY KEY (kind, subject)
);
CREATE INDEX trace_gap_open_idx ON holdfast.trace_gap (site, found_at, kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX trace_gap_site_idx ON holdfast.trace_gap (site, found_at, kind, subject);

-- Who may change what: the sync (the role running migrations and the worker) writes; the genealogy is a record of
-- other systems' documents, so nobody deletes from it. A deployment with a separate API role grants it SELECT only
-- (docs/traceability.md#who-writes).
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON holdfast.material_lot, holdfast.genealogy_edge, holdfast.delivery,
  holdfast.produced_part, holdfast.trace_gap FROM PUBLIC;
REVOKE DELETE, TRUNCATE ON holdfast.genealogy_edge, holdfast.delivery, holdfast.produced_part FROM CURRENT_USER;
