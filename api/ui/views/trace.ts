/**
 * Traceability: a lot, part, serial, supplier lot or delivery searched in the genealogy (GET /v1/trace/backward and
 * /forward), drawn as a graph with the cameras' findings on each lot and listed in tables (where it came from down to
 * the supplier lots, what it went into, which customers received it). From here a quality engineer starts a mock
 * recall of the same start and watches its stages (`recall=` in the URL shows one; the Now view links there).
 */
import type { z } from 'zod';
import type { RecallBodySchema, RecallStartedSchema, RecallViewSchema } from '../../schemas/recall.schema';
import type { TracePageSchema } from '../../schemas/trace.schema';
import { ApiError, getJson, postJson } from '../api-client';
import { PALETTE, drawChart } from '../charts';
import { type Child, field, h, panel, replace, table, when } from '../dom';
import { SubmissionKey } from '../idempotency';
import { problemAlert } from '../problem-alert';
import { mayDecide } from '../session';
import { type Filters, type ViewContext, href } from '../view';

type TracePage = z.infer<typeof TracePageSchema>;
type TracedLot = TracePage['lots'][number];
type RecallView = z.infer<typeof RecallViewSchema>;
type RecallScope = z.infer<typeof RecallBodySchema>['scope'];

/** The ways the search box names a start; two of them need a second field. */
const SEARCH_BY = {
  lot: { label: 'Lot', first: 'MES lot id', second: undefined },
  part: { label: 'Part', first: 'Part id', second: undefined },
  serial: { label: 'Serial number', first: 'Serial number', second: undefined },
  'supplier-lot': { label: 'Supplier lot', first: 'Supplier', second: 'Supplier batch' },
  delivery: { label: 'Delivery', first: 'Delivery', second: 'Delivery item' },
} as const;
type SearchBy = keyof typeof SEARCH_BY;

interface Search {
  by: SearchBy;
  q: string;
  q2: string;
}

const RECALL_POLL_MS = 2000;

export async function traceView(ctx: ViewContext): Promise<void> {
  const { main, params, filters, signal } = ctx;
  const byParam = params.get('by') ?? 'lot';
  const search: Search = {
    by: byParam in SEARCH_BY ? (byParam as SearchBy) : 'lot',
    q: params.get('q') ?? '',
    q2: params.get('q2') ?? '',
  };
  const recallId = params.get('recall') ?? '';
  document.title = `Traceability${search.q ? ` · ${search.q}` : ''} · Holdfast quality`;

  const results = h('div', { id: 'trace-results', 'aria-live': 'polite' });
  // A recall being watched comes first; the form to start one follows the trace it would recall.
  const recallPanel = h('div', { id: 'recall-area' });
  const recallStart = h('div', { id: 'recall-start' });
  replace(main, h('h1', null, 'Traceability'), searchForm(ctx, search), recallPanel, results, recallStart);

  if (recallId) {
    void watchRecall(recallPanel, recallId, ctx).catch((err: unknown) => {
      if (!signal.aborted) replace(recallPanel, panel('recall', 'Recall', problemAlert(err, 'recall-error')));
    });
  }
  if (!search.q || (SEARCH_BY[search.by].second && !search.q2)) {
    replace(
      results,
      h(
        'p',
        { class: 'empty' },
        'Search a lot, part, serial number, supplier lot or delivery to see where it came from and where it went.',
      ),
    );
    return;
  }

  replace(results, h('p', { role: 'status' }, 'Tracing…'));
  const query = traceQuery(search, filters);
  let backward: TracePage;
  let forward: TracePage;
  try {
    [backward, forward] = await Promise.all([
      getJson<TracePage>('/v1/trace/backward', query, signal),
      getJson<TracePage>('/v1/trace/forward', query, signal),
    ]);
  } catch (err) {
    if (signal.aborted) return;
    replace(
      results,
      err instanceof ApiError && err.status === 404
        ? h(
            'p',
            { class: 'empty', role: 'status', id: 'trace-none' },
            `Nothing in the genealogy matches ${describe(search)}.`,
          )
        : problemAlert(err, 'trace-error'),
    );
    return;
  }
  if (signal.aborted) return;
  drawResults(results, search, backward, forward, ctx);
  if (!recallId) replace(recallStart, recallForm(search, ctx));
}

