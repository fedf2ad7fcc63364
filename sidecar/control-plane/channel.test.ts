import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCa, makeLeaf } from '../../test/support/certs.js';
import { tempDir } from '../../test/support/index.js';
import { controlPlaneTls, targetHost } from './channel.js';

const identity = (b: Buffer) => b;
const definition: grpc.ServiceDefinition = {
  Ping: { path: '/test.Ping/Ping', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
type PingClient = grpc.Client & { Ping(req: Buffer, cb: (err: grpc.ServiceError | null) => void): void };
const PingClient = grpc.makeGenericClientConstructor(definition, 'Ping');

const ca = makeCa();
// Like the control plane's own: checked by the address it is reached at.
const serverLeaf = makeLeaf(ca, 'control-plane', { ips: ['127.0.0.1'] });
const caFile = join(tempDir(), 'ca.crt');
writeFileSync(caFile, ca.certPem);
let server: grpc.Server;
let port: number;
const warnings: string[] = [];
const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? w.message);

beforeAll(async () => {
  process.on('warning', onWarning);
  server = new grpc.Server();
  server.addService(definition, { Ping: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const credentials = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(serverLeaf.certPem), private_key: Buffer.from(serverLeaf.keyPem) }], false);
  // Every loopback address reaches it; the certificate names only 127.0.0.1.
  port = await new Promise<number>((resolve, reject) => server.bindAsync('0.0.0.0:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
});

afterAll(() => {
  process.off('warning', onWarning);
  server?.forceShutdown();
});

async function ping(address: string): Promise<grpc.ServiceError | null> {
  const tls = await controlPlaneTls(address, caFile);
  const client = new PingClient(address, tls.credentials, tls.channelOptions) as unknown as PingClient;
  return new Promise((resolve) => client.Ping(Buffer.from('x'), (err) => {
    client.close();
    resolve(err);
  }));
}

describe('TLS to the control plane', () => {
  it('reaches it by IP without sending the IP as the TLS server name (no DEP0123 warning)', async () => {
    expect(await ping(`127.0.0.1:${port}`)).toBeNull();
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).not.toContain('DEP0123');
  });

  it('still checks the certificate against the IP dialled', async () => {
    const err = await ping(`127.0.0.2:${port}`);
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toMatch(/IP: 127\.0\.0\.2 is not in the cert's list/);
  });

  it('reads the host of every target form', () => {
    expect(targetHost('127.0.0.1:15010')).toBe('127.0.0.1');
    expect(targetHost('[::1]:15010')).toBe('::1');
    expect(targetHost('::1')).toBe('::1');
    expect(targetHost('control-plane.skein:15010')).toBe('control-plane.skein');
    expect(targetHost('localhost')).toBe('localhost');
  });
});
