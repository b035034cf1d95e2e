/**
 * Now: what needs someone today. Open lot cases by stage and their age against the disposition deadline, steps
 * parked for attention, changeovers, recalls and drills running, connector health, the outbox and deferred-frame
 * backlogs, and the defects as the cameras find them (live).
 */
import type { LiveDefect, LiveEvent, NowResponse } from '../../schemas/dashboard.schema';
import { getJson } from '../api-client';
import { drawChart } from '../charts';
import { age, h, panel, replace, table, tile, when } from '../dom';
import { type ViewContext, href, lotHref } from '../view';

const FEED_SIZE = 20;

export async function nowView(ctx: ViewContext): Promise<void> {
  const { main, filters, signal } = ctx;
  document.title = `Now · ${filters.site} · Holdfast quality`;
  const figures = h('div', { class: 'now-figures' });
  const feed = h('ol', { class: 'feed', id: 'live-defects', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  replace(
    main,
    h('h1', null, `Now at ${filters.site}${filters.line ? ` · line ${filters.line}` : ''}`),
    figures,
    panel('latest-defects', 'Defects as they are found', feed),
  );

  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  // Each refresh redraws the figures: the previous drawing's charts go with it.
  let drawing: AbortController | undefined;
  signal.addEventListener('abort', () => drawing?.abort(), { once: true });
  const load = async () => {
    const now = await getJson<NowResponse>(
      '/v1/dashboard/now',
      { site: filters.site, line: filters.line || undefined },
      signal,
    );
    if (signal.aborted) return;
    drawing?.abort();
    drawing = new AbortController();
    drawFigures(figures, now, ctx, drawing.signal);
    replace(
      feed,
      now.latestDefects.map((d) => feedItem(d, ctx)),
    );
  };
  // A burst of inspections is one refresh a second, not one per event.
  const refreshSoon = () => {
    refreshTimer ??= setTimeout(() => {
      refreshTimer = undefined;
      void load().catch(() => undefined);
    }, 1000);
  };
  signal.addEventListener('abort', () => clearTimeout(refreshTimer), { once: true });
  ctx.live.subscribe((event: LiveEvent) => {
    if (event.site !== filters.site) return;
    if (event.type === 'inspections') {
      for (const d of event.defects) {
        if (filters.line && d.line !== filters.line) continue;
        if (feed.querySelector(`[data-event-id="${CSS.escape(d.eventId)}"]`)) continue;
        feed.prepend(feedItem(d, ctx, true));
      }
      while (feed.children.length > FEED_SIZE) feed.lastElementChild?.remove();
    }
    refreshSoon();
  }, signal);
  await load();
}

function feedItem(d: LiveDefect, ctx: ViewContext, fresh = false): HTMLElement {
  return h(
    'li',
    { 'data-event-id': d.eventId, class: fresh ? 'fresh' : undefined },
    h('time', { datetime: d.inspectedAt }, when(d.inspectedAt)),
    ' ',
    h('strong', null, d.defectClasses.join(', ') || 'failed'),
    ` at ${d.line}/${d.station}, part ${d.partId}, lot `,
    h('a', { href: lotHref(d.lotId, ctx.filters) }, d.lotId),
  );
}

function drawFigures(target: HTMLElement, now: NowResponse, ctx: ViewContext, signal: AbortSignal): void {
  const { filters } = ctx;
  const parked = now.lotCases.items.filter((c) => c.parkedSteps.length > 0);
  const down = now.connectors.filter((c) => c.status === 'down');
  const stageChart = h('div', { class: 'chart-small' });
  replace(
    target,
    h(
      'div',
      { class: 'tiles' },
      tile({
        id: 'open-lot-cases',
        label: 'open lot cases',
        value: now.lotCases.open,
        state: now.lotCases.open > 0 ? 'warn' : 'good',
      }),
      tile({
        id: 'overdue-lot-cases',
        label: 'past the disposition deadline',
        value: now.lotCases.overdue,
        state: now.lotCases.overdue > 0 ? 'bad' : 'good',
      }),
      tile({
        id: 'parked-lot-cases',
        label: 'cases with parked steps',
        value: parked.length,
        state: parked.length > 0 ? 'bad' : 'good',
      }),
      tile({ id: 'running-workflows', label: 'changeovers, recalls and drills running', value: now.running.length }),
      tile({
        id: 'connectors-down',
        label: 'connectors down',
        value: down.length,
        state: down.length > 0 ? 'bad' : 'good',
      }),
      tile({
        id: 'outbox-pending',
        label: 'outbox backlog',
        value: now.backlogs.outboxPending,
        state: now.backlogs.outboxPending > 100 ? 'warn' : 'good',
        hint:
          now.backlogs.outboxOldestAgeSeconds !== null
            ? `oldest ${age(now.backlogs.outboxOldestAgeSeconds)}`
            : undefined,
      }),
      tile({
        id: 'deferred-frames',
        label: 'deferred frames',
        value: now.backlogs.deferredFrames,
        state: now.backlogs.deferredFrames > 0 ? 'warn' : 'good',
        hint:
          now.backlogs.deferredOldestAgeSeconds !== null
            ? `oldest ${age(now.backlogs.deferredOldestAgeSeconds)}`
            : undefined,
      }),
    ),
    h(
      'div',
      { class: 'columns' },
      panel(
        'lot-cases-by-stage',
        'Open lot cases by stage',
        // No open case: the table's sentence says so, an empty chart would say nothing.
        now.lotCases.byStage.length > 0 ? stageChart : null,
        table({
          caption: 'Open lot cases by stage',
          rows: now.lotCases.byStage,
          empty: 'No open lot case.',
          columns: [
            { label: 'Stage', cell: (r) => r.stage },
            { label: 'Cases', cell: (r) => h('span', { 'data-stage': r.stage }, r.count), numeric: true },
          ],
        }),
      ),
      panel(
        'connectors',
        'Connectors',
        h(
          'ul',
          { class: 'health' },
          now.connectors.map((c) =>
            h(
              'li',
              { class: `health-${c.status}`, 'data-connector': c.name },
              h('span', { class: 'dot', 'aria-hidden': 'true' }),
              h('strong', null, c.name),
              ` ${c.status}`,
              c.detail ? h('span', { class: 'detail' }, ` – ${c.detail}`) : null,
            ),
          ),
        ),
      ),
    ),
    panel(
      'open-lot-cases-list',
      'Open lot cases',
      table({
        caption: 'Open lot cases, oldest first',
        rows: now.lotCases.items,
        empty: 'No open lot case.',
        columns: [
          { label: 'Lot', cell: (c) => h('a', { href: lotHref(c.lotId, filters) }, c.lotId) },
          { label: 'Line', cell: (c) => c.line },
          { label: 'Product', cell: (c) => c.sku },
          { label: 'Stage', cell: (c) => c.stage },
          { label: 'Age', cell: (c) => age(c.ageSeconds), numeric: true },
          {
            label: 'Disposition due',
            cell: (c) =>
              c.dispositionDueAt
                ? h(
                    'span',
                    { class: c.overdue ? 'overdue' : undefined },
                    `${when(c.dispositionDueAt)}${c.overdue ? ' (overdue)' : ''}`,
                  )
                : '–',
          },
          { label: 'Parked steps', cell: (c) => c.parkedSteps.join(', ') || '–' },
          {
            label: 'Workflow',
            cell: (c) => h('a', { href: c.temporalUiUrl, target: '_blank', rel: 'noopener' }, 'Temporal'),
          },
        ],
      }),
    ),
    panel(
      'running',
      'Changeovers, recalls and drills running',
      table({
        caption: 'Running workflows',
        rows: now.running,
        empty: 'Nothing running.',
        columns: [
          { label: 'Kind', cell: (r) => r.kind },
          {
            label: 'Id',
            cell: (r) =>
              r.kind === 'changeover' ? r.id : h('a', { href: href('trace', filters, { recall: r.id }) }, r.id),
          },
          { label: 'Line', cell: (r) => r.line ?? '–' },
          { label: 'Stage', cell: (r) => r.stage },
          { label: 'Started', cell: (r) => when(r.startedAt) },
          {
            label: 'Workflow',
            cell: (r) => h('a', { href: r.temporalUiUrl, target: '_blank', rel: 'noopener' }, 'Temporal'),
          },
        ],
      }),
    ),
  );
  if (now.lotCases.byStage.length === 0) return;
  drawChart(
    stageChart,
    `Open lot cases by stage: ${now.lotCases.byStage.map((s) => `${s.stage} ${s.count}`).join(', ') || 'none'}`,
    {
      grid: { left: 150, right: 20, top: 10, bottom: 25 },
      xAxis: { type: 'value', minInterval: 1 },
      yAxis: { type: 'category', data: now.lotCases.byStage.map((s) => s.stage) },
      tooltip: { trigger: 'axis' },
      series: [{ type: 'bar', data: now.lotCases.byStage.map((s) => s.count) }],
    },
    signal,
  );
}
