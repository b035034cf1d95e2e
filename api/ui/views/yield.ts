/**
 * Yield and defects: first-pass yield by line and shift against the target, its trend over the shift dates, the
 * defect Pareto, the defect rate as a heat map by product, line, shift, component lot or supplier, and the site's
 * quality rules drawn as control charts with their limits and the points that tripped them.
 *
 * Every figure is one route's answer (the metrics routes read the aggregates kept at ingest, never the raw
 * inspections), asked in parallel; the live feed refreshes them at most every 2 s while the period reaches now.
 */
import type { z } from 'zod';
import type {
  ControlChartResponse,
  DefectHeatmapResponse,
  LiveEvent,
  MeResponse,
} from '../../schemas/dashboard.schema';
import type { DefectParetoResponseSchema, FpyResponseSchema } from '../../schemas/metrics.schema';
import type { RuleListSchema } from '../../schemas/quality-rules.schema';
import { getJson } from '../api-client';
import { type Chart, type ChartOption, PALETTE, drawChart } from '../charts';
import { type Child, h, panel, percent, replace, table, tile } from '../dom';
import { type Filters, type ViewContext, href, isoDate, lotHref, range } from '../view';

type FpyResponse = z.infer<typeof FpyResponseSchema>;
type FpyRow = FpyResponse['rows'][number];
type ParetoResponse = z.infer<typeof DefectParetoResponseSchema>;
type ParetoClass = ParetoResponse['groups'][number]['classes'][number];
type Rule = z.infer<typeof RuleListSchema>['rules'][number];
type HeatmapBy = DefectHeatmapResponse['by'];
/** A point's own limits arrive with the chart route's later contract; read when present. */
type ChartPoint = ControlChartResponse['points'][number] & { upperLimit?: number | null; lowerLimit?: number | null };

/** A burst of inspections is one refresh every 2 s at most. */
const REFRESH_MS = 2000;
/** The heat map route's longest range. */
const HEATMAP_MAX_DAYS = 31;
/** Control charts cover the last 24 hours of the period: a p- or u-chart is drawn again from its parts. */
const CHART_HOURS = 24;
/** More rules than this are listed, not drawn. */
const MAX_CHARTS = 12;
const DAY_MS = 86_400_000;
const SHIFT_COLOURS = [PALETTE[0], PALETTE[5], PALETTE[4], PALETTE[3]];

/** The heat map's rows (the contract's HEATMAP_DIMENSIONS, not imported: zod stays on the server). */
const HEATMAP_DIMENSIONS: readonly HeatmapBy[] = ['product', 'line', 'shift', 'component-lot', 'supplier'];
const HEATMAP_LABEL: Record<HeatmapBy, string> = {
  product: 'Product',
  line: 'Line',
  shift: 'Shift',
  'component-lot': 'Component lot',
  supplier: 'Supplier',
};

interface YieldData {
  byLine: FpyResponse;
  byLineDay: FpyResponse;
  byLineShiftDay: FpyResponse;
  /** A section whose read failed shows why; the others draw. */
  pareto: ParetoResponse | Error;
  heatmap: DefectHeatmapResponse | Error;
  rules: Rule[] | Error;
  charts: Array<{ rule: Rule; chart: ControlChartResponse | Error }>;
}

const failed = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** Set when the heat map's selector changed the URL, so the view drawn next gives it the focus back. */
let refocusHeatmapBy = false;

