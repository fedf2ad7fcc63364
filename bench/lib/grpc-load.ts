/**
 * The gRPC benchmark's two processes in one script: `server` (a @grpc/grpc-js unary Echo
 * service answering a tiny message, prints `{"port":N}`) and `load` (one channel to a target:
 * closed-loop with C calls in flight, or open-loop at a fixed rate; prints one JSON report).
 * Each runs as its own process so neither shares an event loop with what it measures.
 */
import * as grpc from '@grpc/grpc-js';
import { pathToFileURL } from 'node:url';
import { compiledScript, runToCompletion, type Child, type ChildProcesses } from './children.js';

const same = (b: Buffer): Buffer => b;
const definition: grpc.ServiceDefinition = {
  Echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same },
};
const REPLY = Buffer.from('ok');
const REQUEST = Buffer.from('ping');

function serve(): void {
  const server = new grpc.Server();
  server.addService(definition, { Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, REPLY) });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    process.stdout.write(`${JSON.stringify({ port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

export interface GrpcLoadOptions {
  readonly address: string;
  readonly authority?: string;
  readonly seconds: number;
  /** Closed loop: calls kept in flight. */
  readonly concurrency?: number;
  /** Open loop: calls per second, evenly spaced; latency counts from each call's scheduled time. */
  readonly rate?: number;
}

export interface GrpcLoadReport {
  readonly calls: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

async function load(o: GrpcLoadOptions): Promise<GrpcLoadReport> {
  const Ctor = grpc.makeGenericClientConstructor(definition, 'Echo');
  const client = new Ctor(o.address, grpc.credentials.createInsecure(), o.authority ? { 'grpc.default_authority': o.authority } : {}) as unknown as {
    Echo(req: Buffer, cb: (err: grpc.ServiceError | null) => void): void;
    close(): void;
  };
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const call = (since: number): Promise<void> =>
    new Promise((resolve) =>
      client.Echo(REQUEST, (err) => {
        if (err) {
          errors++;
          firstError ??= err.message;
        } else latencies.push(performance.now() - since);
        resolve();
      }),
    );
  const start = performance.now();
  const end = start + o.seconds * 1000;
  if (o.rate) {
    const interval = 1000 / o.rate;
    const pending: Promise<void>[] = [];
    for (let n = 0; ; ) {
      const now = performance.now();
      while (start + n * interval <= now && start + n * interval < end) pending.push(call(start + n++ * interval));
      if (start + n * interval >= end) break;
      await new Promise((r) => setTimeout(r, Math.max(0, start + n * interval - performance.now())));
    }
    await Promise.all(pending);
  } else {
    const worker = async (): Promise<void> => {
      while (performance.now() < end) await call(performance.now());
    };
    await Promise.all(Array.from({ length: o.concurrency ?? 16 }, worker));
  }
  const elapsed = (performance.now() - start) / 1000;
  client.close();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { calls: latencies.length, errors, firstError, rps: latencies.length / elapsed, p50Ms: at(0.5), p99Ms: at(0.99) };
}

export async function startGrpcUpstream(children: ChildProcesses): Promise<{ child: Child; port: number }> {
  let onPort: (port: number) => void = () => {};
  const port = new Promise<number>((resolve) => (onPort = resolve));
  const child = children.spawn('grpc upstream', process.execPath, [compiledScript(import.meta.url), 'server'], {
    onStdoutLine: (line) => {
      const m = /^\{"port":(\d+)\}$/.exec(line.trim());
      if (m) onPort(Number(m[1]));
    },
  });
  const exited = child.exited.then(() => {
    throw new Error(`grpc upstream exited before listening:\n${child.output()}`);
  });
  exited.catch(() => {});
  return { child, port: await Promise.race([port, exited]) };
}

export async function runGrpcLoad(children: ChildProcesses, o: GrpcLoadOptions): Promise<GrpcLoadReport> {
  const out = await runToCompletion(children, 'grpc load', process.execPath, [compiledScript(import.meta.url), 'load', JSON.stringify(o)]);
  return JSON.parse(out.trim().split('\n').pop()!) as GrpcLoadReport;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === 'server') serve();
  else if (process.argv[2] === 'load') {
    load(JSON.parse(process.argv[3]!) as GrpcLoadOptions).then(
      (report) => process.stdout.write(`${JSON.stringify(report)}\n`),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
}
