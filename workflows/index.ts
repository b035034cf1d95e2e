// The single bundle entry for workers: every workflow Holdfast runs.
export { lotCaseWorkflow } from './lot-case/lot-case.workflow';
export { shadowDefectWorkflow } from './shadow/shadow-defect.workflow';
export { genealogySyncWorkflow } from './genealogy/genealogy-sync.workflow';
export { recallWorkflow } from './recall/recall.workflow';
export { recallNotificationWorkflow } from './recall/recall-notification.workflow';
export { recallDrillWorkflow } from './recall/recall-drill.workflow';
export { lineQualityAdvisorWorkflow } from './advice/line-quality-advisor.workflow';
export { changeoverWorkflow } from './changeover/changeover.workflow';
export { erpFeedWorkflow } from './erp-feed/erp-feed.workflow';
export { lineRuleEvaluatorWorkflow } from './escalation/line-rule-evaluator.workflow';
export { qualityEscalationWorkflow } from './escalation/quality-escalation.workflow';
export { incomingReceiptWorkflow } from './supplier/incoming-receipt.workflow';
export { scarWorkflow } from './supplier/scar.workflow';
export { supplierEvaluationWorkflow } from './supplier/supplier-evaluation.workflow';