export async function yieldView(ctx: ViewContext): Promise<void> {
  const { main, filters, signal } = ctx;
  const by = heatmapBy(ctx.params.get('by'));
  document.title = `Yield and defects · ${filters.site} · Holdfast quality`;

  const sections = {
    fpy: h('div'),
    trend: h('div'),
    pareto: h('div'),
    heatmap: h('div'),
    charts: h('div'),
  };
  const select = h(
    'select',
    { id: 'heatmap-by', name: 'by' },
    HEATMAP_DIMENSIONS.map((d) => h('option', { value: d, selected: d === by }, HEATMAP_LABEL[d])),
  );
  select.addEventListener('change', () => {
    refocusHeatmapBy = true;
    ctx.setParams({ by: select.value });
  });
  const period = `${filters.from} to ${filters.to}`;
  replace(
    main,
    h('h1', null, `Yield and defects at ${filters.site}${filters.line ? ` · line ${filters.line}` : ''}`),
    h('p', { class: 'period' }, `From ${period}. FPY counts each part's first inspection at each station.`),
    panel('fpy', 'First-pass yield by line and shift', sections.fpy),
    panel('fpy-trend', 'First-pass yield over the days', sections.trend),
    h(
      'div',
      { class: 'columns' },
      panel('pareto', 'Defects by class (Pareto)', sections.pareto),
      panel('heatmap', 'Defect rate', h('label', { class: 'inline' }, 'Rows ', select), sections.heatmap),
    ),
    panel('control-charts', 'Control charts', sections.charts),
  );
  const refocus = refocusHeatmapBy;
  refocusHeatmapBy = false;

  // Each refresh redraws the figures: the previous drawing's charts go with it.
  let drawing: AbortController | undefined;
  signal.addEventListener('abort', () => drawing?.abort(), { once: true });
  const load = async () => {
    const data = await loadData(filters, by, signal);
    if (signal.aborted) return;
    drawing?.abort();
    drawing = new AbortController();
    // A live refresh keeps the tables someone opened open.
    const open = Object.values(sections).map((el) => [...el.querySelectorAll('details')].map((d) => d.open));
    draw(sections, data, ctx, by, drawing.signal);
    Object.values(sections).forEach((el, i) =>
      el.querySelectorAll('details').forEach((d, j) => {
        if (open[i]?.[j]) d.open = true;
      }),
    );
    main.dataset.loadedAt = new Date().toISOString();
  };

  // Inspections change the figures only while the period reaches the present.
  const live = Date.parse(range(filters).to) > Date.now();
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  signal.addEventListener('abort', () => clearTimeout(refreshTimer), { once: true });
  ctx.live.subscribe((event: LiveEvent) => {
    if (!live || event.type !== 'inspections' || event.site !== filters.site) return;
    if (filters.line && !event.lines.includes(filters.line)) return;
    refreshTimer ??= setTimeout(() => {
      refreshTimer = undefined;
      void load().catch(() => undefined);
    }, REFRESH_MS);
  }, signal);
  await load();
  // The view was drawn again for the new `by`: the keyboard goes back to the selector (arrow keys change it), after
  // the shell has moved the focus to the new view's content.
  if (refocus) setTimeout(() => signal.aborted || select.focus({ preventScroll: true }), 0);
}

function heatmapBy(value: string | null): HeatmapBy {
  return (HEATMAP_DIMENSIONS as readonly string[]).includes(value ?? '') ? (value as HeatmapBy) : 'line';
}

/** Every read of the view, in parallel; the rules' charts once the rules are known. */
async function loadData(filters: Filters, by: HeatmapBy, signal: AbortSignal): Promise<YieldData> {
  const window = range(filters);
  const scope = { site: filters.site, line: filters.line || undefined };
  const metric = { ...scope, ...window };
  const heatFrom = new Date(Math.max(Date.parse(window.from), Date.parse(window.to) - HEATMAP_MAX_DAYS * DAY_MS));
  const chartTo = Math.min(Date.parse(window.to), Date.now());
  const chartWindow = {
    from: new Date(Math.max(Date.parse(window.from), chartTo - CHART_HOURS * 3_600_000)).toISOString(),
    to: new Date(chartTo).toISOString(),
  };
  const rulesThenCharts = (async () => {
    const { rules } = await getJson<{ rules: Rule[] }>('/v1/quality-rules', scope, signal);
    const drawn = rules.filter((r) => r.active).slice(0, MAX_CHARTS);
    const charts = await Promise.all(
      drawn.map(async (rule) => ({
        rule,
        chart: await getJson<ControlChartResponse>(
          `/v1/quality-rules/${encodeURIComponent(rule.site)}/${encodeURIComponent(rule.ruleId)}/chart`,
          chartWindow,
          signal,
        ).catch(failed),
      })),
    );
    return { rules, charts };
  })().catch((err: unknown) => ({ rules: failed(err), charts: [] }));
  const [byLine, byLineDay, byLineShiftDay, pareto, heatmap, ruled] = await Promise.all([
    getJson<FpyResponse>('/v1/metrics/fpy', { ...metric, groupBy: 'line' }, signal),
    getJson<FpyResponse>('/v1/metrics/fpy', { ...metric, groupBy: 'line', bucket: 'day' }, signal),
    getJson<FpyResponse>('/v1/metrics/fpy', { ...metric, groupBy: 'line,shift', bucket: 'day' }, signal),
    getJson<ParetoResponse>('/v1/metrics/defects', metric, signal).catch(failed),
    getJson<DefectHeatmapResponse>(
      '/v1/metrics/defect-heatmap',
      { ...scope, by, from: heatFrom.toISOString(), to: window.to },
      signal,
    ).catch(failed),
    rulesThenCharts,
  ]);
  return { byLine, byLineDay, byLineShiftDay, pareto, heatmap, ...ruled };
}

