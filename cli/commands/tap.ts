/**
 * `skein tap SERVICE`: one line per request through the service's sidecars, live, from the
 * admin API's Server-Sent Events, until Ctrl-C or `--max-rows`.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isStatusFilter, STATUS_FILTER_RULE, type TapEvent } from '../../control-plane/observability/tap.js';
import { AdminApiError } from '../admin-client.js';
import { PROXIES } from '../answers.js';
import { parseMethod, parseRequestPath, parseServiceName } from '../flag-values.js';
import { adminClient, requireService, runAdmin, withAdminFlags, type AdminFlags } from './admin-common.js';

interface TapFlags extends AdminFlags {
  method?: string;
  path?: string;
  status?: string;
  direction?: string;
  peer?: string;
  maxRows?: number;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got ${value}`);
  return n;
}

export function formatTapLine(e: TapEvent): string {
  const where = e.direction === 'inbound' ? `in  ${e.source} -> ${e.destination}` : `out ${e.source} -> ${e.destination}${e.subset ? `/${e.subset}` : ''}`;
  return `${new Date(e.time).toISOString()} ${where} ${e.method} ${e.path} ${e.status}${e.grpcStatus >= 0 ? ` grpc-status=${e.grpcStatus}` : ''} ${e.latencyMs.toFixed(1)}ms${e.attempts > 1 ? ` attempts=${e.attempts}` : ''} trace=${e.traceId || '-'} (${e.service} ${e.instance})`;
}

function statusFilter(value: string): string {
  if (!isStatusFilter(value)) throw new InvalidArgumentError(`not ${STATUS_FILTER_RULE}: ${value}`);
  return value;
}

/**
 * The chunks of a tap stream. The control plane never ends a tap while it serves, so the
 * stream ending or breaking off means it went away: a failure naming it (exit 1), not the
 * quiet end of a finished command.
 */
async function* untilClosed(events: ReadableStream<Uint8Array>, baseUrl: string): AsyncGenerator<Uint8Array> {
  let reason = '';
  try {
    yield* events as unknown as AsyncIterable<Uint8Array>;
  } catch (err) {
    reason = ` (${(err as Error).message})`;
  }
  throw new AdminApiError(0, 'closed', `the control plane at ${baseUrl} closed the tap stream${reason}`);
}

export function registerTap(program: Command): void {
  const command = program
    .command('tap')
    .description("live stream of requests through a service's sidecars (time, source, destination, method, path, status, latency, trace id)")
    .argument('<service>', 'service to tap', parseServiceName)
    .option('--method <method>', 'only this HTTP method', parseMethod)
    .option('--path <prefix>', 'only paths starting with this prefix', parseRequestPath)
    .option('--status <status>', 'only this status class (5xx) or status (503)', statusFilter)
    .addOption(new Option('--direction <direction>', 'only inbound or outbound requests').choices(['inbound', 'outbound']))
    .option('--peer <service>', 'only requests from (inbound) or to (outbound) this service', parseServiceName)
    .option('-n, --max-rows <n>', 'stop after this many rows', positive);
  withAdminFlags(command).action((service: string, flags: TapFlags) =>
    runAdmin(async () => {
      const client = adminClient(flags);
      await requireService(client, service);
      const query = new URLSearchParams({ service });
      for (const key of ['method', 'path', 'status', 'direction', 'peer'] as const) if (flags[key]) query.set(key, flags[key]!);
      const path = `/api/v1/tap?${query}`;
      const events = await client.stream(path);
      // A data line that is not JSON came from something other than a control plane's tap.
      const parse = <T>(data: string): T => {
        try {
          return JSON.parse(data) as T;
        } catch (err) {
          throw client.notSkein(path, `an event whose data is not JSON (${(err as Error).message})`);
        }
      };
      const connected = (await client.get(`/api/v1/proxies?service=${encodeURIComponent(service)}`, PROXIES)).body.proxies.length;
      process.stderr.write(
        connected > 0 ? `tapping ${service} through ${connected} sidecar(s) (Ctrl-C to stop)\n` : `no sidecar of ${service} is connected yet; waiting for one (Ctrl-C to stop)\n`,
      );
      let rows = 0;
      let buffer = '';
      const decoder = new TextDecoder();
      for await (const chunk of untilClosed(events, client.baseUrl)) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data) continue;
          if (event.startsWith('event: dropped')) {
            process.stderr.write(`(${parse<{ dropped: number }>(data).dropped} requests not shown: over the tap rate limit, or skipped while this tap fell behind)\n`);
            continue;
          }
          const row = parse<TapEvent>(data);
          process.stdout.write(flags.output === 'json' ? `${JSON.stringify(row)}\n` : `${formatTapLine(row)}\n`);
          if (flags.maxRows !== undefined && ++rows >= flags.maxRows) {
            await events.cancel().catch(() => undefined);
            return;
          }
        }
      }
    }),
  );
}
