/** Skein's HTTP/1.1 client against real servers on 127.0.0.1: node:http, and raw sockets for what node:http will not send. */
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import type { CallControl, ControlledHandler } from '../cluster/upstream-dispatcher.js';
import { H1_BODY_LENGTH, H1_MALFORMED, H1Upstream } from './client.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function listening(server: Server | ReturnType<typeof createHttpServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

async function httpApp(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; sockets: Set<Socket> }> {
  const server = createHttpServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => sockets.add(s));
  cleanups.push(() => server.closeAllConnections());
  return { port: await listening(server), sockets };
}

/** A raw server answering each connection's data with `answer(requestText, socket)`. */
async function rawApp(answer: (request: string, socket: Socket, n: number) => void): Promise<{ port: number; connections: () => number; closed: () => number }> {
  let count = 0;
  let closed = 0;
  let n = 0;
  const server = createServer((socket) => {
    count++;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => answer(d, socket, n++));
    socket.on('error', () => {});
    socket.on('close', () => closed++);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => sockets.add(s));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
  });
  return { port: await listening(server), connections: () => count, closed: () => closed };
}

function upstream(port: number): H1Upstream {
  const u = new H1Upstream({ host: '127.0.0.1', port, maxHeaderBytes: 64 * 1024 });
  cleanups.push(() => u.destroy());
  return u;
}

