import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect as tcpConnect, createServer as createTcpServer, type AddressInfo, type LookupFunction, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestPki, type TestPki } from '../../test/identity/pki.js';
import { waitUntil } from '../../test/support/wait.js';
import { TLS_HANDSHAKE_FAILED, TLS_HANDSHAKE_TIMEOUT } from '../cluster/connect-phase.js';
import { isConnectError } from '../stages/upstream.js';
import { peerConnector, peerRefusal, peerSessionConnector, peerSocket, peerTlsConnector } from './outbound-connector.js';
import { inboundServerOptions, outboundConnectOptions, PEER_IDENTITY_ERROR, secureContextFor } from './tls-options.js';

let pki: TestPki;
const servers: TcpServer[] = [];

beforeAll(async () => {
  pki = await createTestPki();
});
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
afterAll(async () => {
  await pki?.close();
});

async function listen(server: TcpServer): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A TCP server that does `onHello` with each connection once its first bytes (the ClientHello) come. */
function raw(onHello: (socket: Socket) => void): Promise<number> {
  return listen(
    createTcpServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => onHello(socket));
    }),
  );
}

/** A port on 127.0.0.1 nothing listens on. */
async function closedPort(): Promise<number> {
  const closed = createTcpServer();
  const port = await listen(closed);
  servers.pop();
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  return port;
}

/** What a failed connect handed on, and the handshake failures its connector reported. */
interface Dialled {
  error: Error & { code?: string };
  reported: string[];
}

/** A handshake failure: a connect failure with code TLS_HANDSHAKE_FAILED and `message`, counted as `reasons`. */
function expectHandshakeFailure({ error, reported }: Dialled, message: string, reasons: string[]): void {
  expect(error.code).toBe(TLS_HANDSHAKE_FAILED);
  expect(error.message).toBe(message);
  expect(isConnectError(error)).toBe(true);
  expect(reported).toEqual(reasons);
}

/** Connects through `peerTlsConnector` to `port`: the error it hands on and the handshake failures it reported. */
async function dial(port: number, options: Parameters<typeof peerTlsConnector>[0] = { rejectUnauthorized: false }, address = '127.0.0.1'): Promise<Dialled> {
  const reported: string[] = [];
  const connect = peerTlsConnector(options, address, port, 'h2', (reason) => reported.push(reason));
  const error = await new Promise<Error | null>((resolve) =>
    connect((err, socket) => {
      socket?.destroy();
      resolve(err);
    }),
  );
  expect(error).not.toBeNull();
  return { error: error!, reported };
}

describe('peerTlsConnector failures', () => {
  it('a plain HTTP endpoint (non-TLS bytes for the ClientHello) is a connect failure that says it does not speak TLS', async () => {
    const port = await raw((socket) => socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n'));
    expectHandshakeFailure(await dial(port), 'the TLS handshake failed with ERR_SSL_WRONG_VERSION_NUMBER: the endpoint does not speak TLS', ['protocol']);
  });

  it.each([
    ['reset', (socket: Socket) => socket.resetAndDestroy()],
    ['close', (socket: Socket) => socket.end()],
  ])('a %s during the handshake is a connect failure, not a reset of a sent request, and a handshake failure counted as `reset`', async (_how, end) => {
    const port = await raw(end);
    expectHandshakeFailure(await dial(port), 'the TLS handshake failed with ECONNRESET: the endpoint closed the connection', ['reset']);
  });

  it('a refused certificate is a connect failure naming why', async () => {
    const port = await listen(createTlsServer(inboundServerOptions(await pki.leaf('payments')), (s) => s.end()));
    const client = await pki.leaf('gateway');
    expectHandshakeFailure(await dial(port, outboundConnectOptions(client, secureContextFor(client), 'catalog')), 'the TLS handshake failed with ERR_SKEIN_PEER_IDENTITY: upstream presented identity spiffe://skein.local/service/payments, expected spiffe://skein.local/service/catalog', ['wrong-identity']);
  });

  it('a refused connection keeps its own code', async () => {
    const { error, reported } = await dial(await closedPort());
    expect(error.code).toBe('ECONNREFUSED');
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual([]);
  });

  it('a name whose every address refused the connect (node\'s AggregateError, without a syscall) keeps its code too', async () => {
    const port = await closedPort();
    const twoAddresses: LookupFunction = (_host, options, callback) => {
      if ((options as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }]);
      else callback(null, '127.0.0.1', 4);
    };
    const { error, reported } = await dial(port, { rejectUnauthorized: false, lookup: twoAddresses }, 'twice.test');
    expect(error).toBeInstanceOf(AggregateError);
    expect(error.code).toBe('ECONNREFUSED');
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual([]);
  });
});

