/** Deep link into the Temporal Web UI for one workflow (and one run when known). */
export function temporalUiWorkflowUrl(baseUrl: string, namespace: string, workflowId: string, runId?: string): string {
  const base = `${temporalUiNamespaceUrl(baseUrl, namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${encodeURIComponent(runId)}` : base;
}

/** The Temporal Web UI's page of one namespace: where the workflow links start. */
export function temporalUiNamespaceUrl(baseUrl: string, namespace: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}`;
}