function draw(
  sections: Record<'fpy' | 'trend' | 'pareto' | 'heatmap' | 'charts', HTMLElement>,
  data: YieldData,
  ctx: ViewContext,
  by: HeatmapBy,
  signal: AbortSignal,
): void {
  drawFpy(sections.fpy, data, ctx, signal);
  drawTrend(sections.trend, data, ctx, signal);
  if (data.pareto instanceof Error) unavailable(sections.pareto, data.pareto);
  else drawPareto(sections.pareto, data.pareto, signal);
  if (data.heatmap instanceof Error) unavailable(sections.heatmap, data.heatmap);
  else drawHeatmap(sections.heatmap, data.heatmap, ctx, by, signal);
  if (data.rules instanceof Error) unavailable(sections.charts, data.rules);
  else drawControlCharts(sections.charts, data.rules, data.charts, ctx, signal);
}

function unavailable(target: HTMLElement, err: Error): void {
  replace(target, h('p', { class: 'error', role: 'alert' }, `Could not load: ${err.message}`));
}

// --- First-pass yield --------------------------------------------------------------------------------------------

/** The line's target: its own, else the site's (config `fpyTarget`, served by /v1/me); null when none. */
function targetOf(me: MeResponse, site: string, line: string | null): number | null {
  const s = me.sites.find((x) => x.id === site);
  if (!s) return null;
  if (line !== null) return s.lineFpyTargets?.[line] ?? s.fpyTarget ?? null;
  return s.fpyTarget ?? null;
}

const lineOf = (row: FpyRow) => row.group.line ?? '–';

function against(fpy: number | null, target: number | null): 'good' | 'bad' | undefined {
  if (fpy === null || target === null) return undefined;
  return fpy >= target ? 'good' : 'bad';
}

/** An FPY as text with its figures in data attributes, so a test reads exactly what the API answered. */
function fpyCell(row: FpyRow | undefined, target: number | null, key: string): Child {
  if (!row) return h('span', { 'data-fpy-cell': key, 'data-units': 0 }, '–');
  const state = against(row.fpy, target);
  return h(
    'span',
    {
      'data-fpy-cell': key,
      'data-units': row.units,
      'data-first-pass-good': row.firstPassGood,
      'data-fpy': row.fpy ?? '',
      class: state === 'bad' ? 'below-target' : undefined,
      title: `${row.firstPassGood} of ${row.units} parts passed their first inspection`,
    },
    percent(row.fpy),
    state === 'bad' ? ' ▼' : '',
  );
}

