import { connect as connectH2, createSecureServer as createSecureH2Server, createServer as createH2Server, type Http2SecureServer, type Http2Server, type IncomingHttpHeaders } from 'node:http2';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCa, makeLeaf } from '../../test/support/certs.js';
import type { ProxyResponse } from '../exchange.js';
import { sessionToken, SIDECAR_MADE_HEADER } from '../h2-sidecar-made.js';
import { REASONS, type Reason } from '../../common/errors.js';
import { grpcMessage, proxyName, proxyStatus, sidecarReply, socketReply } from './reply.js';

const PROXY = 'skein-web-outbound';

let server: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/**
 * RFC 8941 §3.1 sf-list of items with parameters, strictly (no space before ";", keys lowercase):
 * what a structured-field parser would take, for the kinds of bare item Proxy-Status uses.
 */
const TOKEN = "[A-Za-z*][!#$%&'*+\\-.^_`|~0-9A-Za-z:/]*";
const STRING = '"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\["\\\\])*"';
const BARE = `(?:-?[0-9]{1,15}|${STRING}|${TOKEN})`;
const ITEM = `${BARE}(?:; *[a-z*][a-z0-9_.*-]*(?:=${BARE})?)*`;
const SF_LIST = new RegExp(`^${ITEM}(?:[ \\t]*,[ \\t]*${ITEM})*$`);

/** An sf-string's content, unescaped. */
function unquote(sf: string): string {
  return sf.slice(1, -1).replace(/\\(.)/gu, '$1');
}

describe('proxyStatus', () => {
  it('names every reason\'s RFC 9209 error type in an entry that parses as a structured-field list', () => {
    const name = proxyName('web', 'outbound');
    expect(name).toBe('skein-web-outbound');
    for (const reason of Object.keys(REASONS) as Reason[]) {
      const entry = proxyStatus(name, reason, REASONS[reason].message);
      expect(entry, reason).toMatch(SF_LIST);
      expect(entry).toBe(`skein-web-outbound; error=${REASONS[reason].proxyError}; details="${REASONS[reason].message}"`);
      // Appended to an upstream's entries, the list still parses.
      expect(`upstream; error=http_response_timeout, ${entry}`).toMatch(SF_LIST);
    }
    // A service name may begin with a digit (a DNS label); the name still begins with a letter, as a token must.
    expect(proxyStatus(proxyName('9lives', 'inbound'), 'denied', 'x')).toMatch(SF_LIST);
  });

  it('keeps details a valid sf-string whatever the text: quotes and backslashes escaped, the rest of non-printable ASCII percent-encoded as in grpc-message', () => {
    const text = 'no service named by "a\\"b" über\r\nInjected: 1\t%';
    const entry = proxyStatus('skein-web-outbound', 'no-route', text);
    expect(entry).toMatch(SF_LIST);
    expect(entry).not.toMatch(/[\r\n\t]|[^\x20-\x7e]/u);
    const details = /details=("(?:[^"\\]|\\.)*")/u.exec(entry)![1]!;
    expect(unquote(details)).toBe(grpcMessage(text));
  });

  it('says what a try given up for a retry had received', () => {
    const entry = proxyStatus('skein-web-outbound', 'retries-exhausted', 'catalog reset the connection', 503);
    expect(entry).toBe('skein-web-outbound; error=destination_unavailable; details="catalog reset the connection"; received-status=503');
    expect(entry).toMatch(SF_LIST);
  });
});

