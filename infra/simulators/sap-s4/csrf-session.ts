import { randomBytes } from 'node:crypto';

/**
 * SAP Gateway's CSRF protection as a client sees it: a GET/HEAD with `X-CSRF-Token: Fetch` opens (or reuses) an HTTP
 * session, answers the token in `X-CSRF-Token` and sets the session cookie plus the anti-XSRF cookie; a modifying
 * request must present the token header and both cookies of a live session. Sessions end after an idle period, and
 * their tokens with them (SAP help: "Cross-Site Request Forgery Protection",
 * docs/vendor-interfaces.md#sap-csrf-tokens).
 */
export interface CsrfSession {
  id: string;
  token: string;
  /** Value of the sap-XSRF cookie; bound to the session like SAP's. */
  xsrfCookie: string;
  lastUsedAt: number;
}

/** SAP names its cookies after the system id and client: `SAP_SESSIONID_<SID>_<client>`, `sap-XSRF_<SID>_<client>`. */
export const SIMULATED_SYSTEM_ID = 'HFS';

export function sessionCookieName(sapClient: string): string {
  return `SAP_SESSIONID_${SIMULATED_SYSTEM_ID}_${sapClient}`;
}

export function xsrfCookieName(sapClient: string): string {
  return `sap-XSRF_${SIMULATED_SYSTEM_ID}_${sapClient}`;
}

export type CsrfCheck = { ok: true; session: CsrfSession } | { ok: false; reason: string };

export class CsrfSessionStore {
  private readonly sessions = new Map<string, CsrfSession>();

  constructor(private readonly idleTtlMs: number) {}

  /** The live session named by the cookie, or a new one. Fetching again within a session returns the same token. */
  fetch(sessionId: string | undefined, now = Date.now()): CsrfSession {
    const existing = this.live(sessionId, now);
    if (existing) return existing;
    const session: CsrfSession = {
      id: randomBytes(24).toString('base64url'),
      token: randomBytes(18).toString('base64'),
      xsrfCookie: randomBytes(24).toString('base64url'),
      lastUsedAt: now,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  validate(
    sessionId: string | undefined,
    xsrfCookie: string | undefined,
    token: string | undefined,
    now = Date.now(),
  ): CsrfCheck {
    if (!token) return { ok: false, reason: 'no X-CSRF-Token header' };
    const session = this.live(sessionId, now);
    if (!session) return { ok: false, reason: 'no live session cookie' };
    if (xsrfCookie !== session.xsrfCookie) return { ok: false, reason: 'anti-XSRF cookie missing or mismatched' };
    if (token !== session.token) return { ok: false, reason: 'token does not belong to the session' };
    return { ok: true, session };
  }

  /** Ends every session (admin control `POST /__sim/expire-sessions`); returns how many were open. */
  expireAll(): number {
    const n = this.sessions.size;
    this.sessions.clear();
    return n;
  }

  private live(sessionId: string | undefined, now: number): CsrfSession | undefined {
    if (!sessionId) return undefined;
    const session = this.sessions.get(sessionId);
    if (!session) return undefined;
    if (now - session.lastUsedAt > this.idleTtlMs) {
      this.sessions.delete(sessionId);
      return undefined;
    }
    session.lastUsedAt = now;
    return session;
  }
}

export function parseCookieHeader(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return cookies;
}
