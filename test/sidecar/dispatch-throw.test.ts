/**
 * Defence in depth (SPEC §8): endpoints are validated where they come in, but one that gets
 * past that (here an endpoint source handing out port 70000, as Consul's agent accepts) must
 * not take the sidecar down. Node's connect throws ERR_SOCKET_BAD_PORT synchronously inside
 * the pool's dispatch, on the first try and from a retry's backoff timer alike: the attempt
 * fails as a connect failure, retried on another endpoint or answered 503; an upgrade's
 * connect the same way. In process, so an
 * exception that escapes fails the test run.
 */
import { request as httpRequest } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../common/config/schema.js';
import { createLogger } from '../../common/log.js';
import { StaticFileConfigSource } from '../../sidecar/config/static-file-source.js';
import type { EndpointSource } from '../../sidecar/discovery/source.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { REQUEST_HEAD_BYTES } from '../../sidecar/options.js';
import { SidecarMetrics } from '../../sidecar/telemetry/metrics.js';
import { freePorts, startUpstream, writeTempConfig, type TestUpstream } from '../support/index.js';

/** Hands out fixed endpoints, unchecked, as a source with a validation gap would. */
class FixedEndpoints implements EndpointSource {
  constructor(private readonly sets: Readonly<Record<string, readonly Endpoint[]>>) {}
  watch(service: string, listener: (endpoints: readonly Endpoint[]) => void): () => void {
    listener(this.sets[service] ?? []);
    return () => {};
  }
  async close(): Promise<void> {}
}

describe('an upstream whose dispatch throws', () => {
  let app: TestUpstream;
  let good: TestUpstream;
  let sidecar: RunningSidecar;
  let outbound: number;

  beforeAll(async () => {
    app = await startUpstream();
    good = await startUpstream();
    const [inbound, out, admin] = await freePorts(3);
    outbound = out!;
    const retries = { attempts: 3, on: ['connect-failure' as const], backoff: { base: '10ms', max: '20ms' } };
    const config = writeTempConfig({ version: '1', services: { bad: { retries }, mixed: { lb: 'round-robin', retries } } });
    const logger = createLogger('dispatch-throw-test', 'silent');
    sidecar = await startSidecar(
      {
        service: 'caller', version: 'v1', appPort: app.port, appProtocol: 'http', appHealthPath: '/health', inboundPort: inbound!, inboundHost: '127.0.0.1',
        outboundPort: outbound, upstreams: [], adminPort: admin!, drainTimeoutMs: 1_000, maxRequestBodyBytes: 0, maxRequestHeaderBytes: REQUEST_HEAD_BYTES.default, advertiseAddress: '127.0.0.1', instanceId: 'caller-1',
      },
      {
        logger,
        metrics: new SidecarMetrics(),
        configSource: new StaticFileConfigSource(config, logger),
        endpointSource: new FixedEndpoints({
          bad: [{ address: '127.0.0.1', port: 70_000, labels: {} }],
          mixed: [{ address: '127.0.0.1', port: 70_000, labels: {} }, { address: '127.0.0.1', port: good.port, labels: {} }],
        }),
        identity: undefined,
      },
    );
  });
  afterAll(async () => {
    await sidecar?.shutdown(500);
    await Promise.all([app?.close(), good?.close()]);
  });

  const get = async (service: string) => {
    const res = await request(`http://127.0.0.1:${outbound}/x`, { headers: { host: service } });
    await res.body.text();
    return { status: res.statusCode, reason: res.headers['x-skein-reason'] };
  };

  it('answers 503 upstream-connect-failure when every try throws, retries included', async () => {
    for (let i = 0; i < 3; i++) expect(await get('bad')).toEqual({ status: 503, reason: 'upstream-connect-failure' });
  });

  it('retries a try that threw on the other endpoint', async () => {
    for (let i = 0; i < 4; i++) expect((await get('mixed')).status).toBe(200);
  });

  it('answers an upgrade whose connect throws 503 upstream-connect-failure', async () => {
    const answer = await new Promise<{ status?: number; reason?: unknown }>((resolve, reject) => {
      const req = httpRequest({ port: outbound, host: '127.0.0.1', path: '/ws', headers: { host: 'bad', connection: 'upgrade', upgrade: 'websocket' } });
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode, reason: res.headers['x-skein-reason'] });
      });
      req.on('upgrade', () => reject(new Error('upgraded to a port that does not exist')));
      req.on('error', reject);
      req.end();
    });
    expect(answer).toEqual({ status: 503, reason: 'upstream-connect-failure' });
  });
});
