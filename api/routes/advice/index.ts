import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuditEntry } from '../../../infra/audit/audit-record';
import { type AdviceRow, type StoredAdvice, adviceOfRow } from '../../../infra/advice/pg-advice-store';
import { requestActor } from '../../../infra/http/request-actor';
import { ProblemError, notFound, problemType } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { SignatureManifest } from '../../../workflows/contracts';
import type { ApiDeps } from '../../deps';
import {
  AdviceDecisionBodySchema,
  AdviceListQuerySchema,
  AdviceListSchema,
  AdviceParamsSchema,
  type AdviceView,
  AdviceViewSchema,
  LineParamsSchema,
} from '../../schemas/advice.schema';
import {
  type AdviceDecision,
  adviceContent,
  signAdviceDecision,
  verifiedAdviceSignatures,
} from '../../services/advice-signature';
import { authenticateSigner } from '../../services/e-signature.service';
import { READERS } from '../../support/access';

const lineTarget = (request: { params: unknown }) => {
  const { site, line } = request.params as { site: string; line: string };
  return [{ site, line }];
};

async function view(deps: ApiDeps, a: StoredAdvice): Promise<AdviceView> {
  const { signature: _signature, ...rest } = a;
  return { ...rest, signatures: await verifiedAdviceSignatures(deps, a) };
}

const adviceRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/lines/:site/:line/advice', {
    config: { access: { roles: READERS, machine: ['lots:read'] }, accessTargets: lineTarget },
    schema: {
      summary: "A line's scheduling advice, newest first, with its evidence, decision and the MES's read-back",
      description:
        'Advice the line’s rule proposed for component lots whose parts fail above the configured rate with enough ' +
        'evidence (one-sided exact binomial test). `state` filters. docs/changeover.md#scheduling-advice.',
      tags: ['advice'],
      params: LineParamsSchema,
      querystring: AdviceListQuerySchema,
      response: { 200: AdviceListSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, line } = request.params;
      const { state, limit } = request.query;
      const { rows } = await deps.pool.query<AdviceRow>(
        `SELECT * FROM holdfast.scheduling_advice
          WHERE site = $1 AND line = $2 AND ($3::text IS NULL OR state = $3)
          ORDER BY created_at DESC, advice_id LIMIT $4`,
        [site, line, state ?? null, limit],
      );
      return { advice: await Promise.all(rows.map((r) => view(deps, adviceOfRow(r)))) };
    },
  });

  const decisionRoute = (decision: AdviceDecision) =>
    app.post(`/v1/lines/:site/:line/advice/:id/${decision}`, {
      // A person's decision on what the MES is asked to do: no machine key may take it.
      config: { access: { roles: ['quality-engineer', 'quality-manager'] }, accessTargets: lineTarget },
      schema: {
        summary:
          decision === 'accept'
            ? 'Accept an advice, signed: it is sent to the MES once, and the MES’s read-back is kept'
            : 'Reject an advice, signed: nothing goes to the MES',
        description:
          'The decider signs electronically (re-entered password, or a recent sign-in at the OpenID provider): the ' +
          'signature covers the advice, its evidence, the decision and the reason. Only open advice can be decided ' +
          '(409 otherwise). Audited. docs/changeover.md#scheduling-advice, docs/e-signatures.md.',
        tags: ['advice'],
        params: AdviceParamsSchema,
        body: AdviceDecisionBodySchema,
        response: {
          200: AdviceViewSchema,
          400: ProblemSchema,
          401: ProblemSchema,
          403: ProblemSchema,
          404: ProblemSchema,
          409: ProblemSchema,
          423: ProblemSchema,
        },
      },
      handler: async (request) => {
        const { site, line, id } = request.params;
        const { reason, signature } = request.body;
        const found = await deps.pool.query<AdviceRow>(
          `SELECT * FROM holdfast.scheduling_advice WHERE advice_id = $1 AND site = $2 AND line = $3`,
          [id, site, line],
        );
        const row = found.rows[0];
        if (!row) throw notFound(`no advice ${id} on ${site}/${line}`);
        const advice = adviceOfRow(row);
        const decided = () =>
          new ProblemError({
            type: problemType('advice-decided'),
            title: 'Advice already decided',
            status: 409,
            detail: `advice ${id} is ${advice.state}; only open advice can be accepted or rejected`,
          });
        if (advice.state !== 'open') throw decided();

        const actor = requestActor(request);
        const signer = await authenticateSigner(deps, request, signature);
        const sealed: SignatureManifest = await signAdviceDecision(
          deps,
          signer,
          signature.meaning,
          adviceContent(advice, { decision, reason, decidedBy: actor.id }),
        );
        const next = decision === 'accept' ? 'accepted' : 'rejected';
        const updated = await deps.audit.inTransaction(async (client) => {
          const res = await client.query<AdviceRow>(
            `UPDATE holdfast.scheduling_advice
                SET state = $2, decided_at = now(), decided_by = $3, decision_reason = $4, signature = $5
              WHERE advice_id = $1 AND state = 'open'
              RETURNING *`,
            [id, next, actor.id, reason, JSON.stringify(sealed)],
          );
          const entry: AuditEntry = {
            actor,
            action: `advice.${decision}`,
            recordType: 'scheduling-advice',
            recordId: id,
            old: { state: 'open' },
            new: { state: next, signatureId: sealed.signatureId, action: advice.action, orders: advice.orders },
            reason,
            outcome: 'accepted',
            detail: { site, line, componentLot: advice.componentLot, evidence: advice.evidence },
          };
          return { result: res.rows[0], audit: res.rows[0] ? [entry] : [] };
        });
        // Another decision won the race between the read and the update.
        if (!updated) throw decided();
        if (decision === 'accept' && deps.gateway.adviceDecided) {
          // Only a wake-up: the rule sends every accepted advice on each pass, so a lost signal only delays it.
          await deps.gateway.adviceDecided(site, line, id).catch((err: unknown) => {
            request.log.warn({ err, adviceId: id }, 'advice rule not woken; it sends at its next evaluation');
          });
        }
        return view(deps, adviceOfRow(updated));
      },
    });
  decisionRoute('accept');
  decisionRoute('reject');
};

export default adviceRoutes;
