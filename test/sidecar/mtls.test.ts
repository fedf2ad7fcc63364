/**
 * The pair over mTLS with real certificates (SPIFFE URI SANs from a test CA), and WebSocket
 * upgrades passing through both sidecars.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestLeaf, type TestUpstream } from '../support/index.js';
import { get, rawExchange, testAgent } from './http.js';

function httpsGet(port: number, leaf: TestLeaf | undefined, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/', ca, cert: leaf?.certPem, key: leaf?.keyPem, checkServerIdentity: () => undefined, agent: false },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** One GET on a fresh TLS connection (resuming `session` when given): the status line ('' if refused), the body, and the session to resume later. */
function tlsGet(port: number, leaf: TestLeaf, ca: string, session?: Buffer, headers: Record<string, string> = {}): Promise<{ status: string; body: string; reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve) => {
    let out = '';
    let next: Buffer | undefined;
    let reused = false;
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, cert: leaf.certPem, key: leaf.keyPem, checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'], session }, () => {
      reused = socket.isSessionReused();
      const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
      socket.write(`GET /resumed HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n${extra}\r\n`);
    });
    socket.on('session', (s: Buffer) => (next = s));
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ status: out.split('\r\n')[0]!, body: out.slice(out.indexOf('\r\n\r\n') + 4), reused, session: next }));
  });
}

