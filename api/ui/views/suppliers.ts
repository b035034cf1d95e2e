/**
 * Supplier quality: every supplier's scorecard over the period (quality score, lot rejection rate, ppm at incoming
 * inspection and in production), the open corrective action requests (SCARs) with their response due dates, and one
 * supplier's scorecard in detail when the URL names it (`supplier=`).
 *
 * The scorecards read kept tables (incoming receipts, the lot aggregates), never raw inspections. A SCAR's due date
 * lives in its workflow, so each open one is read on its own (a supplier has at most one open), in parallel.
 */
import type { z } from 'zod';
import type { ScarListSchema, ScorecardSchema, SupplierListSchema, ScarView } from '../../schemas/supplier.schema';
import { ApiError, getJson } from '../api-client';
import { PALETTE, drawChart } from '../charts';
import { h, panel, percent, replace, table, tile, when } from '../dom';
import { type Filters, type ViewContext, href, range } from '../view';

type SupplierList = z.infer<typeof SupplierListSchema>;
type SupplierScore = SupplierList['suppliers'][number];
type Scorecard = z.infer<typeof ScorecardSchema>;
type ScarList = z.infer<typeof ScarListSchema>;

/** The part of a SCAR's workflow state the page shows (workflows/contracts.ts ScarState). */
interface ScarLive {
  stage?: string;
  round?: number;
  responseDue?: string;
  remindersSent?: number;
  escalated?: boolean;
}

interface OpenScar {
  scar: ScarView;
  live: ScarLive | undefined;
  due: string | null;
  overdue: boolean;
}

const CLOSED = new Set(['closed', 'cancelled']);
/** States in which the supplier owes an answer: past its due date, the SCAR is overdue. */
const AWAITING = new Set(['requested', 'awaiting-response']);
const SCAR_LIMIT = 200;

export async function suppliersView(ctx: ViewContext): Promise<void> {
  const { main, filters, signal } = ctx;
  const supplier = ctx.params.get('supplier') ?? '';
  document.title = `Supplier quality${supplier ? ` · ${supplier}` : ''} · Holdfast quality`;
  const period = range(filters);

  const [list, scars, card] = await Promise.all([
    getJson<SupplierList>('/v1/suppliers', period, signal),
    openScars(signal),
    supplier
      ? getJson<Scorecard>(
          `/v1/suppliers/${encodeURIComponent(supplier)}/scorecard`,
          { ...period, bucket: 'week' },
          signal,
        )
          // 404: nothing of this supplier in the period, which the detail says.
          .catch((err: unknown) => {
            if (err instanceof ApiError && err.status === 404) return null;
            throw err;
          })
      : Promise.resolve(undefined),
  ]);
  if (signal.aborted) return;

  const overdue = scars.filter((s) => s.overdue).length;
  const scoreChart = h('div', { class: 'chart' });
  replace(
    main,
    h('h1', null, supplier ? `Supplier quality · ${supplier}` : 'Supplier quality'),
    h('p', { class: 'period' }, `Receipts and production from ${filters.from} to ${filters.to}, all sites.`),
    h(
      'div',
      { class: 'tiles' },
      tile({
        id: 'suppliers-count',
        label: 'suppliers with figures',
        value: new Set(list.suppliers.map((s) => s.supplier)).size,
      }),
      tile({
        id: 'open-scars',
        label: 'open SCARs',
        value: scars.length,
        state: scars.length > 0 ? 'warn' : 'good',
      }),
      tile({
        id: 'overdue-scars',
        label: 'SCAR responses overdue',
        value: overdue,
        state: overdue > 0 ? 'bad' : 'good',
      }),
    ),
    supplier ? detail(supplier, card ?? null, scars, ctx, signal) : null,
    panel(
      'supplier-scorecards',
      'Scorecards',
      scoreChart,
      table({
        id: 'scorecard-table',
        caption: 'Suppliers and materials, lowest quality score first',
        rows: [...list.suppliers].sort(
          (a, b) => a.qualityScore - b.qualityScore || a.supplier.localeCompare(b.supplier),
        ),
        empty: 'No supplier has receipts or production figures in the period.',
        columns: [
          {
            label: 'Supplier',
            cell: (s) =>
              h(
                'a',
                {
                  href: href('suppliers', filters, { supplier: s.supplier }),
                  'data-supplier': s.supplier,
                  'aria-current': s.supplier === supplier ? 'true' : undefined,
                },
                s.supplier,
              ),
          },
          { label: 'Material', cell: (s) => s.material },
          {
            label: 'Quality score',
            cell: (s) => h('span', { 'data-score': `${s.supplier}|${s.material}` }, s.qualityScore.toFixed(1)),
            numeric: true,
          },
          { label: 'Receipts (rejected)', cell: (s) => `${s.receipts} (${s.rejectedReceipts})`, numeric: true },
          { label: 'Lot rejection rate', cell: (s) => percent(s.lotRejectionRate), numeric: true },
          { label: 'Incoming ppm', cell: (s) => ppm(s.incomingPpm), numeric: true },
          { label: 'Production ppm', cell: (s) => ppm(s.productionPpm), numeric: true },
          { label: 'Top defect class', cell: (s) => s.defectClasses[0]?.class ?? '–' },
        ],
      }),
    ),
    panel('scars', 'Open corrective action requests (SCAR)', scarTable(scars, filters)),
  );
  drawScores(scoreChart, list.suppliers, ctx, signal);
}

