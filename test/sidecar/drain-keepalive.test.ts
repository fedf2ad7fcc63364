/**
 * A drain and the HTTP/1.1 keep-alive connections busy when it begins, on real sidecar
 * processes: an answer whose head had not gone out carries `Connection: close`, one whose head
 * had (a long stream) ends its connection with a FIN after it, and either way the caller's next
 * request never meets a reset (before the fix the in-flight answer kept its connection alive,
 * and the caller's next request on it was reset when the sidecar exited).
 */
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { echoHandler, Processes, startUpstream, tempDir, waitUntil, writeConfigFile, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { endingOf, get, testAgent } from './http.js';

type Drain = 'SIGTERM' | 'POST /drain';

interface Outcome {
  readonly status?: number;
  readonly connection?: string;
  readonly reusedSocket: boolean;
  readonly error?: string;
}

describe('a drain and the keep-alive connections busy when it begins', () => {
  const procs = new Processes();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await procs.killAll();
    for (const c of cleanups.splice(0)) await c();
  });

  /** An app (service `catalog`) answering /slow 2 s late and /stream with a head at once and its end 2 s later; a sidecar with it as an endpoint and as its app. */
  const setUp = async () => {
    const arrived = new Set<string>();
    const app: TestUpstream = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        arrived.add('/slow');
        setTimeout(() => echoHandler('slow')(req, res), 2000);
      } else if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first\n');
        setTimeout(() => res.end('last\n'), 2000);
      } else echoHandler('catalog')(req, res);
    });
    cleanups.push(() => app.close());
    const config = writeConfigFile(join(tempDir(), 'c.json'), {
      // Room for the 2 s answer: the default per-try timeout (1 s) would cut it.
      services: { catalog: { timeout: '10s', retries: { perTryTimeout: '5s' }, endpoints: [{ address: '127.0.0.1', port: app.port }] } },
    });
    const sc = await procs.sidecar({ service: 'web', appPort: app.port, config, drainTimeout: '8s' });
    return { sc, arrived };
  };

  const startDrain = async (sc: SpawnedSidecar, how: Drain): Promise<void> => {
    if (how === 'SIGTERM') sc.kill('SIGTERM');
    else {
      const admin = testAgent();
      cleanups.push(() => admin.close());
      expect((await get(admin, `${sc.adminUrl}/drain`, {}, 'POST')).status).toBe(202);
    }
  };

  /** A GET through `agent` to the sidecar's outbound listener for `catalog`, resolved with what it got. */
  const call = (agent: Agent, sc: SpawnedSidecar, path: string): Promise<Outcome> =>
    new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: sc.outboundPort, path, agent, headers: { host: 'catalog' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection, reusedSocket: req.reusedSocket }));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ reusedSocket: req.reusedSocket, error: err.code ?? err.message }));
      req.end();
    });

  // After SIGTERM the listener closes once the last answer is out: the next request's new
  // connection is refused, or, on a busy machine, met before that (an answer saying
  // Connection: close) or in the accept queue as the listener closes (a reset of a connection
  // that carried nothing before). Never the kept connection.
  const afterSigterm = (o: Outcome): boolean => o.error === 'ECONNREFUSED' || o.error === 'ECONNRESET' || (o.status === 200 && o.connection === 'close');

  it.each<[Drain, (o: Outcome) => boolean]>([
    ['SIGTERM', afterSigterm],
    ['POST /drain', (o) => o.status === 200 && o.connection === 'close'],
  ])('%s: an answer in flight carries Connection: close, and the keep-alive caller sends its next request on a new connection', async (how, expected) => {
    const { sc, arrived } = await setUp();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => agent.destroy());
    const first = call(agent, sc, '/slow');
    await waitUntil(() => arrived.has('/slow'), { what: 'the slow request to reach the app' });
    await startDrain(sc, how);
    const answered = await first;
    expect(answered).toMatchObject({ status: 200, connection: 'close' });
    // As soon as the first answer is in: before the fix this went on the kept connection and was reset.
    const next = await call(agent, sc, '/next');
    expect(next.reusedSocket, JSON.stringify(next)).toBe(false);
    expect(expected(next), JSON.stringify(next)).toBe(true);
    if (how === 'SIGTERM') expect((await sc.exited).code, sc.output()).toBe(0);
  });

  it.each<Drain>(['SIGTERM', 'POST /drain'])('%s: a stream whose head went out before it ends its connection with a FIN after the last chunk; a request sent meanwhile sees that clean close', async (how) => {
    const { sc } = await setUp();
    let started: () => void = () => {};
    const streaming = new Promise<void>((resolve) => (started = resolve));
    let sentNext = false;
    const ending = endingOf(sc.inboundPort, 'GET /stream HTTP/1.1\r\nHost: catalog\r\n\r\n', (data, socket) => {
      if (data.includes('first')) started();
      // The caller reuses the connection the moment the answer ends (it was told nothing else).
      if (!sentNext && data.endsWith('0\r\n\r\n')) {
        sentNext = true;
        socket.write('GET /next HTTP/1.1\r\nHost: catalog\r\n\r\n');
      }
    });
    await streaming;
    await startDrain(sc, how);
    const end = await ending;
    expect(end.data).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n6\r\nfirst\n\r\n5\r\nlast\n\r\n0\r\n\r\n$/);
    expect(sentNext).toBe(true);
    expect(end.reset, JSON.stringify(end)).toBe(false);
    if (how === 'SIGTERM') expect((await sc.exited).code, sc.output()).toBe(0);
  });
});
