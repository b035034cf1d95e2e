/** Every read and write of the page goes through here: the bearer token, problem+json errors, sign-out on 401. */
import { signOut, token } from './session';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: { title?: string; detail?: string; errors?: Array<{ field: string; message: string }> },
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.name = 'ApiError';
  }
}

/** Fired when the token is missing or refused, so the shell shows the sign-in form. */
export const SIGNED_OUT = 'holdfast:signed-out';

const SIGNATURE_REFUSED = 'urn:holdfast:problem:signature-credentials-refused';

export function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(path, {
    ...init,
    headers: { accept: 'application/json', ...authHeaders(), ...(init.headers as Record<string, string>) },
  });
  if (!res.ok) {
    const problem = (await res.json().catch(() => ({}))) as ConstructorParameters<typeof ApiError>[1] & {
      type?: string;
    };
    // A wrong password re-entered for a signature is a 401 too, but the session is still good (docs/e-signatures.md).
    if (res.status === 401 && problem.type !== SIGNATURE_REFUSED) {
      signOut();
      window.dispatchEvent(new Event(SIGNED_OUT));
    }
    throw new ApiError(res.status, problem);
  }
  return res;
}

export async function getJson<T>(
  path: string,
  query: Record<string, string | undefined> = {},
  signal?: AbortSignal,
): Promise<T> {
  return (await request(withQuery(path, query), { signal })).json() as Promise<T>;
}

export async function postJson<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
  const res = await request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return res.json() as Promise<T>;
}

export function withQuery(path: string, query: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, v);
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}
