/** Deep link into the Temporal Web UI for one workflow (and one run when known). */
export function temporalUiWorkflowUrl(baseUrl: string, namespace: string, workflowId: string, runId?: string): string {
  const base = `${baseUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${encodeURIComponent(runId)}` : base;
}
