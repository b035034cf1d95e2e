/**
 * The FSMA 204 sortable spreadsheet of a plant history, checked row by row against one computed here from the
 * generator's own documents: receipts from its goods receipts, transformations from its production events, shipments
 * from its goods issues and outbound deliveries. The history reaches the genealogy the way a plant's does, through the
 * SAP and MES simulators and the sync workflows; the XLSX read back is the CSV.
 */
import { randomBytes } from 'node:crypto';
import ExcelJS from 'exceljs';
import type { Pool } from 'pg';
import { createPool } from '../../infra/db/pool';
import { lotKey } from '../../infra/genealogy/genealogy-keys';
import { FSMA204_COLUMNS, type Fsma204Row } from '../../infra/genealogy/fsma204';
import { generatePlantHistory } from '../../infra/simulators/plant-history/plant-history';
import { bearerFor } from '../support/identity';
import type { HoldfastStack } from '../support/stack';
import { startGenealogyStack, stopGenealogyStack, syncGenealogy } from '../support/genealogy-stack';
import { readTestEnv } from '../support/test-env';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
let stack: HoldfastStack;
/** A plant and site of this run's own, so its lots and sync workflows are its own in the shared database and server. */
const erpPlant = randomBytes(2).toString('hex').toUpperCase();
const site = `FSMA-${erpPlant}`;

const history = generatePlantHistory({
  seed: 20261207,
  // Delivery numbers of its own: other tests' histories share this genealogy.
  firstDelivery: 82000001,
  parts: 150,
  lots: 30,
  supplierLots: 8,
  days: 10,
  site,
  erpPlant,
  defectRate: 0,
  outOfOrderEvents: 0,
  replayedEvents: 0,
});

beforeAll(async () => {
  stack = await startGenealogyStack(pool, { site, erpPlant, history });
  await syncGenealogy(stack);
}, 240_000);

afterAll(async () => {
  await stopGenealogyStack(stack, site);
  await pool.end();
});

/** The sheet as the generator's documents state it, computed without the genealogy or the builder. */
function expectedSheet(): Fsma204Row[] {
  const plant = `${site} (plant ${erpPlant})`;
  const row = (values: Partial<Fsma204Row>): Fsma204Row => ({
    ...(Object.fromEntries(FSMA204_COLUMNS.map((c) => [c, ''])) as Fsma204Row),
    tlc_source_location: plant,
    event_location: plant,
    ...values,
  });
  const when = (iso: string) => ({ event_date: iso.slice(0, 10), event_time: new Date(iso).toISOString() });
  /** SAP keeps a document's creation time to the second (CreationDate + CreationTime). */
  const sapWhen = (iso: string) => when(new Date(Math.floor(Date.parse(iso) / 1000) * 1000).toISOString());
  const keyOf = (material: string, batch: string) => lotKey({ erp: { plant: erpPlant, material, batch } });
  const rows: Fsma204Row[] = [];
  const shipTo = new Map<string, string>();
  for (const d of history.outboundDeliveries())
    shipTo.set(String(d.header.DeliveryDocument), String(d.header.ShipToParty));

  for (const doc of history.materialDocuments()) {
    for (const i of doc.items as Record<string, string>[]) {
      const lot = {
        traceability_lot_code: i.Batch!,
        product_description: i.Material!,
        holdfast_lot_key: keyOf(i.Material!, i.Batch!),
      };
      const amount = { quantity: i.QuantityInEntryUnit!, unit_of_measure: i.EntryUnit! };
      if (i.GoodsMovementType === '101' && i.PurchaseOrder) {
        rows.push(
          row({
            event_id: `receiving:${lot.holdfast_lot_key}`,
            critical_tracking_event: 'receiving',
            ...sapWhen(doc.createdAt),
            ...lot,
            ...amount,
            immediate_previous_source: `supplier ${i.Supplier}`,
            reference_document_type: 'purchase order',
            reference_document_number: `${i.PurchaseOrder}/${i.PurchaseOrderItem}`,
          }),
        );
      } else if (i.GoodsMovementType === '601') {
        const reference = `${i.Delivery}/${i.DeliveryItem}`;
        rows.push(
          row({
            event_id: `shipping:${reference}`,
            critical_tracking_event: 'shipping',
            ...sapWhen(doc.createdAt),
            ...lot,
            ...amount,
            ship_from_location: plant,
            ship_to_location: `ship-to ${shipTo.get(i.Delivery!)}`,
            reference_document_type: 'outbound delivery',
            reference_document_number: reference,
          }),
        );
      }
    }
  }

  for (const event of history.productionEvents()) {
    const actuals = event.segmentResponse.materialActuals;
    for (const out of actuals.filter((a) => a.materialUse === 'Produced')) {
      const base = row({
        event_id: `transformation:${keyOf(out.materialDefinitionId, out.materialLotId)}`,
        critical_tracking_event: 'transformation',
        ...when(event.segmentResponse.actualEndTime),
        traceability_lot_code: out.materialLotId,
        product_description: out.materialDefinitionId,
        quantity: out.quantity.quantityString,
        unit_of_measure: out.quantity.unitOfMeasure,
        reference_document_type: 'work order',
        reference_document_number: event.productionRequestId,
        holdfast_lot_key: keyOf(out.materialDefinitionId, out.materialLotId),
      });
      const inputs = actuals.filter((a) => a.materialUse === 'Consumed');
      rows.push(
        ...inputs.map((input) =>
          row({
            ...base,
            input_traceability_lot_code: input.materialLotId,
            input_product_description: input.materialDefinitionId,
            // A split hands each new lot its own quantity of the source.
            input_quantity: event.eventType === 'split' ? out.quantity.quantityString : input.quantity.quantityString,
            input_unit_of_measure: input.quantity.unitOfMeasure,
          }),
        ),
      );
    }
  }
  return rows.sort(
    (a, b) =>
      a.event_time.localeCompare(b.event_time) ||
      a.event_id.localeCompare(b.event_id) ||
      a.input_traceability_lot_code.localeCompare(b.input_traceability_lot_code),
  );
}

