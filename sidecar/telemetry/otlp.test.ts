import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SpanRecord } from '../../common/proto/telemetry.js';

// The exporter's undici request(), replaced per test: some faults throw synchronously.
const request = vi.hoisted(() => vi.fn());
vi.mock('undici', () => ({ request }));
const { OtlpExporter } = await import('./otlp.js');
const { OtlpEndpointError } = await import('./otlp-endpoint.js');

const logger = pino({ level: 'silent' });
const resource = { service: 'web', instance: 'web-1', version: '0.1.0' };

const span: SpanRecord = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', parentSpanId: '', name: 'GET catalog', kind: 'client',
  service: 'web', instance: 'web-1', source: 'web', destination: 'catalog', subset: 'v1', method: 'GET', path: '/', status: 200,
  grpcStatus: -1, startMs: 1_700_000_000_000, durationMs: 1, attempts: 1, callerAttempt: 0, resendCount: 0, events: [],
};

afterEach(() => request.mockReset());

describe('OtlpExporter', () => {
  it('refuses, when built, an endpoint that is no http(s) URL', () => {
    expect(() => new OtlpExporter('localhost:4318', resource, logger, () => {})).toThrow(OtlpEndpointError);
    expect(request).not.toHaveBeenCalled();
  });

  it('counts a batch whose post throws synchronously as dropped, without throwing or holding a post slot', () => {
    request.mockImplementation(() => {
      throw Object.assign(new Error('Invalid URL'), { code: 'UND_ERR_INVALID_ARG' });
    });
    const dropped: number[] = [];
    const exporter = new OtlpExporter('http://127.0.0.1:4318', resource, logger, (n) => dropped.push(n));
    // More batches than the two posts allowed in flight: each one is still tried.
    for (let i = 1; i <= 4; i++) expect(() => exporter.export(new Array<SpanRecord>(i).fill(span))).not.toThrow();
    expect(request).toHaveBeenCalledTimes(4);
    expect(dropped).toEqual([1, 2, 3, 4]);
  });

  it('posts to <endpoint>/v1/traces and frees the slot when the post settles', async () => {
    const dump = vi.fn(async () => {});
    request.mockResolvedValue({ statusCode: 200, body: { dump } });
    const dropped: number[] = [];
    const exporter = new OtlpExporter('http://127.0.0.1:4318/', resource, logger, (n) => dropped.push(n));
    exporter.export([span]);
    exporter.export([span]);
    exporter.export([span]); // a third while two are in flight: dropped
    expect(dropped).toEqual([1]);
    await vi.waitFor(() => expect(dump).toHaveBeenCalledTimes(2));
    await new Promise((resolve) => setImmediate(resolve));
    exporter.export([span]);
    expect(request).toHaveBeenCalledTimes(3);
    expect(request.mock.calls[0]![0]).toBe('http://127.0.0.1:4318/v1/traces');
    expect(dropped).toEqual([1]);
  });
});
