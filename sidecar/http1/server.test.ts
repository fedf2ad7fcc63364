/** Skein's HTTP/1.1 server on real sockets, spoken to byte by byte. */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientBodyError, IncomingRequest } from './incoming.js';
import type { HttpParseError } from '../../common/http/parse-error.js';
import { Http1Server, type Http1Handlers, type OutgoingResponse } from './server.js';
import { waitUntil } from '../../test/support/wait.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Fixture {
  readonly port: number;
  readonly errors: HttpParseError[];
  readonly upgrades: { req: IncomingRequest; head: Buffer; socket: Socket }[];
  readonly server: Http1Server;
}

async function serve(request: (req: IncomingRequest, res: OutgoingResponse) => void, headersTimeoutMs = 60_000): Promise<Fixture> {
  const errors: HttpParseError[] = [];
  const upgrades: Fixture['upgrades'] = [];
  const handlers: Http1Handlers = {
    request,
    upgrade: (req, socket, head) => upgrades.push({ req, head, socket }),
    clientError: (err, socket) => {
      errors.push(err);
      socket.end(`HTTP/1.1 400 Bad Request\r\nx-code: ${err.code}\r\ncontent-length: 0\r\n\r\n`);
    },
  };
  const server = new Http1Server(handlers, { maxHeaderBytes: 1024, headersTimeoutMs, keepAliveTimeoutMs: 65_000, maxBodyBytes: 0 });
  const front: Server = createServer((s) => server.handle(s));
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  cleanups.push(() => {
    server.closeAllConnections();
    front.close();
  });
  return { port: (front.address() as AddressInfo).port, errors, upgrades, server };
}

/** Every answer's Date field (RFC 9110 §6.6.1), which the server adds when its writer gave none. */
const DATE_LINE = /\r\ndate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT(?=\r\n)/g;

/** exchangeRaw(), the Date lines taken out, so that answers compare byte for byte. */
async function exchange(port: number, payload: string, until?: RegExp, timeoutMs?: number): Promise<string> {
  return (await exchangeRaw(port, payload, until, timeoutMs)).replace(DATE_LINE, '');
}

