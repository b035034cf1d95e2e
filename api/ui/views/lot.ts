/**
 * A lot's page and the MRB console: its case (stage, hold, parked steps, the decision and who signed it), the
 * cameras' findings with their frames, its genealogy, and the signed disposition. Quality engineers and quality
 * managers sign the decision here (meaning and, for a local account, the password re-entered: docs/e-signatures.md);
 * a use-as-is then waits for a quality manager other than the first signer, who countersigns here too. Everyone else
 * sees the case and who may decide it.
 */
import type { z } from 'zod';
import type { LotDefectsResponse } from '../../schemas/dashboard.schema';
import type { DispositionOutcomeSchema, SignatureView } from '../../schemas/disposition.schema';
import type { LotViewSchema } from '../../schemas/lot.schema';
import type { LotGenealogySchema } from '../../schemas/trace.schema';
import type { DispositionDecision, SignatureMeaning } from '../../../workflows/contracts';
import { ApiError, authHeaders, getJson, postJson } from '../api-client';
import { type Child, field, h, panel, replace, table, tile, when } from '../dom';
import { SubmissionKey } from '../idempotency';
import { problemAlert } from '../problem-alert';
import { mayCountersign, mayDecide } from '../session';
import { type ViewContext, href } from '../view';

type LotView = z.infer<typeof LotViewSchema>;
type LotGenealogy = z.infer<typeof LotGenealogySchema>;
type DispositionOutcome = z.infer<typeof DispositionOutcomeSchema>;
type LiveState = NonNullable<LotView['live']>;
type SignedDecision = NonNullable<LiveState['decision']>;

/** The dispositions (workflows/contracts DISPOSITION_DECISIONS), as a reviewer reads them; a new one fails to compile. */
const DECISIONS: Record<DispositionDecision, string> = {
  'use-as-is': 'Use as is (needs a quality manager’s second signature)',
  rework: 'Rework',
  scrap: 'Scrap',
  'return-to-vendor': 'Return to vendor',
};

/** Signature meanings (21 CFR 11.50(a)(3), workflows/contracts SIGNATURE_MEANINGS). */
const MEANINGS: Record<SignatureMeaning, string> = {
  approval: 'Approval',
  review: 'Review',
  responsibility: 'Responsibility',
};

/** The defects shown with their frames; the API lists them all. */
const FRAMES_SHOWN = 48;

export async function lotView(ctx: ViewContext): Promise<void> {
  const { main, path, filters, signal } = ctx;
  const lotId = path[1] ?? '';
  document.title = `Lot ${lotId} · Holdfast quality`;
  const status = h('div', { id: 'lot-status', role: 'status', 'aria-live': 'polite' });
  const body = h('div', { id: 'lot-body' });
  replace(main, h('h1', null, `Lot ${lotId}`, h('span', { class: 'tile-hint' }, ` at ${filters.site}`)), status, body);

  const site = filters.site || undefined;
  const lotPath = `/v1/lots/${encodeURIComponent(lotId)}`;
  let drawing: AbortController | undefined;
  signal.addEventListener('abort', () => drawing?.abort(), { once: true });

  const load = async (message?: Child) => {
    const [lot, defects, genealogy] = await Promise.allSettled([
      getJson<LotView>(lotPath, { site }, signal),
      getJson<LotDefectsResponse>(`${lotPath}/defects`, { site }, signal),
      getJson<LotGenealogy>(`${lotPath}/genealogy`, { site }, signal),
    ]);
    if (signal.aborted) return;
    if (lot.status === 'rejected') {
      replace(body, problemAlert(lot.reason, 'lot-error'));
      return;
    }
    drawing?.abort();
    drawing = new AbortController();
    // A live redraw keeps the last outcome on screen; a new one replaces it.
    if (message !== undefined) replace(status, message);
    replace(
      body,
      summary(lot.value),
      decisionPanel(lot.value, ctx, (done) => void load(done)),
      casesPanel(lot.value),
      defectsPanel(defects, drawing.signal),
      genealogyPanel(genealogy, lotId, ctx),
    );
  };

  // The case moves on its own (containment finishing, a countersignature elsewhere): redraw when it says so.
  let timer: ReturnType<typeof setTimeout> | undefined;
  signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  ctx.live.subscribe((event) => {
    if (event.type !== 'lot-case' || event.lotId !== lotId || (site && event.site !== site)) return;
    timer ??= setTimeout(() => {
      timer = undefined;
      // A form being filled in is not thrown away by a redraw.
      if (!body.querySelector('form input:focus, form textarea:focus, form select:focus'))
        void load().catch(() => undefined);
    }, 500);
  }, signal);
  await load();
}

