import type { FastifyRequest } from 'fastify';
import type { AccessTarget } from '../../infra/identity/access';
import type { Role } from '../../infra/identity/principal';

/** Who may read lots, defects and station reports: everyone who works with quality data (admins always may). */
export const READERS: readonly Role[] = ['operator', 'quality-engineer', 'quality-manager', 'integrator', 'auditor'];

/** A station route's target, from its path (/v1/stations/:site/:line/:station/...). */
export const stationTarget = (request: FastifyRequest): AccessTarget[] => {
  const { site, line, station } = request.params as { site: string; line: string; station: string };
  return [{ site, line, station }];
};
