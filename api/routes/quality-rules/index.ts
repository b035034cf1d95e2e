import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuditEntry } from '../../../infra/audit/audit-record';
import { ProblemError, notFound, problemType, validationProblem } from '../../../infra/http/problem-details';
import { requestActor } from '../../../infra/http/request-actor';
import { ProblemSchema } from '../../../infra/http/schemas';
import { authorizeSite } from '../../../infra/identity/route-access';
import {
  type EscalationRow,
  LimitsUnavailable,
  type QualityRuleVersion,
  RuleVersionConflict,
  type StoredEscalation,
  currentRules,
  escalationOfRow,
  putRuleVersion,
  recomputeLimits,
  ruleOfRow,
} from '../../../infra/quality-rules/pg-quality-rule-store';
import type { SignatureManifest } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import {
  EscalationListQuerySchema,
  EscalationListSchema,
  EscalationParamsSchema,
  EscalationReleaseBodySchema,
  type EscalationView,
  EscalationViewSchema,
  LimitsBodySchema,
  RuleListQuerySchema,
  RuleListSchema,
  RuleParamsSchema,
  RulePutBodySchema,
  RuleViewSchema,
} from '../../schemas/quality-rules.schema';
import { authenticateSigner } from '../../services/e-signature.service';
import {
  escalationReleaseContent,
  signEscalationRelease,
  verifiedEscalationSignatures,
} from '../../services/escalation-signature';
import { READERS } from '../../support/access';
import { CHART_MAX_DAYS, ControlChartQuerySchema, ControlChartResponseSchema } from '../../schemas/dashboard.schema';
import { controlChart } from '../../../infra/quality-rules/control-chart';

/** Who changes rules, recomputes limits and releases escalations: people, never machine keys. */
const QUALITY = ['quality-engineer', 'quality-manager'] as const;

const siteOfQuery = (request: { query: unknown }) => [{ site: (request.query as { site: string }).site }];
const siteOfParams = (request: { params: unknown }) => [{ site: (request.params as { site: string }).site }];

const ruleView = (r: QualityRuleVersion) => ({
  ...r,
  evaluating: !(r.definition.kind === 'p-chart' || r.definition.kind === 'u-chart') || r.limits !== null,
});

async function escalationView(deps: ApiDeps, e: StoredEscalation): Promise<EscalationView> {
  const { signature: _signature, ...rest } = e;
  return { ...rest, signatures: await verifiedEscalationSignatures(deps, e) };
}

const HOUR_MS = 3_600_000;

const conflict = (slug: string, title: string, detail: string) =>
  new ProblemError({ type: problemType(slug), title, status: 409, detail });

const qualityRuleRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  /** The site's configured line and station, else 400 naming the field (a rule must watch something that exists). */
  const checkScope = (site: string, line: string, station: string | null) => {
    const s = deps.config.sites.find((x) => x.id === site);
    if (!s) throw notFound(`no site ${site} in this installation's configuration`);
    const l = s.lines.find((x) => x.id === line);
    if (!l) {
      throw new ProblemError(validationProblem([{ field: 'body.line', message: `site ${site} has no line ${line}` }]));
    }
    if (station !== null && !l.stations.some((x) => x.id === station)) {
      throw new ProblemError(
        validationProblem([{ field: 'body.station', message: `line ${line} has no station ${station}` }]),
      );
    }
  };

  app.get('/v1/quality-rules', {
    config: { access: { roles: READERS, machine: ['lots:read'] }, accessTargets: siteOfQuery },
    schema: {
      summary: "A site's statistical escalation rules: each rule's current version, or every version",
      description:
        'Rules per line or station: consecutive nonconforming parts, defects of a class within a window, first-pass ' +
        'yield below a threshold, p- and u-charts with the Western Electric run rules. Every change is a new ' +
        'version (`history=true` lists them all, newest first). docs/analytics.md#statistical-escalation.',
      tags: ['quality-rules'],
      querystring: RuleListQuerySchema,
      response: { 200: RuleListSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, line, history } = request.query;
      if (!history) return { rules: (await currentRules(deps.pool, site, line)).map(ruleView) };
      const { rows } = await deps.pool.query<Parameters<typeof ruleOfRow>[0]>(
        `SELECT * FROM holdfast.quality_rule WHERE site = $1 AND ($2::text IS NULL OR line = $2)
          ORDER BY rule_id, version DESC`,
        [site, line ?? null],
      );
      return { rules: rows.map((r) => ruleView(ruleOfRow(r))) };
    },
  });

  app.put('/v1/quality-rules/:site/:ruleId', {
    config: { access: { roles: [...QUALITY] }, accessTargets: siteOfParams },
    schema: {
      summary: 'Create or change a rule: stored as its next version, audited, applied from the next evaluation',
      description:
        'No restart: each line’s evaluator reads the current versions at every pass; a new version starts with a ' +
        'fresh evaluation state. A chart keeps its limits when its kind and scope are unchanged. `expectedVersion` ' +
        '(0 for a new rule) refuses a change made against another version (409). ' +
        'docs/analytics.md#statistical-escalation.',
      tags: ['quality-rules'],
      params: RuleParamsSchema,
      body: RulePutBodySchema,
      response: {
        200: RuleViewSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        409: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { site, ruleId } = request.params;
      const body = request.body;
      const station = body.station ?? null;
      checkScope(site, body.line, station);
      try {
        const created = await putRuleVersion(
          deps.audit,
          {
            site,
            ruleId,
            line: body.line,
            station,
            definition: body.definition,
            active: body.active,
            reason: body.reason,
            ...(body.expectedVersion !== undefined ? { expectedVersion: body.expectedVersion } : {}),
          },
          requestActor(request),
        );
        return ruleView(created);
      } catch (err) {
        if (err instanceof RuleVersionConflict)
          throw conflict('rule-version-conflict', 'Rule changed meanwhile', err.message);
        throw err;
      }
    },
  });

  app.post('/v1/quality-rules/:site/:ruleId/limits', {
    config: { access: { roles: [...QUALITY] }, accessTargets: siteOfParams },
    schema: {
      summary: "Recompute a chart's limits from a baseline period: stored as the rule's next version, audited",
      description:
        'The centre line is Σ nonconforming ÷ Σ parts (p-chart) or Σ defects ÷ Σ parts (u-chart) over the complete ' +
        'subgroups of first production inspections in [from, to); each subgroup’s 3σ limits follow from its own ' +
        'size. 422 when the period holds no complete subgroup or the rule is not a chart. ' +
        'docs/analytics.md#statistical-escalation.',
      tags: ['quality-rules'],
      params: RuleParamsSchema,
      body: LimitsBodySchema,
      response: {
        200: RuleViewSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        422: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { site, ruleId } = request.params;
      try {
        const created = await recomputeLimits(deps.audit, { site, ruleId, ...request.body }, requestActor(request));
        if (!created) throw notFound(`no rule ${ruleId} at site ${site}`);
        return ruleView(created);
      } catch (err) {
        if (err instanceof LimitsUnavailable) {
          throw new ProblemError({
            type: problemType('limits-unavailable'),
            title: 'No limits from this baseline',
            status: 422,
            detail: err.message,
          });
        }
        throw err;
      }
    },
  });

  app.get('/v1/quality-rules/:site/:ruleId/chart', {
    // The site from the path; the rule's line once the rule is read (authorizeSite).
    config: { access: { roles: READERS, machine: ['lots:read'] }, accessTargets: siteOfParams },
    schema: {
      summary:
        'A rule as a control chart: its points over a range, centre line and limits, and the points that tripped it',
      description:
        'p- and u-charts: the subgroups of first production inspections in the rule’s scope in [from, to), drawn with ' +
        'the evaluator’s own subgrouping and limits (each subgroup’s 3σ limits and z from its own size); the ' +
        'subgroups the evaluator recorded (trip evidence, its state) with its own values. Other rules: their ' +
        'statistic per UTC hour from the aggregates kept at ingest. Tripped points name the run rules broken and ' +
        `link the escalation they raised. Default range: the 24 hours before now; at most ${CHART_MAX_DAYS} days. ` +
        'docs/dashboard.md#control-charts.',
      tags: ['quality-rules'],
      params: RuleParamsSchema,
      querystring: ControlChartQuerySchema,
      response: {
        200: ControlChartResponseSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { site, ruleId } = request.params;
      const now = new Date();
      const to = new Date(request.query.to ?? now.getTime());
      const from = new Date(request.query.from ?? to.getTime() - 24 * HOUR_MS);
      if (to.getTime() - from.getTime() > CHART_MAX_DAYS * 24 * HOUR_MS) {
        const field = request.query.from !== undefined ? 'querystring.from' : 'querystring.to';
        throw new ProblemError(
          validationProblem([{ field, message: `the range may span at most ${CHART_MAX_DAYS} days` }]),
        );
      }
      const rule = (await currentRules(deps.pool, site)).find((r) => r.ruleId === ruleId);
      if (!rule) throw notFound(`no rule ${ruleId} at site ${site}`);
      authorizeSite(request, { site, line: rule.line, ...(rule.station ? { station: rule.station } : {}) });
      const range = { from: from.toISOString(), to: to.toISOString() };
      const chart = await controlChart(deps.pool, rule, { ...range, now: now.toISOString() });
      return {
        site,
        ruleId,
        version: rule.version,
        kind: rule.definition.kind,
        line: rule.line,
        station: rule.station,
        ...range,
        ...chart,
      };
    },
  });

  app.get('/v1/quality-escalations', {
    config: { access: { roles: READERS, machine: ['lots:read'] }, accessTargets: siteOfQuery },
    schema: {
      summary: "A site's quality escalations, newest first, with their evidence, MES hold and release",
      description:
        'One per tripped rule: the points or subgroups that tripped it and the limits, the site policy it ran under, ' +
        'the MES’s read-back of the hold and of its release, and the release signature, verified on read. ' +
        'docs/analytics.md#statistical-escalation.',
      tags: ['quality-rules'],
      querystring: EscalationListQuerySchema,
      response: { 200: EscalationListSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, line, state, limit } = request.query;
      const { rows } = await deps.pool.query<EscalationRow>(
        `SELECT * FROM holdfast.quality_escalation
          WHERE site = $1 AND ($2::text IS NULL OR line = $2) AND ($3::text IS NULL OR state = $3)
          ORDER BY created_at DESC, escalation_id LIMIT $4`,
        [site, line ?? null, state ?? null, limit],
      );
      return { escalations: await Promise.all(rows.map((r) => escalationView(deps, escalationOfRow(r)))) };
    },
  });

  app.post('/v1/quality-escalations/:id/release', {
    // The role is checked first; the site once the escalation is read (authorizeSite).
    config: { access: { roles: [...QUALITY] }, accessTargets: () => [] },
    schema: {
      summary: 'Release an escalation, signed: its MES hold is released once, and the release audited',
      description:
        'The releaser signs electronically (re-entered password, or a recent sign-in at the OpenID provider): the ' +
        'signature covers the escalation, its evidence, the MES hold and the reason. Only an escalation that has ' +
        'alerted (policy alert) or holds the line or order (hold policies) can be released (409 otherwise). ' +
        'docs/analytics.md#statistical-escalation, docs/e-signatures.md.',
      tags: ['quality-rules'],
      params: EscalationParamsSchema,
      body: EscalationReleaseBodySchema,
      response: {
        200: EscalationViewSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
        409: ProblemSchema,
        423: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { id } = request.params;
      const { reason, signature } = request.body;
      const found = await deps.pool.query<EscalationRow>(
        `SELECT * FROM holdfast.quality_escalation WHERE escalation_id = $1`,
        [id],
      );
      const row = found.rows[0];
      if (!row) throw notFound(`no quality escalation ${id}`);
      const e = escalationOfRow(row);
      authorizeSite(request, { site: e.site, line: e.line });
      const releasable = e.policy === 'alert' ? ['alerted', 'held'] : ['held'];
      if (!releasable.includes(e.state)) {
        throw conflict(
          'escalation-not-releasable',
          'Escalation cannot be released now',
          `escalation ${id} is ${e.state}; under policy ${e.policy} only ${releasable.join(' or ')} can be released`,
        );
      }
      const actor = requestActor(request);
      const signer = await authenticateSigner(deps, request, signature);
      const sealed: SignatureManifest = await signEscalationRelease(
        deps,
        signer,
        signature.meaning,
        escalationReleaseContent(e, { reason, decidedBy: actor.id }),
      );
      const updated = await deps.audit.inTransaction(async (client) => {
        const res = await client.query<EscalationRow>(
          `UPDATE holdfast.quality_escalation
              SET state = 'release-decided', decided_at = now(), decided_by = $2, decision_reason = $3, signature = $4
            WHERE escalation_id = $1 AND state = $5 AND decided_at IS NULL
            RETURNING *`,
          [id, actor.id, reason, JSON.stringify(sealed), e.state],
        );
        const entry: AuditEntry = {
          actor,
          action: 'quality-escalation.release-decision',
          recordType: 'quality-escalation',
          recordId: id,
          old: { state: e.state },
          new: { state: 'release-decided', signatureId: sealed.signatureId, holdId: e.hold?.holdId ?? null },
          reason,
          outcome: 'done',
          detail: { site: e.site, line: e.line, ruleId: e.ruleId, version: e.version, evidence: e.evidence },
        };
        return { result: res.rows[0], audit: res.rows[0] ? [entry] : [] };
      });
      if (!updated) {
        throw conflict(
          'escalation-not-releasable',
          'Escalation changed meanwhile',
          `escalation ${id} changed; read it again`,
        );
      }
      if (deps.gateway.qualityEscalationReleased) {
        // Only a wake-up: the workflow reads the stored decision, and reads it again on its own if this is lost.
        await deps.gateway.qualityEscalationReleased(e.workflowId, id).catch((err: unknown) => {
          request.log.warn({ err, escalationId: id }, 'escalation not woken; it reads the release at its next check');
        });
      }
      return escalationView(deps, escalationOfRow(updated));
    },
  });
};

export default qualityRuleRoutes;
