/**
 * A request body the called sidecar refuses (`413` past `--max-request-body`) ends only its
 * own mux stream: the mTLS connection the calling sidecar shares among all its callers
 * keeps serving, so the others' requests, in flight or new, need no new connection. A TCP
 * relay in front of the called sidecar's inbound listener counts the connections it gets.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, waitUntil, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { get, rawExchange, testAgent } from './http.js';

const LIMIT = 1024;

/** Forwards every connection to `port`, counting them. */
async function countingRelay(port: number): Promise<{ server: Server; port: number; accepted: () => number }> {
  let accepted = 0;
  const sockets: Socket[] = [];
  const server = createServer((client) => {
    accepted++;
    const upstream = connect({ host: '127.0.0.1', port });
    sockets.push(client, upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, accepted: () => accepted };
}

/** A chunked POST of `bytes` bytes in 16 KiB chunks, as one write. */
function chunkedPost(bytes: number): string {
  const chunk = 16 * 1024;
  let body = '';
  for (let left = bytes; left > 0; left -= chunk) body += `${Math.min(chunk, left).toString(16)}\r\n${'x'.repeat(Math.min(chunk, left))}\r\n`;
  return `POST /upload HTTP/1.1\r\nhost: guarded\r\ntransfer-encoding: chunked\r\n\r\n${body}0\r\n\r\n`;
}

describe('a refused request body over the sidecar mux', () => {
  const procs = new Processes();
  /** The well-behaved caller; the oversized bodies come from other connections to the same outbound listener. */
  const agent = testAgent();
  let app: TestUpstream;
  let web: SpawnedSidecar;
  let relay: Awaited<ReturnType<typeof countingRelay>>;
  let slowArrived = false;

  beforeAll(async () => {
    app = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answer = echoHandler(`got ${Buffer.concat(chunks).length} bytes`);
        if (req.url !== '/slow') return answer(req, res);
        slowArrived = true;
        setTimeout(() => answer(req, res), 1000);
      });
    });
    const ca = makeCa();
    const dir = tempDir();
    const [guardedIn] = (await freePorts(1)) as [number];
    relay = await countingRelay(guardedIn);
    const config = writeTempConfig({
      services: { guarded: { retries: { attempts: 0 }, endpoints: [{ address: '127.0.0.1', port: relay.port }] } },
      intentions: { defaultAction: 'allow' },
    }, dir);
    const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
    await procs.sidecar({ service: 'guarded', appPort: app.port, config, inboundPort: guardedIn, identity: id('guarded'), extraArgs: ['--max-request-body', String(LIMIT)] });
    web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web') });
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await new Promise((resolve) => relay.server.close(resolve));
    await app.close();
  });

  it('answers 413 on its own stream while the shared connection keeps serving the other callers', async () => {
    const warm = await get(agent, `${web.outboundUrl}/warm`, { host: 'guarded' }, 'POST', 'hello');
    expect(warm.status, warm.text).toBe(200);
    const opened = relay.accepted();
    expect(opened).toBeGreaterThan(0);

    // Another caller's request is in flight on the connection throughout.
    slowArrived = false;
    const slow = get(agent, `${web.outboundUrl}/slow`, { host: 'guarded' }, 'POST', 'still here');
    await waitUntil(() => slowArrived, { what: 'the slow request to reach the app' });

    // Declared past the limit: refused before its body is read.
    const declared = await get(agent, `${web.outboundUrl}/upload`, { host: 'guarded' }, 'POST', Buffer.alloc(4 * LIMIT, 'a'));
    expect(declared.status, declared.text).toBe(413);
    expect(declared.headers['x-skein-reason']).toBe('bad-request');
    // Chunked, 4 MiB: refused as it grows, while the caller keeps sending many times the stream's
    // flow-control window, whose frames the called sidecar drops.
    const chunked = await rawExchange(web.outboundPort, chunkedPost(4 * 1024 * 1024), /\(--max-request-body\)\n$/, 10_000);
    expect(chunked).toMatch(/^HTTP\/1.1 413/);

    const after = await Promise.all([1, 2, 3].map((n) => get(agent, `${web.outboundUrl}/after-${n}`, { host: 'guarded' }, 'POST', `request ${n}`)));
    for (const res of after) {
      expect(res.status, res.text).toBe(200);
      expect(res.json()).toMatchObject({ name: `got 9 bytes` });
    }
    const inFlight = await slow;
    expect(inFlight.status, inFlight.text).toBe(200);
    expect(inFlight.json()).toMatchObject({ name: 'got 10 bytes' });
    // No GOAWAY: everything went over the connection the first request opened.
    expect(relay.accepted(), web.output()).toBe(opened);
  });
});
