/**
 * The Holdfast quality dashboard: one shell (header, navigation, filters, live status) and a view per path under
 * /ui. The URL holds the view and its filters, so a link shows the same thing to the next person; the browser's
 * back button walks the views.
 */
import './styles.css';
import type { MeResponse } from '../schemas/dashboard.schema';
import { ApiError, SIGNED_OUT, getJson } from './api-client';
import { field, h, replace } from './dom';
import { LiveFeed } from './live';
import { currentUser, rememberUser, signOut, token } from './session';
import { type Filters, type View, type ViewContext, daysAgo, href, isoDate } from './view';
import { signInView } from './views/sign-in';
import { nowView } from './views/now';
import { yieldView } from './views/yield';
import { suppliersView } from './views/suppliers';
import { traceView } from './views/trace';
import { lotView } from './views/lot';

const NAV: Array<{ path: string; label: string; view: View }> = [
  { path: 'now', label: 'Now', view: nowView },
  { path: 'yield', label: 'Yield and defects', view: yieldView },
  { path: 'suppliers', label: 'Supplier quality', view: suppliersView },
  { path: 'trace', label: 'Traceability', view: traceView },
];

const live = new LiveFeed();
let current: AbortController | undefined;

function viewFor(path: string[]): View | undefined {
  if (path[0] === 'lots' && path[1]) return lotView;
  return NAV.find((n) => n.path === (path[0] ?? 'now'))?.view;
}

/** The filters from the URL, defaulted: the user's first site, every line, the last 14 days. */
function filtersOf(params: URLSearchParams, me: MeResponse): Filters {
  const site = params.get('site') ?? me.sites[0]?.id ?? '';
  return {
    site,
    line: params.get('line') ?? '',
    from: params.get('from') ?? daysAgo(13),
    to: params.get('to') ?? isoDate(new Date()),
  };
}

function navigate(url: string, replaceState = false): void {
  if (replaceState) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  // A new view is announced as a new page would be: focus moves to its content, and Tab goes on from there.
  void render().then(() => document.getElementById('main')?.focus({ preventScroll: true }));
}

async function render(): Promise<void> {
  current?.abort();
  const abort = new AbortController();
  current = abort;
  const app = document.getElementById('app')!;
  const url = new URL(location.href);
  const path = url.pathname
    .replace(/^\/ui\/?/, '')
    .split('/')
    .filter(Boolean)
    .map(decodeURIComponent);

  if (!token()) {
    live.stop();
    document.title = 'Sign in · Holdfast quality';
    const main = h('main', { id: 'main', tabindex: '-1' });
    replace(app, main);
    await signInView(main, () => navigate(location.pathname === '/ui/sign-in' ? '/ui/now' : location.href, true));
    return;
  }

  let me = currentUser();
  if (!me) {
    try {
      me = await getJson<MeResponse>('/v1/me');
      rememberUser(me);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // SIGNED_OUT draws the form
      replace(
        app,
        h('main', { id: 'main' }, h('p', { class: 'error', role: 'alert' }, `Holdfast is unreachable: ${String(err)}`)),
      );
      return;
    }
  }
  const filters = filtersOf(url.searchParams, me);
  // The address bar always shows the whole view (defaults written in), so copying it shares what is on the screen.
  if (path.length === 0 || path[0] === 'sign-in') path.splice(0, path.length, 'now');
  const shown = new URL(href(path.map(encodeURIComponent).join('/'), filters), location.href);
  for (const [k, v] of url.searchParams) if (!shown.searchParams.has(k)) shown.searchParams.set(k, v);
  if (shown.pathname + shown.search !== url.pathname + url.search) {
    history.replaceState(null, '', shown.pathname + shown.search + url.hash);
  }
  const params = shown.searchParams;
  const view = viewFor(path);
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(app, header(me, filters, path), filtersBar(me, filters, url), main);
  if (!view) {
    replace(
      main,
      h('h1', null, 'Not found'),
      h('p', null, 'No such view. ', h('a', { href: href('now', filters) }, 'Go to Now')),
    );
    return;
  }
  if (filters.site) live.follow(filters.site, filters.line || undefined);

  const ctx: ViewContext = {
    main,
    path,
    params,
    filters,
    me,
    live,
    signal: abort.signal,
    setParams(changes) {
      const next = new URL(location.href);
      for (const [k, v] of Object.entries(changes)) {
        if (v === undefined || v === '') next.searchParams.delete(k);
        else next.searchParams.set(k, v);
      }
      navigate(next.pathname + next.search);
    },
    go(to, params = {}) {
      navigate(href(to, filters, params));
    },
  };
  try {
    await view(ctx);
  } catch (err) {
    if (abort.signal.aborted) return;
    main.append(
      h(
        'p',
        { class: 'error', role: 'alert' },
        `Could not load this view: ${err instanceof Error ? err.message : String(err)}`,
      ),
    );
  }
}

