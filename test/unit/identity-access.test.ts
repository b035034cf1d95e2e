import { decideAccess, type RouteAccess } from '../../infra/identity/access';
import type { ApiKeyPrincipal, UserPrincipal } from '../../infra/identity/principal';

const user = (roles: UserPrincipal['roles'], sites: UserPrincipal['sites'] = ['PLANT1']): UserPrincipal => ({
  kind: 'user',
  id: 'local:jane',
  displayName: 'Jane',
  roles,
  sites,
  issuer: 'holdfast',
  authenticatedAt: 0,
});
const stationKey: ApiKeyPrincipal = {
  kind: 'api-key',
  id: 'k1',
  displayName: 'camera S1',
  roles: [],
  scope: { site: 'PLANT1', line: 'L1', station: 'S1' },
  actions: ['inspections:write', 'frames:write'],
};
const ingest: RouteAccess = { roles: ['integrator'], machine: ['inspections:write'] };
const disposition: RouteAccess = { roles: ['quality-engineer', 'quality-manager'] };

describe('decideAccess', () => {
  it('lets anyone call a public route', () => {
    expect(decideAccess(undefined, 'public')).toEqual({ allow: true });
  });

  it('answers 401 without a principal', () => {
    expect(decideAccess(undefined, disposition)).toMatchObject({ allow: false, status: 401 });
  });

  it('needs one of the declared roles; admin passes every role', () => {
    expect(decideAccess(user(['quality-engineer']), disposition)).toEqual({ allow: true });
    expect(decideAccess(user(['admin'], 'all'), disposition)).toEqual({ allow: true });
    expect(decideAccess(user(['operator']), disposition)).toEqual({
      allow: false,
      status: 403,
      reason: 'requires quality-engineer or quality-manager',
    });
  });

  it('keeps a user to their sites', () => {
    const target = [{ site: 'PLANT2' }];
    expect(decideAccess(user(['quality-engineer']), disposition, target)).toEqual({
      allow: false,
      status: 403,
      reason: 'no access to site PLANT2',
    });
    expect(decideAccess(user(['admin'], 'all'), disposition, target)).toEqual({ allow: true });
  });

  it('never lets a machine key decide a lot, whatever its roles', () => {
    const key = { ...stationKey, roles: ['quality-manager' as const] };
    expect(decideAccess(key, disposition, [{ site: 'PLANT1' }])).toEqual({
      allow: false,
      status: 403,
      reason: 'requires a person signed in',
    });
  });

  it('lets a station key act only for its own station', () => {
    const own = { site: 'PLANT1', line: 'L1', station: 'S1' };
    expect(decideAccess(stationKey, ingest, [own])).toEqual({ allow: true });
    expect(decideAccess(stationKey, ingest, [own, { ...own, station: 'S2' }])).toMatchObject({
      allow: false,
      status: 403,
      reason: 'key is scoped to station L1/S1',
    });
    expect(decideAccess(stationKey, ingest, [{ ...own, line: 'L2' }])).toMatchObject({ status: 403 });
    expect(decideAccess(stationKey, ingest, [{ ...own, site: 'PLANT2' }])).toMatchObject({
      reason: 'no access to site PLANT2',
    });
  });

  it('needs the key to carry one of the declared actions', () => {
    expect(decideAccess(stationKey, { roles: ['integrator'], machine: ['verdicts:write'] })).toEqual({
      allow: false,
      status: 403,
      reason: 'requires a key allowed verdicts:write',
    });
  });

  it('lets a site-wide key act at any line and station of its site', () => {
    const siteKey: ApiKeyPrincipal = { ...stationKey, scope: { site: 'PLANT1' } };
    expect(decideAccess(siteKey, ingest, [{ site: 'PLANT1', line: 'L3', station: 'S9' }])).toEqual({ allow: true });
  });
});
