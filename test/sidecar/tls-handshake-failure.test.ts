/**
 * A sidecar with an identity reaches its endpoints over TLS. An endpoint whose TLS handshake
 * fails before it completes (a plain HTTP app that answers the ClientHello with its own
 * bytes, a peer that resets or closes the connection mid-handshake) never had the request
 * sent to it: a connect failure, retried as one (a POST too) and answered
 * `503 upstream-connect-failure`, never a reset after sending. Each such handshake counts in
 * `skein_tls_handshake_failures_total` (`protocol`, `reset`), as does a caller of the inbound
 * listener that gives its handshake up after its ClientHello; one that closes before sending
 * anything (a port scan, a TCP probe) does not.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { abandonHandshake, clientHello, echoHandler, makeCa, makeLeaf, Processes, startRawUpstream, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type RawUpstream, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { grpcCall } from './grpc-fixture.js';
import { get, testAgent } from './http.js';
import { metric, scrape } from './resilience-fixture.js';

describe('a TLS handshake to an endpoint that fails before it completes', () => {
  const procs = new Processes();
  const agent = testAgent();
  let ownApp: TestUpstream;
  let plainApp: TestUpstream;
  let resetting: RawUpstream;
  let closing: RawUpstream;
  let sidecar: SpawnedSidecar;

  beforeAll(async () => {
    ownApp = await startUpstream(echoHandler('catalog'));
    plainApp = await startUpstream(echoHandler('plain'));
    // Peers that take the connection and, on the ClientHello, reset it or close it.
    resetting = await startRawUpstream((socket) => socket.once('data', () => socket.resetAndDestroy()));
    closing = await startRawUpstream((socket) => socket.once('data', () => socket.end()));
    // The default conditions, reset among them: a handshake failure must be retried as a connect failure, not as a reset.
    const retries = { attempts: 2, backoff: { base: '1ms' } };
    const endpoint = (port: number) => [{ address: '127.0.0.1', port, labels: {} }];
    const dir = tempDir('skein-tls-handshake-');
    sidecar = await procs.sidecar({
      service: 'catalog',
      appPort: ownApp.port,
      identity: writeIdentity(dir, 'catalog', makeLeaf(makeCa(), 'catalog')),
      config: writeTempConfig(
        {
          services: {
            plainpeer: { retries, endpoints: endpoint(plainApp.port) },
            grpcpeer: { protocol: 'grpc', retries, endpoints: endpoint(plainApp.port) },
            resetpeer: { retries, endpoints: endpoint(resetting.port) },
            closepeer: { retries, endpoints: endpoint(closing.port) },
          },
        },
        dir,
      ),
    });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- catalog ---\n${sidecar?.output()}`);
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await Promise.all([ownApp.close(), plainApp.close(), resetting.close(), closing.close()]);
  });

  async function retries(destination: string): Promise<{ connectFailure: number; reset: number }> {
    const s = await scrape(sidecar);
    return { connectFailure: metric(s, 'skein_retries_total', { destination, reason: 'connect-failure' }), reset: metric(s, 'skein_retries_total', { destination, reason: 'reset' }) };
  }

  async function handshakeFailures(): Promise<{ protocol: number; reset: number }> {
    const s = await scrape(sidecar);
    return { protocol: metric(s, 'skein_tls_handshake_failures_total', { reason: 'protocol' }), reset: metric(s, 'skein_tls_handshake_failures_total', { reason: 'reset' }) };
  }

  it.each(['GET', 'POST'])('a plain HTTP endpoint: %s is a connect failure, retried as never sent', async (method) => {
    const before = await retries('plainpeer');
    const failuresBefore = await handshakeFailures();
    const res = await get(agent, `${sidecar.outboundUrl}/x`, { host: 'plainpeer' }, method, method === 'POST' ? 'a=b' : undefined);
    expect(res.status).toBe(503);
    expect(res.headers['x-skein-reason']).toBe('upstream-connect-failure');
    expect(res.text).toMatch(/could not connect to plainpeer at 127\.0\.0\.1:\d+: the TLS handshake failed with ERR_SSL_WRONG_VERSION_NUMBER: the endpoint does not speak TLS/);
    // Both retries were taken, as connect failures: a POST is retried only when it was never sent.
    expect(await retries('plainpeer')).toEqual({ connectFailure: before.connectFailure + 2, reset: before.reset });
    expect(plainApp.requests).toEqual([]);
    // The three tries' handshakes, under the reason of a peer that does not speak TLS.
    expect(await handshakeFailures()).toEqual({ protocol: failuresBefore.protocol + 3, reset: failuresBefore.reset });
  });

  it('a plain HTTP endpoint of a gRPC service: UNAVAILABLE with upstream-connect-failure, retried as never sent', async () => {
    const before = await retries('grpcpeer');
    const r = await grpcCall(sidecar.outboundPort, 'grpcpeer');
    expect(r).toMatchObject({ status: 200, reason: 'upstream-connect-failure', grpcStatus: '14' });
    expect(String(r.grpcMessage)).toMatch(/does not speak TLS/);
    expect(await retries('grpcpeer')).toEqual({ connectFailure: before.connectFailure + 2, reset: before.reset });
  });

  it.each([
    ['resets', 'resetpeer'],
    ['closes', 'closepeer'],
  ])('a peer that %s the connection during the handshake: a connect failure, a POST retried as never sent, the handshake of every try counted as `reset`', async (_what, host) => {
    const before = await retries(host);
    const failuresBefore = await handshakeFailures();
    const res = await get(agent, `${sidecar.outboundUrl}/x`, { host }, 'POST', 'a=b');
    expect(res.status).toBe(503);
    expect(res.headers['x-skein-reason']).toBe('upstream-connect-failure');
    expect(res.text).toMatch(/the TLS handshake failed with ECONNRESET: the endpoint closed the connection/);
    expect(await retries(host)).toEqual({ connectFailure: before.connectFailure + 2, reset: before.reset });
    expect(await handshakeFailures()).toEqual({ protocol: failuresBefore.protocol, reset: failuresBefore.reset + 3 });
  });

  it('a caller of the inbound listener that closes or resets it after its ClientHello counts as `reset`; one that does before sending anything (a port scan, a TCP probe) does not', async () => {
    const hello = await clientHello();
    const before = await handshakeFailures();
    // The uncounted first: by the time the counted ones are in, the sidecar has seen them.
    await abandonHandshake(sidecar.inboundPort, 'reset');
    await abandonHandshake(sidecar.inboundPort, 'close');
    await abandonHandshake(sidecar.inboundPort, 'close', hello);
    await abandonHandshake(sidecar.inboundPort, 'reset', hello);
    const after = await waitUntil(async () => {
      const now = await handshakeFailures();
      return now.reset >= before.reset + 2 && now;
    });
    expect(after).toEqual({ protocol: before.protocol, reset: before.reset + 2 });
    expect(sidecar.output()).toMatch(/inbound TLS handshake failed/);
  });
});
