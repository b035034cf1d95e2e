import { isDeepStrictEqual } from 'node:util';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuditEntry } from '../../../infra/audit/audit-record';
import { requestActor } from '../../../infra/http/request-actor';
import { findStation } from '../../../infra/config/load';
import type { ApiDeps } from '../../deps';
import { READERS, stationTarget } from '../../support/access';
import { notFound } from '../../../infra/http/problem-details';
import { saveVerdicts, shadowComparisons } from '../../repositories/verdict.repository';
import { ProblemSchema } from '../../../infra/http/schemas';
import {
  type ShadowReport,
  ShadowReportQuerySchema,
  ShadowReportSchema,
  VerdictBodySchema,
  VerdictResponseSchema,
} from '../../schemas/station.schema';
import { StationParamsSchema } from '../../../infra/http/schemas';

const stationRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const configuredStation = (p: { site: string; line: string; station: string }) => {
    const station = findStation(deps.config, p);
    if (!station) throw notFound(`no station ${p.site}/${p.line}/${p.station} in the configuration`);
    return station;
  };

  app.post('/v1/stations/:site/:line/:station/verdicts', {
    config: {
      access: { roles: ['quality-engineer', 'quality-manager'], machine: ['verdicts:write'] },
      accessTargets: stationTarget,
    },
    schema: {
      summary: 'Record what parts really were (ground truth or a manual check), to measure the station against',
      tags: ['stations'],
      params: StationParamsSchema,
      body: VerdictBodySchema,
      response: { 200: VerdictResponseSchema, 400: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      configuredStation(request.params);
      const { site, line, station } = request.params;
      const recorded = await deps.audit.inTransaction(async (client) => {
        const saved = await saveVerdicts(
          client,
          request.body.verdicts.map((v) => ({ ...request.params, ...v })),
        );
        // A verdict sent again unchanged changes nothing, so it gets no record; a new or corrected one does.
        const changed = saved.filter((s) => !isDeepStrictEqual(s.old, s.new));
        const audit = changed.map((s): AuditEntry => ({
          actor: requestActor(request),
          action: 'station-verdict.record',
          recordType: 'station-verdict',
          recordId: `${site}/${line}/${station}/${s.verdict.frameId}/${s.verdict.source}`,
          old: s.old,
          new: s.new,
          reason: null,
          outcome: 'done',
          detail: null,
        }));
        return { result: saved.length, audit };
      });
      return { recorded };
    },
  });

  app.get('/v1/stations/:site/:line/:station/shadow-report', {
    config: { access: { roles: READERS, machine: ['stations:read'] }, accessTargets: stationTarget },
    schema: {
      summary: "A station's parallel-monitoring (shadow) results against verdicts: agreement, precision, recall",
      description:
        'Covers results recorded while the station was in shadow mode, in [since, until) by inspection time. A result ' +
        'without a verdict counts in `inspected` only.',
      tags: ['stations'],
      params: StationParamsSchema,
      querystring: ShadowReportQuerySchema,
      response: { 200: ShadowReportSchema, 400: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const station = configuredStation(request.params);
      const rows = await shadowComparisons(deps.pool, request.params, request.query);
      const counts = { truePositives: 0, falsePositives: 0, falseNegatives: 0, trueNegatives: 0 };
      const byClass: ShadowReport['byClass'] = {};
      let withVerdict = 0;
      for (const r of rows) {
        if (!r.verdict) continue;
        withVerdict += 1;
        const caught = r.result === 'fail';
        if (r.verdict === 'fail') {
          if (caught) counts.truePositives += 1;
          else counts.falseNegatives += 1;
          const cls = (byClass[r.defect_class ?? 'unspecified'] ??= { total: 0, caught: 0 });
          cls.total += 1;
          if (caught) cls.caught += 1;
        } else if (caught) counts.falsePositives += 1;
        else counts.trueNegatives += 1;
      }
      const ratio = (a: number, b: number) => (b === 0 ? null : Math.round((a / b) * 10_000) / 10_000);
      const report: ShadowReport = {
        ...request.params,
        currentMode: station.mode,
        window: { since: request.query.since ?? null, until: request.query.until ?? null },
        inspected: rows.length,
        fails: rows.filter((r) => r.result === 'fail').length,
        withVerdict,
        counts,
        agreement: ratio(counts.truePositives + counts.trueNegatives, withVerdict),
        precision: ratio(counts.truePositives, counts.truePositives + counts.falsePositives),
        recall: ratio(counts.truePositives, counts.truePositives + counts.falseNegatives),
        byClass,
      };
      return report;
    },
  });
};

export default stationRoutes;