describe('socketReply', () => {
  it('writes the standard reason phrase in the status line, whatever the x-skein-reason', async () => {
    const statuses = [404, 403, 503, 504, 431];
    let next = 0;
    server = createServer((socket) => socketReply(socket, PROXY, statuses[next++]!, 'no-route'));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const lines: string[] = [];
    for (const _ of statuses) {
      const client = connect({ port, host: '127.0.0.1' });
      let answer = '';
      client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
      await new Promise((resolve) => client.on('close', resolve));
      lines.push(answer.slice(0, answer.indexOf('\r\n')));
    }
    expect(lines).toEqual(['HTTP/1.1 404 Not Found', 'HTTP/1.1 403 Forbidden', 'HTTP/1.1 503 Service Unavailable', 'HTTP/1.1 504 Gateway Timeout', 'HTTP/1.1 431 Request Header Fields Too Large']);
  });

  it("writes the reason's own header lines (a rate-limited answer's retry-after) in the head", async () => {
    server = createServer((socket) => socketReply(socket, PROXY, 429, 'rate-limited', 'over', false, ['retry-after', '3']));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const client = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1' });
    let answer = '';
    client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    await new Promise((resolve) => client.on('close', resolve));
    const head = answer.slice(0, answer.indexOf('\r\n\r\n')).split('\r\n');
    expect(head[0]).toBe('HTTP/1.1 429 Too Many Requests');
    expect(head).toEqual(expect.arrayContaining(['x-skein-reason: rate-limited', 'retry-after: 3']));
  });

  it('answers, then cuts a client that keeps trickling bytes after 5 s instead of reading from it for ever', async () => {
    server = createServer((socket) => socketReply(socket, PROXY, 400, 'bad-request', 'test'));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const client: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let answer = '';
    client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    client.on('error', () => undefined);
    const startedAt = Date.now();
    const closed = new Promise<number>((resolve) => client.on('close', () => resolve(Date.now() - startedAt)));
    // A byte every 300 ms: a timeout that every byte restarts would never fire.
    const trickle = setInterval(() => client.writable && client.write('x'), 300);
    try {
      const after = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 9000))]);
      expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*x-skein-reason: bad-request\r\nproxy-status: skein-web-outbound; error=http_request_error; details="test"\r\n/);
      expect(after).toBeGreaterThan(4000);
      expect(after).toBeLessThan(8000);
    } finally {
      clearInterval(trickle);
      client.destroy();
    }
  }, 15_000);
});

