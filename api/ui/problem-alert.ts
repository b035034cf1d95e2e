/**
 * An API refusal as a person reads it: the problem's title, its detail and each field it names (RFC 9457), in an
 * element with role="alert" so a screen reader announces it when it appears.
 */
import { ApiError } from './api-client';
import { h } from './dom';

export function problemText(err: unknown): string {
  if (err instanceof ApiError) {
    const { title, detail, errors } = err.problem;
    const fields = (errors ?? []).map((e) => `${e.field}: ${e.message}`);
    const head = [title ?? `HTTP ${err.status}`, detail && detail !== title ? detail : undefined]
      .filter(Boolean)
      .join(': ');
    return [`${head} (HTTP ${err.status})`, ...fields].join('; ');
  }
  return err instanceof Error ? err.message : String(err);
}

export function problemAlert(err: unknown, id?: string): HTMLElement {
  return h('p', { class: 'error', role: 'alert', id }, problemText(err));
}
