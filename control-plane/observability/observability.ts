/**
 * The control plane's observability: turns the sidecars' Telemetry messages into golden
 * metrics (stats.ts), tap streams (tap.ts) and traces (traces.ts). The push server hands
 * every Telemetry message to `ingest`; the admin API reads through routes.ts.
 */
import type { Logger } from '../../common/log.js';
import type { SpansMessage, StatsMessage, TapMessage } from '../../common/proto/telemetry.js';
import type { ProxyRecord } from '../push/proxies.js';
import { StatsAggregator } from './stats.js';
import { TapHub, type TapCommands } from './tap.js';
import { TraceStore } from './traces.js';

export class Observability {
  readonly stats = new StatsAggregator();
  readonly traces = new TraceStore();
  readonly tap: TapHub;
  private lastWarning = 0;

  constructor(
    commands: TapCommands,
    private readonly logger: Logger,
  ) {
    this.tap = new TapHub(commands);
  }

  ingest(proxy: ProxyRecord, kind: string, json: string): void {
    try {
      if (kind === 'stats') this.stats.ingest(proxy, JSON.parse(json) as StatsMessage);
      else if (kind === 'tap') this.tap.ingest(proxy, JSON.parse(json) as TapMessage);
      else if (kind === 'spans') {
        const message = JSON.parse(json) as SpansMessage;
        this.traces.add(message.spans, message.dropped);
      }
    } catch (err) {
      // A sidecar of another version may send what this one cannot read; say so, rarely.
      if (Date.now() - this.lastWarning > 30_000) {
        this.lastWarning = Date.now();
        this.logger.warn({ service: proxy.service, instance: proxy.instanceId, kind, err: (err as Error).message }, 'unreadable telemetry from a sidecar');
      }
    }
  }

  close(): void {
    this.tap.close();
  }
}
