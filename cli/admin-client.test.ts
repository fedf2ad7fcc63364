/** The admin client's deadlines, against real HTTP servers on 127.0.0.1 that stall on cue. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AdminApiError, AdminClient } from './admin-client.js';

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** Ports fetch refuses as "bad" (browsers block them); a control plane may listen on any of them. */
const FETCH_BAD_PORTS = [10080, 6000, 6665, 6666, 6667, 6668, 6669, 6697, 5060, 5061, 4190, 3659];

/** A server on the first of FETCH_BAD_PORTS that is free here. */
async function serveOnBadPort(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  for (const port of FETCH_BAD_PORTS) {
    const server = createServer(handler);
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (listening) {
      servers.push(server);
      return `http://127.0.0.1:${port}`;
    }
  }
  throw new Error(`none of ports ${FETCH_BAD_PORTS.join(', ')} is free`);
}

async function failure(promise: Promise<unknown>): Promise<AdminApiError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AdminApiError);
  return err as AdminApiError;
}

describe('AdminClient deadlines', () => {
  it('gives up on a server that accepts the connection but never answers, naming it', async () => {
    const url = await serve(() => undefined);
    const started = Date.now();
    const err = await failure(new AdminClient(url, undefined, 200).get('/api/v1/services'));
    expect(err.code).toBe('timeout');
    expect(err.message).toBe(`the control plane at ${url} did not answer within 200ms (set --request-timeout or SKEIN_ADMIN_TIMEOUT to wait longer)`);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('gives up on an answer whose body stalls after the headers', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
    });
    expect((await failure(new AdminClient(url, undefined, 200).get('/api/v1/services'))).code).toBe('timeout');
  });

  it('bounds only the start of a stream: a quiet stream outlives the deadline', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      // The first event comes well after the client's deadline would have struck.
      setTimeout(() => res.write('data: {"late":true}\n\n'), 600);
    });
    const events = await new AdminClient(url, undefined, 100).stream('/api/v1/tap?service=catalog');
    const first = await events.getReader().read();
    expect(new TextDecoder().decode(first.value)).toBe('data: {"late":true}\n\n');
  });

  it('gives up on a stream whose headers never come', async () => {
    const url = await serve(() => undefined);
    expect((await failure(new AdminClient(url, undefined, 200).stream('/api/v1/tap?service=catalog'))).code).toBe('timeout');
  });

  it('turns an error answer of a stream into the server message', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'bad-request', message: 'give ?service=NAME' } }));
    });
    const err = await failure(new AdminClient(url, undefined, 1_000).stream('/api/v1/tap'));
    expect([err.status, err.code, err.message]).toEqual([400, 'bad-request', 'give ?service=NAME']);
  });
});

