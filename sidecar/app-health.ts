/**
 * Polls the app's readiness (GET appHealthPath for HTTP apps, a TCP connect for gRPC apps).
 * Until the first success no inbound request reaches the app (callers get 503
 * no-healthy-endpoints). After that the app counts as unhealthy only after FAILURE_THRESHOLD
 * failed checks in a row (as Kubernetes probes' failureThreshold): `/ready` also decides
 * whether the instance is an endpoint (Consul's check, the built-in registry), and one check
 * that timed out on a busy host must not take it out of traffic.
 */
import { connect } from 'node:net';
import type { Dispatcher } from 'undici';
import type { Logger } from '../common/log.js';

const POLL_MS = 1000;
const CHECK_TIMEOUT_MS = 1000;
const FAILURE_THRESHOLD = 3;

export class AppHealth {
  private healthy = false;
  private everHealthy = false;
  private lastProblem = 'not checked yet';
  private failuresInARow = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly options: { port: number; path: string; protocol: 'http' | 'grpc'; pollMs?: number },
    private readonly pool: Dispatcher,
    private readonly logger: Logger,
  ) {}

  start(): void {
    void this.poll();
  }

  /** Why the app may not get traffic yet; undefined once it has been healthy. */
  trafficBlocker(): string | undefined {
    return this.everHealthy ? undefined : `the app on 127.0.0.1:${this.options.port} is not healthy yet (${this.lastProblem})`;
  }

  /** Why `/ready` is false; undefined while healthy. */
  readinessBlocker(): string | undefined {
    return this.healthy ? undefined : `app on 127.0.0.1:${this.options.port} not healthy: ${this.lastProblem}`;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async poll(): Promise<void> {
    const problem = await this.check();
    if (this.stopped) return;
    const wasHealthy = this.healthy;
    this.failuresInARow = problem === undefined ? 0 : this.failuresInARow + 1;
    this.healthy = problem === undefined || (wasHealthy && this.failuresInARow < FAILURE_THRESHOLD);
    if (problem !== undefined) this.lastProblem = problem;
    if (this.healthy && !wasHealthy) this.logger.info({ port: this.options.port }, 'app is healthy');
    if (!this.healthy && wasHealthy) this.logger.warn({ port: this.options.port, problem }, 'app health check failing');
    if (this.healthy) this.everHealthy = true;
    this.timer = setTimeout(() => void this.poll(), this.options.pollMs ?? POLL_MS);
    this.timer.unref();
  }

  private async check(): Promise<string | undefined> {
    if (this.options.protocol === 'grpc') return this.tcpCheck();
    try {
      const res = await this.pool.request({ path: this.options.path, method: 'GET', headersTimeout: CHECK_TIMEOUT_MS, bodyTimeout: CHECK_TIMEOUT_MS });
      await res.body.dump();
      return res.statusCode >= 200 && res.statusCode < 400 ? undefined : `GET ${this.options.path} answered ${res.statusCode}`;
    } catch (err) {
      return `GET ${this.options.path} failed: ${(err as { code?: string }).code ?? (err as Error).message}`;
    }
  }

  private tcpCheck(): Promise<string | undefined> {
    return new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: this.options.port, timeout: CHECK_TIMEOUT_MS });
      socket.once('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('error', (err: Error & { code?: string }) => resolve(`connect failed: ${err.code ?? err.message}`));
      socket.once('timeout', () => {
        socket.destroy();
        resolve('connect timed out');
      });
    });
  }
}
