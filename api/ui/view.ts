/**
 * What every view gets: where to draw, the URL's filters, who is signed in, the live feed, and a signal that aborts
 * when the view is left (charts dispose, subscriptions end, reads in flight are cancelled).
 */
import type { MeResponse } from '../schemas/dashboard.schema';
import type { LiveFeed } from './live';

export interface Filters {
  site: string;
  /** Empty: every line of the site. */
  line: string;
  /** Shift dates (YYYY-MM-DD), inclusive. */
  from: string;
  to: string;
}

export interface ViewContext {
  main: HTMLElement;
  /** The path below /ui, split: `['lots', 'L-0001']`. */
  path: string[];
  /** The whole query string, filters included (views keep their own keys in it, e.g. `q` for a trace search). */
  params: URLSearchParams;
  filters: Filters;
  me: MeResponse;
  live: LiveFeed;
  signal: AbortSignal;
  /** Changes the URL's query (undefined removes a key) and draws the view again: a view can be shared by its URL. */
  setParams(changes: Record<string, string | undefined>): void;
  /** Opens another view, keeping the filters. */
  go(path: string, params?: Record<string, string | undefined>): void;
}

export type View = (ctx: ViewContext) => Promise<void>;

/** A link inside the page that keeps the filters (site, line, from, to). */
export function href(path: string, filters: Filters, extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({
    site: filters.site,
    line: filters.line,
    from: filters.from,
    to: filters.to,
    ...extra,
  })) {
    if (v) params.set(k, v);
  }
  return `/ui/${path.replace(/^\/+/, '')}?${params.toString()}`;
}

/** A lot's page (the MRB console). */
export function lotHref(lotId: string, filters: Filters): string {
  return href(`lots/${encodeURIComponent(lotId)}`, filters);
}

/** The date N days before today, as a shift date. */
export function daysAgo(days: number): string {
  const d = new Date();
  d.setDate(d.getDate() - days);
  return isoDate(d);
}

export function isoDate(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** `from`/`to` as instants for routes that take timestamps: the start of `from`, the end of `to` (local clock). */
export function range(filters: Filters): { from: string; to: string } {
  const from = new Date(`${filters.from}T00:00:00`);
  const to = new Date(`${filters.to}T00:00:00`);
  to.setDate(to.getDate() + 1);
  return { from: from.toISOString(), to: to.toISOString() };
}
