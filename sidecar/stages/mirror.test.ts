import { describe, expect, it } from 'vitest';
import { compileMirror, dispatchCopy, MIRROR_BODY_LIMIT, type MirrorCounters, type MirrorInFlight, type MirrorRequest } from './mirror.js';

function recorder() {
  const sent: { subset: string; request: MirrorRequest }[] = [];
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const send = (subset: string, request: MirrorRequest) =>
    new Promise<void>((resolve, reject) => {
      sent.push({ subset, request });
      pending.push({ resolve, reject });
    });
  return { sent, pending, send };
}

const flush = () => new Promise((r) => setImmediate(r));

/** A count of copies in flight of the stage's own (the mesh keeps one per rule and subset). */
function own(): (subset: string) => MirrorInFlight {
  const copies = { count: 0 };
  return () => copies;
}

describe('compileMirror', () => {
  it('compiles to null when off', () => {
    expect(compileMirror(undefined, async () => {}, own())).toBeNull();
    expect(compileMirror({ subset: 'v2', percent: 0 }, async () => {}, own())).toBeNull();
  });

  it('copies bodiless and buffered requests to the subset, marked as mirror copies', () => {
    const r = recorder();
    const stage = compileMirror({ subset: 'v2', percent: 100 }, r.send, own())!;
    stage('GET', '/items?x=1', ['host', 'catalog', 'x-request-id', 'abc'], undefined);
    stage('POST', '/orders', ['host', 'catalog'], Buffer.from('{"a":1}'));
    expect(r.sent.map((s) => [s.subset, s.request.method, s.request.path])).toEqual([
      ['v2', 'GET', '/items?x=1'],
      ['v2', 'POST', '/orders'],
    ]);
    expect(r.sent[0]!.request.headers).toEqual(['host', 'catalog', 'x-request-id', 'abc', 'x-skein-mirror', '1']);
    expect(r.sent[1]!.request.body?.toString()).toBe('{"a":1}');
  });

  it('skips streamed bodies and bodies over 64 KiB', () => {
    const r = recorder();
    const counters: MirrorCounters = { sent: 0, failed: 0, skipped: 0 };
    const stage = compileMirror({ subset: 'v2', percent: 100 }, r.send, own(), { counters })!;
    stage('POST', '/upload', [], null);
    stage('POST', '/upload', [], Buffer.alloc(MIRROR_BODY_LIMIT + 1));
    stage('POST', '/upload', [], Buffer.alloc(MIRROR_BODY_LIMIT));
    expect(r.sent.length).toBe(1);
    expect(counters).toEqual({ sent: 1, failed: 0, skipped: 2 });
  });

  it('mirrors its percentage of requests', () => {
    let sent = 0;
    let i = 0;
    const stage = compileMirror({ subset: 'v2', percent: 25 }, async () => void sent++, own(), { random: () => (i++ % 100) / 100, maxInFlight: 1000 })!;
    for (let n = 0; n < 400; n++) stage('GET', '/', [], undefined);
    expect(sent).toBe(100);
  });

  it('never lets a failing or throwing sender escape, and caps copies in flight', async () => {
    const r = recorder();
    const counters: MirrorCounters = { sent: 0, failed: 0, skipped: 0 };
    const stage = compileMirror({ subset: 'v2', percent: 100 }, r.send, own(), { maxInFlight: 2, counters })!;
    stage('GET', '/', [], undefined);
    stage('GET', '/', [], undefined);
    stage('GET', '/', [], undefined); // over the cap
    expect(r.sent.length).toBe(2);
    r.pending[0]!.reject(new Error('mirror down'));
    r.pending[1]!.resolve();
    await flush();
    stage('GET', '/', [], undefined);
    expect(r.sent.length).toBe(3);
    expect(counters).toEqual({ sent: 3, failed: 1, skipped: 1 });

    const throwing = compileMirror({ subset: 'v2', percent: 100 }, () => {
      throw new Error('no endpoint');
    }, own())!;
    expect(() => throwing('GET', '/', [], undefined)).not.toThrow();
  });

  it('shares the cap with the stages the rule was compiled to before (a reload), whose copies still hold their places', async () => {
    const r = recorder();
    const copies = new Map<string, MirrorInFlight>();
    const inFlight = (subset: string): MirrorInFlight => copies.get(subset) ?? copies.set(subset, { count: 0 }).get(subset)!;
    const before = compileMirror({ subset: 'v2', percent: 100 }, r.send, inFlight, { maxInFlight: 2 })!;
    before('GET', '/', [], undefined);
    before('GET', '/', [], undefined);
    const after = compileMirror({ subset: 'v2', percent: 100 }, r.send, inFlight, { maxInFlight: 2 })!;
    after('GET', '/', [], undefined); // both places are still held
    expect(r.sent.length).toBe(2);
    r.pending[0]!.resolve();
    await flush();
    after('GET', '/', [], undefined);
    expect(r.sent.length).toBe(3);
    expect(copies.get('v2')!.count).toBe(2);
  });
});

describe('dispatchCopy', () => {
  it('sends the copy on the pool and drains the answer; a stalled mirror times out', async () => {
    const { createServer } = await import('node:http');
    const { Pool } = await import('undici');
    const seen: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} ${req.headers['x-skein-mirror']} ${body}`);
        if (req.url === '/stall') return;
        res.end('x'.repeat(100_000));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const pool = new Pool(`http://127.0.0.1:${port}`);
    try {
      await dispatchCopy(pool, { method: 'POST', path: '/copy', headers: ['x-skein-mirror', '1'], body: Buffer.from('hi') }, 1000);
      await expect(dispatchCopy(pool, { method: 'GET', path: '/stall', headers: [], body: undefined }, 200)).rejects.toThrow();
      expect(seen).toEqual(['POST /copy 1 hi', 'GET /stall undefined ']);
    } finally {
      await pool.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});
