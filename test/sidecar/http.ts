/**
 * Small HTTP client helpers for sidecar tests: undici `request` lets tests set Host freely
 * (fetch forbids it), and `rawExchange` speaks bytes on a socket for malformed input and
 * upgrades.
 */
import type { ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { Agent, request } from 'undici';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/** One agent per test file; close it in afterAll. */
export function testAgent(): Agent {
  return new Agent({ keepAliveTimeout: 1000, connections: 64 });
}

export async function get(agent: Agent, url: string, headers: Record<string, string> = {}, method = 'GET', body?: string | Buffer): Promise<Answer> {
  const res = await request(url, { dispatcher: agent, method: method as 'GET', headers, body });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    text,
    json<T>() {
      return JSON.parse(text) as T;
    },
  };
}

/**
 * Writes `payload` on a fresh connection and resolves with everything read until the peer
 * closes (or `until` matches). With `onContinue`, that is written once `100 Continue` arrives,
 * as curl sends a body after `Expect: 100-continue` (without curl's 1 s fallback).
 */
export function rawExchange(port: number, payload: string | Buffer, until?: RegExp, timeoutMs = 5000, onContinue?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    let continued = onContinue === undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer in ${timeoutMs} ms; got ${JSON.stringify(data)}`));
    }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      data += d;
      if (!continued && data.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        continued = true;
        socket.write(onContinue!);
      }
      if (until && until.test(data)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(data);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (data) resolve(data);
      else reject(err);
    });
    socket.write(payload);
  });
}

/**
 * Sends a request head with `Expect: 100-continue` and its body only once `100 Continue`
 * arrives; resolves with everything read until the peer closes. Put `Connection: close` in
 * `head` when the answer is expected to keep it open.
 */
export function expectContinueExchange(port: number, head: string, body: string, timeoutMs = 5000): Promise<string> {
  return rawExchange(port, head, undefined, timeoutMs, body);
}

/** What a connection brought, and whether it ended with a reset (true) or a plain close (false). */
export interface Ending {
  readonly data: string;
  readonly reset: boolean;
}

/**
 * Sends `payload` on a fresh connection and reads until the peer ends it, telling a reset from
 * a close; `onData` sees what came so far and may write more on the socket. A reset does not always reach the
 * reader as an error: the kernel may report it as an end of stream. So after an end one byte is
 * written back: on a reset connection the write fails (EPIPE), on one the peer only closed, it
 * succeeds.
 */
export function endingOf(port: number, payload: string, onData?: (data: string, socket: Socket) => void): Promise<Ending> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let data = '';
    let settled = false;
    const settle = (reset: boolean): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ data, reset });
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      data += d;
      onData?.(data, socket);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => settle(err.code === 'ECONNRESET' || err.code === 'EPIPE'));
    socket.on('end', () => socket.write('x', (err) => settle(err != null)));
    socket.write(payload);
  });
}

/** One HTTP/2 request on `session` (no body): its status, x-skein-reason and body. */
export function h2Answer(session: ClientHttp2Session, headers: Record<string, string>): Promise<{ status: number; reason: string; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    let status = 0;
    let reason = '';
    let body = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
      reason = String(h['x-skein-reason'] ?? '');
    });
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => resolve({ status, reason, body }));
    stream.on('error', reject);
  });
}