/** The open SCARs, each with its workflow's live state (due date) read in parallel. */
async function openScars(signal: AbortSignal): Promise<OpenScar[]> {
  const { scars } = await getJson<ScarList>('/v1/scars', { limit: String(SCAR_LIMIT) }, signal);
  const open = scars.filter((s) => !CLOSED.has(s.state));
  const now = Date.now();
  return Promise.all(
    open.map(async (scar) => {
      const full = await getJson<ScarView>(`/v1/scars/${encodeURIComponent(scar.id)}`, {}, signal).catch(() => scar);
      const live = full.live as ScarLive | undefined;
      const due = live?.responseDue ?? null;
      return {
        scar: full,
        live,
        due,
        overdue: due !== null && AWAITING.has(full.state) && Date.parse(due) < now,
      };
    }),
  );
}

function scarTable(
  scars: readonly OpenScar[],
  filters: Filters,
  caption = 'Open SCARs, newest first',
  id = 'scar-table',
): HTMLElement {
  return table({
    id,
    caption,
    rows: scars,
    empty: 'No open SCAR.',
    columns: [
      { label: 'SCAR', cell: (s) => h('span', { 'data-scar': s.scar.id }, s.scar.id) },
      {
        label: 'Supplier',
        cell: (s) => h('a', { href: href('suppliers', filters, { supplier: s.scar.supplier }) }, s.scar.supplier),
      },
      { label: 'Material', cell: (s) => s.scar.material ?? '–' },
      { label: 'State', cell: (s) => h('span', { 'data-scar-state': s.scar.state }, s.scar.state) },
      { label: 'Round', cell: (s) => s.scar.rounds, numeric: true },
      { label: 'Opened', cell: (s) => when(s.scar.openedAt) },
      {
        label: 'Response due',
        cell: (s) =>
          s.due
            ? h(
                'span',
                { class: s.overdue ? 'overdue' : undefined, 'data-due': s.due, 'data-overdue': String(s.overdue) },
                when(s.due),
                s.overdue ? ' (overdue)' : '',
              )
            : h('span', { 'data-due': '' }, AWAITING.has(s.scar.state) ? 'not known' : '–'),
      },
      { label: 'Reason', cell: (s) => s.scar.reason },
      {
        label: 'Workflow',
        cell: (s) => h('a', { href: s.scar.links.temporalUi, target: '_blank', rel: 'noopener' }, 'Temporal'),
      },
    ],
  });
}

