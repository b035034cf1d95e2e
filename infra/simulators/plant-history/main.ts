import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generatePlantHistory, type GapKind } from './plant-history';
import { loadIntoSimulators } from './load';

/**
 * `npm run plant:history -- --parts N --lots M --supplier-lots K --seed S --days D [--out DIR] [--no-load]
 *  [--ingest API_URL]`
 * generates a plant history and loads it into the running simulators (SAP_SIM_URL, default http://127.0.0.1:4020,
 * with SAP_USER / SAP_PASSWORD; MES_SIM_URL, default http://127.0.0.1:4010, with MES_API_KEY if set). With --out it
 * writes ground-truth.json and inspections.ndjson there (the bodies for POST /v1/inspections). Gaps on purpose:
 * --gap kind=count (repeatable), --out-of-order N, --replayed N. Progress goes to stderr.
 */
const { values } = parseArgs({
  options: {
    parts: { type: 'string', default: '10000' },
    lots: { type: 'string', default: '1000' },
    'supplier-lots': { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    days: { type: 'string', default: '90' },
    'defect-rate': { type: 'string', default: '0.01' },
    gap: { type: 'string', multiple: true, default: [] },
    'out-of-order': { type: 'string', default: '0' },
    replayed: { type: 'string', default: '0' },
    out: { type: 'string' },
    'no-load': { type: 'boolean', default: false },
    /** Post the inspections to Holdfast's API (with the key in HOLDFAST_API_KEY), as the cameras would have. */
    ingest: { type: 'string' },
  },
});

function number(name: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || !Number.isFinite(value)) throw new Error(`--${name} must be a number, got "${text}"`);
  return value;
}

const GAP_KINDS: readonly GapKind[] = [
  'batch-never-received',
  'lot-without-source',
  'part-without-inspection',
  'shipped-lot-will-be-held',
];

/** One line on stderr, redrawn in place on a terminal. */
function progressBar(label: string, done: number, total: number): void {
  const width = 30;
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : width;
  const line = `${label.padEnd(20)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
  process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
  if (process.stderr.isTTY && done >= total) process.stderr.write('\n');
}

async function main(): Promise<void> {
  const gaps: Partial<Record<GapKind, number>> = {};
  for (const spec of values.gap) {
    const [kind, count] = spec.split('=');
    if (!GAP_KINDS.includes(kind as GapKind)) throw new Error(`--gap ${spec}: kind is one of ${GAP_KINDS.join(', ')}`);
    gaps[kind as GapKind] = number('gap', count ?? '1');
  }
  const started = performance.now();
  const history = generatePlantHistory({
    parts: number('parts', values.parts),
    lots: number('lots', values.lots),
    supplierLots: number('supplier-lots', values['supplier-lots']),
    seed: number('seed', values.seed),
    days: number('days', values.days),
    defectRate: number('defect-rate', values['defect-rate']),
    outOfOrderEvents: number('out-of-order', values['out-of-order']),
    replayedEvents: number('replayed', values.replayed),
    gaps,
  });
  const truth = history.groundTruth();
  process.stderr.write(`generated in ${Math.round(performance.now() - started)} ms: ${JSON.stringify(truth.counts)}\n`);

  if (values.out) {
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(values.out, { recursive: true });
    await writeFile(`${values.out}/ground-truth.json`, JSON.stringify(truth));
    const file = createWriteStream(`${values.out}/inspections.ndjson`);
    let written = 0;
    for (const body of history.inspections()) {
      if (!file.write(`${JSON.stringify(body)}\n`)) await once(file, 'drain');
      if (++written % 50_000 === 0) progressBar('inspections', written, truth.counts.inspections);
    }
    progressBar('inspections', written, truth.counts.inspections);
    file.end();
    await once(file, 'finish');
  }

  if (!values['no-load']) {
    const { SAP_USER: sapUser, SAP_PASSWORD: sapPassword } = await sapCredentials();
    const totals: Record<string, number> = {
      'material documents': [...history.materialDocuments()].length,
      deliveries: truth.counts.deliveries,
      stock: truth.lots.length,
      'production events': [...history.productionEvents()].length,
    };
    await loadIntoSimulators(history, {
      sap: { url: process.env.SAP_SIM_URL ?? 'http://127.0.0.1:4020', username: sapUser, password: sapPassword },
      mes: {
        url: process.env.MES_SIM_URL ?? 'http://127.0.0.1:4010',
        ...(process.env.MES_API_KEY ? { apiKey: process.env.MES_API_KEY } : {}),
      },
      onProgress: ({ step, count }) => progressBar(step, count, totals[step] ?? count),
    });
  }
  if (values.ingest) await ingest(values.ingest, history.inspections(), truth.counts.inspections);
  process.stderr.write(`done in ${Math.round(performance.now() - started)} ms\n`);
}

/**
 * The cameras' findings: every inspection posted to `POST /v1/inspections` in batches of 500, with a machine key
 * that may write inspections at the site (`npm run keys -- create --site PLANT1 --action inspections:write`).
 */
async function ingest(apiUrl: string, inspections: Iterable<unknown>, total: number): Promise<void> {
  const key = process.env.HOLDFAST_API_KEY;
  if (!key) throw new Error('--ingest needs HOLDFAST_API_KEY: a key with inspections:write at the site');
  let sent = 0;
  let batch: unknown[] = [];
  const post = async () => {
    const res = await fetch(`${apiUrl.replace(/\/$/, '')}/v1/inspections`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify({ results: batch }),
    });
    if (!res.ok) throw new Error(`POST /v1/inspections answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
    progressBar('inspections posted', (sent += batch.length), total);
    batch = [];
  };
  for (const body of inspections) {
    batch.push(body);
    if (batch.length === 500) await post();
  }
  if (batch.length > 0) await post();
}

/**
 * The SAP simulator's login: SAP_USER / SAP_PASSWORD, else what `npm start` generated for its data directory
 * (HOLDFAST_DATA_DIR, default .holdfast/data), so that loading a history into `npm start`'s simulators needs no setup.
 */
async function sapCredentials(): Promise<{ SAP_USER: string; SAP_PASSWORD: string }> {
  const { SAP_USER, SAP_PASSWORD } = process.env;
  if (SAP_USER && SAP_PASSWORD) return { SAP_USER, SAP_PASSWORD };
  const file = join(process.env.HOLDFAST_DATA_DIR ?? '.holdfast/data', 'sap-credentials.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as { SAP_USER: string; SAP_PASSWORD: string };
  } catch {
    throw new Error(`set SAP_USER and SAP_PASSWORD, or start Holdfast once (npm start writes ${file})`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`plant history: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
