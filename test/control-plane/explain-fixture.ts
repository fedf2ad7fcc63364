/** What the end-to-end tests of `skein explain` against real sidecars share. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExplainAnswer } from '../../control-plane/admin-api/explain-routes.js';
import type { ControlPlaneProcess } from './harness.js';

/** An app failing every request but its health check, so its callers' sidecars trip and eject while it stays ready. */
export function failing(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(req.url === '/health' ? 200 : 500).end();
}

/** `GET /api/v1/explain` of a GET /x to backend, as `source` would send it when given. */
export async function explainBackend(cp: ControlPlaneProcess, source?: string): Promise<ExplainAnswer> {
  const query = new URLSearchParams({ service: 'backend', method: 'GET', path: '/x', ...(source ? { source } : {}) });
  return (await cp.api.get<ExplainAnswer>(`/api/v1/explain?${query}`)).body;
}