function summary(lot: LotView): HTMLElement {
  const open = lot.cases.find((c) => !c.closedAt);
  const stage = lot.live?.stage ?? open?.stage ?? lot.cases[0]?.stage;
  const temporal = lot.workflow?.temporalUiUrl ?? lot.cases[0]?.temporalUiUrl;
  return h(
    'div',
    null,
    h(
      'div',
      { class: 'tiles' },
      tile({
        id: 'lot-stage',
        label: 'case stage',
        value: stage ?? 'no case',
        state: stage && stage !== 'closed' ? 'warn' : 'good',
      }),
      tile({
        id: 'lot-failed',
        label: 'failed inspections',
        value: lot.inspections.fail,
        state: lot.inspections.fail > 0 ? 'bad' : 'good',
      }),
      tile({ id: 'lot-inspected', label: 'parts inspected', value: lot.inspections.total }),
      lot.live
        ? tile({ id: 'lot-blocked', label: 'quantity blocked in the ERP', value: lot.live.blockedQuantity })
        : null,
    ),
    h(
      'p',
      null,
      temporal
        ? h(
            'a',
            { href: temporal, target: '_blank', rel: 'noopener', id: 'lot-temporal' },
            'The lot case in the Temporal Web UI',
          )
        : null,
      lot.live?.holdId ? ` · MES hold ${lot.live.holdId}` : '',
      lot.live?.notification ? ` · quality notification ${lot.live.notification}` : '',
    ),
    lot.temporalAvailable
      ? null
      : h(
          'p',
          { class: 'error', role: 'alert' },
          'Temporal could not be asked: the live case state is missing; stored records are shown.',
        ),
    lot.live?.failures?.length
      ? h(
          'p',
          { class: 'error', role: 'alert', id: 'lot-parked' },
          `Parked for attention: ${lot.live.failures.map((f) => `${f.step} (${f.message})`).join('; ')}`,
        )
      : null,
  );
}

/** The signed decision's panel: what is decided and by whom, and the form the signed-in person may use now. */
function decisionPanel(lot: LotView, ctx: ViewContext, reload: (message: Child) => void): HTMLElement {
  const live = lot.live;
  const closed = lot.cases.find((c) => c.disposition);
  const children: Child[] = [];
  if (live?.decision && live.stage === 'awaiting-second-signature') {
    children.push(...pendingDecision(live.decision), signaturesTable(live.decision.signatures));
    children.push(countersignForm(lot, live.decision, ctx, reload));
  } else if (live?.decision) {
    children.push(decidedLine(live.decision.decision, live.decision.reason, live.decision.decidedBy, live.stage));
    children.push(signaturesTable(live.decision.signatures));
  } else if (!live && closed?.disposition) {
    children.push(outcome(closed.disposition), signaturesTable(closed.disposition.signatures));
  } else if (live?.stage === 'awaiting-disposition') {
    children.push(decisionForm(lot, ctx, reload));
  } else if (live) {
    children.push(
      h(
        'p',
        { class: 'empty', id: 'decision-not-yet' },
        `The case is ${live.stage}: a disposition is signed once the lot is contained (awaiting-disposition).`,
      ),
    );
  } else {
    children.push(h('p', { class: 'empty' }, 'No open lot case: nothing to decide.'));
  }
  return panel('disposition', 'Disposition', ...children);
}

function decidedLine(decision: string, reason: string, decidedBy: string, stage: string): HTMLElement {
  return h(
    'p',
    { id: 'decision-made' },
    h('strong', null, decision),
    ` – ${reason} – decided by ${decidedBy}; the case is ${stage}.`,
  );
}

function pendingDecision(d: SignedDecision): Child[] {
  const signers = d.signatures.map((s) => `${s.signer.name} (${s.signer.id})`).join(', ');
  return [
    decidedLine(d.decision, d.reason, d.decidedBy, 'awaiting-second-signature'),
    h(
      'p',
      { class: 'badge badge-bad', id: 'second-signature-required' },
      `Second signature required: signed by ${signers || d.decidedBy}. A quality manager other than the first signer must countersign before anything is posted to the MES or the ERP.`,
    ),
  ];
}

