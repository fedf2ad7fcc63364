import { fstatSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testHop } from '../../test/support/hop.js';
import { AccessLog, accessLogRecord, formatAccessLog, malformedRecord } from './access-log.js';
import { SidecarMetrics } from './metrics.js';

const logger = pino({ level: 'silent' });

describe('access log lines', () => {
  const metrics = new SidecarMetrics({ processMetrics: false });

  it('writes a relayed answer as one JSON object: no query string, no reason, the request size only when declared', () => {
    const hop = testHop(metrics, { url: '/items?token=secret', contentLength: -1 });
    const line = formatAccessLog(accessLogRecord(hop, 200, 0.0012345), 'json');
    expect(line.endsWith('}\n')).toBe(true);
    expect(line.split('\n')).toHaveLength(2);
    const record = JSON.parse(line) as Record<string, unknown>;
    expect(record).toEqual({
      time: new Date(performance.timeOrigin + 100).toISOString(),
      direction: 'outbound', source: 'web', destination: 'catalog', subset: 'v1', route: 'rule-0', protocol: 'http',
      method: 'GET', authority: 'catalog', path: '/items', status: 200, durationMs: 1.235, attempts: 1,
      upstream: '127.0.0.1:9001', responseBytes: 12, requestId: 'req-1', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', userAgent: 'curl/8.5.0',
    });
    expect(line).not.toContain('secret');
  });

  it('says why for an answer the sidecar made, and the grpc-status of a gRPC call', () => {
    const hop = testHop(metrics, { grpc: true, grpcStatus: 14, reason: 'no-healthy-endpoints', reasonDetail: 'no endpoint for catalog subset v1', lastEndpoint: undefined, attempts: 0, contentLength: 5 });
    const record = accessLogRecord(hop, 200, 0.0001);
    expect(record).toMatchObject({ protocol: 'grpc', grpcStatus: 14, reason: 'no-healthy-endpoints', reasonDetail: 'no endpoint for catalog subset v1', upstream: '', attempts: 0, requestBytes: 5 });
  });

  it('writes the text format with a dash for what a request has not, quoting what may hold spaces', () => {
    const plain = testHop(metrics, { req: { rawHeaders: ['Host', 'catalog'] }, requestId: undefined });
    const text = formatAccessLog(accessLogRecord(plain, 201, 0.002), 'text');
    expect(text).toBe(
      `[${new Date(performance.timeOrigin + 100).toISOString()}] outbound "GET /items http" 201 - - 1 - 12 2 "catalog" web catalog v1 rule-0 127.0.0.1:9001 - 4bf92f3577b34da6a3ce929d0e0e4736 - -\n`,
    );
    const refused = testHop(metrics, { reason: 'no-route', reasonDetail: 'no route rule of catalog matches GET /x', route: null, lastEndpoint: undefined, attempts: 0 });
    const line = formatAccessLog(accessLogRecord(refused, 404, 0.0001), 'text');
    expect(line).toContain(' 404 - no-route 0 ');
    expect(line.trimEnd().endsWith('"curl/8.5.0" "no route rule of catalog matches GET /x"')).toBe(true);
  });

  it('writes a request it could not parse with only its status and why', () => {
    const line = formatAccessLog(malformedRecord('inbound', 431, 'request head larger than 65536 bytes'), 'text');
    expect(line).toMatch(/^\[\S+Z\] inbound "- - http" 431 - bad-request 0 - 0 0 - - - - - - - - - "request head larger than 65536 bytes"\n$/);
  });

  it('names an upgrade and a gRPC-Web call as such', () => {
    expect(accessLogRecord(testHop(metrics, { upgrade: 'websocket' }), 101, 1).protocol).toBe('upgrade');
    expect(accessLogRecord(testHop(metrics, { grpc: true, grpcWebType: 'application/grpc-web+proto' }), 200, 1).protocol).toBe('grpc-web');
  });
});

describe('AccessLog', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skein-access-log-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const lines = async (path: string): Promise<string[]> => (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');

  it('appends lines to a file, and after a rotation (rename, reopen) writes to a new file at the path', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const path = join(dir, 'access.log');
    const log = await AccessLog.open({ destination: path, format: 'json', metrics, logger });
    expect(log.isFile).toBe(true);
    log.write(testHop(metrics, { url: '/first' }), 200, 0.001);
    log.write(testHop(metrics, { url: '/second' }), 200, 0.001);
    const deadline = Date.now() + 5000;
    while ((await lines(path)).length < 2 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    await rename(path, `${path}.1`);
    log.reopen();
    log.write(testHop(metrics, { url: '/third' }), 200, 0.001);
    await log.close();
    // A request that finishes after the close (cut off at the drain's end) is not written, and does not throw.
    log.write(testHop(metrics, { url: '/late' }), 200, 0.001);
    expect((await lines(`${path}.1`)).map((l) => (JSON.parse(l) as { path: string }).path)).toEqual(['/first', '/second']);
    expect((await lines(path)).map((l) => (JSON.parse(l) as { path: string }).path)).toEqual(['/third']);
  });

  it('refuses to start on a destination it cannot open, naming the flag', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    await expect(AccessLog.open({ destination: join(dir, 'missing', 'access.log'), format: 'json', metrics, logger })).rejects.toThrow(
      /^--access-log .*missing\/access\.log: cannot open it for appending: ENOENT/,
    );
  });

  it('drops and counts the lines a destination cannot take in time, rather than holding them', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const path = join(dir, 'access.log');
    const log = await AccessLog.open({ destination: path, format: 'json', metrics, logger, maxBufferedBytes: 2048 });
    // In one turn: the first line goes out, a few wait, the rest find the buffer full.
    for (let i = 0; i < 100; i++) log.write(testHop(metrics, { url: `/r${i}` }), 200, 0.001);
    await log.close();
    const dropped = (await metrics.registry.getSingleMetric('skein_access_log_dropped_total')!.get()).values[0]!.value;
    const written = await lines(path);
    expect(dropped).toBeGreaterThan(50);
    expect(written.length + dropped).toBe(100);
    expect(written.every((l) => (JSON.parse(l) as { status: number }).status === 200)).toBe(true);
  });

  it('writes to stdout and stderr by name, never closing them', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const log = await AccessLog.open({ destination: 'stderr', format: 'text', metrics, logger });
    expect(log.isFile).toBe(false);
    log.reopen();
    await log.close();
    expect(() => fstatSync(2)).not.toThrow();
  });
});