function searchForm(ctx: ViewContext, search: Search): HTMLElement {
  const firstLabel = h('span', null, SEARCH_BY[search.by].first);
  const secondLabel = h('span', null, SEARCH_BY[search.by].second ?? '');
  const second = h('input', { id: 'trace-q2', name: 'q2', value: search.q2, autocomplete: 'off' });
  const secondField = h('label', { for: 'trace-q2', hidden: !SEARCH_BY[search.by].second }, secondLabel, ' ', second);
  const select = h(
    'select',
    { id: 'trace-by', name: 'by' },
    (Object.keys(SEARCH_BY) as SearchBy[]).map((by) =>
      h('option', { value: by, selected: by === search.by }, SEARCH_BY[by].label),
    ),
  );
  // The labels follow the choice, so each field always says what it wants.
  select.addEventListener('change', () => {
    const spec = SEARCH_BY[select.value as SearchBy];
    firstLabel.textContent = spec.first;
    secondLabel.textContent = spec.second ?? '';
    secondField.hidden = !spec.second;
    second.required = Boolean(spec.second);
  });
  second.required = Boolean(SEARCH_BY[search.by].second);
  const form = h(
    'form',
    { class: 'filters', id: 'trace-form', role: 'search', 'aria-label': 'Trace search' },
    h('label', { for: 'trace-by' }, 'Search by ', select),
    h(
      'label',
      { for: 'trace-q' },
      firstLabel,
      ' ',
      h('input', { id: 'trace-q', name: 'q', value: search.q, required: true, autocomplete: 'off', type: 'search' }),
    ),
    secondField,
    h('button', { type: 'submit' }, 'Trace'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const by = field(form, 'by') as SearchBy;
    ctx.setParams({
      by,
      q: field(form, 'q').trim(),
      q2: SEARCH_BY[by].second ? field(form, 'q2').trim() : undefined,
      recall: undefined,
    });
  });
  return form;
}

/** The trace routes' query for a search (docs/traceability.md#routes); lots and parts are the filter's site's. */
function traceQuery(s: Search, filters: Filters): Record<string, string> {
  switch (s.by) {
    case 'lot':
      return { by: 'mes-lot', site: filters.site, lotId: s.q };
    case 'part':
      return { by: 'part', site: filters.site, partId: s.q };
    case 'serial':
      return { by: 'serial', serial: s.q };
    case 'supplier-lot':
      return { by: 'supplier-lot', supplier: s.q, supplierBatch: s.q2 };
    case 'delivery':
      return { by: 'delivery', delivery: s.q, item: s.q2 };
  }
}

/** A recall's scope for the same start; a delivery is no recall scope (docs/recall.md#routes). */
function recallScope(s: Search, filters: Filters): RecallScope | undefined {
  switch (s.by) {
    case 'lot':
      return { kind: 'mes-lot', site: filters.site, lotId: s.q };
    case 'part':
      return { kind: 'part', site: filters.site, partId: s.q };
    case 'serial':
      return { kind: 'serial', serial: s.q };
    case 'supplier-lot':
      return { kind: 'supplier-lot', supplier: s.q, supplierBatch: s.q2 };
    case 'delivery':
      return undefined;
  }
}

function describe(s: Search): string {
  const spec = SEARCH_BY[s.by];
  return spec.second ? `${spec.label.toLowerCase()} ${s.q} / ${s.q2}` : `${spec.label.toLowerCase()} ${s.q}`;
}

/** A lot as people name it: its MES lot id, else its ERP batch, else its supplier's batch, else its key. */
function lotName(l: TracedLot): string {
  return l.mes?.lotId ?? l.erp?.batch ?? l.supplierBatch ?? l.lotKey;
}

/** The lot's page (MRB console) when the MES knows the lot; its site is the lot's, not the filter's. */
function lotLink(l: TracedLot, filters: Filters): string | undefined {
  return l.mes ? href(`lots/${encodeURIComponent(l.mes.lotId)}`, { ...filters, site: l.mes.site }) : undefined;
}

function lotCell(l: TracedLot, filters: Filters): Child {
  const link = lotLink(l, filters);
  const name = lotName(l);
  return link ? h('a', { href: link, 'data-lot-key': l.lotKey }, name) : h('span', { 'data-lot-key': l.lotKey }, name);
}

/** The cameras' findings on a lot: failed inspections and the defect classes behind them. */
function findings(l: TracedLot): string {
  const { pass, fail, defects } = l.inspections;
  if (pass + fail === 0) return 'not inspected';
  const classes = Object.entries(defects)
    .sort((a, b) => b[1] - a[1])
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  return `${fail} failed of ${pass + fail}${classes ? ` (${classes})` : ''}`;
}

