import { lotCaseEnrolment, type LotCaseInput, type PartDefect, type SitePolicy } from '../../workflows/contracts';

/** Starts the lot's case workflow if none is running and hands it the part (Temporal signal-with-start). */
export interface LotCaseStarter {
  enrol(args: {
    workflowId: string;
    taskQueue: string;
    input: LotCaseInput;
    part: PartDefect;
  }): Promise<{ runId: string }>;
}

export interface LotCaseDeps {
  lotCases: LotCaseStarter;
}

export const createLotCaseActivities = ({ lotCases }: LotCaseDeps) => ({
  /**
   * Signal-with-start is the only way to reach a workflow that may not exist yet; workflow code cannot do it,
   * so it lives in an activity. A retry may deliver the part twice: the lot case ignores event ids it has seen.
   * Used by defect workflows the dispatcher did not enrol (started before it did; see `lotCaseEnrolled`).
   */
  async joinLotCase({
    part,
    policy,
    taskQueue,
    lotCaseWorkflowId,
  }: {
    part: PartDefect;
    policy: SitePolicy;
    taskQueue: string;
    lotCaseWorkflowId: string;
  }): Promise<{ runId: string }> {
    const enrolment = lotCaseEnrolment(part, policy, taskQueue);
    return lotCases.enrol({ ...enrolment, workflowId: lotCaseWorkflowId });
  },
});

export type LotCaseActivities = ReturnType<typeof createLotCaseActivities>;