/** Sends `payload`, collects the answer until `until` matches or the server closes. */
async function exchangeRaw(port: number, payload: string, until?: RegExp, timeoutMs = 3000): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  cleanups.push(() => socket.destroy());
  let data = '';
  socket.setEncoding('latin1');
  const done = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer; got ${JSON.stringify(data)}`)), timeoutMs);
    socket.on('data', (d: string) => {
      data += d;
      if (until?.test(data)) {
        clearTimeout(timer);
        resolve(data);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
  });
  socket.write(payload);
  return done;
}

function echo(req: IncomingRequest, res: OutgoingResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = `${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`;
    res.writeHead(200, ['content-length', String(body.length)]);
    res.end(body);
  });
}

describe('Http1Server', () => {
  it("dates every final answer whose writer gave no Date, and keeps a writer's own", async () => {
    const { port } = await serve((req, res) => {
      res.writeHead(200, req.url === '/dated' ? ['Date', 'Tue, 01 Dec 2026 10:00:00 GMT', 'content-length', '2'] : ['content-length', '2']);
      res.end('ok');
    });
    const answers = await exchangeRaw(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /dated HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const dates = [...answers.matchAll(/\r\ndate: ([^\r]+)\r\n/gi)].map((m) => m[1]!);
    expect(dates).toHaveLength(2);
    expect(Math.abs(Date.parse(dates[0]!) - Date.now())).toBeLessThan(5000);
    expect(dates[1]).toBe('Tue, 01 Dec 2026 10:00:00 GMT');
    expect(answers.replace(DATE_LINE, '')).toBe('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
  });

  it('answers pipelined requests in order on one connection, the second waiting for the first', async () => {
    let first: OutgoingResponse | undefined;
    const f = await serve((req, res) => {
      if (req.url === '/slow') {
        first = res;
        setTimeout(() => res.end('first'), 50);
      } else res.end('second');
    });
    const answer = await exchange(f.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n', /second\r\n0\r\n\r\n$/);
    expect(first).toBeDefined();
    expect(answer.indexOf('first')).toBeLessThan(answer.indexOf('second'));
    expect(answer.match(/HTTP\/1.1 200 OK/g)).toHaveLength(2);
    expect(answer).toMatch(/transfer-encoding: chunked/);
  });

  it('reads Content-Length and chunked request bodies; no 100 for a body sent without waiting for it', async () => {
    const f = await serve(echo);
    const sized = await exchange(f.port, 'POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello', /POST \/a hello$/);
    expect(sized).toMatch(/^HTTP\/1.1 200 OK/);
    const chunked = await exchange(f.port, 'POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n', /abcde$/);
    expect(chunked).toMatch(/POST \/b abcde$/);
  });

  it('sends 100 Continue only once the body is read; an answer given before that has none and closes the connection', async () => {
    const held: (() => void)[] = [];
    const f = await serve((req, res) => {
      if (req.url === '/refuse') {
        res.writeHead(404, ['content-length', '0']);
        res.end();
      } else held.push(() => echo(req, res));
    });
    const release = async (): Promise<void> => {
      while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
      held.shift()!();
    };
    // Refused before reading: no 100, Connection: close, and the connection ends with the answer.
    const refused = await exchange(f.port, 'POST /refuse HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    expect(refused).toBe('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    // Read later: the 100 comes when the handler starts reading, not when the head arrived.
    const socket = connect({ port: f.port, host: '127.0.0.1' });
    cleanups.push(() => socket.destroy());
    socket.setEncoding('latin1');
    let data = '';
    socket.on('data', (d: string) => {
      data += d;
      if (d.includes('100 Continue')) socket.write('hello');
    });
    socket.write('POST /later HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    await waitUntil(() => held.length === 1, { what: 'the handler to hold /later' });
    expect(data).toBe('');
    await release();
    while (!data.endsWith('POST /later hello')) await new Promise((r) => setTimeout(r, 5));
    expect(data).toMatch(/^HTTP\/1.1 100 Continue\r\n\r\nHTTP\/1.1 200 OK\r\n/);
    expect(data).not.toMatch(/connection: close/);
    // HTTP/1.0 has no 100 (RFC 9110 §10.1.1): the client sends its body anyway.
    const old = exchange(f.port, 'POST /old HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi');
    await release();
    expect(await old).toMatch(/^HTTP\/1.1 200 OK\r\n[^]*POST \/old hi$/);
  });

  it('drops a body the handler answered without reading, then serves the next request', async () => {
    const f = await serve((req, res) => {
      if (req.url === '/early') res.end('early');
      else echo(req, res);
    });
    const answer = await exchange(f.port, 'POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET /next HTTP/1.1\r\nHost: a\r\n\r\n', /GET \/next $/);
    expect(answer).toMatch(/early/);
    expect(answer).toMatch(/GET \/next $/);
  });

  it('a malformed chunked body after the answer closes that connection and nothing else (no uncaught error)', async () => {
    const f = await serve((_req, res) => res.end('answered early'));
    const answer = await exchange(f.port, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    expect(answer).toMatch(/answered early/);
    expect(await exchange(f.port, 'GET /next HTTP/1.1\r\nHost: a\r\n\r\n', /answered early/)).toMatch(/^HTTP\/1.1 200 OK/);
  });

  it('a malformed chunked body before the answer fails the request (a 400 ClientBodyError) for the handler to answer; the connection closes after', async () => {
    const f = await serve((req, res) => {
      req.on('error', (err: ClientBodyError) => res.end(`${err.status} ${err.message}`));
    });
    const answer = await exchange(f.port, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n');
    expect(answer).toMatch(/connection: close/i);
    expect(answer).toContain('400 malformed request body: invalid chunk size (HPE_INVALID_CHUNK_SIZE)');
    expect(f.errors).toEqual([]);
  });

  it('HTTP/1.0: no chunking, the body ends with the connection unless it was kept alive', async () => {
    const f = await serve((_req, res) => {
      res.writeHead(200, ['x-a', '1']);
      res.write('abc');
      res.end('def');
    });
    const answer = await exchange(f.port, 'GET / HTTP/1.0\r\n\r\n');
    expect(answer).toBe('HTTP/1.1 200 OK\r\nx-a: 1\r\nconnection: close\r\n\r\nabcdef');
  });

  it('HEAD and 204 answers carry no body; a draining response says Connection: close and closes', async () => {
    const f = await serve((req, res) => {
      if (req.url === '/drain') res.shouldKeepAlive = false;
      res.writeHead(req.url === '/none' ? 204 : 200, ['content-length', '4']);
      res.end('body');
    });
    const head = await exchange(f.port, 'HEAD / HTTP/1.1\r\nHost: a\r\n\r\n', /\r\n\r\n$/);
    expect(head).toBe('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n');
    const drained = await exchange(f.port, 'GET /drain HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(drained).toBe('HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbody');
  });

  it('takes back a head still held (nothing sent yet) for another answer, and refuses once body bytes went out', async () => {
    const retracted: boolean[] = [];
    const f = await serve((req, res) => {
      res.writeHead(200, ['content-type', 'text/plain']);
      if (req.url === '/late') {
        res.write('part');
        retracted.push(res.retractHead());
        res.destroy();
        return;
      }
      retracted.push(res.retractHead());
      res.writeHead(503, ['x-skein-reason', 'retries-exhausted', 'content-length', '3']);
      res.end('no\n');
    });
    const early = await exchange(f.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', /no\n$/);
    expect(early).toBe('HTTP/1.1 503 Service Unavailable\r\nx-skein-reason: retries-exhausted\r\ncontent-length: 3\r\n\r\nno\n');
    const late = await exchange(f.port, 'GET /late HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(late).toBe('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n4\r\npart\r\n');
    expect(retracted).toEqual([true, false]);
  });

  it('hands an upgrade over with the bytes read past its head', async () => {
    const f = await serve(() => {
      throw new Error('not a plain request');
    });
    const socket = connect({ port: f.port, host: '127.0.0.1' });
    cleanups.push(() => socket.destroy());
    socket.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nEARLY');
    const deadline = Date.now() + 3000;
    while (f.upgrades.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(f.upgrades[0]!.req.url).toBe('/ws');
    expect(f.upgrades[0]!.head.toString()).toBe('EARLY');
  });

  it('serves an upgrade request with a body as a plain request (its body is part of the HTTP/1.1 request, not the tunnel)', async () => {
    const f = await serve(echo);
    const upgrade = 'Connection: Upgrade\r\nUpgrade: h2c\r\n';
    const sized = await exchange(f.port, `POST /a HTTP/1.1\r\nHost: a\r\n${upgrade}Content-Length: 3\r\n\r\nabc`, /\r\n\r\n.*abc/s);
    expect(sized).toMatch(/^HTTP\/1.1 200 OK\r\n[^]*POST \/a abc$/);
    const chunked = await exchange(f.port, `POST /b HTTP/1.1\r\nHost: a\r\n${upgrade}Transfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n`, /\r\n\r\n.*xy/s);
    expect(chunked).toMatch(/POST \/b xy$/);
    expect(f.upgrades).toHaveLength(0);
  });

  it('sends parse errors to clientError with llhttp codes: bad heads, oversized heads, broken request lines', async () => {
    const f = await serve(echo);
    expect(await exchange(f.port, 'THIS IS NOT HTTP\r\n\r\n')).toMatch(/x-code: HPE_INVALID_CONSTANT/);
    expect(await exchange(f.port, `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(2000)}\r\n\r\n`)).toMatch(/x-code: HPE_HEADER_OVERFLOW/);
    expect(await exchange(f.port, `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(2000)}`)).toMatch(/x-code: HPE_HEADER_OVERFLOW/);
    expect(await exchange(f.port, 'CONNECT a:443 HTTP/1.1\r\n\r\n')).toMatch(/x-code: HPE_INVALID_METHOD/);
    expect(f.errors.map((e) => e.code)).toHaveLength(4);
  });

  it('answers bare LF or CR line ends at once (never waiting for a CRLF CRLF that will not come), split or whole', async () => {
    const f = await serve(echo);
    expect(await exchange(f.port, 'GET / HTTP/1.1\nHost: a\n\n')).toMatch(/x-code: HPE_CR_EXPECTED/);
    expect(await exchange(f.port, 'GET / HTTP/1.1\r\nHost: a\n\r\n')).toMatch(/x-code: HPE_CR_EXPECTED/);
    expect(await exchange(f.port, 'GET / HTTP/1.1\rHost: a\r\r')).toMatch(/x-code: HPE_LF_EXPECTED/);
    // A head arriving in pieces, a CR last, is only waited for.
    const socket = connect({ port: f.port, host: '127.0.0.1' });
    cleanups.push(() => socket.destroy());
    socket.setEncoding('latin1');
    let data = '';
    socket.on('data', (d: string) => (data += d));
    socket.write('GET /split HTTP/1.1\r');
    await new Promise((r) => setTimeout(r, 50));
    socket.write('\nHost: a\r\n\r\n');
    while (!data.includes('GET /split')) await new Promise((r) => setTimeout(r, 5));
    expect(data).toMatch(/^HTTP\/1.1 200 OK/);
    expect(f.errors.map((e) => e.code)).toEqual(['HPE_CR_EXPECTED', 'HPE_CR_EXPECTED', 'HPE_LF_EXPECTED']);
  });

  it('ignores empty lines before a request line (RFC 9112 §2.2): first, pipelined after a body, split, or alone while idle', async () => {
    const f = await serve(echo);
    expect(await exchange(f.port, '\r\n\r\nGET /first HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1.1 200 OK[\s\S]*GET \/first $/);
    // The extra CRLF some clients send after a POST body, then the next request on the connection.
    const pipelined = await exchange(f.port, 'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nho\r\n0\r\n\r\n\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n', /GET \/c $/);
    expect(pipelined.match(/POST \/a hi|POST \/b ho|GET \/c /g)).toEqual(['POST /a hi', 'POST /b ho', 'GET /c ']);
    // In pieces: a CR alone, its LF with the next CR, then the rest; and a CRLF alone on an idle connection.
    const socket = connect({ port: f.port, host: '127.0.0.1' });
    cleanups.push(() => socket.destroy());
    socket.setEncoding('latin1');
    let data = '';
    socket.on('data', (d: string) => (data += d));
    for (const piece of ['\r', '\n\r', '\nGET /split HTTP/1.1\r\nHost: a\r\n\r\n', '\r\n', 'GET /later HTTP/1.1\r\nHost: a\r\n\r\n']) {
      socket.write(piece);
      await new Promise((r) => setTimeout(r, 30));
    }
    await waitUntil(() => data.includes('GET /later'));
    expect(data.match(/GET \/\w+/g)).toEqual(['GET /split', 'GET /later']);
    expect(f.errors).toEqual([]);
  });

  it('still refuses an empty line ended by a bare LF, and counts empty lines toward the head limit', async () => {
    const f = await serve(echo);
    expect(await exchange(f.port, '\nGET / HTTP/1.1\r\nHost: a\r\n\r\n')).toMatch(/x-code: HPE_CR_EXPECTED/);
    expect(await exchange(f.port, '\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n')).toMatch(/x-code: HPE_CR_EXPECTED/);
    // 1024 bytes here: 400 empty lines and a 300-byte head are past it, either alone is not.
    const head = `GET / HTTP/1.1\r\nHost: a\r\nx-pad: ${'p'.repeat(260)}\r\n\r\n`;
    expect(await exchange(f.port, `${'\r\n'.repeat(100)}${head}`, /GET \/ $/)).toMatch(/^HTTP\/1.1 200 OK/);
    expect(await exchange(f.port, `${'\r\n'.repeat(400)}${head}`)).toMatch(/x-code: HPE_HEADER_OVERFLOW/);
    expect(await exchange(f.port, '\r\n'.repeat(600))).toMatch(/x-code: HPE_HEADER_OVERFLOW/);
    expect(f.errors.map((e) => e.code)).toEqual(['HPE_CR_EXPECTED', 'HPE_CR_EXPECTED', 'HPE_HEADER_OVERFLOW', 'HPE_HEADER_OVERFLOW']);
  });

  describe('a request body that stops moving for the head limit (1 s here; the sweep runs each second)', () => {
    /** Answers a failed request body with the error's class, status and message; reads the body unless told not to. */
    const answerFailure = (read: boolean) => (req: IncomingRequest, res: OutgoingResponse) => {
      req.on('error', (err: Error & { status?: number }) => res.end(`${err.constructor.name} ${err.status ?? '-'} ${err.message}`));
      req.on('end', () => res.end('whole'));
      if (read) req.resume();
    };

    it('fails with a 408 ClientBodyError when the client stops sending, Content-Length or chunked; the connection closes after the answer', async () => {
      const f = await serve(answerFailure(true), 1000);
      const started = Date.now();
      const [declared, chunked] = await Promise.all([
        exchange(f.port, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc', undefined, 5000),
        exchange(f.port, 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', undefined, 5000),
      ]);
      for (const answer of [declared, chunked]) {
        expect(answer).toMatch(/connection: close/i);
        expect(answer).toContain('ClientBodyError 408 the request body stalled: none of it came for 1 s');
      }
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    });

    it('lets a body that keeps coming, however slowly, through', async () => {
      const f = await serve(answerFailure(true), 1000);
      const socket = connect({ port: f.port, host: '127.0.0.1' });
      cleanups.push(() => socket.destroy());
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (data += d));
      socket.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n');
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 600));
        socket.write('x');
      }
      await waitUntil(() => data.includes('whole'), { what: 'the answer to the whole body' });
      expect(data).toMatch(/^HTTP\/1.1 200 OK/);
      expect(data).toContain('whole');
      expect(data).not.toContain('Error');
    });

    it('fails with a BodyNotReadError when the reader takes nothing while the client has more to send, and never blames the client for it', async () => {
      const f = await serve(answerFailure(false), 1000);
      const answer = await exchange(f.port, `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4000000\r\n\r\n${'b'.repeat(4_000_000)}`, undefined, 5000);
      expect(answer).toContain('BodyNotReadError - none of the request body was read for 1 s');
      expect(answer).toMatch(/connection: close/i);
    });

    it('never blames a client that waits for its 100 Continue: the reader that never asked for the body is the one stalled', async () => {
      const f = await serve(answerFailure(false), 1000);
      const answer = await exchange(f.port, 'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n', undefined, 5000);
      expect(answer).not.toContain('100 Continue');
      expect(answer).toContain('BodyNotReadError - none of the request body was read for 1 s');
    });

    it('cuts a connection whose client neither sends nor closes after the answer, one head limit later', async () => {
      const f = await serve(answerFailure(true), 1000);
      // allowHalfOpen: the server's FIN does not make this end close its side.
      const socket = connect({ port: f.port, host: '127.0.0.1', allowHalfOpen: true });
      cleanups.push(() => socket.destroy());
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (data += d));
      socket.on('error', () => {});
      socket.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc');
      await once(socket, 'end');
      const answeredAt = Date.now();
      expect(data).toContain('ClientBodyError 408');
      // What it sends is read and dropped, until the server cuts the connection (then a write fails it).
      const poke = setInterval(() => socket.write('x'), 100);
      cleanups.push(() => clearInterval(poke));
      await new Promise((resolve) => socket.on('close', resolve));
      expect(Date.now() - answeredAt).toBeGreaterThanOrEqual(900);
    });
  });

  it('never writes more or fewer body bytes than the Content-Length it sent: the answer is cut there, the connection closed', async () => {
    const f = await serve((req, res) => {
      res.writeHead(200, ['content-length', '2']);
      if (req.url === '/over') {
        res.write('ok');
        res.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged');
      } else if (req.url === '/over-at-once') res.end('okHTTP/1.1 200 OK\r\n\r\n');
      else if (req.url === '/over-in-write') res.write('okHTTP/1.1 200 OK\r\n\r\n');
      else res.end('o');
    });
    // Pipelined: a second answer after a short one would be read as the rest of it.
    const twice = (path: string) => exchange(f.port, `GET ${path} HTTP/1.1\r\nhost: a\r\n\r\nGET /second HTTP/1.1\r\nhost: a\r\n\r\n`);
    expect(await twice('/over')).toBe('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    // The head is held until the first body bytes: with them refused, nothing goes out.
    for (const path of ['/over-at-once', '/over-in-write', '/short']) expect(await twice(path), path).toBe('');
  });

  it('on drain closes idle connections, and busy ones after their answer: with Connection: close unless its head went out before', async () => {
    const held = new Map<string, OutgoingResponse>();
    const f = await serve((req, res) => {
      held.set(req.url!, res);
      if (req.url === '/streaming') res.write('first');
      // Written but held back for its first body bytes: it has not gone out yet.
      if (req.url === '/head-held') res.writeHead(200, { 'content-length': '2' });
    });
    const idle = connect({ port: f.port, host: '127.0.0.1' });
    cleanups.push(() => idle.destroy());
    await once(idle, 'connect');
    const answers = ['/waiting', '/head-held', '/streaming'].map((path) => exchange(f.port, `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n`));
    await waitUntil(() => held.size === 3);
    f.server.drain();
    await once(idle, 'close');
    held.get('/waiting')!.end('ok');
    held.get('/head-held')!.end('ok');
    held.get('/streaming')!.end();
    // Each closes after its answer (the server's end, seen as the close exchange waits for); the pipelined /next is dropped.
    expect(await Promise.all(answers)).toEqual([
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n',
    ]);
  });

  it('at closeAllConnections leaves a connection closing after its answer to its client, up to the grace', async () => {
    const f = await serve((_req, res) => res.end('ok'));
    const socket = connect({ port: f.port, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => socket.destroy());
    socket.resume();
    socket.write('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    await once(socket, 'end');
    let closed = false;
    const closing = f.server.closeAllConnections(5000).then(() => (closed = true));
    // Sent before the client saw the end: read and dropped, not answered with a reset.
    socket.write('GET /late HTTP/1.1\r\nHost: a\r\n\r\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    socket.end();
    await closing;
    await once(socket, 'close');
    expect(socket.errored).toBe(null);
  });
});