function reachedVia(l: TracedLot): string {
  if (l.depth === 0) return 'start';
  return l.reachedVia.map((e) => `${e.kind} from ${nodeLabel(e.from)}`).join('; ') || '–';
}

/** A part of a genealogy node id, escaped as the genealogy spells it (infra/genealogy/genealogy-keys.ts). */
const keyPart = (value: string): string => value.replace(/%/g, '%25').replace(/\//g, '%2F');

/** A genealogy node id (lot:…, wo:…, delivery:…) as a person reads it (docs/traceability.md#node-ids). */
function nodeLabel(node: string): string {
  const unescape = (p: string) => p.replace(/%2F/g, '/').replace(/%25/g, '%');
  const [kind, ...rest] = node.split(':');
  const parts = rest.join(':').split('/').map(unescape);
  if (kind === 'wo') return `work order ${parts.slice(1).join('/')}`;
  if (kind === 'delivery') return `delivery ${parts.join(' item ')}`;
  if (kind === 'lot') return parts[parts.length - 1] ?? node;
  return node;
}

function drawResults(
  target: HTMLElement,
  search: Search,
  backward: TracePage,
  forward: TracePage,
  ctx: ViewContext,
): void {
  const { filters, signal } = ctx;
  const startLots = backward.lots.filter((l) => l.depth === 0);
  const sources = backward.lots.filter((l) => l.depth > 0);
  const madeInto = forward.lots.filter((l) => l.depth > 0);
  // Deliveries of the start and of everything made from it: the customers a recall would reach.
  const deliveries = [...forward.lots]
    .sort((a, b) => a.depth - b.depth)
    .flatMap((l) => l.deliveries.map((d) => ({ ...d, lot: l })));
  const supplierLots = sources.filter((l) => l.origin === 'purchased' || l.supplier);
  const customers = [...new Set(deliveries.map((d) => d.customer))];
  const graph = h('div', { class: 'chart-tall', id: 'trace-graph-chart' });
  const more = (page: TracePage) =>
    [
      page.next ? `${page.totalLots} lots in all, the first ${page.lots.length} shown` : undefined,
      page.hiddenLots > 0 ? `${page.hiddenLots} at sites you may not see` : undefined,
      page.truncated ? 'the walk was cut short' : undefined,
      page.cycles.length > 0 ? `${page.cycles.length} loop(s) in the data` : undefined,
    ].filter(Boolean);

  replace(
    target,
    h(
      'p',
      { id: 'trace-summary', role: 'status' },
      `${describe(search)}: ${startLots.length} lot(s); made from ${sources.length} lot(s) (${supplierLots.length} ` +
        `from suppliers); went into ${madeInto.length} lot(s); delivered to ${customers.length} customer(s).`,
      ...[...more(backward), ...more(forward)].map((m) => ` ${m}.`),
    ),
    panel(
      'trace-graph',
      'Genealogy',
      graph,
      h(
        'p',
        { class: 'tile-hint' },
        'Material flows left to right. A red border marks a lot with failed inspections. Select a lot to open its page.',
      ),
    ),
    panel(
      'trace-start',
      'Start',
      table({
        caption: 'The lots the search names, with what the cameras found',
        rows: startLots,
        columns: lotColumns(filters, false),
      }),
    ),
    [
      panel(
        'trace-sources',
        'Where it came from',
        table({
          caption: 'Backward: every lot it was made from, down to the supplier lots',
          rows: sources,
          empty: 'Made from no recorded lot.',
          columns: lotColumns(filters, true),
        }),
      ),
      panel(
        'trace-customers',
        'Where it went',
        table({
          caption: 'Forward: deliveries of the lot and of everything made from it, by customer',
          id: 'trace-deliveries',
          rows: deliveries,
          empty: 'Not delivered to any customer.',
          columns: [
            { label: 'Customer', cell: (d) => h('strong', { 'data-customer': d.customer }, d.customer) },
            { label: 'Ship-to', cell: (d) => d.shipTo },
            { label: 'Delivery', cell: (d) => `${d.delivery} / ${d.item}` },
            { label: 'Lot', cell: (d) => lotCell(d.lot, filters) },
            {
              label: 'Quantity',
              cell: (d) => (d.quantity === null ? '–' : `${d.quantity} ${d.unit ?? ''}`),
              numeric: true,
            },
            { label: 'Shipped', cell: (d) => when(d.shippedAt) },
          ],
        }),
        table({
          caption: 'Forward: lots made from it',
          id: 'trace-made-into',
          rows: madeInto,
          empty: 'Nothing made from it yet.',
          columns: lotColumns(filters, false),
        }),
      ),
    ],
  );
  drawGenealogy(graph, search, backward, forward, ctx, signal);
}

function lotColumns(filters: Filters, withSupplier: boolean) {
  return [
    { label: 'Lot', cell: (l: TracedLot) => lotCell(l, filters) },
    { label: 'Material', cell: (l: TracedLot) => l.material ?? '–' },
    { label: 'Origin', cell: (l: TracedLot) => l.origin },
    ...(withSupplier
      ? [
          { label: 'Supplier', cell: (l: TracedLot) => l.supplier ?? '–' },
          {
            label: 'Supplier batch',
            cell: (l: TracedLot) =>
              l.supplierBatch ? h('span', { 'data-supplier-batch': l.supplierBatch }, l.supplierBatch) : '–',
          },
        ]
      : []),
    { label: 'Site', cell: (l: TracedLot) => l.site },
    { label: 'Reached via', cell: reachedVia },
    {
      label: 'Cameras',
      cell: (l: TracedLot) =>
        h('span', { class: l.inspections.fail > 0 ? 'overdue' : undefined, 'data-findings': l.lotKey }, findings(l)),
    },
    {
      label: 'Cases',
      cell: (l: TracedLot) => l.cases.map((c) => `${c.stage}${c.decision ? ` (${c.decision})` : ''}`).join(', ') || '–',
    },
  ];
}

interface GraphNode {
  id: string;
  name: string;
  category: number;
  /** Columns from the supplier side (left) to the customers (right). */
  x: number;
  y: number;
  /** The lot's page, for a lot the MES knows. */
  lot?: { lotId: string; site: string };
  failed: number;
}

const CATEGORIES = ['start', 'supplier lot', 'lot', 'work order', 'delivery'] as const;

/**
 * The two traces as one picture, material flowing left to right: backward lots at negative columns, the start at 0,
 * forward lots and deliveries at positive ones. Edges are the movements the walks went through (a lot's `reachedVia`),
 * the work order that produced a lot (its `workOrder`), and each delivery of a lot.
 */
function drawGenealogy(
  container: HTMLElement,
  search: Search,
  backward: TracePage,
  forward: TracePage,
  ctx: ViewContext,
  signal: AbortSignal,
): void {
  const nodes = new Map<string, GraphNode>();
  const links = new Map<string, { source: string; target: string; kind: string }>();
  const rowsPerColumn = new Map<number, number>();
  const addNode = (id: string, node: Omit<GraphNode, 'id' | 'y'>) => {
    if (nodes.has(id)) return;
    const row = rowsPerColumn.get(node.x) ?? 0;
    rowsPerColumn.set(node.x, row + 1);
    nodes.set(id, { id, ...node, y: row });
  };
  const addLink = (source: string, target: string, kind: string) => {
    if (source === target) return;
    links.set(`${source}>${target}`, { source, target, kind });
  };
  const lotNode = (l: TracedLot, x: number) =>
    addNode(`lot:${l.lotKey}`, {
      name: lotName(l),
      category: l.depth === 0 ? 0 : l.origin === 'purchased' ? 1 : 2,
      x,
      lot: l.mes ? { lotId: l.mes.lotId, site: l.mes.site } : undefined,
      failed: l.inspections.fail,
    });
  const workOrderNode = (node: string, x: number) =>
    addNode(node, { name: nodeLabel(node), category: 3, x, failed: 0 });

  for (const l of backward.lots) lotNode(l, -2 * l.depth);
  for (const l of forward.lots) lotNode(l, 2 * l.depth);
  for (const s of backward.start)
    if (s.node.startsWith('delivery:')) addNode(s.node, { name: nodeLabel(s.node), category: 4, x: 0, failed: 0 });

  // Backward, the walk goes against the flow: a lot reached from X flowed into X.
  for (const l of backward.lots) {
    for (const e of l.reachedVia) {
      if (e.from.startsWith('wo:')) workOrderNode(e.from, -2 * l.depth + 1);
      addLink(`lot:${l.lotKey}`, e.from, e.kind);
    }
  }
  for (const l of forward.lots) {
    for (const e of l.reachedVia) {
      if (e.from.startsWith('wo:')) workOrderNode(e.from, 2 * l.depth - 1);
      addLink(e.from, `lot:${l.lotKey}`, e.kind);
    }
    for (const d of l.deliveries) {
      const id = `delivery:${keyPart(d.delivery)}/${keyPart(d.item)}`;
      addNode(id, { name: `${d.customer}\n${d.delivery}/${d.item}`, category: 4, x: 2 * l.depth + 1, failed: 0 });
      addLink(`lot:${l.lotKey}`, id, 'delivered');
    }
  }
  // A produced lot names its work order: the walks list edges into lots only, so this joins a work order to the lot
  // it made where the walk went the other way.
  for (const l of [...backward.lots, ...forward.lots]) {
    if (!l.workOrder) continue;
    const wo = [...nodes.keys()].find((id) => id.startsWith('wo:') && nodeLabel(id) === `work order ${l.workOrder}`);
    if (wo) addLink(wo, `lot:${l.lotKey}`, 'produced');
  }

  const all = [...nodes.values()];
  const label = `Genealogy of ${describe(search)}: ${all.filter((n) => n.id.startsWith('lot:')).length} lots, ${
    all.filter((n) => n.category === 3).length
  } work orders, ${all.filter((n) => n.category === 4).length} deliveries. The tables below list them.`;
  const chart = drawChart(
    container,
    label,
    {
      // ECharts' own description would replace the label with a list of node names.
      aria: { enabled: true, label: { description: label } },
      tooltip: { renderMode: 'richText' },
      legend: { data: [...CATEGORIES], bottom: 0 },
      series: [
        {
          type: 'graph',
          layout: 'none',
          roam: true,
          categories: CATEGORIES.map((name, i) => ({ name, itemStyle: { color: PALETTE[[0, 2, 5, 6, 4][i]!] } })),
          label: { show: true, position: 'bottom', fontSize: 11, lineHeight: 14, color: '#1d232a' },
          edgeSymbol: ['none', 'arrow'],
          edgeSymbolSize: 7,
          edgeLabel: { show: false },
          lineStyle: { color: '#5c5c5c', width: 1.2, curveness: 0.1 },
          data: all.map((n) => ({
            id: n.id,
            name: n.failed > 0 ? `${n.name}\n✗ ${n.failed} failed` : n.name,
            category: n.category,
            x: n.x * 120,
            y: n.y * 70,
            symbolSize: n.category === 0 ? 26 : 18,
            symbol: n.category === 3 ? 'rect' : n.category === 4 ? 'triangle' : 'circle',
            itemStyle: n.failed > 0 ? { borderColor: '#b3261e', borderWidth: 4 } : undefined,
            tooltip: {
              formatter: `${n.name.replace(/\n/g, ' ')}${n.failed > 0 ? ` – ${n.failed} failed inspections` : ''}`,
            },
          })),
          links: [...links.values()].map((l) => ({
            source: l.source,
            target: l.target,
            tooltip: { formatter: l.kind },
          })),
        },
      ],
    },
    signal,
  );
  chart.on('click', (event) => {
    const id = (event.data as { id?: string } | undefined)?.id;
    const lot = id ? nodes.get(id)?.lot : undefined;
    if (lot) ctx.go(`lots/${encodeURIComponent(lot.lotId)}`, { site: lot.site });
  });
}

function recallForm(search: Search, ctx: ViewContext): HTMLElement {
  const scope = recallScope(search, ctx.filters);
  if (!scope) {
    return panel(
      'mock-recall',
      'Mock recall',
      h('p', { class: 'empty' }, 'A delivery is no recall scope: trace the lot it carried and recall that.'),
    );
  }
  if (!mayDecide(ctx.me)) {
    return panel(
      'mock-recall',
      'Mock recall',
      h(
        'p',
        { class: 'empty', id: 'recall-not-allowed' },
        `Quality engineers and quality managers start recalls; you are signed in as ${ctx.me.name} (${
          ctx.me.roles.join(', ') || 'no role'
        }).`,
      ),
    );
  }
  const error = h('div', { id: 'recall-error' });
  const keys = new SubmissionKey();
  const form = h(
    'form',
    { id: 'recall-form', 'aria-labelledby': 'mock-recall-title' },
    h(
      'p',
      null,
      `A mock recall of ${describe(search)}: it traces, classifies and reconciles as a real recall does, scored against the site's targets, and holds or blocks nothing.`,
    ),
    h('label', { for: 'recall-reason' }, 'Reason'),
    h('textarea', { id: 'recall-reason', name: 'reason', required: true, maxlength: 1000, rows: 2 }),
    h('button', { type: 'submit' }, 'Start mock recall'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = { site: ctx.filters.site, kind: 'mock', scope, reason: field(form, 'reason').trim() };
    const key = keys.keyFor(body);
    const button = form.querySelector('button')!;
    button.disabled = true;
    replace(error);
    postJson<z.infer<typeof RecallStartedSchema>>('/v1/recalls', body, { 'idempotency-key': key })
      .then((started) => {
        keys.settle();
        ctx.setParams({ recall: started.recallId });
      })
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.status < 500 && err.status !== 409) keys.settle();
        replace(error, problemAlert(err));
      })
      .finally(() => {
        button.disabled = false;
      });
  });
  return panel('mock-recall', 'Mock recall', form);
}

