// The single bundle entry for workers: every workflow Holdfast runs.
export { defectWorkflow } from './defect/defect.workflow';
export { lotCaseWorkflow } from './lot-case/lot-case.workflow';