function drawFpy(target: HTMLElement, data: YieldData, ctx: ViewContext, signal: AbortSignal): void {
  const { filters, me } = ctx;
  const lastDay = filters.to;
  const dayLabel = lastDay === isoDate(new Date()) ? 'today' : `on ${lastDay}`;
  const lines = data.byLine.rows.map(lineOf);
  const today = new Map(data.byLineDay.rows.filter((r) => r.bucket === lastDay).map((r) => [lineOf(r), r]));
  const shiftRows = data.byLineShiftDay.rows.filter((r) => r.bucket === lastDay);
  const shifts = [...new Set(shiftRows.map((r) => r.group.shift ?? '–'))].sort();
  const byLineShift = new Map(shiftRows.map((r) => [`${lineOf(r)}|${r.group.shift ?? '–'}`, r]));
  for (const r of [...today.keys(), ...shiftRows.map(lineOf)]) if (!lines.includes(r)) lines.push(r);
  lines.sort();
  const siteTarget = targetOf(me, filters.site, null);
  const total = data.byLine.total;

  const chart = h('div', { class: 'chart-small' });
  replace(
    target,
    h(
      'div',
      { class: 'tiles' },
      tile({
        id: 'fpy-site',
        label: `FPY over the period${filters.line ? ` (line ${filters.line})` : ''}`,
        value: percent(total.fpy),
        state: against(total.fpy, filters.line ? targetOf(me, filters.site, filters.line) : siteTarget),
        hint: `${total.firstPassGood} of ${total.units} parts${siteTarget !== null ? `; target ${percent(siteTarget)}` : ''}`,
      }),
      lines.map((line) => {
        const row = today.get(line);
        const goal = targetOf(me, filters.site, line);
        return tile({
          id: `fpy-today-${line}`,
          label: `line ${line} ${dayLabel}`,
          value: percent(row?.fpy),
          state: against(row?.fpy ?? null, goal),
          href: href('yield', filters, { line, by: ctx.params.get('by') ?? undefined }),
          hint: goal !== null ? `target ${percent(goal)}` : 'no target configured',
        });
      }),
    ),
    chart,
    table({
      id: 'fpy-by-line',
      caption: `First-pass yield by line: the period, ${dayLabel} and ${dayLabel} by shift`,
      rows: lines,
      empty: 'No part was first inspected in the period.',
      columns: [
        {
          label: 'Line',
          cell: (line) => h('a', { href: href('yield', filters, { line }), 'data-line': line }, line),
        },
        {
          label: 'Target',
          cell: (line) => percent(targetOf(me, filters.site, line)),
          numeric: true,
        },
        {
          label: 'Parts (period)',
          cell: (line) => data.byLine.rows.find((r) => lineOf(r) === line)?.units ?? 0,
          numeric: true,
        },
        {
          label: 'FPY (period)',
          cell: (line) =>
            fpyCell(
              data.byLine.rows.find((r) => lineOf(r) === line),
              targetOf(me, filters.site, line),
              `period|${line}`,
            ),
          numeric: true,
        },
        {
          label: `FPY ${dayLabel}`,
          cell: (line) => fpyCell(today.get(line), targetOf(me, filters.site, line), `day|${line}`),
          numeric: true,
        },
        ...shifts.map((shift) => ({
          label: `Shift ${shift} ${dayLabel}`,
          cell: (line: string) =>
            fpyCell(byLineShift.get(`${line}|${shift}`), targetOf(me, filters.site, line), `shift|${line}|${shift}`),
          numeric: true,
        })),
        {
          label: 'Re-inspections (passed)',
          cell: (line) => {
            const r = data.byLine.rows.find((x) => lineOf(x) === line);
            return r ? `${r.reInspections.inspections} (${r.reInspections.passed})` : '–';
          },
          numeric: true,
        },
        {
          label: 'After rework (passed)',
          cell: (line) => {
            const r = data.byLine.rows.find((x) => lineOf(x) === line);
            return r ? `${r.afterRework.inspections} (${r.afterRework.passed})` : '–';
          },
          numeric: true,
        },
      ],
    }),
  );
  if (lines.length === 0) {
    chart.remove();
    return;
  }
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? null : round(v * 100, 2));
  const goals = lines.map((l) => targetOf(me, filters.site, l));
  const drawn = drawChart(
    chart,
    `First-pass yield ${dayLabel} by line and shift: ${lines
      .map((l) => `${l} ${percent(today.get(l)?.fpy)}`)
      .join(', ')}`,
    {
      grid: { left: 50, right: 20, top: 30, bottom: 30 },
      legend: { top: 0 },
      tooltip: { trigger: 'axis', valueFormatter: (v: unknown) => (typeof v === 'number' ? `${v} %` : '–') },
      xAxis: { type: 'category', data: lines },
      yAxis: { type: 'value', max: 100, axisLabel: { formatter: '{value} %' } },
      series: [
        ...shifts.map((shift, i) => ({
          name: `shift ${shift}`,
          type: 'bar',
          barMaxWidth: 48,
          // Shifts in calm colours, the line's whole day dark: red stays for "below target" in the tables.
          itemStyle: { color: SHIFT_COLOURS[i % SHIFT_COLOURS.length] },
          data: lines.map((l) => pct(byLineShift.get(`${l}|${shift}`)?.fpy)),
        })),
        {
          name: `line ${dayLabel}`,
          type: 'bar',
          barMaxWidth: 48,
          itemStyle: { color: '#102a43' },
          data: lines.map((l) => pct(today.get(l)?.fpy)),
          // The target of each line as a mark over its bars (lines may have their own).
          markPoint: goals.some((g) => g !== null) && {
            symbol: 'rect',
            symbolSize: [56, 4],
            label: { show: false },
            // Visible on the dark bar and on the page alike.
            itemStyle: { color: '#1a1f24', borderColor: '#ffffff', borderWidth: 1 },
            data: lines.flatMap((l, i) =>
              goals[i] === null ? [] : [{ name: `target ${l}`, coord: [l, pct(goals[i])], value: pct(goals[i]) }],
            ),
          },
        },
      ],
    },
    signal,
  );
  linkCategories(drawn, (name) => {
    if (lines.includes(name)) ctx.go('yield', { line: name });
  });
}

