/**
 * An HTTP/2 client that opens streams and at once resets them ("rapid reset",
 * CVE-2023-44487: each reset costs the client one frame and the proxy a whole exchange) loses
 * its connection, with GOAWAY, while another client's connection keeps being served. The limit
 * is node's nghttp2's (a burst of 1000 resets, then 33 a second: sidecar/h2-sessions.ts); this
 * holds it through a real sidecar process, so an upgrade of node that dropped it would fail here.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

const procs = new Processes();
let app: TestUpstream;
let web: SpawnedSidecar;

beforeAll(async () => {
  app = await startUpstream(echoHandler('catalog'));
  const config = writeTempConfig({ services: { catalog: { endpoints: [{ address: '127.0.0.1', port: app.port }] } } });
  web = await procs.sidecar({ service: 'web', appPort: app.port, config });
});

afterAll(async () => {
  await procs.killAll();
  await app?.close();
});

function ask(session: ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': '/ok', ':authority': 'catalog' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.resume();
  });
}

describe('HTTP/2 rapid reset', () => {
  it('ends the connection of a client resetting its streams in bulk, and keeps serving another', async () => {
    const good = connect(`http://127.0.0.1:${web.outboundPort}`);
    // Its socket may be reset when the sidecar is stopped after the test.
    good.on('error', () => undefined);
    expect(await ask(good)).toBe(200);
    const bad = connect(`http://127.0.0.1:${web.outboundPort}`);
    bad.on('error', () => undefined);
    const goaway = new Promise<number>((resolve) => bad.once('goaway', resolve));
    const limit = 20_000;
    let sent = 0;
    while (!bad.closed && !bad.destroyed && sent < limit) {
      const req = bad.request({ ':method': 'GET', ':path': '/reset', ':authority': 'catalog' });
      req.on('error', () => undefined);
      req.close(constants.NGHTTP2_CANCEL);
      // Lets the session write and read: the GOAWAY arrives between batches.
      if (++sent % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await goaway).not.toBe(constants.NGHTTP2_NO_ERROR);
    expect(sent).toBeLessThan(limit);
    expect(await ask(good)).toBe(200);
    good.destroy();
  }, 30_000);
});
