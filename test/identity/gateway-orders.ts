/** The mesh the renewal tests run on: a control plane, and `gateway` and `orders` sidecars in front of echo apps. */
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { echoHandler, startUpstream, waitUntil, type Processes, type TestUpstream } from '../support/index.js';
import { get, startMeshSidecar, type MeshSidecar } from './mesh.js';

/**
 * Starts a control plane with `cpArgs` and the two sidecars (their apps go into `apps`, for the
 * caller to close), and resolves once gateway reaches orders.
 */
export async function startGatewayAndOrders(
  procs: Processes,
  apps: TestUpstream[],
  cpArgs: string[],
): Promise<{ cp: ControlPlaneProcess; gateway: MeshSidecar; orders: MeshSidecar }> {
  const cp = await startControlPlane(procs, { args: cpArgs });
  const [gatewayApp, ordersApp] = await Promise.all([startUpstream(echoHandler('gateway')), startUpstream(echoHandler('orders'))]);
  apps.push(gatewayApp, ordersApp);
  const [gateway, orders] = await Promise.all([
    startMeshSidecar(procs, cp, { service: 'gateway', appPort: gatewayApp.port }),
    startMeshSidecar(procs, cp, { service: 'orders', appPort: ordersApp.port }),
  ]);
  await waitUntil(async () => (await get(gateway, 'orders')).status === 200, { what: 'gateway to reach orders', timeoutMs: 15_000 });
  return { cp, gateway, orders };
}
