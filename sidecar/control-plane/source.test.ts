import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadMeshProto } from '../../common/proto/mesh.js';
import { CertificateAuthority } from '../../control-plane/ca/authority.js';
import { ControlPlaneTls } from '../../control-plane/ca/server-tls.js';
import { makeCa } from '../../test/support/certs.js';
import { freePort, tempDir, waitUntil } from '../../test/support/index.js';
import { ControlPlaneSource, URGENT_BACKOFF_MAX_MS } from './source.js';

/** A logger whose reconnect warnings land in `waits` (their retryInMs). */
function recordingLogger() {
  const waits: number[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const line = JSON.parse(chunk.toString()) as { msg: string; retryInMs?: number };
      if (line.msg === 'control plane stream down; reconnecting') waits.push(line.retryInMs!);
      done();
    },
  });
  return { waits, logger: pino({ level: 'warn' }, sink) };
}

const announce = { service: 'orders', instanceId: 'orders-1', version: 'v1', address: '127.0.0.1', inboundPort: 15443, adminPort: 0, protocol: 'http', labels: {} };

describe('control-plane stream reconnects', () => {
  it('waits at most a second between tries while urgent (a certificate is due), however long the backoff', async () => {
    const caFile = join(tempDir(), 'ca.crt');
    writeFileSync(caFile, makeCa().certPem);
    const { waits, logger } = recordingLogger();
    const source = new ControlPlaneSource({
      // Nothing listens there: every try fails at once.
      address: `127.0.0.1:${await freePort()}`,
      caFile,
      logger,
      announce,
      backoff: { baseMs: 60_000, maxMs: 60_000 },
      // The jitter pinned to its ceiling: each wait is the cap in force.
      random: () => 1,
      urgent: () => true,
    });
    try {
      await source.start(() => undefined);
      await waitUntil(() => waits.length >= 2, { what: 'two reconnect tries', timeoutMs: 10_000 });
      expect(waits.slice(0, 2)).toEqual([URGENT_BACKOFF_MAX_MS, URGENT_BACKOFF_MAX_MS]);
    } finally {
      await source.close();
    }
  });

  it('does not hurry back to a control plane that refused the stream (an expired certificate and token), urgent or not', async () => {
    const ca = await CertificateAuthority.open({ dataDir: tempDir('skein-source-ca-'), trustDomain: 'skein.local' });
    const tls = await ControlPlaneTls.create(ca, pino({ level: 'silent' }));
    const server = new grpc.Server();
    server.addService(loadMeshProto().service, {
      Sign: (_call: unknown, callback: grpc.sendUnaryData<never>) => callback({ code: grpc.status.UNIMPLEMENTED }),
      Stream: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        call.once('data', () => call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'bootstrap token is expired' }));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', tls.credentials, (err, p) => (err ? reject(err) : resolve(p))));
    const { waits, logger } = recordingLogger();
    // The jitter pinned to its ceiling: the wait is the cap in force.
    const source = new ControlPlaneSource({ address: `127.0.0.1:${port}`, caFile: ca.bundlePath, logger, announce, backoff: { baseMs: 60_000, maxMs: 60_000 }, random: () => 1, urgent: () => true });
    try {
      await source.start(() => undefined);
      await waitUntil(() => waits.length >= 1, { what: 'the refusal', timeoutMs: 10_000 });
      expect(waits[0]).toBe(60_000);
    } finally {
      await source.close();
      tls.close();
      server.forceShutdown();
    }
  });
});

describe('control-plane snapshots', () => {
  it('counts a snapshot that is not JSON as refused (it never reaches apply) and NACKs it', async () => {
    const ca = await CertificateAuthority.open({ dataDir: tempDir('skein-source-ca-'), trustDomain: 'skein.local' });
    const tls = await ControlPlaneTls.create(ca, pino({ level: 'silent' }));
    const server = new grpc.Server();
    const nacks: { version: string; reason: string }[] = [];
    server.addService(loadMeshProto().service, {
      Sign: (_call: unknown, callback: grpc.sendUnaryData<never>) => callback({ code: grpc.status.UNIMPLEMENTED }),
      Stream: (call: grpc.ServerDuplexStream<{ nack?: { version: string; reason: string } }, unknown>) => {
        call.once('data', () => call.write({ snapshot: { version: 'v9', json: '{not json' } }));
        call.on('data', (m) => void (m.nack && nacks.push(m.nack)));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', tls.credentials, (err, p) => (err ? reject(err) : resolve(p))));
    const refused: string[] = [];
    const applied: unknown[] = [];
    const source = new ControlPlaneSource({ address: `127.0.0.1:${port}`, caFile: ca.bundlePath, logger: pino({ level: 'silent' }), announce });
    try {
      await source.start((raw) => void applied.push(raw), (reason) => void refused.push(reason));
      await waitUntil(() => nacks.length === 1, { what: 'the NACK', timeoutMs: 10_000 });
      expect(nacks[0]).toEqual({ version: 'v9', reason: expect.stringMatching(/^snapshot is not valid \(gzipped\) JSON: /) });
      expect(refused).toEqual([nacks[0]!.reason]);
      expect(applied).toEqual([]);
    } finally {
      await source.close();
      tls.close();
      server.forceShutdown();
    }
  });
});