describe('sidecarReply', () => {
  let h2: Http2Server | Http2SecureServer | undefined;
  afterEach(async () => {
    await new Promise((resolve) => h2?.close(resolve) ?? resolve(undefined));
    h2 = undefined;
  });

  /**
   * One call (gRPC unless `contentType` says otherwise) to a node:http2 compat server whose
   * handler is `handle`, over h2c or, given `tls`, TLS: what the caller saw, and its session's
   * sidecar-made token.
   */
  async function grpcCall(
    handle: (res: ProxyResponse) => void,
    tls?: { key: string; cert: string; ca: string },
    contentType = 'application/grpc',
  ): Promise<{ status: number; headers: IncomingHttpHeaders; trailers: IncomingHttpHeaders | null; rstCode: number | undefined; body: Buffer; token: string | undefined }> {
    const onRequest = (_req: unknown, res: unknown): void => handle(res as ProxyResponse);
    h2 = tls === undefined ? createH2Server(onRequest) : createSecureH2Server({ key: tls.key, cert: tls.cert }, onRequest);
    await new Promise<void>((resolve) => h2!.listen(0, '127.0.0.1', resolve));
    const port = (h2.address() as { port: number }).port;
    const session = tls === undefined ? connectH2(`http://127.0.0.1:${port}`) : connectH2(`https://127.0.0.1:${port}`, { ca: tls.ca, checkServerIdentity: () => undefined });
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/pkg.Svc/Call', 'content-type': contentType, te: 'trailers' });
      stream.on('error', () => undefined);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | null = null;
      const body: Buffer[] = [];
      stream.on('response', (h) => {
        headers = h;
        status = Number(h[':status']);
      });
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (chunk: Buffer) => body.push(chunk));
      await new Promise((resolve) => stream.on('close', resolve));
      return { status, headers, trailers, rstCode: stream.rstCode, body: Buffer.concat(body), token: sessionToken(session) };
    } finally {
      session.destroy();
    }
  }

  it('ends an HTTP/2 gRPC answer whose head is already out with the status in trailers, not a bare RST_STREAM', async () => {
    // The exchange believed no head was out (an upstream that delivered body before head did
    // that): cutting the stream reached grpc-js as `Received RST_STREAM with code 0`.
    const seen = await grpcCall((res) => {
      res.writeHead(200, { 'content-type': 'application/grpc' } as never);
      res.write(Buffer.from([0, 0, 0, 0, 2, 0x6f, 0x6b]));
      expect(sidecarReply(res, PROXY, 'retries-exhausted', 'catalog reset the connection', true)).toBe(200);
    });
    expect(seen.status).toBe(200);
    expect(seen.body).toEqual(Buffer.from([0, 0, 0, 0, 2, 0x6f, 0x6b]));
    expect(seen.trailers).toMatchObject({
      'grpc-status': '14',
      'x-skein-reason': 'retries-exhausted',
      'grpc-message': 'catalog reset the connection',
      'proxy-status': 'skein-web-outbound; error=destination_unavailable; details="catalog reset the connection"',
    });
    expect(seen.headers['proxy-status']).toBeUndefined();
    expect(seen.rstCode).toBe(0);
  });

  it("carries the reason's own header lines in a gRPC trailers-only answer and a plain one", async () => {
    const grpc = await grpcCall((res) => sidecarReply(res, PROXY, 'rate-limited', 'over', true, undefined, undefined, undefined, ['retry-after', '2']));
    expect([grpc.headers['grpc-status'], grpc.headers['x-skein-reason'], grpc.headers['retry-after']]).toEqual(['8', 'rate-limited', '2']);
    const plain = await grpcCall((res) => sidecarReply(res, PROXY, 'rate-limited', 'over', false, undefined, undefined, undefined, ['retry-after', '2']), undefined, 'text/plain');
    expect([plain.status, plain.headers['x-skein-reason'], plain.headers['retry-after']]).toEqual([429, 'rate-limited', '2']);
  });

  it('encodes grpc-message as gRPC does: printable ASCII as it is, % and the rest percent-encoded', () => {
    expect(grpcMessage('catalog at 127.0.0.1:8080 broke off: /a,b (x)')).toBe('catalog at 127.0.0.1:8080 broke off: /a,b (x)');
    expect(grpcMessage('100% über\nline')).toBe('100%25 %C3%BCber%0Aline');
  });

  it('answers a gRPC call trailers-only when nothing was sent yet', async () => {
    const seen = await grpcCall((res) => void sidecarReply(res, PROXY, 'no-route', undefined, true));
    expect(seen.status).toBe(200);
    expect(seen.headers).toMatchObject({ 'grpc-status': '12', 'x-skein-reason': 'no-route', 'proxy-status': 'skein-web-outbound; error=destination_not_found; details="no route to the requested service"' });
    expect(seen.trailers).toBeNull();
    expect(seen.body.length).toBe(0);
    // h2c is the app's side: no mark.
    expect(seen.headers[SIDECAR_MADE_HEADER]).toBeUndefined();
  });

  it('marks its answers over TLS (between sidecars) with the session\'s token, gRPC and plain, but not a begun answer\'s trailers', async () => {
    const leaf = makeLeaf(makeCa(), 'catalog');
    const tls = { key: leaf.keyPem, cert: leaf.certPem, ca: leaf.caPem };
    const grpc = await grpcCall((res) => void sidecarReply(res, PROXY, 'upstream-connect-failure', undefined, true), tls);
    expect(grpc.token).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(grpc.headers).toMatchObject({ 'grpc-status': '14', 'x-skein-reason': 'upstream-connect-failure', [SIDECAR_MADE_HEADER]: grpc.token });
    await new Promise((resolve) => h2!.close(resolve));
    const plain = await grpcCall((res) => void sidecarReply(res, PROXY, 'upstream-connect-failure', undefined, false), tls, 'text/plain');
    expect(plain.status).toBe(503);
    expect(plain.headers).toMatchObject({ 'x-skein-reason': 'upstream-connect-failure', [SIDECAR_MADE_HEADER]: plain.token });
    await new Promise((resolve) => h2!.close(resolve));
    const begun = await grpcCall((res) => {
      res.writeHead(200, { 'content-type': 'application/grpc' } as never);
      res.write(Buffer.from([0, 0, 0, 0, 0]));
      sidecarReply(res, PROXY, 'retries-exhausted', undefined, true);
    }, tls);
    expect(begun.headers[SIDECAR_MADE_HEADER]).toBeUndefined();
    expect(begun.trailers?.[SIDECAR_MADE_HEADER]).toBeUndefined();
  });
});