function drawTrend(target: HTMLElement, data: YieldData, ctx: ViewContext, signal: AbortSignal): void {
  const { filters, me } = ctx;
  // Hours at the window's edges may belong to the shift dates just outside it (a night shift across midnight).
  const rows = data.byLineDay.rows.filter(
    (r) => r.bucket !== null && r.bucket >= filters.from && r.bucket <= filters.to,
  );
  const days = [...new Set(rows.map((r) => r.bucket as string))].sort();
  const lines = [...new Set(rows.map(lineOf))].sort();
  const at = new Map(rows.map((r) => [`${lineOf(r)}|${r.bucket}`, r]));
  const chart = h('div', { class: 'chart' });
  const siteTarget = targetOf(me, filters.site, filters.line || null);
  replace(
    target,
    chart,
    h(
      'details',
      null,
      h('summary', null, 'The figures per day'),
      table({
        id: 'fpy-trend',
        caption: 'First-pass yield per line and shift date',
        rows: days,
        empty: 'No part was first inspected in the period.',
        columns: [
          { label: 'Shift date', cell: (day) => day },
          ...lines.map((line) => ({
            label: `Line ${line}`,
            cell: (day: string) =>
              fpyCell(at.get(`${line}|${day}`), targetOf(me, filters.site, line), `trend|${line}|${day}`),
            numeric: true,
          })),
        ],
      }),
    ),
  );
  if (days.length === 0) {
    chart.remove();
    return;
  }
  const drawn = drawChart(
    chart,
    `First-pass yield per shift date for lines ${lines.join(', ')}; the table below lists every value`,
    {
      grid: { left: 50, right: 90, top: 30, bottom: 60 },
      legend: { top: 0 },
      tooltip: { trigger: 'axis', valueFormatter: (v: unknown) => (typeof v === 'number' ? `${v} %` : '–') },
      dataZoom: [{ type: 'slider', bottom: 10, height: 18 }],
      xAxis: { type: 'category', data: days },
      yAxis: { type: 'value', scale: true, max: 100, axisLabel: { formatter: '{value} %' } },
      series: lines.map((line, i) => ({
        name: line,
        type: 'line',
        connectNulls: false,
        symbolSize: 7,
        data: days.map((d) => {
          const fpy = at.get(`${line}|${d}`)?.fpy;
          return fpy === null || fpy === undefined ? null : round(fpy * 100, 2);
        }),
        markLine:
          i === 0 && siteTarget !== null
            ? {
                symbol: 'none',
                lineStyle: { type: 'dashed', color: '#1a1f24' },
                label: { formatter: `target ${percent(siteTarget)}` },
                data: [{ yAxis: round(siteTarget * 100, 2) }],
              }
            : undefined,
      })),
    },
    signal,
  );
  drawn.on('click', (p: { seriesName?: string }) => {
    if (p.seriesName && lines.includes(p.seriesName)) ctx.go('yield', { line: p.seriesName });
  });
}

// --- Pareto ----------------------------------------------------------------------------------------------------