/** RFC 4180 as toCsv writes it: quoted fields may hold commas, quotes and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  const endField = () => {
    row.push(field);
    field = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') endField();
    else if (c === '\r' && text[i + 1] === '\n') {
      endField();
      rows.push(row);
      row = [];
      i++;
    } else field += c;
  }
  return rows;
}

const sheetOf = (csv: string): Fsma204Row[] => {
  const [header, ...rows] = parseCsv(csv);
  expect(header).toEqual([...FSMA204_COLUMNS]);
  return rows.map((r) => Object.fromEntries(header!.map((c, i) => [c, r[i]!])) as Fsma204Row);
};

const auditor = () => bearerFor({ roles: ['auditor'], sites: [site] }, stack.signingKey);
const get = async (query: string) =>
  stack.api.inject({ method: 'GET', url: `/v1/records/fsma204?site=${site}&${query}`, headers: await auditor() });

test('the sheet of the whole history equals the one computed from the documents, row by row', async () => {
  const res = await get('from=2000-01-01&to=2099-12-31');

  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/csv/);
  const got = sheetOf(res.body);
  const want = expectedSheet();
  expect(new Set(got.map((r) => r.critical_tracking_event))).toEqual(
    new Set(['receiving', 'transformation', 'shipping']),
  );
  for (let i = 0; i < Math.max(got.length, want.length); i++) expect({ i, row: got[i] }).toEqual({ i, row: want[i] });
  expect(got).toHaveLength(want.length);
}, 60_000);

test('a day range and a lot select the events in it and the events naming the lot', async () => {
  const want = expectedSheet();
  const days = [...new Set(want.map((r) => r.event_date))].sort();
  const [from, to] = [days[2]!, days[4]!];
  const ranged = sheetOf((await get(`from=${from}&to=${to}`)).body);
  expect(ranged).toEqual(want.filter((r) => r.event_date >= from && r.event_date <= to));

  const shipped = want.find((r) => r.critical_tracking_event === 'shipping')!.traceability_lot_code;
  const named = sheetOf((await get(`from=2000-01-01&to=2099-12-31&lot=${shipped}`)).body);
  expect(named).toEqual(
    want.filter((r) => r.traceability_lot_code === shipped || r.input_traceability_lot_code === shipped),
  );
  expect(named.map((r) => r.critical_tracking_event)).toEqual(expect.arrayContaining(['transformation', 'shipping']));
}, 60_000);

test('the XLSX read back holds the same cells as the CSV', async () => {
  const csv = parseCsv((await get('from=2000-01-01&to=2099-12-31')).body);
  const res = await get('from=2000-01-01&to=2099-12-31&format=xlsx');

  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
  const workbook = new ExcelJS.Workbook();
  await workbook.xlsx.load(res.rawPayload as unknown as ExcelJS.Buffer);
  const sheet = workbook.getWorksheet('FSMA 204')!;
  const cells: string[][] = [];
  sheet.eachRow({ includeEmpty: true }, (r) => cells.push(FSMA204_COLUMNS.map((_, c) => r.getCell(c + 1).text)));
  expect(cells).toEqual(csv);
}, 60_000);

test('a range ending before it starts is a 400 naming `to`; another site is a 403', async () => {
  const backwards = await get('from=2026-02-01&to=2026-01-01');
  expect(backwards.statusCode).toBe(400);
  expect(backwards.body).toContain('querystring.to');

  const elsewhere = await stack.api.inject({
    method: 'GET',
    url: '/v1/records/fsma204?site=ELSEWHERE&from=2026-01-01&to=2026-01-02',
    headers: await auditor(),
  });
  expect(elsewhere.statusCode).toBe(403);
});