describe('sidecar pair over mTLS, and upgrades', () => {
  const procs = new Processes();
  const agent = testAgent();
  const ca = makeCa();
  let app: TestUpstream;
  let webApp: TestUpstream;
  let web: SpawnedSidecar;
  let catalog: SpawnedSidecar;

  beforeAll(async () => {
    app = await startUpstream((req, res) => {
      if (req.url === '/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('abc');
        res.addTrailers({ 'x-checksum': 'c0ffee' });
        res.end();
        return;
      }
      if (req.url === '/gzip-te') {
        res.writeHead(200, { 'transfer-encoding': 'gzip, chunked' });
        res.end(gzipSync('hello, coded'));
        return;
      }
      if (req.url === '/upload') {
        let bytes = 0;
        req.on('data', (c: Buffer) => (bytes += c.length));
        req.on('end', () => res.end(JSON.stringify({ bytes, te: req.headers['transfer-encoding'] ?? null })));
        return;
      }
      echoHandler('catalog')(req, res);
    });
    // A raw WebSocket-style endpoint: answers the upgrade, then echoes bytes upper-cased.
    app.server.on('upgrade', (req, socket) => {
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Trace: ${req.headers['x-b3-traceid']}\r\n\r\n`);
      socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
      // After the client's half-close, a last word, then this side's own close.
      if (req.url === '/ws-bye') socket.on('end', () => socket.end('bye'));
    });
    webApp = await startUpstream(echoHandler('web-app'));
    const dir = tempDir();
    const [catalogInbound] = (await freePorts(1)) as [number];
    const config = writeTempConfig({ services: { catalog: { endpoints: [{ address: '127.0.0.1', port: catalogInbound, labels: { version: 'v1' } }] } } }, dir);
    catalog = await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: catalogInbound, identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog')) });
    web = await procs.sidecar({ service: 'web', appPort: webApp.port, config, identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')) });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`--- web ---\n${web?.output()}\n--- catalog ---\n${catalog?.output()}`);
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await app.close();
    await webApp.close();
  });

  it('carries requests over mTLS and knows the caller from its certificate', async () => {
    const res = await get(agent, `${web.outboundUrl}/secure`, { host: 'catalog' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ name: 'catalog', path: '/secure' });
    const metrics = (await get(agent, `${catalog.adminUrl}/metrics`)).text;
    expect(metrics).toMatch(/skein_requests_total\{direction="inbound",source="web",destination="catalog"/);
  });

  it('tells the app who called in x-forwarded-client-cert, from the verified certificate, never from a header', async () => {
    const res = await get(agent, `${web.outboundUrl}/who`, { host: 'catalog', 'x-forwarded-client-cert': 'By=x;URI=spiffe://skein.local/service/admin' });
    expect((res.json() as { headers: Record<string, string> }).headers['x-forwarded-client-cert']).toBe('By=spiffe://skein.local/service/catalog;URI=spiffe://skein.local/service/web');
    // A direct mTLS caller, forging one of its own.
    const direct = await tlsGet(catalog.inboundPort, makeLeaf(ca, 'web'), ca.certPem, undefined, { 'x-forwarded-client-cert': 'URI=spiffe://skein.local/service/admin' });
    expect(direct.status).toBe('HTTP/1.1 200 OK');
    const chunk = /^[0-9a-f]+\r\n([^]*?)\r\n/i.exec(direct.body); // the answer is chunked
    expect(JSON.parse(chunk![1]!).headers['x-forwarded-client-cert']).toBe('By=spiffe://skein.local/service/catalog;URI=spiffe://skein.local/service/web');
  });

  it('between the sidecars: concurrent requests each get their own answer, a chunked upload streams through, and trailers arrive', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => get(agent, `${web.outboundUrl}/n/${i}`, { host: 'catalog' })));
    answers.forEach((a, i) => expect(a.json()).toMatchObject({ name: 'catalog', path: `/n/${i}` }));

    async function* upload(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 48; i++) yield Buffer.alloc(64 * 1024, i);
    }
    const up = await request(`${web.outboundUrl}/upload`, { dispatcher: agent, method: 'POST', headers: { host: 'catalog' }, body: Readable.from(upload()) });
    expect(await up.body.json()).toEqual({ bytes: 48 * 64 * 1024, te: 'chunked' });

    // A transfer coding other than chunked crosses the mux (framed by it) and reaches the caller.
    const coded = await request(`${web.outboundUrl}/gzip-te`, { dispatcher: agent, headers: { host: 'catalog' } });
    expect([coded.headers['transfer-encoding']].flat().join(', ').toLowerCase()).toBe('gzip, chunked');
    expect(gunzipSync(Buffer.from(await coded.body.arrayBuffer())).toString()).toBe('hello, coded');

    const trailed = await request(`${web.outboundUrl}/trailers`, { dispatcher: agent, headers: { host: 'catalog' } });
    expect(await trailed.body.text()).toBe('abc');
    expect(trailed.trailers).toEqual({ 'x-checksum': 'c0ffee' });
  });

  it('refuses a client without a certificate and one with a certificate from another CA', async () => {
    await expect(httpsGet(catalog.inboundPort, undefined, ca.certPem)).rejects.toThrow();
    const other = makeCa('Intruder CA');
    await expect(httpsGet(catalog.inboundPort, makeLeaf(other, 'web'), ca.certPem)).rejects.toThrow();
    // A properly issued client still gets through directly.
    expect(await httpsGet(catalog.inboundPort, makeLeaf(ca, 'web'), ca.certPem)).toBe(200);
    expect((await get(agent, `${web.outboundUrl}/still-fine`, { host: 'catalog' })).status).toBe(200);
  });

  it('refuses a caller whose certificate expired since its TLS session began, also when it resumes that session', async () => {
    const notAfter = new Date(Date.now() + 3000);
    const leaf = makeLeaf(ca, 'web', { notAfter });
    const first = await tlsGet(catalog.inboundPort, leaf, ca.certPem);
    expect(first.status).toBe('HTTP/1.1 200 OK');
    expect(first.session).toBeDefined();
    // Once it has expired, a full handshake is refused...
    await waitUntil(async () => (await tlsGet(catalog.inboundPort, leaf, ca.certPem)).status === '', { timeoutMs: 15_000, intervalMs: 250, what: 'the expired certificate refused' });
    // ...and so is the session ticket it got while valid, which OpenSSL would resume as authorized.
    const resumed = await tlsGet(catalog.inboundPort, leaf, ca.certPem, first.session);
    expect(resumed.reused).toBe(true);
    expect(resumed.status).toBe('');
    expect((await get(agent, `${catalog.adminUrl}/metrics`)).text).toMatch(/skein_tls_handshake_failures_total\{reason="expired-certificate"\} [1-9]/);
  });

  it('passes WebSocket upgrades through both sidecars, with trace headers, and then raw bytes both ways', async () => {
    const key = Buffer.from('0123456789abcdef').toString('base64');
    const { connect } = await import('node:net');
    const socket = connect({ host: '127.0.0.1', port: web.outboundPort });
    socket.setEncoding('latin1');
    let data = '';
    const waitFor = (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`got ${JSON.stringify(data)}`)), 5000);
        const check = () => {
          if (re.test(data)) {
            clearTimeout(timer);
            socket.off('data', onData);
            resolve();
          }
        };
        const onData = (d: string) => {
          data += d;
          check();
        };
        socket.on('data', onData);
        check();
      });
    socket.write(`GET /ws HTTP/1.1\r\nHost: catalog\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await waitFor(/\r\n\r\n/);
    expect(data).toMatch(/^HTTP\/1.1 101/);
    expect(data).toMatch(/X-Trace: [0-9a-f]{32}/);
    data = '';
    socket.write('hello through the mesh');
    await waitFor(/HELLO THROUGH THE MESH/);
    // A tunnel has no idle timeout, so a peer host that vanishes is left to TCP keepalive: the
    // outbound's socket from the client and the inbound's from the peer sidecar probe (`ss -o`
    // shows a keepalive timer, once the last bytes' delayed ACK has cleared the retransmit
    // timer it shows instead; the inbound's mux connection from the same peer has none).
    const keepalive = (filter: string) => waitUntil(() => /timer:\(keepalive,/.test(execFileSync('ss', ['-tnoH', 'state', 'established', filter], { encoding: 'utf8' })) || undefined, { timeoutMs: 5000, what: `a keepalive timer on ${filter}` });
    await keepalive(`( sport = :${web.outboundPort} and dport = :${socket.localPort} )`);
    await keepalive(`( sport = :${catalog.inboundPort} )`);
    socket.destroy();
  });

  it('carries a WebSocket client\'s half-close through both sidecars: the endpoint\'s last bytes still arrive', async () => {
    const { connect } = await import('node:net');
    const socket = connect({ host: '127.0.0.1', port: web.outboundPort, allowHalfOpen: true });
    socket.setEncoding('latin1');
    let data = '';
    socket.on('data', (d: string) => (data += d));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const until = (re: RegExp) => waitUntil(() => re.test(data) || undefined, { timeoutMs: 5000, what: `${re} in ${JSON.stringify(data)}` });
    socket.write(`GET /ws-bye HTTP/1.1\r\nHost: catalog\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await until(/^HTTP\/1.1 101[^]*\r\n\r\n/);
    socket.write('ping');
    await until(/PING$/);
    socket.end();
    await closed;
    expect(data).toMatch(/PINGbye$/);
  });

  it('refuses an upgrade to an unknown service with 404 no-route', async () => {
    const answer = await rawExchange(web.outboundPort, 'GET /ws HTTP/1.1\r\nHost: nowhere\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1.1 404/);
    expect(answer).toMatch(/x-skein-reason: no-route/);
  });
});