function drawPareto(target: HTMLElement, pareto: ParetoResponse, signal: AbortSignal): void {
  const classes: ParetoClass[] = pareto.groups[0]?.classes ?? [];
  const total = pareto.groups[0]?.defects ?? 0;
  const chart = h('div', { class: 'chart' });
  replace(
    target,
    h(
      'p',
      null,
      'Defects found at production inspections of every kind: ',
      h('strong', { 'data-figure': 'defects-total' }, total),
      '.',
    ),
    chart,
    table({
      id: 'pareto-table',
      caption: 'Defects by class, most first',
      rows: classes,
      empty: 'No defect in the period.',
      columns: [
        { label: 'Class', cell: (c) => h('span', { 'data-class': c.defectClass }, c.defectClass) },
        { label: 'Defects', cell: (c) => h('span', { 'data-defects': c.defects }, c.defects), numeric: true },
        { label: 'Parts', cell: (c) => c.parts, numeric: true },
        { label: 'Share', cell: (c) => percent(c.share), numeric: true },
        { label: 'Cumulative', cell: (c) => percent(c.cumulativeShare), numeric: true },
      ],
    }),
  );
  if (classes.length === 0) {
    chart.remove();
    return;
  }
  drawChart(
    chart,
    `Defect Pareto: ${classes
      .slice(0, 5)
      .map((c) => `${c.defectClass} ${c.defects}`)
      .join(', ')}${classes.length > 5 ? ', …' : ''}`,
    {
      grid: { left: 50, right: 50, top: 30, bottom: 60 },
      legend: { top: 0 },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'category', data: classes.map((c) => c.defectClass), axisLabel: { interval: 0, rotate: 30 } },
      yAxis: [
        { type: 'value', name: 'defects', minInterval: 1 },
        { type: 'value', name: 'cumulative', max: 100, axisLabel: { formatter: '{value} %' } },
      ],
      series: [
        { name: 'defects', type: 'bar', data: classes.map((c) => c.defects) },
        {
          name: 'cumulative share',
          type: 'line',
          yAxisIndex: 1,
          data: classes.map((c) => round(c.cumulativeShare * 100, 1)),
          tooltip: { valueFormatter: (v: unknown) => `${String(v)} %` },
        },
      ],
    },
    signal,
  );
}

// --- Heat map --------------------------------------------------------------------------------------------------

/** Where a heat map key leads: the line's yield, the lot's page, the supplier's scorecard; else nowhere. */
function keyTarget(by: HeatmapBy, key: string): { path: string; params: Record<string, string> } | undefined {
  if (by === 'line') return { path: 'yield', params: { line: key, by } };
  if (by === 'component-lot') return { path: `lots/${encodeURIComponent(key)}`, params: {} };
  if (by === 'supplier' && key !== '(unknown)') return { path: 'suppliers', params: { supplier: key } };
  return undefined;
}

function keyHref(by: HeatmapBy, key: string, filters: Filters): string | undefined {
  const to = keyTarget(by, key);
  if (!to) return undefined;
  return by === 'component-lot' ? lotHref(key, filters) : href(to.path, filters, to.params);
}

function drawHeatmap(
  target: HTMLElement,
  map: DefectHeatmapResponse,
  ctx: ViewContext,
  by: HeatmapBy,
  signal: AbortSignal,
): void {
  const { filters } = ctx;
  const cell = new Map(map.cells.map((c) => [`${c.key}|${c.day}`, c]));
  const extra = map as DefectHeatmapResponse & { totalKeys?: number };
  const chart = h('div', { class: 'chart-tall' });
  const label = HEATMAP_LABEL[by];
  const keyLink = (key: string) => {
    const to = keyHref(by, key, filters);
    return to ? h('a', { href: to, 'data-key': key }, key) : h('span', { 'data-key': key }, key);
  };
  replace(
    target,
    h(
      'p',
      { id: 'heatmap-note' },
      'Defective parts ÷ parts first inspected, per ',
      label.toLowerCase(),
      ' and shift date.',
      extra.totalKeys !== undefined && extra.totalKeys > map.keys.length
        ? ` The ${map.keys.length} with the most parts of ${extra.totalKeys}.`
        : '',
    ),
    chart,
    h(
      'details',
      null,
      h('summary', null, 'The figures per key'),
      table({
        id: 'heatmap-table',
        caption: `Defect rate by ${label.toLowerCase()}, per shift date`,
        rows: map.cells,
        empty: 'No part was first inspected in the period.',
        columns: [
          { label, cell: (c) => keyLink(c.key) },
          { label: 'Shift date', cell: (c) => c.day },
          { label: 'Parts', cell: (c) => c.units, numeric: true },
          { label: 'Defective', cell: (c) => c.defective, numeric: true },
          {
            label: 'Defect rate',
            cell: (c) => h('span', { 'data-cell': `${c.key}|${c.day}`, 'data-rate': c.rate ?? '' }, percent(c.rate, 2)),
            numeric: true,
          },
        ],
      }),
    ),
  );
  target.dataset.by = by;
  if (map.cells.length === 0) {
    chart.remove();
    return;
  }
  const rates = map.cells.map((c) => (c.rate ?? 0) * 100);
  // Most parts at the top; shifts in their own order (A, B, C).
  const keys = by === 'shift' ? [...map.keys].sort().reverse() : [...map.keys].reverse();
  const drawn = drawChart(
    chart,
    `Defect rate by ${label.toLowerCase()} and shift date, ${map.keys.length} rows over ${map.days.length} days; the table lists every cell`,
    {
      grid: { left: 130, right: 30, top: 10, bottom: 80 },
      tooltip: {
        formatter: (p: { value?: [number, number, number] }) => {
          const [x, y] = p.value ?? [0, 0];
          const c = cell.get(`${keys[y]}|${map.days[x]}`);
          return c ? `${c.key}, ${c.day}: ${percent(c.rate, 2)} (${c.defective} of ${c.units})` : '';
        },
      },
      xAxis: { type: 'category', data: map.days, splitArea: { show: true } },
      yAxis: { type: 'category', data: keys, splitArea: { show: true } },
      visualMap: {
        min: 0,
        max: Math.max(1, Math.ceil(Math.max(...rates))),
        calculable: true,
        orient: 'horizontal',
        left: 'center',
        bottom: 5,
        formatter: (v: number) => `${v.toFixed(1)} %`,
        inRange: { color: ['#f4f9ff', '#fdd49e', '#d7301f', '#7f0000'] },
      },
      series: [
        {
          name: 'defect rate',
          type: 'heatmap',
          data: map.cells.map((c) => [
            map.days.indexOf(c.day),
            keys.indexOf(c.key),
            c.rate === null ? '-' : round(c.rate * 100, 2),
          ]),
          emphasis: { itemStyle: { borderColor: '#1a1f24', borderWidth: 1 } },
        },
      ],
    },
    signal,
  );
  drawn.on('click', (p) => {
    const row = Array.isArray(p.value) ? p.value[1] : undefined;
    const key = typeof row === 'number' ? keys[row] : undefined;
    const to = key === undefined ? undefined : keyTarget(by, key);
    if (to) ctx.go(to.path, to.params);
  });
}

