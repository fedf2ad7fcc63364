/** Which upstream failures mean nothing was sent (isConnectError): by code, and for connect(2)'s codes by phase. */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type LookupFunction } from 'node:net';
import { describe, expect, it } from 'vitest';
import { codedError } from '../cluster/upstream-dispatcher.js';
import { H1Upstream } from '../http1/client.js';
import { isConnectError } from './upstream.js';

/** A system error as node makes one (`connect ETIMEDOUT 10.0.0.7:8080`, with its syscall). */
function systemError(code: string, syscall: string): Error & { code: string } {
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall, errno: -1 });
}

/** A port on 127.0.0.1 nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** The error a plain connect to `port` ends with, its name resolved by `lookup` (node's default autoSelectFamily, as the sidecar's clients connect). */
function connectError(port: number, lookup: LookupFunction): Promise<Error> {
  const socket = connect({ host: 'twice.test', port, lookup });
  return new Promise((resolve) => socket.once('error', resolve));
}

const CONNECT_CODES = ['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'];

describe('isConnectError', () => {
  it.each(CONNECT_CODES)('%s from connect(2) is a connect failure', (code) => {
    expect(isConnectError(systemError(code, 'connect'))).toBe(true);
  });

  // An open connection ends with ETIMEDOUT when its retransmissions give up, or with the ICMP
  // error that came meanwhile: part of the request may have reached the app by then.
  it.each(CONNECT_CODES.flatMap((code) => [[code, 'read'], [code, 'write']]))('%s from %s on an open connection is not', (code, syscall) => {
    expect(isConnectError(systemError(code, syscall))).toBe(false);
  });

  it.each(CONNECT_CODES)('%s as the HTTP/1.1 client reports it once connected (its code, no syscall) is not', (code) => {
    expect(isConnectError(codedError(code, `the connection to http://127.0.0.1:8080 closed before an answer: read ${code}`))).toBe(false);
  });

  it('a name whose every address refused the connect (node\'s AggregateError, without a syscall) is a connect failure', async () => {
    const port = await closedPort();
    const twoAddresses: LookupFunction = (_host, options, callback) => {
      if ((options as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }]);
      else callback(null, '127.0.0.1', 4);
    };
    const err = await connectError(port, twoAddresses);
    expect(err).toBeInstanceOf(AggregateError);
    expect(err).toMatchObject({ code: 'ECONNREFUSED' });
    expect(isConnectError(err)).toBe(true);
  });

  it('an unreachable network, met by a real connect, is a connect failure', async () => {
    // The limited broadcast address: TCP never connects to it (ENETUNREACH), on any host.
    const upstream = new H1Upstream({ host: '255.255.255.255', port: 80, maxHeaderBytes: 65_536 });
    const err = await upstream.request({ method: 'GET', path: '/' }).then(
      () => null,
      (e: Error) => e,
    );
    await upstream.close();
    expect(err).toMatchObject({ code: 'ENETUNREACH', syscall: 'connect' });
    expect(isConnectError(err!)).toBe(true);
  });

  it('names that did not resolve and the connect timeout are connect failures whatever their syscall', () => {
    expect(isConnectError(systemError('ENOTFOUND', 'getaddrinfo'))).toBe(true);
    expect(isConnectError(systemError('EAI_AGAIN', 'getaddrinfo'))).toBe(true);
    expect(isConnectError(codedError('UND_ERR_CONNECT_TIMEOUT', 'connecting took longer than 10000 ms'))).toBe(true);
    expect(isConnectError(systemError('ECONNRESET', 'read'))).toBe(false);
  });
});