describe('H1Upstream', () => {
  it('reuses one keep-alive connection for requests in turn, sending Host, headers and a buffered body', async () => {
    const app = await httpApp((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => res.end(`${req.method} ${req.url} host=${req.headers.host} x=${req.headers['x-a']} len=${req.headers['content-length']} ${body}`));
    });
    const u = upstream(app.port);
    for (let i = 0; i < 3; i++) {
      const res = await u.request({ method: 'POST', path: `/n/${i}`, headers: ['x-a', 'b'], body: Buffer.from('hi') });
      expect(await res.body.text()).toBe(`POST /n/${i} host=127.0.0.1:${app.port} x=b len=2 hi`);
    }
    expect(app.sockets.size).toBe(1);
  });

  it('streams a body of unknown length chunked, and reads a chunked answer', async () => {
    const app = await httpApp((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => {
        res.write(`te=${req.headers['transfer-encoding']} `);
        res.end(`got ${n}`);
      });
    });
    const u = upstream(app.port);
    const body = Readable.from([Buffer.alloc(100_000, 1), Buffer.alloc(50_000, 2)]);
    const res = await u.request({ method: 'PUT', path: '/', body });
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(await res.body.text()).toBe('te=chunked got 150000');
  });

  it('reads a body that ends with the connection, a HEAD answer, trailers, and skips 1xx answers', async () => {
    const app = await rawApp((request, socket) => {
      if (request.startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n');
      else if (request.startsWith('GET /close')) socket.end('HTTP/1.1 200 OK\r\n\r\nuntil the end');
      else if (request.startsWith('GET /trailers')) socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\n\r\n');
      else socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok');
    });
    const u = upstream(app.port);
    const closed = await u.request({ method: 'GET', path: '/close' });
    expect(await closed.body.text()).toBe('until the end');
    const head = await u.request({ method: 'HEAD', path: '/' });
    expect([head.statusCode, await head.body.text()]).toEqual([200, '']);
    const hinted = await u.request({ method: 'GET', path: '/hinted' });
    expect([hinted.statusCode, await hinted.body.text()]).toEqual([201, 'ok']);
    const trailed = await u.request({ method: 'GET', path: '/trailers' });
    expect(await trailed.body.text()).toBe('abc');
    expect(trailed.trailers).toEqual({ 'x-checksum': '900150983cd24fb0' });
  });

  it('does not reuse a connection the server closed while idle, and fails a call whose connection closes unanswered', async () => {
    const app = await rawApp((request, socket) => {
      if (request.includes('/drop')) socket.destroy();
      else socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    const u = upstream(app.port);
    expect(await (await u.request({ method: 'GET', path: '/' })).body.text()).toBe('ok');
    // The server's side closes once the client has seen its FIN and closed too.
    await waitUntil(() => app.closed() === 1, { what: 'the first connection closed' });
    expect(await (await u.request({ method: 'GET', path: '/' })).body.text()).toBe('ok');
    expect(app.connections()).toBe(2);
    await waitUntil(() => app.closed() === 2, { what: 'the second connection closed' });
    await expect(u.request({ method: 'GET', path: '/drop' })).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
    expect(app.connections()).toBe(3);
  });

  it('drops an idle connection before the server\'s Keep-Alive timeout', async () => {
    const app = await rawApp((_request, socket) => socket.write('HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 0\r\n\r\n'));
    const u = upstream(app.port);
    await (await u.request({ method: 'GET', path: '/' })).body.dump();
    await new Promise((r) => setTimeout(r, 800));
    await (await u.request({ method: 'GET', path: '/' })).body.dump();
    expect(app.connections()).toBe(2);
  });

  it('fails with the connect error code when nothing listens, and a malformed answer (garbage, a status outside 100..599) with its own', async () => {
    const closed = createServer();
    const port = await listening(closed);
    closed.close();
    await once(closed, 'close');
    await expect(upstream(port).request({ method: 'GET', path: '/' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const garbage = await rawApp((_r, socket) => socket.write('SPEAKING NONSENSE\r\n\r\n'));
    await expect(upstream(garbage.port).request({ method: 'GET', path: '/' })).rejects.toMatchObject({ code: H1_MALFORMED });
    const outOfRange = await rawApp((_r, socket) => socket.write('HTTP/1.1 999 Weird\r\ncontent-length: 0\r\n\r\n'));
    await expect(upstream(outOfRange.port).request({ method: 'GET', path: '/' })).rejects.toMatchObject({ code: H1_MALFORMED, message: expect.stringMatching(/status 999 is outside 100\.\.599/) });
  });

  it('fails an unasked-for 101 Switching Protocols as a malformed answer instead of waiting past it as an interim one', async () => {
    const app = await rawApp((_r, socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'));
    const started = Date.now();
    await expect(upstream(app.port).request({ method: 'GET', path: '/', headersTimeout: 3000 })).rejects.toMatchObject({ code: H1_MALFORMED, message: expect.stringMatching(/101 Switching Protocols to a request that asked for no upgrade/) });
    expect(Date.now() - started).toBeLessThan(1000);
    // Other interim answers are still skipped.
    const interim = await rawApp((_r, socket) => socket.write('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
    const res = await upstream(interim.port).request({ method: 'GET', path: '/' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
  });

  it('fails a non-HTTP answer or one with bare LFs as soon as its bytes arrive, not at the headers timeout', async () => {
    for (const answer of ['SSH-2.0-OpenSSH_9.6\r\n', 'HTTP/1.1 200 OK\nX-A: 1\n', 'HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n', 'HTTP/1.1 200 OK\r\nX-A: 1\n']) {
      const app = await rawApp((_r, socket) => socket.write(answer));
      const started = Date.now();
      await expect(upstream(app.port).request({ method: 'GET', path: '/', headersTimeout: 3000 }), JSON.stringify(answer)).rejects.toMatchObject({ code: H1_MALFORMED });
      expect(Date.now() - started).toBeLessThan(1000);
    }
    // A well-formed head in many pieces, a CRLF split across two of them, still passes.
    const pieces = ['HT', 'TP/1.1 200 OK\r', '\nX-A: 1\r\n', '\r\nok'];
    const slow = await rawApp((_r, socket) => {
      pieces.forEach((p, i) => setTimeout(() => socket.write(p), i * 20));
    });
    const res = await upstream(slow.port).request({ method: 'GET', path: '/', headersTimeout: 3000 });
    expect(res.headers['x-a']).toBe('1');
  });

  it('never writes more or fewer request body bytes than the content-length it sent: the call fails and the connection is cut', async () => {
    for (const [chunks, want] of [[['hello', 'GET /admin HTTP/1.1\r\n\r\n'], 'ran past'], [['hel'], 'ended short of']] as const) {
      let received = '';
      let closed = false;
      const app = await rawApp((request, socket) => {
        received += request;
        socket.on('close', () => (closed = true));
      });
      const body = Readable.from(chunks.map((c) => Buffer.from(c)));
      await expect(upstream(app.port).request({ method: 'POST', path: '/', headers: ['content-length', '5'], body, headersTimeout: 3000 })).rejects.toMatchObject({ code: H1_BODY_LENGTH, message: expect.stringContaining(want) });
      await waitUntil(() => closed, { timeoutMs: 2000 });
      expect(received).toMatch(/^POST \/ HTTP\/1\.1\r\ncontent-length: 5\r\n.*\r\n\r\n(hello|hel)$/s);
    }
    // A buffered body is checked before anything is written.
    let buffered = '';
    const app = await rawApp((request) => (buffered += request));
    await expect(upstream(app.port).request({ method: 'POST', path: '/', headers: ['content-length', '5'], body: Buffer.from('hello!') })).rejects.toMatchObject({ code: H1_BODY_LENGTH });
    expect(buffered).toBe('');
  });

  it('fails a call past its headers timeout', async () => {
    const app = await rawApp(() => {});
    await expect(upstream(app.port).request({ method: 'GET', path: '/', headersTimeout: 100 })).rejects.toMatchObject({ code: 'UND_ERR_HEADERS_TIMEOUT' });
  });
});

/** GET `path` with a handler that gives the call up (discard, as a retry does) at its answer's head: what the handler saw. */
function discardAtHead(u: H1Upstream, path: string): Promise<string[]> {
  return new Promise((resolve) => {
    const seen: string[] = [];
    let control: CallControl | undefined;
    const handler: ControlledHandler = {
      onStart: (c) => (control = c),
      onResponseHead: (status) => {
        seen.push(`head ${status}`);
        control!.discard();
        return true;
      },
      onData: () => {
        seen.push('data');
        return true;
      },
      onComplete: () => resolve([...seen, 'complete']),
      onError: (err: Error & { code?: string }) => resolve([...seen, `error ${err.code}`]),
    };
    u.dispatch({ method: 'GET', path, headers: [] } as never, handler as never);
  });
}

describe('H1Upstream, an answer discarded at its head', () => {
  it('reads a small rest off as it comes and keeps the connection, which no request gets before that answer ends', async () => {
    const app = await rawApp((request, socket) => {
      if (request.startsWith('GET /chunked')) {
        socket.write('HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
        setTimeout(() => socket.write('0\r\n\r\n'), 50);
      } else if (request.startsWith('GET /length')) {
        socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 10\r\n\r\nhello');
        setTimeout(() => socket.write('world'), 50);
      } else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    for (const path of ['/chunked', '/length']) {
      const u = upstream(app.port);
      const before = app.connections();
      expect(await discardAtHead(u, path)).toEqual(['head 503', 'error UND_ERR_ABORTED']);
      // The first connection still reads the rest: this request opens another.
      expect(await (await u.request({ method: 'GET', path: '/ok' })).body.text()).toBe('ok');
      expect(app.connections() - before, path).toBe(2);
      // Once the answer ended (its rest came 50 ms in), two requests at once take the two connections: none opens a third.
      await new Promise((r) => setTimeout(r, 300));
      const texts = await Promise.all([0, 1].map(async () => (await u.request({ method: 'GET', path: '/ok' })).body.text()));
      expect(texts).toEqual(['ok', 'ok']);
      expect([app.connections() - before, app.closed()], path).toEqual([2, 0]);
    }
  });

  it('cuts the connection when the rest has not come within the drain deadline', async () => {
    const app = await rawApp((_r, socket) => socket.write('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 10\r\n\r\nhello'));
    const started = Date.now();
    expect(await discardAtHead(upstream(app.port), '/')).toEqual(['head 503', 'error UND_ERR_ABORTED']);
    await waitUntil(() => app.closed() === 1, { timeoutMs: 3000, what: 'the connection cut' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('cuts the connection at once for a body that runs to the close, declares or brings more than 64 KiB, is malformed, or closes it anyway', async () => {
    const big = 'x'.repeat(70_000);
    const answers = [
      'HTTP/1.1 503 Service Unavailable\r\n\r\nuntil the close, which never comes',
      'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 70000\r\n\r\nhello',
      `HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}`,
      'HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\nnot a size\r\n',
      'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 10\r\n\r\nhello',
    ];
    for (const answer of answers) {
      const app = await rawApp((_r, socket) => socket.write(answer));
      const started = Date.now();
      expect(await discardAtHead(upstream(app.port), '/'), answer.slice(0, 80)).toEqual(['head 503', 'error UND_ERR_ABORTED']);
      await waitUntil(() => app.closed() === 1, { timeoutMs: 3000, what: 'the connection cut' });
      // Not left to the drain deadline (500 ms).
      expect(Date.now() - started, answer.slice(0, 80)).toBeLessThan(400);
    }
  });
});

describe('H1Upstream, the keep-alive race', () => {
  /**
   * A server that answers each connection's first request with keep-alive, then drops the
   * connection on its second, unanswered (as one whose idle timeout fired just then), or after
   * `interim` (a 1xx) when given.
   */
  async function droppingApp(interim?: string): Promise<{ port: number; connections: () => number; requests: () => string[] }> {
    let count = 0;
    const requests: string[] = [];
    const server = createServer((socket) => {
      count++;
      let seen = 0;
      socket.setEncoding('latin1');
      socket.on('error', () => {});
      socket.on('data', (d: string) => {
        requests.push(d.split('\r\n')[0]!);
        if (seen++ === 0) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst');
        else if (interim === undefined) socket.destroy();
        else socket.write(interim, () => setTimeout(() => socket.destroy(), 20));
      });
    });
    const sockets = new Set<Socket>();
    server.on('connection', (s) => sockets.add(s));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
    });
    return { port: await listening(server), connections: () => count, requests: () => requests };
  }

  it('sends an idempotent request once more, on a new connection, when the reused one dies before any answer', async () => {
    const app = await droppingApp();
    const u = upstream(app.port);
    expect(await (await u.request({ method: 'GET', path: '/a' })).body.text()).toBe('first');
    const res = await u.request({ method: 'GET', path: '/b', body: null });
    expect(await res.body.text()).toBe('first');
    expect(app.connections()).toBe(2);
    expect(app.requests()).toEqual(['GET /a HTTP/1.1', 'GET /b HTTP/1.1', 'GET /b HTTP/1.1']);
  });

  it('does not send a POST again, nor a request on a fresh connection that dies', async () => {
    const app = await droppingApp();
    const u = upstream(app.port);
    await (await u.request({ method: 'GET', path: '/a' })).body.text();
    await expect(u.request({ method: 'POST', path: '/b', body: 'x' })).rejects.toMatchObject({ message: expect.stringMatching(/closed before an answer/) });
    expect(app.requests()).toEqual(['GET /a HTTP/1.1', 'POST /b HTTP/1.1']);
    // A fresh connection that dies on its first request fails at once.
    const dead = createServer((socket) => socket.on('data', () => socket.destroy()).on('error', () => {}));
    await expect(upstream(await listening(dead)).request({ method: 'GET', path: '/' })).rejects.toMatchObject({ message: expect.stringMatching(/closed before an answer/) });
  });

  it('does not send a request again after an interim answer (the request arrived), nor once the upstream is closed', async () => {
    for (const interim of ['HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n', 'HTTP/1.1 100 Continue\r\n\r\n']) {
      const app = await droppingApp(interim);
      const u = upstream(app.port);
      await (await u.request({ method: 'GET', path: '/a' })).body.text();
      await expect(u.request({ method: 'GET', path: '/b' })).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
      expect(app.requests()).toEqual(['GET /a HTTP/1.1', 'GET /b HTTP/1.1']);
    }
    // The upstream destroyed with a request out on a reused connection: that close is its own, no race.
    const requests: string[] = [];
    const holding = createServer((socket) => {
      socket.setEncoding('latin1');
      socket.on('error', () => {});
      socket.on('data', (d: string) => {
        requests.push(d.split('\r\n')[0]!);
        if (requests.length === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      });
    });
    const u = new H1Upstream({ host: '127.0.0.1', port: await listening(holding), maxHeaderBytes: 64 * 1024 });
    await (await u.request({ method: 'GET', path: '/a' })).body.text();
    const pending = u.request({ method: 'GET', path: '/b' }).catch((err: unknown) => err);
    await waitUntil(() => requests.length === 2, { what: 'the second request sent' });
    await u.destroy().catch(() => undefined);
    expect(await pending).toMatchObject({ code: 'UND_ERR_SOCKET' });
    expect(requests).toEqual(['GET /a HTTP/1.1', 'GET /b HTTP/1.1']);
  });
});