function outcome(o: DispositionOutcome): HTMLElement {
  return h(
    'div',
    { id: 'decision-outcome' },
    decidedLine(o.decision, o.reason, o.decidedBy, o.status),
    h(
      'p',
      null,
      `Lot status ${o.lotStatus}; quality notification ${o.notificationClosed ? 'closed' : 'open'}` +
        (o.materialDocuments.length > 0
          ? `; material documents ${o.materialDocuments.map((m) => `${m.materialDocument} (${m.movementType})`).join(', ')}`
          : ''),
    ),
  );
}

function signaturesTable(signatures: readonly SignatureView[]): HTMLElement {
  return table({
    caption: 'Electronic signatures, verified on this read',
    id: 'lot-signatures',
    rows: signatures,
    empty: 'No signature.',
    columns: [
      { label: 'Signer', cell: (s) => h('span', { 'data-signer': s.signer.id }, `${s.signer.name} (${s.signer.id})`) },
      { label: 'Roles', cell: (s) => s.signer.roles.join(', ') },
      { label: 'Meaning', cell: (s) => s.meaning },
      { label: 'Signed', cell: (s) => when(s.signedAt) },
      { label: 'By', cell: (s) => (s.method === 'password' ? 'password re-entered' : s.method) },
      {
        label: 'Verifies',
        cell: (s) =>
          s.valid
            ? h('span', { class: 'badge badge-good' }, 'valid')
            : h('span', { class: 'badge badge-bad' }, `invalid${s.problem ? `: ${s.problem}` : ''}`),
      },
    ],
  });
}

/** Meaning and, for a local account, the password re-entered: the signature part of both forms. */
function signatureFields(ctx: ViewContext, prefix: string): Child[] {
  return [
    h('label', { for: `${prefix}-meaning` }, 'Meaning of your signature'),
    h(
      'select',
      { id: `${prefix}-meaning`, name: 'meaning', required: true },
      (Object.keys(MEANINGS) as SignatureMeaning[]).map((m) => h('option', { value: m }, MEANINGS[m])),
    ),
    ...(ctx.me.method === 'local'
      ? [
          h('label', { for: `${prefix}-password` }, `Password of ${ctx.me.name}, re-entered to sign`),
          h('input', {
            id: `${prefix}-password`,
            name: 'password',
            type: 'password',
            autocomplete: 'current-password',
            required: true,
          }),
        ]
      : [h('p', { class: 'tile-hint' }, 'Your recent sign-in at the identity provider is your re-authentication.')]),
  ];
}

function signatureOf(form: HTMLFormElement, ctx: ViewContext): { meaning: string; password?: string } {
  const meaning = field(form, 'meaning');
  return ctx.me.method === 'local' ? { meaning, password: field(form, 'password') } : { meaning };
}

/**
 * Sends a signed decision with its Idempotency-Key: the same key while the same submission is retried (a timeout, a
 * 503, a 409 while the first runs), a new one once an answer settled it.
 */
function submitSigned(
  form: HTMLFormElement,
  keys: SubmissionKey,
  path: string,
  body: Record<string, unknown>,
  error: HTMLElement,
  done: (outcome: DispositionOutcome) => void,
): void {
  // The password is not part of what is retried: a corrected password is the same submission, signed again.
  const { password: _password, ...signature } = body.signature as { password?: string };
  const key = keys.keyFor({ ...body, signature });
  const button = form.querySelector('button[type=submit]') as HTMLButtonElement;
  button.disabled = true;
  replace(error);
  postJson<DispositionOutcome>(path, body, { 'idempotency-key': key })
    .then((answer) => {
      keys.settle();
      done(answer);
    })
    .catch((err: unknown) => {
      if (err instanceof ApiError && err.status < 500 && err.status !== 409 && err.status !== 401) keys.settle();
      replace(error, problemAlert(err));
      const password = form.querySelector<HTMLInputElement>('input[type=password]');
      if (password) password.value = '';
    })
    .finally(() => {
      button.disabled = false;
    });
}

