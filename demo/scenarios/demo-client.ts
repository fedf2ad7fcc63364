/**
 * What scenarios (and the demo's end-to-end test) use to drive a running demo, found through
 * its state: the public shop API at the gateway, the control plane's admin API, the
 * orchestrator's control endpoint, the apps' own admin knobs, and each sidecar's admin port.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { AdminClient } from '../../cli/admin-client.js';
import type { ExplainAnswer } from '../../control-plane/admin-api/explain-routes.js';
import { hostPort } from '../../common/net/host-port.js';
import { ADVERTISE_ADDRESS } from '../instance.js';
import type { DemoState, InstanceState } from '../state.js';

export interface OrderStep {
  readonly step: 'reserve' | 'charge' | 'confirm' | 'refund' | 'release';
  readonly outcome: 'ok' | 'failed';
  readonly detail?: string;
}

export interface Order {
  readonly id: string;
  readonly userId: string;
  readonly status: 'pending' | 'confirmed' | 'cancelled';
  readonly reason?: string;
  readonly items: readonly { productId: string; quantity: number }[];
  readonly steps: readonly OrderStep[];
}

export interface Placed {
  readonly status: number;
  readonly ms: number;
  readonly order?: Order;
  readonly error?: { code: string; message: string };
}

export interface Share {
  readonly v1: number;
  readonly v2: number;
  readonly failed: number;
}

export class DemoClient {
  readonly admin: AdminClient;

  constructor(public state: DemoState) {
    this.admin = new AdminClient(state.adminUrl, state.adminToken);
  }

  /** Reads the demo's state again from the orchestrator (instances stopped or started since). */
  async refresh(): Promise<void> {
    const { status, body } = await this.json<DemoState>(`${this.state.controlUrl}/state`, { headers: { authorization: `Bearer ${this.state.adminToken}` } });
    if (status !== 200) throw new Error(`GET ${this.state.controlUrl}/state answered ${status}`);
    this.state = body;
  }

  instance(id: string): InstanceState {
    const found = this.state.instances.find((i) => i.id === id);
    if (!found) throw new Error(`the demo has no instance ${id}`);
    return found;
  }

  instancesOf(service: string): InstanceState[] {
    return this.state.instances.filter((i) => i.service === service);
  }

  /** An app's own port, for its admin knobs (payments faults, inventory stock, orders health). */
  appUrl(id: string): string {
    return `http://127.0.0.1:${this.instance(id).appPort}`;
  }

  sidecarAdminUrl(id: string): string {
    return `http://127.0.0.1:${this.instance(id).adminPort}`;
  }

  /** The instance whose sidecar listens at `endpoint` (`address:port`, as discovery and `skein explain` name it). */
  instanceAt(endpoint: string): InstanceState | undefined {
    return this.state.instances.find((i) => hostPort(ADVERTISE_ADDRESS, i.inboundPort) === endpoint);
  }

  /** `skein explain SERVICE METHOD PATH -H name:value …` through the admin API. */
  async explain(service: string, method: string, path: string, headers: readonly string[] = [], source?: string): Promise<ExplainAnswer> {
    const query = new URLSearchParams({ service, method, path });
    for (const h of headers) query.append('header', h);
    if (source) query.set('source', source);
    return (await this.admin.get<ExplainAnswer>(`/api/v1/explain?${query}`)).body;
  }

  /**
   * A call to `service` as the app of instance `from` makes it: to its sidecar's outbound
   * listener, by name, so it is routed, balanced and authorized as `from`'s own calls are.
   */
  async callAs<T>(from: string, service: string, method: 'GET' | 'POST', path: string, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: T }> {
    const res = await request(`http://127.0.0.1:${this.instance(from).outboundPort}${path}`, {
      method,
      headers: { host: service, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as T };
  }

  async json<T>(url: string, init: RequestInit = {}): Promise<{ status: number; body: T }> {
    const res = await fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(30_000) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  async placeOrder(userId: string, items: readonly { productId: string; quantity: number }[], key: string = randomUUID()): Promise<Placed> {
    const started = performance.now();
    const { status, body } = await this.json<Order & { error?: Placed['error'] }>(`${this.state.gatewayUrl}/api/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ userId, items }),
    });
    const ms = performance.now() - started;
    return status === 201 ? { status, ms, order: body } : { status, ms, error: body?.error };
  }

  /** An order through the gateway, as its customer reads it. */
  async order(userId: string, id: string): Promise<Order> {
    const { status, body } = await this.json<Order>(`${this.state.gatewayUrl}/api/orders/${encodeURIComponent(id)}?userId=${encodeURIComponent(userId)}`);
    if (status !== 200) throw new Error(`GET /api/orders/${id} answered ${status}`);
    return body;
  }

  async stock(productId: string): Promise<number> {
    const { body } = await this.json<{ stock: Record<string, number> }>(`${this.appUrl('inventory')}/stock?ids=${encodeURIComponent(productId)}`);
    return body.stock[productId] ?? 0;
  }

  async setStock(productId: string, available: number): Promise<void> {
    const { status } = await this.json(`${this.appUrl('inventory')}/admin/stock/${encodeURIComponent(productId)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ available }),
    });
    if (status !== 200) throw new Error(`restocking ${productId} answered ${status}`);
  }

  /** A reservation as inventory has it (`reserved` or `released`), or undefined if it never existed. */
  async reservation(orderId: string): Promise<string | undefined> {
    const { status, body } = await this.json<{ status: string }>(`${this.appUrl('inventory')}/reservations/${encodeURIComponent(orderId)}`);
    return status === 200 ? body.status : undefined;
  }

  /** The charge payments has for an order (`captured`, `refunded`, `voided`), or undefined if none. */
  async charge(orderId: string): Promise<string | undefined> {
    const payments = this.instancesOf('payments').find((i) => i.running) ?? this.instancesOf('payments')[0]!;
    const { status, body } = await this.json<{ status: string }>(`${this.appUrl(payments.id)}/charges/${encodeURIComponent(orderId)}`);
    return status === 200 ? body.status : undefined;
  }

  /** Sets the injected faults of every running payments instance. */
  async setPaymentsFaults(faults: { errorRate?: number; latencyMs?: number }): Promise<void> {
    for (const p of this.instancesOf('payments').filter((i) => i.running)) {
      const { status } = await this.json(`${this.appUrl(p.id)}/admin/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(faults),
      });
      if (status !== 200) throw new Error(`setting faults on ${p.id} answered ${status}`);
    }
  }

  async outboxPending(): Promise<number> {
    const { body } = await this.json<{ outbox: { pending: number } }>(`${this.appUrl('orders')}/health`);
    return body.outbox.pending;
  }

  async notifications(userId: string): Promise<{ orderId: string; type: string }[]> {
    const { status, body } = await this.json<{ notifications: { orderId: string; type: string }[] }>(`${this.state.gatewayUrl}/api/notifications?userId=${encodeURIComponent(userId)}`);
    if (status !== 200) throw new Error(`GET /api/notifications answered ${status}`);
    return body.notifications;
  }

  async setSplit(weights: Record<string, number>): Promise<string | null> {
    const res = await this.admin.put(`/api/v1/routes/catalog/split`, weights);
    return res.headers.get('skein-snapshot-version');
  }

  /** Resolves once the instance's sidecar runs snapshot `version` or a later one. */
  async waitForSnapshot(id: string, version: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await this.json<{ version: string }>(`${this.sidecarAdminUrl(id)}/config`);
      if (BigInt(body.version) >= BigInt(version)) return;
      if (Date.now() > deadline) throw new Error(`${id}'s sidecar still runs snapshot ${body.version}, not ${version}, after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Which catalog version answered `n` product views at the gateway. */
  async catalogShare(n: number, productId = 'p1'): Promise<Share> {
    let v1 = 0;
    let v2 = 0;
    let failed = 0;
    const one = async () => {
      try {
        const { status, body } = await this.json<{ catalogVersion?: string }>(`${this.state.gatewayUrl}/api/products/${productId}`);
        if (status !== 200) failed++;
        else if (body.catalogVersion === 'v2') v2++;
        else v1++;
      } catch {
        failed++;
      }
    };
    // A few at a time: quick, and still many separate routing decisions.
    for (let done = 0; done < n; done += 5) await Promise.all(Array.from({ length: Math.min(5, n - done) }, one));
    return { v1, v2, failed };
  }

  async metrics(id: string): Promise<string> {
    const res = await fetch(`${this.sidecarAdminUrl(id)}/metrics`);
    return res.text();
  }

  /** Sum of a metric's samples on a sidecar whose labels include every given pair. */
  async metric(id: string, name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await this.metrics(id), name, labels);
  }

  /** Asks the orchestrator to stop, crash (kill) or start an instance. */
  async instanceAction(id: string, action: 'stop' | 'kill' | 'start'): Promise<void> {
    const { status, body } = await this.json<{ error?: { message: string } }>(`${this.state.controlUrl}/instances/${id}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.state.adminToken}` },
      signal: AbortSignal.timeout(90_000),
    });
    if (status !== 200) throw new Error(`${action} ${id}: ${body?.error?.message ?? `status ${status}`}`);
    await this.refresh();
  }
}

/** Sums the samples of `name` (Prometheus text) whose labels include every pair in `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