// --- Control charts --------------------------------------------------------------------------------------------

function escalationHref(me: MeResponse, escalationId: string): string | undefined {
  if (!me.temporalUiUrl) return undefined;
  return `${me.temporalUiUrl}/workflows/${encodeURIComponent(`quality-escalation-${escalationId}`)}`;
}

function drawControlCharts(
  target: HTMLElement,
  rules: readonly Rule[],
  charts: YieldData['charts'],
  ctx: ViewContext,
  signal: AbortSignal,
): void {
  const { me } = ctx;
  const inactive = rules.filter((r) => !r.active);
  const undrawn = rules.filter((r) => r.active).slice(MAX_CHARTS);
  replace(
    target,
    rules.length === 0
      ? h('p', { class: 'empty', id: 'no-rules' }, 'No quality rule watches this site or line.')
      : h(
          'p',
          null,
          `The last ${CHART_HOURS} hours of the period. Tripped points are marked; each links to the escalation it raised.`,
        ),
    charts.map(({ rule, chart }) => controlChart(rule, chart, me, signal)),
    undrawn.length > 0
      ? h('p', null, `Not drawn (more than ${MAX_CHARTS}): ${undrawn.map((r) => r.ruleId).join(', ')}.`)
      : null,
    inactive.length > 0 ? h('p', null, `Inactive: ${inactive.map((r) => r.ruleId).join(', ')}.`) : null,
  );
}