function header(me: MeResponse, filters: Filters, path: string[]): HTMLElement {
  const active = path[0] ?? 'now';
  const liveStatus = h('span', { class: 'live-status', role: 'status', 'aria-live': 'polite', id: 'live-status' });
  live.onState((state) => {
    liveStatus.textContent = state === 'live' ? '● Live' : state === 'off' ? '' : '○ Reconnecting…';
    liveStatus.dataset.state = state;
  });
  return h(
    'header',
    { class: 'top' },
    h('a', { class: 'brand', href: href('now', filters) }, 'Holdfast ', h('span', null, 'quality')),
    h(
      'nav',
      { 'aria-label': 'Views' },
      h(
        'ul',
        null,
        NAV.map((n) =>
          h(
            'li',
            null,
            h('a', { href: href(n.path, filters), 'aria-current': n.path === active ? 'page' : undefined }, n.label),
          ),
        ),
      ),
    ),
    liveStatus,
    h(
      'div',
      { class: 'user' },
      h('span', { id: 'user-name' }, me.name),
      h('span', { class: 'roles' }, me.roles.join(', ')),
      h(
        'button',
        {
          type: 'button',
          onclick: () => {
            signOut();
            live.stop();
            navigate('/ui/sign-in');
          },
        },
        'Sign out',
      ),
    ),
  );
}

/** Site, line and time range: a form whose submission rewrites the URL. */
function filtersBar(me: MeResponse, filters: Filters, url: URL): HTMLElement {
  const lines = me.sites.find((s) => s.id === filters.site)?.lines ?? [];
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Filters' },
    h(
      'label',
      null,
      'Site ',
      h(
        'select',
        { name: 'site' },
        me.sites.map((s) =>
          h('option', { value: s.id, selected: s.id === filters.site }, s.name ? `${s.id} – ${s.name}` : s.id),
        ),
      ),
    ),
    h(
      'label',
      null,
      'Line ',
      h(
        'select',
        { name: 'line' },
        h('option', { value: '' }, 'All lines'),
        lines.map((l) => h('option', { value: l, selected: l === filters.line }, l)),
      ),
    ),
    h('label', null, 'From ', h('input', { type: 'date', name: 'from', value: filters.from, required: true })),
    h('label', null, 'To ', h('input', { type: 'date', name: 'to', value: filters.to, required: true })),
    h('button', { type: 'submit' }, 'Apply'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URL(url.href);
    for (const key of ['site', 'line', 'from', 'to']) {
      const value = field(form, key);
      if (value) next.searchParams.set(key, value);
      else next.searchParams.delete(key);
    }
    // Another site's lines are not this one's.
    if (field(form, 'site') !== filters.site) next.searchParams.delete('line');
    navigate(next.pathname + next.search);
  });
  return form;
}

// Links inside the page change the view without reloading; modified clicks (new tab) keep the browser's way.
document.addEventListener('click', (event) => {
  const a = (event.target as Element | null)?.closest?.('a');
  if (
    !a ||
    event.defaultPrevented ||
    event.button !== 0 ||
    event.metaKey ||
    event.ctrlKey ||
    event.shiftKey ||
    event.altKey
  )
    return;
  const target = new URL(a.href, location.href);
  if (target.origin !== location.origin || !target.pathname.startsWith('/ui') || a.target) return;
  event.preventDefault();
  navigate(target.pathname + target.search + target.hash);
});
window.addEventListener('popstate', () => void render());
window.addEventListener(SIGNED_OUT, () => void render());
void render();