function detail(
  supplier: string,
  card: Scorecard | null,
  scars: readonly OpenScar[],
  ctx: ViewContext,
  signal: AbortSignal,
): HTMLElement {
  const { filters } = ctx;
  const own = scars.filter((s) => s.scar.supplier === supplier);
  if (!card) {
    return panel(
      'supplier-detail',
      `Scorecard of ${supplier}`,
      h('p', { class: 'empty' }, `No receipts or production figures of ${supplier} in the period.`),
      own.length > 0 ? scarTable(own, filters, `Open SCARs of ${supplier}`, 'supplier-scars') : null,
    );
  }
  const seriesChart = h('div', { class: 'chart' });
  const classChart = h('div', { class: 'chart-small' });
  const section = panel(
    'supplier-detail',
    `Scorecard of ${supplier}`,
    h(
      'div',
      { class: 'tiles' },
      tile({
        id: 'supplier-score',
        label: 'quality score (0–100)',
        value: card.qualityScore.toFixed(1),
        state: card.qualityScore >= 90 ? 'good' : card.qualityScore >= 70 ? 'warn' : 'bad',
      }),
      tile({
        id: 'supplier-lot-rejection',
        label: 'lot rejection rate',
        value: percent(card.lotRejectionRate),
        hint: `${card.rejectedReceipts} of ${card.receipts} receipts`,
      }),
      tile({
        id: 'supplier-incoming-ppm',
        label: 'incoming ppm',
        value: ppm(card.incomingPpm),
        hint: `${card.defectiveParts} of ${card.inspectedParts} parts`,
      }),
      tile({
        id: 'supplier-production-ppm',
        label: 'production ppm',
        value: ppm(card.productionPpm),
        hint: `${card.productionFailed} of ${card.productionUnits} parts`,
        href: href('yield', filters, { by: 'supplier' }),
      }),
      tile({ id: 'supplier-trend', label: 'trend', value: card.trend }),
    ),
    h('h3', null, 'By week'),
    card.series.length > 0 ? seriesChart : null,
    table({
      id: 'supplier-series',
      caption: `${supplier} per week`,
      rows: card.series,
      empty: 'No figures per week.',
      columns: [
        { label: 'Week', cell: (s) => s.period },
        { label: 'Receipts (rejected)', cell: (s) => `${s.receipts} (${s.rejectedReceipts})`, numeric: true },
        { label: 'Lot rejection rate', cell: (s) => percent(s.lotRejectionRate), numeric: true },
        { label: 'Incoming ppm', cell: (s) => ppm(s.incomingPpm), numeric: true },
        { label: 'Production ppm', cell: (s) => ppm(s.productionPpm), numeric: true },
      ],
    }),
    h('h3', null, 'By material'),
    table({
      id: 'supplier-materials',
      caption: `${supplier} by material`,
      rows: card.byMaterial,
      empty: 'No material.',
      columns: [
        { label: 'Material', cell: (m) => m.material },
        { label: 'Quality score', cell: (m) => m.qualityScore.toFixed(1), numeric: true },
        { label: 'Receipts (rejected)', cell: (m) => `${m.receipts} (${m.rejectedReceipts})`, numeric: true },
        { label: 'Incoming ppm', cell: (m) => ppm(m.incomingPpm), numeric: true },
        { label: 'Production ppm', cell: (m) => ppm(m.productionPpm), numeric: true },
      ],
    }),
    h('h3', null, 'Defect classes at incoming inspection'),
    card.defectClasses.length > 0 ? classChart : null,
    table({
      id: 'supplier-classes',
      caption: `Defects found at incoming inspection of ${supplier}'s receipts`,
      rows: card.defectClasses,
      empty: 'No defect found at incoming inspection.',
      columns: [
        { label: 'Class', cell: (c) => c.class },
        { label: 'Defects', cell: (c) => c.defects, numeric: true },
      ],
    }),
    h('h3', null, 'Open SCARs'),
    scarTable(own, filters, `Open SCARs of ${supplier}`, 'supplier-scars'),
  );
  section.dataset.supplier = supplier;
  if (card.series.length > 0) {
    drawChart(
      seriesChart,
      `${supplier} per week: lot rejection rate and ppm; the table below lists every value`,
      {
        grid: { left: 60, right: 60, top: 30, bottom: 30 },
        legend: { top: 0 },
        tooltip: { trigger: 'axis' },
        xAxis: { type: 'category', data: card.series.map((s) => s.period) },
        yAxis: [
          { type: 'value', name: 'ppm', minInterval: 1 },
          { type: 'value', name: 'rejected lots', max: 100, axisLabel: { formatter: '{value} %' } },
        ],
        series: [
          { name: 'incoming ppm', type: 'bar', data: card.series.map((s) => s.incomingPpm) },
          { name: 'production ppm', type: 'bar', data: card.series.map((s) => s.productionPpm) },
          {
            name: 'lot rejection rate',
            type: 'line',
            yAxisIndex: 1,
            data: card.series.map((s) => (s.lotRejectionRate === null ? null : round1(s.lotRejectionRate * 100))),
          },
        ],
      },
      signal,
    );
  }
  if (card.defectClasses.length > 0) {
    drawChart(
      classChart,
      `Defect classes at incoming inspection: ${card.defectClasses.map((c) => `${c.class} ${c.defects}`).join(', ')}`,
      {
        grid: { left: 120, right: 20, top: 10, bottom: 25 },
        xAxis: { type: 'value', minInterval: 1 },
        yAxis: { type: 'category', data: card.defectClasses.map((c) => c.class).reverse() },
        tooltip: { trigger: 'axis' },
        series: [{ type: 'bar', data: card.defectClasses.map((c) => c.defects).reverse() }],
      },
      signal,
    );
  }
  return section;
}

/** Quality score per supplier and material, lowest first: a bar chart reads a ranking at a glance. */
function drawScores(container: HTMLElement, scores: readonly SupplierScore[], ctx: ViewContext, signal: AbortSignal) {
  if (scores.length === 0) {
    container.remove();
    return;
  }
  const sorted = [...scores].sort((a, b) => b.qualityScore - a.qualityScore).slice(-30);
  const names = sorted.map((s) => `${s.supplier} · ${s.material}`);
  const chart = drawChart(
    container,
    `Quality score by supplier and material, lowest: ${sorted
      .slice(-3)
      .reverse()
      .map((s) => `${s.supplier} ${s.qualityScore.toFixed(1)}`)
      .join(', ')}`,
    {
      grid: { left: 160, right: 30, top: 10, bottom: 25 },
      xAxis: { type: 'value', min: 0, max: 100 },
      yAxis: { type: 'category', data: names },
      tooltip: { trigger: 'axis' },
      series: [
        {
          name: 'quality score',
          type: 'bar',
          barMaxWidth: 28,
          data: sorted.map((s) => ({
            value: s.qualityScore,
            itemStyle: { color: s.qualityScore >= 90 ? PALETTE[2] : s.qualityScore >= 70 ? PALETTE[3] : PALETTE[1] },
          })),
        },
      ],
    },
    signal,
  );
  chart.on('click', (p) => {
    const s = typeof p.dataIndex === 'number' ? sorted[p.dataIndex] : undefined;
    if (s) ctx.setParams({ supplier: s.supplier });
  });
}

function ppm(value: number | null): string {
  return value === null ? '–' : Math.round(value).toLocaleString('en');
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
