/**
 * Who calls Holdfast (docs/identity.md): a person (`user`, signed in locally or at the plant's OpenID provider) or a
 * machine (`api-key`: a station, a camera, an integration). Both carry roles and sites; a key also carries the one
 * place it stands for (its scope) and the actions it may take there.
 */

export const ROLES = ['operator', 'quality-engineer', 'quality-manager', 'integrator', 'auditor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/**
 * What a machine key may do. Deciding a lot (disposition) and re-running its steps (retry) are not here on purpose:
 * those are a person's decisions, never a device's (OWASP API6, sensitive business flows).
 */
export const MACHINE_ACTIONS = [
  'inspections:write',
  'frames:write',
  'verdicts:write',
  'lots:read',
  'defects:read',
  'stations:read',
  'deferred-frames:read',
  'deferred-frames:write',
  // A supplier portal or EDI integration recording a supplier's 8D response to a SCAR.
  'scars:respond',
] as const;
export type MachineAction = (typeof MACHINE_ACTIONS)[number];

/** `all`: every site, present and future (admins). */
export type Sites = readonly string[] | 'all';

export interface UserPrincipal {
  kind: 'user';
  /** Local accounts: `local:<username>`; OpenID: the provider's `sub`, prefixed by nothing (it is the issuer's). */
  id: string;
  displayName: string;
  roles: readonly Role[];
  sites: Sites;
  /** Which issuer vouched for the user. */
  issuer: string;
  /**
   * When the user last proved who they are (the token's `auth_time`, else its `iat`), in seconds since the epoch. An
   * electronic signature will require a recent one (Part 11 §11.200: re-authentication for a signature), so it is
   * carried from the token now.
   */
  authenticatedAt: number;
}

/** Where a key may act: its site, and optionally one line or one station of it. */
export interface KeyScope {
  site: string;
  line?: string;
  station?: string;
}

export interface ApiKeyPrincipal {
  kind: 'api-key';
  /** The key's public id (the prefix shown with the key), never its secret. */
  id: string;
  displayName: string;
  roles: readonly Role[];
  scope: KeyScope;
  actions: readonly MachineAction[];
}

export type Principal = UserPrincipal | ApiKeyPrincipal;

/** The sites a principal may see: a key only its scope's. */
export function sitesOf(principal: Principal): Sites {
  return principal.kind === 'api-key' ? [principal.scope.site] : principal.sites;
}
