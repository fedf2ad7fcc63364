/**
 * Steady, bounded shop traffic through the gateway: a fixed request rate with a realistic
 * mix (60 % browse the list, 30 % view a product, 10 % place an order with an
 * Idempotency-Key), never more than `maxInFlight` requests outstanding (ticks beyond that
 * are counted as skipped, not queued). Products running low are restocked through
 * inventory's admin endpoint so orders keep succeeding. Every `reportEveryMs` it reports
 * one line for the last window.
 */
import { randomUUID } from 'node:crypto';

export type RequestKind = 'browse' | 'view' | 'order';

export interface LoadOptions {
  readonly gatewayUrl: string;
  /** inventory's app, for PUT /admin/stock/{id}. */
  readonly inventoryUrl: string;
  readonly rate: number;
  readonly maxInFlight?: number;
  readonly reportEveryMs?: number;
  readonly report: (line: string) => void;
  readonly random?: () => number;
}

const MIX: readonly (readonly [RequestKind, number])[] = [['browse', 0.6], ['view', 0.3], ['order', 0.1]];
const USERS = ['u1', 'u2', 'u3'];
const LOW_STOCK = 20;
const RESTOCK_TO = 500;
const TIMEOUT_MS = 10_000;

export class Window {
  readonly sent: Record<RequestKind, number> = { browse: 0, view: 0, order: 0 };
  ok = 0;
  failed = 0;
  skipped = 0;
  confirmed = 0;
  cancelled = 0;
  readonly latencies: number[] = [];
  readonly errors = new Map<string, number>();

  constructor(readonly startedAt: number) {}

  fail(reason: string): void {
    this.failed++;
    this.errors.set(reason, (this.errors.get(reason) ?? 0) + 1);
  }

  line(now: number): string {
    const seconds = Math.max((now - this.startedAt) / 1000, 0.001);
    const total = this.ok + this.failed;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const pct = (p: number) => (sorted.length ? `${Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!)} ms` : '-');
    const errors = [...this.errors].map(([r, n]) => `${r} x${n}`).join(', ');
    return [
      `load: ${(total / seconds).toFixed(1)} req/s`,
      `${total ? ((100 * this.ok) / total).toFixed(1) : '100.0'}% ok`,
      `sent: browse ${this.sent.browse} view ${this.sent.view} order ${this.sent.order}`,
      `orders confirmed ${this.confirmed} cancelled ${this.cancelled}`,
      `p50 ${pct(0.5)} p99 ${pct(0.99)}`,
      `failed ${this.failed}${errors ? ` [${errors}]` : ''} skipped ${this.skipped}`,
    ].join(' | ');
  }
}

export class LoadGenerator {
  private timer: NodeJS.Timeout | undefined;
  private reporter: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private products: string[] = ['p1', 'p2', 'p3', 'p4', 'p5'];
  private readonly restocking = new Set<string>();
  private window: Window = new Window(Date.now());
  private readonly random: () => number;
  private readonly maxInFlight: number;

  constructor(private readonly options: LoadOptions) {
    this.random = options.random ?? Math.random;
    this.maxInFlight = options.maxInFlight ?? Math.max(10, options.rate * 2);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), 1000 / this.options.rate);
    this.reporter = setInterval(() => this.flush(), this.options.reportEveryMs ?? 5_000);
  }

  /** Stops sending, waits for what is in flight, and reports the last window. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.reporter);
    // A browse that finishes may start a restock, so wait until nothing is left.
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    this.flush();
  }

  private flush(): void {
    const now = Date.now();
    this.options.report(this.window.line(now));
    this.window = new Window(now);
  }

  private pick(): RequestKind {
    let r = this.random();
    for (const [kind, share] of MIX) {
      if (r < share) return kind;
      r -= share;
    }
    return 'browse';
  }

  private any<T>(list: readonly T[]): T {
    return list[Math.floor(this.random() * list.length)]!;
  }

  tick(): void {
    if (this.inFlight.size >= this.maxInFlight) {
      this.window.skipped++;
      return;
    }
    const kind = this.pick();
    this.window.sent[kind]++;
    const started = performance.now();
    // Outcomes count in the window they arrive in, so every report covers every answer.
    const done = this.send(kind)
      .then((ok) => {
        if (!ok) return;
        this.window.ok++;
        this.window.latencies.push(performance.now() - started);
      })
      .catch((err: Error) => this.window.fail((err.cause as { code?: string } | undefined)?.code ?? err.name))
      .finally(() => this.inFlight.delete(done));
    this.inFlight.add(done);
  }

  /** One request; true when it succeeded, false when it was counted as failed. */
  private async send(kind: RequestKind): Promise<boolean> {
    const url = this.options.gatewayUrl;
    const signal = AbortSignal.timeout(TIMEOUT_MS);
    if (kind === 'browse') {
      const res = await fetch(`${url}/api/products`, { signal });
      if (res.status !== 200) return this.failedWith(res);
      const body = (await res.json()) as { products: { id: string; stock: number | null }[] };
      this.products = body.products.map((p) => p.id);
      for (const p of body.products) if (p.stock !== null && p.stock < LOW_STOCK) this.restock(p.id);
      return true;
    }
    if (kind === 'view') {
      const res = await fetch(`${url}/api/products/${this.any(this.products)}`, { signal });
      if (res.status !== 200) return this.failedWith(res);
      await res.arrayBuffer();
      return true;
    }
    const res = await fetch(`${url}/api/orders`, {
      method: 'POST',
      signal,
      headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      body: JSON.stringify({ userId: this.any(USERS), items: [{ productId: this.any(this.products), quantity: 1 + Math.floor(this.random() * 3) }] }),
    });
    if (res.status !== 201) return this.failedWith(res);
    const order = (await res.json()) as { status: string };
    if (order.status === 'confirmed') this.window.confirmed++;
    else this.window.cancelled++;
    return true;
  }

  private async failedWith(res: Response): Promise<false> {
    const body = (await res.json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
    this.window.fail(`${res.status} ${body?.error?.code ?? ''}`.trim());
    return false;
  }

  private restock(productId: string): void {
    if (this.restocking.has(productId)) return;
    this.restocking.add(productId);
    const done: Promise<void> = fetch(`${this.options.inventoryUrl}/admin/stock/${encodeURIComponent(productId)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ available: RESTOCK_TO }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
      .then(async (res) => {
        await res.arrayBuffer();
        this.options.report(`load: restocked ${productId} to ${RESTOCK_TO} (${res.status})`);
      })
      .catch((err: Error) => this.options.report(`load: restocking ${productId} failed: ${err.message}`))
      .finally(() => {
        this.restocking.delete(productId);
        this.inFlight.delete(done);
      });
    this.inFlight.add(done);
  }
}
