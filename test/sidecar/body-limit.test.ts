/**
 * `--max-request-body` (SPEC §8: bodies beyond a configured limit get a clear error): 413
 * `bad-request`, for a declared Content-Length before anything is sent and for a chunked or
 * HTTP/2 body as it grows, on the outbound listener and on the inbound one behind the
 * sidecar-to-sidecar mux (a real mTLS pair).
 */
import { connect as connectH2 } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { expectContinueExchange, get, rawExchange, testAgent } from './http.js';
import { metric, scrape } from './resilience-fixture.js';

const LIMIT = 1024;

/** A chunked POST of `bytes` bytes in 256-byte chunks, as one write. */
function chunkedPost(host: string, bytes: number): string {
  let body = '';
  for (let left = bytes; left > 0; left -= 256) body += `${Math.min(256, left).toString(16)}\r\n${'x'.repeat(Math.min(256, left))}\r\n`;
  return `POST /upload HTTP/1.1\r\nhost: ${host}\r\ntransfer-encoding: chunked\r\n\r\n${body}0\r\n\r\n`;
}

describe('request body limit', () => {
  const procs = new Processes();
  const agent = testAgent();
  let app: TestUpstream;
  /** Limited outbound; its peer `catalog` is not limited. */
  let limitedWeb: SpawnedSidecar;
  /** Unlimited outbound; its peer `guarded` limits its inbound. */
  let web: SpawnedSidecar;
  const uploads = (): number => app.requests.filter((r) => r.url === '/upload').length;

  beforeAll(async () => {
    app = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => echoHandler(`got ${Buffer.concat(chunks).length} bytes`)(req, res));
    });
    const ca = makeCa();
    const dir = tempDir();
    const [catalogIn, guardedIn] = (await freePorts(2)) as [number, number];
    const config = writeTempConfig({
      services: {
        catalog: { endpoints: [{ address: '127.0.0.1', port: catalogIn, labels: { version: 'v1' } }] },
        guarded: { endpoints: [{ address: '127.0.0.1', port: guardedIn, labels: { version: 'v1' } }] },
      },
      intentions: { defaultAction: 'allow' },
    }, dir);
    const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
    await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: catalogIn, identity: id('catalog') });
    await procs.sidecar({ service: 'guarded', appPort: app.port, config, inboundPort: guardedIn, identity: id('guarded'), extraArgs: ['--max-request-body', '1KiB'] });
    limitedWeb = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web'), extraArgs: ['--max-request-body', String(LIMIT)] });
    web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web') });
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await app.close();
  });

  it('lets a body within the limit through', async () => {
    const res = await get(agent, `${limitedWeb.outboundUrl}/upload`, { host: 'catalog' }, 'POST', Buffer.alloc(LIMIT, 'a'));
    expect(res.status, res.text).toBe(200);
    expect(res.json()).toMatchObject({ name: `got ${LIMIT} bytes` });
  });

  it('answers a declared Content-Length past the limit 413 before sending anything, and closes the connection', async () => {
    const before = uploads();
    const answer = await rawExchange(limitedWeb.outboundPort, `POST /upload HTTP/1.1\r\nhost: catalog\r\ncontent-length: ${LIMIT + 1}\r\n\r\n${'a'.repeat(LIMIT + 1)}`);
    expect(answer).toMatch(/^HTTP\/1.1 413/);
    expect(answer).toMatch(/x-skein-reason: bad-request/i);
    expect(answer).toMatch(/connection: close/i);
    expect(answer).toContain(`exceeds the limit of ${LIMIT} bytes`);
    expect(uploads()).toBe(before);
  });

  it('answers a chunked body that grows past the limit 413 (the app never gets all of it)', async () => {
    const answer = await rawExchange(limitedWeb.outboundPort, chunkedPost('catalog', 4 * LIMIT));
    expect(answer).toMatch(/^HTTP\/1.1 413/);
    expect(answer).toMatch(/x-skein-reason: bad-request/i);
    expect(answer).not.toContain('got 4096 bytes');
    const s = await scrape(limitedWeb);
    expect(metric(s, 'skein_requests_total', { direction: 'outbound', destination: 'catalog', code: '413' })).toBe(2);
  });

  it('counts HTTP/2 bodies too (no Content-Length): 413 once past the limit, through when within it', async () => {
    const h2post = (bytes: number, port = limitedWeb.outboundPort) =>
      new Promise<{ status: number; reason: string | undefined; body: string }>((resolve, reject) => {
        const session = connectH2(`http://127.0.0.1:${port}`);
        session.on('error', reject);
        const stream = session.request({ ':method': 'POST', ':path': '/upload', ':authority': 'catalog' });
        let status = 0;
        let reason: string | undefined;
        let body = '';
        stream.on('response', (headers) => {
          status = Number(headers[':status']);
          reason = headers['x-skein-reason'] as string | undefined;
        });
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => (body += d));
        stream.on('close', () => {
          session.close();
          resolve({ status, reason, body });
        });
        // Several DATA frames and no content-length: the limit has to be counted as they come.
        for (let sent = 0; sent < bytes; sent += 512) stream.write(Buffer.alloc(Math.min(512, bytes - sent), 'h'));
        stream.end();
      });
    const unlimited = await h2post(LIMIT, web.outboundPort);
    expect(unlimited.body).toContain(`got ${LIMIT} bytes`);
    const small = await h2post(LIMIT);
    expect(small.status, small.body).toBe(200);
    expect(small.body).toContain(`got ${LIMIT} bytes`);
    const big = await h2post(8 * LIMIT);
    expect(big.status, big.body).toBe(413);
    expect(big.reason).toBe('bad-request');
  });

  it('guards the app on the inbound side too, over the mux, for declared and chunked bodies', async () => {
    const declared = await get(agent, `${web.outboundUrl}/upload`, { host: 'guarded' }, 'POST', Buffer.alloc(2 * LIMIT, 'a'));
    expect(declared.status, declared.text).toBe(413);
    expect(declared.headers['x-skein-reason']).toBe('bad-request');
    // Relayed from the peer as its answer: this hop keeps the connection, so read to the end of the body.
    const chunked = await rawExchange(web.outboundPort, chunkedPost('guarded', 4 * LIMIT), /\(--max-request-body\)\n$/);
    expect(chunked).toMatch(/^HTTP\/1.1 413/);
    expect(chunked).not.toContain('got 4096 bytes');
    // The unlimited hop still carries big bodies to an unguarded peer.
    const big = await get(agent, `${web.outboundUrl}/upload`, { host: 'catalog' }, 'POST', Buffer.alloc(64 * LIMIT, 'a'));
    expect(big.json()).toMatchObject({ name: `got ${64 * LIMIT} bytes` });
  });

  it('refuses a declared Content-Length past the limit without a 100 Continue, so the client never uploads it; one within goes on', async () => {
    const before = uploads();
    const big = await expectContinueExchange(limitedWeb.outboundPort, `POST /upload HTTP/1.1\r\nhost: catalog\r\nexpect: 100-continue\r\ncontent-length: ${LIMIT + 1}\r\n\r\n`, 'a'.repeat(LIMIT + 1));
    expect(big).toMatch(/^HTTP\/1.1 413/);
    expect(big).toMatch(/connection: close/i);
    expect(big).not.toMatch(/100 Continue/);
    expect(uploads()).toBe(before);
    const small = await expectContinueExchange(limitedWeb.outboundPort, `POST /upload HTTP/1.1\r\nhost: catalog\r\nexpect: 100-continue\r\ncontent-length: 5\r\nconnection: close\r\n\r\n`, 'hello');
    expect(small).toMatch(/^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 /);
    expect(small).toContain('got 5 bytes');
  });
});
