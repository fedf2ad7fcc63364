/**
 * An HTTP/1.1 app's repeated response headers reach an HTTP/2 (h2c) caller all present: each
 * Set-Cookie line as its own field (RFC 9110 §5.3 forbids joining them), other repeats joined
 * as the list they are. Through a plain endpoint and over the mux to a peer sidecar. A field
 * named as a member of Object.prototype (`constructor`) is an ordinary one. The other way, an
 * HTTP/2 caller's cookie crumbs reach the HTTP/1.1 app as one Cookie line (RFC 9113 §8.2.3).
 */
import { connect as connectH2, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Processes, startUpstream, type TestUpstream } from '../support/index.js';
import { startBodyTestSidecars, type BodyTestSidecars } from './body-fixture.js';

/** GET `path` over h2c to `port` with `:authority` `authority` and `extra` fields; the answer's head and body. */
function h2Get(port: number, authority: string, path = '/multi', extra: OutgoingHttpHeaders = {}): Promise<{ head: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = connectH2(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'GET', ':path': path, ':authority': authority, ...extra });
    let head: IncomingHttpHeaders = {};
    let body = '';
    stream.on('response', (h) => (head = h));
    stream.on('error', reject);
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      session.close();
      resolve({ head, body });
    });
  });
}

describe('repeated response headers to HTTP/2 callers', () => {
  const procs = new Processes();
  let app: TestUpstream;
  let sidecars: BodyTestSidecars;

  beforeAll(async () => {
    app = await startUpstream((req, res) => {
      if (req.url === '/cookie') {
        // The Cookie lines as they came, before node:http would join them.
        const lines = req.rawHeaders.filter((_v, i) => i % 2 === 1 && req.rawHeaders[i - 1]!.toLowerCase() === 'cookie');
        res.end(JSON.stringify(lines));
        return;
      }
      // A raw list: node:http writes each pair as its own line.
      res.writeHead(200, ['set-cookie', 'a=1', 'set-cookie', 'b=2; Path=/', 'x-dup', '1', 'x-dup', '2', 'content-type', 'text/plain', 'constructor', 'y']);
      res.end('ok');
    });
    sidecars = await startBodyTestSidecars(procs, app, ['direct']);
  });

  afterAll(async () => {
    await procs.killAll();
    await app.close();
  });

  it('keeps every Set-Cookie line and every value of other repeated headers', async () => {
    for (const [port, authority] of [
      [sidecars.plainWeb.outboundPort, 'direct'],
      [sidecars.web.outboundPort, 'catalog'],
    ] as const) {
      const { head } = await h2Get(port, authority);
      expect(head[':status'], authority).toBe(200);
      expect(head['set-cookie'], authority).toEqual(['a=1', 'b=2; Path=/']);
      expect(head['x-dup'], authority).toBe('1, 2');
      // A name Object.prototype also has is a header like any other.
      expect(head['constructor'], authority).toBe('y');
    }
  });

  it("joins an HTTP/2 caller's cookie crumbs into one Cookie line for the HTTP/1.1 app", async () => {
    for (const [port, authority] of [
      [sidecars.plainWeb.outboundPort, 'direct'],
      [sidecars.web.outboundPort, 'catalog'],
    ] as const) {
      // node:http2 sends each array element as a field of its own, as browsers send crumbs.
      const { head, body } = await h2Get(port, authority, '/cookie', { cookie: ['a=1', 'b=2', 'c=3'] });
      expect(head[':status'], authority).toBe(200);
      expect(JSON.parse(body), authority).toEqual(['a=1; b=2; c=3']);
    }
  });
});
