/**
 * The signed-in person: a bearer token from `POST /v1/auth/token`, kept for this tab only (sessionStorage: closing
 * the tab signs out, and no other site can read it), and who it is from `GET /v1/me`.
 */
import type { MeResponse } from '../schemas/dashboard.schema';

const KEY = 'holdfast.session';

interface Stored {
  token: string;
  expiresAt: number;
}

let me: MeResponse | undefined;

export function token(): string | undefined {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return undefined;
  try {
    const stored = JSON.parse(raw) as Stored;
    if (stored.expiresAt > Date.now()) return stored.token;
  } catch {
    // A damaged entry is a signed-out session.
  }
  sessionStorage.removeItem(KEY);
  return undefined;
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  me = undefined;
}

/** Signs in; the answer's problem detail on refusal (the API does not say which of user, password or lock it was). */
export async function signIn(username: string, password: string): Promise<void> {
  const res = await fetch('/v1/auth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; detail?: string };
  if (!res.ok || !body.access_token) throw new Error(body.detail ?? `sign-in failed (HTTP ${res.status})`);
  const stored: Stored = { token: body.access_token, expiresAt: Date.now() + (body.expires_in ?? 0) * 1000 };
  sessionStorage.setItem(KEY, JSON.stringify(stored));
  me = undefined;
}

export function currentUser(): MeResponse | undefined {
  return me;
}

export function rememberUser(user: MeResponse): void {
  me = user;
}

/** The decisions the page offers (the API checks them again): who may sign a disposition, who may countersign. */
export function mayDecide(user: MeResponse): boolean {
  return user.roles.some((r) => r === 'quality-engineer' || r === 'quality-manager');
}

export function mayCountersign(user: MeResponse): boolean {
  return user.roles.includes('quality-manager');
}
