/**
 * The Idempotency-Key of a form's submission: a new key for each new submission, the same key when the person sends
 * the same thing again after a failure (a timeout, a 503), so the API answers the first request's outcome instead of
 * deciding twice. A changed form is a new submission and gets a new key (the API refuses a key reused with another
 * body).
 */
export class SubmissionKey {
  private last?: { body: string; key: string };

  keyFor(body: unknown): string {
    const text = JSON.stringify(body);
    if (this.last?.body !== text) this.last = { body: text, key: crypto.randomUUID() };
    return this.last.key;
  }

  /** The submission got its answer: the next one is new. */
  settle(): void {
    this.last = undefined;
  }
}