describe('AdminClient error answers', () => {
  it('names the URL of an error answer that is not an admin API error: a plain 404, an HTML 500, a JSON 502 of something else', async () => {
    const answers: [number, Record<string, string>, string, string][] = [
      [404, {}, '', '404 Not Found'],
      [500, { 'content-type': 'text/html' }, '<html>oops</html>', '500 Internal Server Error'],
      [502, { 'content-type': 'application/json' }, '{"message":"bad gateway"}', '502 Bad Gateway'],
    ];
    for (const [status, headers, body, said] of answers) {
      const url = await serve((_req, res) => res.writeHead(status, headers).end(body));
      const client = new AdminClient(url, undefined, 2_000);
      const expected = `${url}/api/v1/stats answered ${said} without an admin API error in its body: is ${url} a Skein control plane's admin API? (set --control-plane or SKEIN_ADMIN_URL)`;
      const err = await failure(client.get('/api/v1/stats'));
      // Status 0: a caller must not take another server's 404 for the control plane's "not found".
      expect([err.status, err.code, err.message]).toEqual([0, 'not-skein', expected]);
      const streamed = await failure(client.stream('/api/v1/stats'));
      expect(streamed.message).toBe(expected);
    }
  });

  it("keeps the admin API's own error: status, code and message", async () => {
    const url = await serve((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not-found', message: 'unknown service nobody' } })));
    const err = await failure(new AdminClient(url, undefined, 2_000).get('/api/v1/services/nobody'));
    expect([err.status, err.code, err.message]).toEqual([404, 'not-found', 'unknown service nobody']);
  });
});

describe('AdminClient answer size', () => {
  const tooLarge = (url: string) => `${url}/api/v1/services answered more than 64 MiB, more than the CLI reads: is ${url} a Skein control plane's admin API? (set --control-plane or SKEIN_ADMIN_URL)`;

  it('stops reading an answer past 64 MiB, naming the URL', async () => {
    const mib = Buffer.alloc(1024 * 1024, 0x20);
    let written = 0;
    // No Content-Length: an answer that goes on until the client stops reading.
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const more = () => {
        while (written < 200 && res.write(mib)) written++;
        if (written < 200) res.once('drain', more);
        else res.end();
      };
      more();
    });
    const err = await failure(new AdminClient(url, undefined, 10_000).get('/api/v1/services'));
    expect([err.code, err.message]).toEqual(['not-skein', tooLarge(url)]);
    expect(written).toBeLessThan(200);
  });

  it('refuses an answer whose Content-Length is past 64 MiB without reading it', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(64 * 1024 * 1024 + 1) });
      res.write('[');
    });
    const err = await failure(new AdminClient(url, undefined, 10_000).get('/api/v1/services'));
    expect(err.message).toBe(tooLarge(url));
  });

  it('reads an answer of up to 64 MiB', async () => {
    const body = JSON.stringify(['x'.repeat(64 * 1024 * 1024 - 4)]);
    expect(body.length).toBe(64 * 1024 * 1024);
    const url = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    expect((await new AdminClient(url, undefined, 10_000).get<string[]>('/api/v1/services')).body[0]!.length).toBe(64 * 1024 * 1024 - 4);
  });
});

describe('AdminClient transport', () => {
  it('reaches a control plane on a port fetch refuses as a bad port', async () => {
    const url = await serveOnBadPort((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', etag: '"7"' });
      res.end(JSON.stringify({ path: req.url, method: req.method }));
    });
    const res = await new AdminClient(url, undefined, 2_000).put('/api/v1/intentions', { defaultAction: 'deny' });
    expect([res.status, res.headers.get('etag'), res.body]).toEqual([200, '"7"', { path: '/api/v1/intentions', method: 'PUT' }]);
  });

  it('says a request it cannot send (a header with a line break) was not sent, rather than that the control plane is unreachable', async () => {
    const url = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('[]'));
    const err = await failure(new AdminClient(url, 'token\nsecond-line', 2_000).get('/api/v1/services'));
    expect([err.code, err.message]).toEqual(['unsendable', `cannot send the request to ${url}/api/v1/services: invalid authorization header`]);
  });

  it('says a server that takes the connection and closes it unanswered may not be an HTTP admin API, rather than that it cannot be reached', async () => {
    // As the control plane's TLS gRPC port does to a plain HTTP/1.1 request.
    const server = createNetServer((socket) => socket.once('data', () => socket.destroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const err = await failure(new AdminClient(url, undefined, 2_000).get('/api/v1/services'));
      expect([err.code, err.message]).toEqual([
        'unreachable',
        `${url} closed the connection without answering (other side closed): a control plane that went away, or no HTTP admin API there ` +
          "(the control plane's --grpc-port speaks TLS gRPC; its admin API is on --http-port, default http://127.0.0.1:15080) (set --control-plane or SKEIN_ADMIN_URL)",
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('names the URL and the socket error when nothing listens', async () => {
    const err = await failure(new AdminClient('http://127.0.0.1:1', undefined, 2_000).get('/api/v1/services'));
    expect([err.code, err.message]).toEqual(['unreachable', 'cannot reach the control plane at http://127.0.0.1:1: ECONNREFUSED (set --control-plane or SKEIN_ADMIN_URL)']);
  });
});