describe('peerTlsConnector at its 10 s connect timeout', () => {
  // Only the connector's own timer is faked: the sockets stay real.
  beforeAll(() => void vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }));
  afterAll(() => void vi.useRealTimers());

  /** Starts `peerTlsConnector` to `port`: its outcome, once `atTimeout` (run first) lets the timer fire. */
  async function timedOut(port: number, atTimeout: () => Promise<void>): Promise<Dialled> {
    const reported: string[] = [];
    const connect = peerTlsConnector({ rejectUnauthorized: false }, '127.0.0.1', port, 'h2', (reason) => reported.push(reason));
    const error = new Promise<Error | null>((resolve) => connect((err) => resolve(err)));
    await atTimeout();
    vi.advanceTimersByTime(10_000);
    expect(await error).not.toBeNull();
    return { error: (await error)!, reported };
  }

  it('a peer that takes the TCP connection and never answers the ClientHello: a connect failure, counted as `timeout`', async () => {
    let hello!: () => void;
    const helloCame = new Promise<void>((resolve) => (hello = resolve));
    const port = await raw(() => hello());
    const { error, reported } = await timedOut(port, () => helloCame);
    expect(error.code).toBe(TLS_HANDSHAKE_TIMEOUT);
    expect(error.message).toBe('the TLS handshake did not complete within 10000 ms');
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual(['timeout']);
  });

  it('a TCP connection not yet open when the timeout fires (a SYN unanswered): the connect timeout, not counted', async () => {
    const port = await raw(() => {});
    const { error, reported } = await timedOut(port, async () => {});
    expect(error.code).toBe('UND_ERR_CONNECT_TIMEOUT');
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual([]);
  });
});

/**
 * A port on 127.0.0.1 whose listener takes no connection: a child process listens with a
 * backlog of 1 and blocks, two connections fill its accept queue, and the kernel drops the
 * SYN of any other, which stays connecting. `close` ends the child and the two.
 */
async function unansweredPort(): Promise<{ port: number; close: () => void }> {
  const script = "const s = require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => process.stdout.write(s.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)))";
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const fillers = [tcpConnect(port, '127.0.0.1'), tcpConnect(port, '127.0.0.1')];
  const close = (): void => {
    for (const f of fillers) f.destroy();
    child.kill();
  };
  try {
    // A kernel that queued fewer would leave a filler waiting: fail rather than hang, and leave no child behind.
    await Promise.all(fillers.map((f) => once(f, 'connect', { signal: AbortSignal.timeout(5_000) })));
  } catch (err) {
    close();
    throw err;
  }
  return { port, close };
}

describe('peerConnector (undici\'s, gRPC to SPIFFE peers) at its connect timeout', () => {
  // Short, so undici's coarse timers (half-second ticks) fire it within about a second.
  const TIMEOUT_MS = 100;

  /** Opens an HTTP/2 transport through `peerConnector` to `port`: the error it hands on and the handshake failures it reported. */
  async function timedOut(port: number): Promise<Dialled> {
    const client = await pki.leaf('gateway');
    const reported: string[] = [];
    const connector = peerConnector(client, secureContextFor(client), 'catalog', (reason) => reported.push(reason), true, TIMEOUT_MS);
    const error = await new Promise<Error | null>((resolve) =>
      peerSessionConnector(connector, '127.0.0.1', port)((err, socket) => {
        socket?.destroy();
        resolve(err);
      }),
    );
    expect(error).not.toBeNull();
    return { error: error!, reported };
  }

  it('a peer that takes the TCP connection and never answers the ClientHello: a connect failure, counted as `timeout`, as over the other connectors', async () => {
    const port = await raw(() => {});
    const { error, reported } = await timedOut(port);
    expect(error.code).toBe(TLS_HANDSHAKE_TIMEOUT);
    expect(error.message).toBe(`the TLS handshake did not complete within ${TIMEOUT_MS} ms`);
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual(['timeout']);
  });

  it('a TCP connection never opened (a SYN unanswered): undici\'s connect timeout, not counted', async () => {
    const unanswered = await unansweredPort();
    try {
      const { error, reported } = await timedOut(unanswered.port);
      expect(error.code).toBe('UND_ERR_CONNECT_TIMEOUT');
      expect(isConnectError(error)).toBe(true);
      expect(reported).toEqual([]);
    } finally {
      unanswered.close();
    }
  });
});

/** A TLS alert record (TLS 1.2 framing, fatal) with `description` (RFC 8446 §6). */
function alertRecord(description: number): Buffer {
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]);
}