function decisionForm(lot: LotView, ctx: ViewContext, reload: (message: Child) => void): HTMLElement {
  if (!mayDecide(ctx.me)) {
    return h(
      'p',
      { class: 'empty', id: 'decision-not-allowed' },
      `The lot waits for its disposition. Quality engineers and quality managers decide it; you are signed in as ${
        ctx.me.name
      } (${ctx.me.roles.join(', ') || 'no role'}).`,
    );
  }
  const error = h('div', { id: 'decision-error' });
  const keys = new SubmissionKey();
  const form = h(
    'form',
    { id: 'decision-form', class: 'stacked', 'aria-labelledby': 'disposition-title' },
    h('label', { for: 'decision' }, 'Decision'),
    h(
      'select',
      { id: 'decision', name: 'decision', required: true },
      h('option', { value: '' }, 'Choose…'),
      (Object.keys(DECISIONS) as DispositionDecision[]).map((d) => h('option', { value: d }, DECISIONS[d])),
    ),
    h('label', { for: 'reason' }, 'Reason'),
    h('textarea', { id: 'reason', name: 'reason', required: true, maxlength: 1000, rows: 3 }),
    signatureFields(ctx, 'signature'),
    h('button', { type: 'submit' }, 'Sign disposition'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = {
      decision: field(form, 'decision'),
      reason: field(form, 'reason').trim(),
      site: lot.site,
      signature: signatureOf(form, ctx),
    };
    submitSigned(form, keys, `/v1/lots/${encodeURIComponent(lot.lotId)}/disposition`, body, error, (o) =>
      reload(
        o.status === 'awaiting-second-signature'
          ? `Signed ${o.decision}: it waits for a quality manager's second signature.`
          : `Signed ${o.decision}: ${o.status}.`,
      ),
    );
  });
  return form;
}

function countersignForm(
  lot: LotView,
  decision: SignedDecision,
  ctx: ViewContext,
  reload: (message: Child) => void,
): HTMLElement {
  const signed = decision.signatures.some((s) => s.signer.id === ctx.me.id);
  if (signed) {
    return h(
      'p',
      { class: 'empty', id: 'countersign-not-allowed' },
      'You signed this decision: the second signature must be another quality manager’s.',
    );
  }
  if (!mayCountersign(ctx.me)) {
    return h(
      'p',
      { class: 'empty', id: 'countersign-not-allowed' },
      `Only a quality manager may countersign; you are signed in as ${ctx.me.name} (${ctx.me.roles.join(', ') || 'no role'}).`,
    );
  }
  const error = h('div', { id: 'countersign-error' });
  const keys = new SubmissionKey();
  const form = h(
    'form',
    { id: 'countersign-form', class: 'stacked', 'aria-label': 'Countersign the use-as-is' },
    h('p', null, `You countersign: ${decision.decision} – ${decision.reason}.`),
    signatureFields(ctx, 'countersign'),
    h('button', { type: 'submit' }, 'Countersign'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = { site: lot.site, signature: signatureOf(form, ctx) };
    submitSigned(form, keys, `/v1/lots/${encodeURIComponent(lot.lotId)}/disposition/countersign`, body, error, (o) =>
      reload(`Countersigned: ${o.decision} is ${o.status}.`),
    );
  });
  return form;
}

function casesPanel(lot: LotView): HTMLElement {
  return panel(
    'lot-cases',
    'Lot cases',
    table({
      caption: 'Every case of this lot, newest first',
      rows: lot.cases,
      empty: 'This lot has never been held.',
      columns: [
        { label: 'Stage', cell: (c) => c.stage },
        { label: 'Line', cell: (c) => c.line },
        { label: 'Product', cell: (c) => c.sku },
        { label: 'Hold', cell: (c) => c.holdId ?? '–' },
        { label: 'Decision', cell: (c) => c.disposition?.decision ?? c.decision?.decision ?? '–' },
        { label: 'Opened', cell: (c) => when(c.openedAt) },
        { label: 'Closed', cell: (c) => when(c.closedAt) },
        {
          label: 'Workflow',
          cell: (c) => h('a', { href: c.temporalUiUrl, target: '_blank', rel: 'noopener' }, 'Temporal'),
        },
      ],
    }),
  );
}