/** A recall's stages, read again every 2 s while it runs. */
async function watchRecall(target: HTMLElement, recallId: string, ctx: ViewContext): Promise<void> {
  const { signal } = ctx;
  for (;;) {
    const recall = await getJson<RecallView>(`/v1/recalls/${encodeURIComponent(recallId)}`, {}, signal);
    if (signal.aborted) return;
    replace(target, recallDetails(recall, ctx));
    if (recall.state !== 'running') return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, RECALL_POLL_MS);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    if (signal.aborted) return;
  }
}

function recallDetails(r: RecallView, ctx: ViewContext): HTMLElement {
  const temporal = ctx.me.temporalUiUrl
    ? `${ctx.me.temporalUiUrl}/workflows/${encodeURIComponent(r.workflowId)}`
    : undefined;
  const score = r.score;
  return panel(
    'recall',
    `${r.kind === 'mock' ? 'Mock recall' : 'Recall'} ${r.recallId}`,
    h(
      'p',
      { id: 'recall-state', role: 'status', 'data-state': r.state },
      h('strong', null, r.state === 'running' ? 'Running…' : r.state),
      ` · ${r.reason} · requested by ${r.requestedBy} at ${when(r.createdAt)}`,
      r.completedAt ? ` · finished ${when(r.completedAt)}` : '',
      temporal ? [' · ', h('a', { href: temporal, target: '_blank', rel: 'noopener' }, 'Temporal')] : null,
    ),
    score
      ? h(
          'p',
          { id: 'recall-score', class: score.passed ? 'badge badge-good' : 'badge badge-bad' },
          `${score.passed ? 'Passed' : 'Failed'}: traced in ${score.traceMs} ms (target ${score.traceWithinMs} ms), ` +
            `reconciled ${(score.reconciliation * 100).toFixed(1)} % (target ${(score.reconciliationAtLeast * 100).toFixed(1)} %)`,
        )
      : null,
    table({
      caption: 'Stages, in the order they ran',
      id: 'recall-stages',
      rows: r.stages,
      empty: r.state === 'running' ? 'The stages are reported when the recall finishes.' : 'No stage reported.',
      columns: [
        { label: 'Stage', cell: (s) => h('span', { 'data-stage': s.name }, s.name) },
        { label: 'State', cell: (s) => s.state },
        { label: 'Duration', cell: (s) => (s.durationMs === undefined ? '–' : `${s.durationMs} ms`), numeric: true },
        {
          label: 'Counts',
          cell: (s) =>
            Object.entries(s.counts ?? {})
              .map(([k, v]) => `${k} ${v}`)
              .join(', ') || '–',
        },
      ],
    }),
    table({
      caption: 'Lots reached, by class',
      rows: Object.entries(r.lots.byClass),
      empty: r.state === 'running' ? 'Still tracing.' : 'No lot reached.',
      columns: [
        { label: 'Class', cell: ([k]) => k },
        { label: 'Lots', cell: ([, v]) => v, numeric: true },
      ],
    }),
    table({
      caption: 'Customers reached',
      rows: r.deliveries,
      empty: r.state === 'running' ? 'Still tracing.' : 'No delivery reached.',
      columns: [
        { label: 'Customer', cell: (d) => d.customer },
        { label: 'Ship-to', cell: (d) => d.shipTo },
        { label: 'Delivery', cell: (d) => `${d.delivery} / ${d.item}` },
      ],
    }),
  );
}