describe('a peer that refuses this sidecar\'s certificate', () => {
  it('by an alert during the handshake (a TLS 1.2 server): a connect failure naming the alert, counted as `refused-by-peer`', async () => {
    // unknown_ca (48), in place of the ServerHello.
    const port = await raw((socket) => socket.end(alertRecord(48)));
    expectHandshakeFailure(await dial(port), "the peer refused this sidecar's certificate: unknown CA (ERR_SSL_TLSV1_ALERT_UNKNOWN_CA)", ['refused-by-peer']);
  });

  it('by an alert once this side is connected (TLS 1.3 servers judge the client last), before any answer: a connect failure, counted as `refused-by-peer`', async () => {
    // Node's server alerts a client without a certificate when it requires one.
    const server = await pki.leaf('catalog');
    const port = await listen(createTlsServer({ ...inboundServerOptions(server), rejectUnauthorized: true, ALPNProtocols: ['h2'] }));
    const reported: string[] = [];
    const connect = peerTlsConnector({ rejectUnauthorized: false }, '127.0.0.1', port, 'h2', (reason) => reported.push(reason));
    const socket = await new Promise<Socket>((resolve, reject) => connect((err, s) => (err === null ? resolve(s!) : reject(err))));
    socket.resume();
    const [err] = (await once(socket, 'error').catch((e: unknown) => [e])) as [Error & { code?: string }];
    expect(err.code).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    const refusal = peerRefusal(err, socket) as Error & { code?: string };
    expect(refusal.code).toBe(TLS_HANDSHAKE_FAILED);
    expect(refusal.message).toBe("the peer refused this sidecar's certificate: certificate required (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)");
    expect(isConnectError(refusal)).toBe(true);
    expect(reported).toEqual(['refused-by-peer']);
  });

  it('an alert after any byte of an answer, or an error that is no refusal, is not read as one', () => {
    const alert = Object.assign(new Error('tlsv1 alert unknown ca'), { code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' });
    expect(peerRefusal(alert, { bytesRead: 0 } as Socket)?.message).toBe("the peer refused this sidecar's certificate: unknown CA (ERR_SSL_TLSV1_ALERT_UNKNOWN_CA)");
    expect(peerRefusal(alert, { bytesRead: 1 } as Socket)).toBeUndefined();
    expect(peerRefusal(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), { bytesRead: 0 } as Socket)).toBeUndefined();
  });
});

describe('peerSocket (WebSocket upgrades)', () => {
  /** Opens `peerSocket` to `port`: how it ended (secureConnect, or the error's code) and the handshake failures it reported. */
  async function open(port: number, options: Parameters<typeof peerSocket>[0] = { rejectUnauthorized: false }): Promise<{ outcome: string; reported: string[] }> {
    const reported: string[] = [];
    const socket = peerSocket(options, '127.0.0.1', port, (reason) => reported.push(reason));
    const outcome = await new Promise<string>((resolve) => {
      socket.once('secureConnect', () => resolve('secureConnect'));
      socket.once('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
    });
    socket.destroy();
    return { outcome, reported };
  }

  it('reports its handshake failures as the connectors do', async () => {
    const plain = await raw((socket) => socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n'));
    expect(await open(plain)).toEqual({ outcome: 'ERR_SSL_WRONG_VERSION_NUMBER', reported: ['protocol'] });
    const impostor = await listen(createTlsServer(inboundServerOptions(await pki.leaf('payments')), (s) => s.end()));
    const client = await pki.leaf('gateway');
    expect(await open(impostor, outboundConnectOptions(client, secureContextFor(client), 'catalog'))).toEqual({ outcome: PEER_IDENTITY_ERROR, reported: ['wrong-identity'] });
  });

  it('reports nothing for a connection refused, or one that connects', async () => {
    expect(await open(await closedPort())).toEqual({ outcome: 'ECONNREFUSED', reported: [] });
    const good = await listen(createTlsServer(inboundServerOptions(await pki.leaf('catalog'))));
    expect(await open(good)).toEqual({ outcome: 'secureConnect', reported: [] });
  });
});

describe('peerConnector (undici\'s, gRPC to SPIFFE peers) resuming a TLS session', () => {
  it('does not resume sessions, so a peer whose certificate expired since an earlier connection is refused, as inbound', async () => {
    // undici caches TLS sessions per host by default, and a resumed session presents the
    // certificate of the handshake that began it, checked no more by node.
    const served = await pki.leaf('catalog', { issuedAt: new Date(Date.now() - 57_000), lifetimeMs: 60_000 }); // expires in 3 s
    const port = await listen(createTlsServer(inboundServerOptions(served), (socket) => socket.end('ok')));
    const client = await pki.leaf('gateway');
    const reported: string[] = [];
    const connect = peerSessionConnector(peerConnector(client, secureContextFor(client), 'catalog', (reason) => reported.push(reason), true), '127.0.0.1', port);
    const dialled = () =>
      new Promise<{ error: (Error & { code?: string }) | null; resumed?: boolean }>((resolve) =>
        connect((err, socket) => {
          if (err !== null) return resolve({ error: err });
          const tls = socket as import('node:tls').TLSSocket;
          // The server's answer comes after its session ticket: once it is read, the session is cached.
          tls.on('data', () => {});
          tls.once('end', () => resolve({ error: null, resumed: tls.isSessionReused() }));
        }),
      );
    expect(await dialled()).toEqual({ error: null, resumed: false });
    expect(await dialled()).toEqual({ error: null, resumed: false });
    await waitUntil(() => Date.now() >= served.notAfter.getTime() || undefined, { what: 'the served certificate to expire', timeoutMs: 10_000, intervalMs: 50 });
    const after = await dialled();
    expect(after.error?.message).toMatch(/expired/);
    expect(isConnectError(after.error!)).toBe(true);
    expect(reported).toEqual(['expired-certificate']);
  }, 20_000);
});
