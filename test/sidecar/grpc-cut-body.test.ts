/**
 * A gRPC call cut short while its body still streams reaches the app as a reset, never as a
 * whole request: node's `close(code)` on a client stream sends END_STREAM ahead of the reset,
 * so a sidecar that aborted its HTTP/2 stream that way (a deadline that passed, a body past
 * the limit, a caller gone) had the peer, and then the app, take the messages so far for the
 * whole call. A client-streaming call through an mTLS sidecar pair to an h2c app.
 */
import * as grpc from '@grpc/grpc-js';
import { connect, createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Processes, waitUntil } from '../support/index.js';
import { startH2cGrpcPair, type GrpcSidecarPair } from './grpc-fixture.js';
import { scrape } from './resilience-fixture.js';

describe('a gRPC call cut short while its body streams', () => {
  const procs = new Processes();
  const apps: Http2Server[] = [];
  afterAll(async () => {
    await procs.killAll();
    for (const app of apps) app.close();
  });

  /**
   * A pair in front of an h2c gRPC app that records how each call's request stream ended: the
   * first of its END_STREAM (`whole`) and its reset (`cancelled`), as the frames came. (grpc-js
   * itself is no judge: it ends a call's request stream when the stream is reset, too.)
   */
  async function pairRecordingEnds(extraArgs: readonly string[] = []): Promise<{ pair: GrpcSidecarPair; ends: string[]; received: () => number }> {
    const ends: string[] = [];
    let received = 0;
    const app = createServer();
    apps.push(app);
    app.on('stream', (stream) => {
      let bytes = 0;
      let ended = false;
      stream.on('error', () => {});
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        received += chunk.length;
      });
      stream.on('aborted', () => {
        if (!ended) ends.push('cancelled');
        ended = true;
      });
      stream.on('end', () => {
        if (ended) return;
        ended = true;
        ends.push(`whole after ${bytes} bytes`);
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const pair = await startH2cGrpcPair(procs, (app.address() as AddressInfo).port, { retries: { attempts: 0 } }, { extraArgs });
    return { pair, ends, received: () => received };
  }

  /**
   * Sends a 100-byte gRPC message every 30 ms until the call ends; resolves with its
   * grpc-status. A raw HTTP/2 client, never ending its stream before the status comes: grpc-js's
   * cancel (at its own deadline) uses node's `close(code)`, END_STREAM first, which would make
   * the call whole before any sidecar could cut it.
   */
  function streamUntilEnded(port: number, headers: Record<string, string> = {}, untilClosed = false): Promise<string> {
    return new Promise((resolve) => {
      const session = connect(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
      const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Up', ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers', ...headers });
      const message = Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.alloc(100, 120)]);
      let status = '';
      // The call is over once its status came; a client then stops sending (grpc-js cancels).
      const settle = (value: unknown): void => {
        if (value === undefined || status !== '') return;
        status = String(value);
        if (untilClosed) return;
        session.destroy();
        resolve(status);
      };
      // Or it keeps sending, until the sidecar closes the stream (RST_STREAM NO_ERROR: stop sending).
      stream.on('close', () => {
        session.destroy();
        resolve(`${status}, closed ${stream.rstCode}`);
      });
      stream.on('response', (head) => settle(head['grpc-status']));
      stream.on('trailers', (trailers) => settle(trailers['grpc-status']));
      stream.on('error', () => {});
      stream.resume();
      const tick = (): void => {
        if (stream.closed || stream.destroyed) return;
        stream.write(message);
        setTimeout(tick, 30);
      };
      tick();
    });
  }

  it('its deadline passing: the app sees the call cancelled, not ended', async () => {
    const { pair, ends } = await pairRecordingEnds();
    expect(await streamUntilEnded(pair.web.outboundPort, { 'grpc-timeout': '400m' })).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    await waitUntil(() => ends.length > 0, { what: 'the app to see the call end' });
    expect(ends).toEqual(['cancelled']);
  });

  it('its deadline passing: a caller that goes on sending after its status is told to stop', async () => {
    const { pair } = await pairRecordingEnds();
    expect(await streamUntilEnded(pair.web.outboundPort, { 'grpc-timeout': '400m' }, true)).toBe(`${grpc.status.DEADLINE_EXCEEDED}, closed 0`);
  });

  it('its caller going away: the app sees the call cancelled, and each sidecar counts it as 499, not as its endpoint failing', async () => {
    const { pair, ends, received } = await pairRecordingEnds();
    const session = connect(`http://127.0.0.1:${pair.web.outboundPort}`);
    session.on('error', () => {});
    const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Up', ':authority': 'catalog', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    stream.write(Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.alloc(100, 120)]));
    // Once the call streams to the app, its caller's connection goes, mid-body.
    await waitUntil(() => received() > 0, { what: 'the call to reach the app' });
    session.destroy();
    await waitUntil(() => ends.length > 0, { what: 'the app to see the call end' });
    expect(ends).toEqual(['cancelled']);
    for (const sidecar of [pair.web, pair.catalog]) {
      const counted = await waitUntil(async () => {
        const rows = [...(await scrape(sidecar)).entries()].filter(([k, v]) => k.startsWith('skein_requests_total{') && v > 0);
        return rows.length > 0 ? rows.map(([k]) => k) : undefined;
      }, { what: 'the call counted' });
      expect(counted, sidecar.name).toHaveLength(1);
      expect(counted[0], sidecar.name).toContain('code="499"');
    }
  });

  it('its body passing --max-request-body: the app sees the call cancelled, not ended', async () => {
    const { pair, ends } = await pairRecordingEnds(['--max-request-body', '1000']);
    expect(await streamUntilEnded(pair.web.outboundPort)).toBe(String(grpc.status.INTERNAL));
    await waitUntil(() => ends.length > 0, { what: 'the app to see the call end' });
    expect(ends).toEqual(['cancelled']);
  });
});