function controlChart(
  rule: Rule,
  chart: ControlChartResponse | Error,
  me: MeResponse,
  signal: AbortSignal,
): HTMLElement {
  const id = `rule-${rule.ruleId}`;
  const scope = `line ${rule.line}${rule.station ? `, station ${rule.station}` : ''}`;
  if (chart instanceof Error) {
    return h(
      'section',
      { class: 'control-chart', id, 'data-rule': rule.ruleId, 'aria-label': `Rule ${rule.ruleId}` },
      h('h3', null, `${rule.ruleId} · ${scope}`),
      h('p', { class: 'error' }, `Could not draw this rule: ${chart.message}`),
    );
  }
  const points = chart.points as ChartPoint[];
  const tripped = points.filter((p) => p.tripped.length > 0);
  const container = h('div', { class: 'chart' });
  const section = h(
    'section',
    { class: 'control-chart', id, 'data-rule': rule.ruleId, 'aria-labelledby': `${id}-title` },
    h('h3', { id: `${id}-title` }, chart.title),
    h(
      'p',
      null,
      `${chart.statistic}. Centre ${fmt(chart.centre)}`,
      chart.upperLimit !== null ? `, upper limit ${fmt(chart.upperLimit)}` : '',
      chart.lowerLimit !== null ? `, lower limit ${fmt(chart.lowerLimit)}` : '',
      `; ${points.length} points, `,
      h('span', { 'data-figure': `${id}-tripped` }, tripped.length),
      ' tripped.',
    ),
    points.length > 0 ? container : h('p', { class: 'empty' }, 'No point in these hours.'),
    table({
      caption: `Points of ${rule.ruleId} that tripped a rule`,
      rows: tripped,
      empty: 'No point tripped the rule in these hours.',
      columns: [
        { label: 'At', cell: (p) => h('time', { datetime: p.at }, new Date(p.at).toLocaleString()) },
        { label: 'Value', cell: (p) => fmt(p.value), numeric: true },
        { label: 'Parts', cell: (p) => p.n ?? '–', numeric: true },
        { label: 'Tripped', cell: (p) => p.tripped.join(', ') },
        {
          label: 'Escalation',
          cell: (p) => {
            if (!p.escalationId) return '–';
            const to = escalationHref(me, p.escalationId);
            return to
              ? h(
                  'a',
                  { href: to, target: '_blank', rel: 'noopener', 'data-escalation': p.escalationId },
                  p.escalationId,
                )
              : p.escalationId;
          },
        },
      ],
    }),
  );
  if (points.length === 0) return section;
  const varying = points.some((p) => p.upperLimit !== undefined && p.upperLimit !== null);
  const constantLines = [
    chart.centre !== null && { name: 'centre', yAxis: chart.centre, lineStyle: { type: 'solid', color: PALETTE[2] } },
    chart.upperLimit !== null && {
      name: 'UCL',
      yAxis: chart.upperLimit,
      lineStyle: { type: 'dashed', color: PALETTE[1] },
    },
    chart.lowerLimit !== null && {
      name: 'LCL',
      yAxis: chart.lowerLimit,
      lineStyle: { type: 'dashed', color: PALETTE[1] },
    },
  ].filter(Boolean);
  const series: ChartOption[] = [
    {
      name: chart.statistic,
      type: 'line',
      symbolSize: 5,
      data: points.map((p) => [p.at, p.value]),
      markLine: constantLines.length > 0 && {
        symbol: 'none',
        label: { formatter: '{b}: {c}' },
        data: constantLines,
      },
      markPoint: tripped.length > 0 && {
        symbol: 'pin',
        symbolSize: 36,
        itemStyle: { color: PALETTE[1] },
        label: { formatter: '!' },
        data: tripped.map((p) => ({
          name: p.tripped.join(', '),
          coord: [p.at, p.value],
          value: p.escalationId ?? '',
        })),
      },
    },
  ];
  if (varying) {
    for (const [name, key] of [
      ['UCL (per subgroup)', 'upperLimit'],
      ['LCL (per subgroup)', 'lowerLimit'],
    ] as const) {
      series.push({
        name,
        type: 'line',
        step: 'middle',
        symbol: 'none',
        lineStyle: { type: 'dashed', width: 1, color: PALETTE[1] },
        data: points.map((p) => [p.at, p[key] ?? null]),
      });
    }
  }
  const drawn = drawChart(
    container,
    `${chart.title}: ${points.length} points, ${tripped.length} tripped; the table lists the tripped points`,
    {
      grid: { left: 60, right: 80, top: 30, bottom: 30 },
      legend: { top: 0 },
      tooltip: { trigger: 'axis' },
      xAxis: { type: 'time' },
      yAxis: { type: 'value', scale: true },
      series,
    },
    signal,
  );
  drawn.on('click', (p: { componentType?: string; value?: unknown }) => {
    if (p.componentType !== 'markPoint' || typeof p.value !== 'string' || !p.value) return;
    const to = escalationHref(me, p.value);
    if (to) window.open(to, '_blank', 'noopener');
  });
  return section;
}

// --- helpers ---------------------------------------------------------------------------------------------------

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function fmt(value: number | null): string {
  if (value === null) return '–';
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

/** Clicking a category (an axis label or its bars) opens its detail. */
function linkCategories(chart: Chart, open: (name: string) => void): void {
  chart.on('click', (p: { name?: string }) => {
    if (p.name) open(p.name);
  });
}
