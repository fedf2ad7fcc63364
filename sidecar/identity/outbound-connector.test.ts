import { once } from 'node:events';
import { createServer as createTcpServer, type AddressInfo, type LookupFunction, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../../test/identity/pki.js';
import { isConnectError } from '../stages/upstream.js';
import { peerTlsConnector, TLS_HANDSHAKE_FAILED } from './outbound-connector.js';
import { inboundServerOptions, outboundConnectOptions, secureContextFor } from './tls-options.js';

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

/** Connects through `peerTlsConnector` to `port`: the error it hands on and the handshake failures it reported. */
async function dial(port: number, options: Parameters<typeof peerTlsConnector>[0] = { rejectUnauthorized: false }, address = '127.0.0.1'): Promise<{ error: Error & { code?: string }; reported: string[] }> {
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
    const { error, reported } = await dial(port);
    expect(error.code).toBe(TLS_HANDSHAKE_FAILED);
    expect(error.message).toBe('the TLS handshake failed with ERR_SSL_WRONG_VERSION_NUMBER: the endpoint does not speak TLS');
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual(['protocol']);
  });

  it.each([
    ['reset', (socket: Socket) => socket.resetAndDestroy()],
    ['close', (socket: Socket) => socket.end()],
  ])('a %s during the handshake is a connect failure, not a reset of a sent request, and a handshake failure counted as `reset`', async (_how, end) => {
    const port = await raw(end);
    const { error, reported } = await dial(port);
    expect(error.code).toBe(TLS_HANDSHAKE_FAILED);
    expect(error.message).toBe('the TLS handshake failed with ECONNRESET: the endpoint closed the connection');
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual(['reset']);
  });

  it('a refused certificate is a connect failure naming why', async () => {
    const port = await listen(createTlsServer(inboundServerOptions(await pki.leaf('payments')), (s) => s.end()));
    const client = await pki.leaf('gateway');
    const { error, reported } = await dial(port, outboundConnectOptions(client, secureContextFor(client), 'catalog'));
    expect(error.code).toBe(TLS_HANDSHAKE_FAILED);
    expect(error.message).toBe('the TLS handshake failed with ERR_SKEIN_PEER_IDENTITY: upstream presented identity spiffe://skein.local/service/payments, expected spiffe://skein.local/service/catalog');
    expect(isConnectError(error)).toBe(true);
    expect(reported).toEqual(['wrong-identity']);
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
