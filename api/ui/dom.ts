/**
 * Elements built from data with `textContent` and attributes only: nothing a lot id or a defect class carries can
 * become markup (no innerHTML anywhere in the page).
 */
export type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | undefined | null | ((event: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Record<string, Attr> | null,
  ...children: Array<Child | Child[]>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, '').toLowerCase(), value);
    else if (name === 'class') el.className = String(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Array<Child | Child[]>): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' || typeof child === 'number' ? text(child) : child);
  }
}

function text(value: string | number): Text {
  return document.createTextNode(String(value));
}

/** Replaces every child of `parent`. */
export function replace(parent: Element, ...children: Array<Child | Child[]>): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A titled section of a view; `id` names it for tests and deep links. */
export function panel(id: string, title: string, ...children: Array<Child | Child[]>): HTMLElement {
  const headingId = `${id}-title`;
  return h(
    'section',
    { class: 'panel', id, 'aria-labelledby': headingId },
    h('h2', { id: headingId }, title),
    ...children,
  );
}

/** A figure the eye reads first: its value, its label and an optional state (good, warn, bad). */
export function tile(opts: {
  id: string;
  label: string;
  value: string | number;
  state?: 'good' | 'warn' | 'bad';
  href?: string;
  hint?: string;
}): HTMLElement {
  const body = [
    h('span', { class: 'tile-value', 'data-figure': opts.id }, opts.value),
    h('span', { class: 'tile-label' }, opts.label),
    opts.hint ? h('span', { class: 'tile-hint' }, opts.hint) : null,
  ];
  const cls = `tile${opts.state ? ` tile-${opts.state}` : ''}`;
  return opts.href ? h('a', { class: cls, href: opts.href }, ...body) : h('div', { class: cls }, ...body);
}

/** An accessible table: a caption, header cells with scope, one row per item. */
export function table<T>(opts: {
  caption: string;
  columns: Array<{ label: string; cell: (row: T) => Child | Child[]; numeric?: boolean }>;
  rows: readonly T[];
  empty?: string;
  id?: string;
}): HTMLElement {
  if (opts.rows.length === 0) return h('p', { class: 'empty', id: opts.id }, opts.empty ?? 'Nothing to show.');
  return h(
    'div',
    // Focusable, so a keyboard can scroll a table wider than the screen (WCAG 2.1.1).
    { class: 'table-wrap', tabindex: '0' },
    h(
      'table',
      { id: opts.id },
      h('caption', null, opts.caption),
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          opts.columns.map((c) => h('th', { scope: 'col', class: c.numeric ? 'num' : undefined }, c.label)),
        ),
      ),
      h(
        'tbody',
        null,
        opts.rows.map((row) =>
          h(
            'tr',
            null,
            opts.columns.map((c) => h('td', { class: c.numeric ? 'num' : undefined }, c.cell(row))),
          ),
        ),
      ),
    ),
  );
}

export function percent(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined ? '–' : `${(value * 100).toFixed(digits)} %`;
}

/** A duration in seconds as people say it: 45 s, 12 min, 3 h 20 min, 2 d 4 h. */
export function age(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** A form field's text (files and missing fields read as empty). */
export function field(form: HTMLFormElement, name: string): string {
  const value = new FormData(form).get(name);
  return typeof value === 'string' ? value : '';
}
