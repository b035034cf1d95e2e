/**
 * Live updates (`GET /v1/live`, server-sent events) read with fetch, not EventSource, so the bearer token travels in
 * the Authorization header and never in a URL (where proxies and logs would keep it). Reconnects with backoff; the
 * views subscribe and refresh what an event touches.
 */
import type { LiveEvent } from '../schemas/dashboard.schema';
import { authHeaders, withQuery } from './api-client';

type Listener = (event: LiveEvent) => void;
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'off';

export class LiveFeed {
  private readonly listeners = new Set<Listener>();
  private readonly stateListeners = new Set<(s: LiveState) => void>();
  private abort?: AbortController;
  private key = '';
  state: LiveState = 'off';

  /** Follows one site (and line); a call with the same scope keeps the open stream. */
  follow(site: string, line?: string): void {
    const key = `${site}|${line ?? ''}`;
    if (key === this.key && this.abort) return;
    this.stop();
    this.key = key;
    const abort = new AbortController();
    this.abort = abort;
    void this.run(withQuery('/v1/live', { site, line }), abort.signal);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = undefined;
    this.key = '';
    this.setState('off');
  }

  subscribe(listener: Listener, signal: AbortSignal): void {
    this.listeners.add(listener);
    signal.addEventListener('abort', () => this.listeners.delete(listener), { once: true });
  }

  onState(listener: (s: LiveState) => void): void {
    this.stateListeners.add(listener);
    listener(this.state);
  }

  private setState(state: LiveState): void {
    this.state = state;
    for (const l of this.stateListeners) l(state);
  }

  private async run(url: string, signal: AbortSignal): Promise<void> {
    let backoffMs = 500;
    this.setState('connecting');
    while (!signal.aborted) {
      try {
        const res = await fetch(url, { headers: { accept: 'text/event-stream', ...authHeaders() }, signal });
        if (!res.ok || !res.body) throw new Error(`live: HTTP ${res.status}`);
        this.setState('live');
        backoffMs = 500;
        await this.read(res.body, signal);
      } catch {
        if (signal.aborted) return;
      }
      this.setState('reconnecting');
      await new Promise((r) => setTimeout(r, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 15_000);
    }
  }

  /** The text/event-stream format: fields per line, an event ends at a blank line. */
  private async read(body: ReadableStream<Uint8Array>, signal: AbortSignal): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    signal.addEventListener('abort', () => void reader.cancel().catch(() => undefined), { once: true });
    let buffer = '';
    let data: string[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (data.length > 0) this.dispatch(data.join('\n'));
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        }
      }
    }
  }

  private dispatch(raw: string): void {
    let event: LiveEvent;
    try {
      event = JSON.parse(raw) as LiveEvent;
    } catch {
      return;
    }
    for (const l of this.listeners) l(event);
  }
}