function defectsPanel(result: PromiseSettledResult<LotDefectsResponse>, signal: AbortSignal): HTMLElement {
  if (result.status === 'rejected')
    return panel('lot-defects', 'Defects', problemAlert(result.reason, 'defects-error'));
  // Object URLs of the frames drawn: freed with the drawing (a redraw, or the view left).
  const frames: string[] = [];
  signal.addEventListener('abort', () => frames.splice(0).forEach((u) => URL.revokeObjectURL(u)), { once: true });
  const defects = result.value.defects;
  const shown = defects.slice(0, FRAMES_SHOWN);
  return panel(
    'lot-defects',
    'Defects',
    shown.length === 0 ? h('p', { class: 'empty' }, 'No failed inspection.') : null,
    defects.length > shown.length
      ? h('p', { class: 'tile-hint' }, `The latest ${shown.length} of ${defects.length} shown.`)
      : null,
    h(
      'ul',
      { class: 'frames' },
      shown.map((d) => {
        const classes = d.defects.map((x) => `${x.class} ${x.score.toFixed(2)}`).join(', ') || 'failed';
        const caption = `Part ${d.partId} at ${d.line}/${d.station}, ${when(d.inspectedAt)}: ${classes}`;
        const picture = h('div', { class: 'frame' });
        if (d.imageUrl) {
          picture.append(h('span', { class: 'tile-hint' }, 'Loading the frame…'));
          void loadFrame(d.imageUrl, caption, picture, frames, signal);
        } else {
          picture.append(
            h(
              'span',
              { class: 'tile-hint' },
              d.imageRef ? `Frame stored at ${d.imageRef} (not readable from here)` : 'No frame stored.',
            ),
          );
        }
        return h('li', { 'data-event-id': d.eventId }, h('figure', null, picture, h('figcaption', null, caption)));
      }),
    ),
  );
}

/** A frame read with the bearer token (an <img src> could not send it), shown from a blob: URL. */
async function loadFrame(
  url: string,
  alt: string,
  target: HTMLElement,
  frames: string[],
  signal: AbortSignal,
): Promise<void> {
  try {
    const res = await fetch(url, { headers: authHeaders(), signal });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const blob = await res.blob();
    if (signal.aborted) return;
    const objectUrl = URL.createObjectURL(blob);
    frames.push(objectUrl);
    replace(target, h('img', { src: objectUrl, alt: `Frame of ${alt}`, loading: 'lazy' }));
  } catch (err) {
    if (signal.aborted) return;
    replace(
      target,
      h(
        'span',
        { class: 'error' },
        `The frame could not be read (${err instanceof Error ? err.message : String(err)}).`,
      ),
    );
  }
}

function genealogyPanel(result: PromiseSettledResult<LotGenealogy>, lotId: string, ctx: ViewContext): HTMLElement {
  const traceLink = h(
    'a',
    { href: href('trace', ctx.filters, { by: 'lot', q: lotId }), id: 'lot-trace-link' },
    'Trace this lot (graph, supplier lots, customers, mock recall)',
  );
  if (result.status === 'rejected') {
    const missing = result.reason instanceof ApiError && result.reason.status === 404;
    return panel(
      'lot-genealogy',
      'Genealogy',
      missing ? h('p', { class: 'empty' }, 'The genealogy does not know this lot yet.') : problemAlert(result.reason),
      h('p', null, traceLink),
    );
  }
  const { cameFrom, wentInto } = result.value;
  const deliveries = wentInto.lots.flatMap((l) => l.deliveries).concat(result.value.lot.deliveries);
  const name = (l: LotGenealogy['cameFrom']['lots'][number]) =>
    l.mes?.lotId ?? l.erp?.batch ?? l.supplierBatch ?? l.lotKey;
  return panel(
    'lot-genealogy',
    'Genealogy',
    h('p', null, traceLink),
    h(
      'div',
      { class: 'columns' },
      table({
        caption: `Made from (${cameFrom.totalLots} lots)`,
        rows: cameFrom.lots,
        empty: 'Made from no recorded lot.',
        columns: [
          { label: 'Lot', cell: (l) => name(l) },
          { label: 'Material', cell: (l) => l.material ?? '–' },
          {
            label: 'Supplier',
            // A supplier's batch traces forward on its own: which other lots it went into.
            cell: (l) =>
              l.supplier && l.supplierBatch
                ? h(
                    'a',
                    { href: href('trace', ctx.filters, { by: 'supplier-lot', q: l.supplier, q2: l.supplierBatch }) },
                    `${l.supplier} / ${l.supplierBatch}`,
                  )
                : (l.supplier ?? '–'),
          },
          { label: 'Failed inspections', cell: (l) => l.inspections.fail, numeric: true },
        ],
      }),
      table({
        caption: `Delivered to (${deliveries.length} delivery items)`,
        rows: deliveries,
        empty: 'Not delivered.',
        columns: [
          { label: 'Customer', cell: (d) => d.customer },
          { label: 'Delivery', cell: (d) => `${d.delivery} / ${d.item}` },
          { label: 'Shipped', cell: (d) => when(d.shippedAt) },
        ],
      }),
    ),
  );
}
