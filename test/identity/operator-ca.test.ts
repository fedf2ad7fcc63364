/**
 * An operator's own root (`--ca-cert`, `--ca-key`) with real processes: the control plane
 * signs sidecar leaves with it and publishes it as the bundle; a key that does not belong
 * to the certificate stops the control plane at start with the reason.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';
import { Processes, echoHandler, makeCa, makeLeaf, startUpstream, tempDir, waitUntil, type TestCa, type TestUpstream } from '../support/index.js';
import { servedCertificate, startMeshSidecar } from './mesh.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
let operatorCa: TestCa;
let certFile: string;
let keyFile: string;

async function writeRoot(dir: string, name: string, ca: TestCa, keyPem = ca.keyPem): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await writeFile(cert, ca.certPem);
  await writeFile(key, keyPem, { mode: 0o600 });
  return { cert, key };
}

beforeAll(() => {
  operatorCa = makeCa('Operator Root');
});

afterAll(async () => {
  await procs.killAll();
  await Promise.all(apps.map((a) => a.close()));
});

describe('an operator-supplied root', () => {
  let cp: ControlPlaneProcess;

  beforeAll(async () => {
    ({ cert: certFile, key: keyFile } = await writeRoot(tempDir('skein-operator-ca-'), 'root', operatorCa));
    cp = await startControlPlane(procs, { args: ['--ca-cert', certFile, '--ca-key', keyFile] });
  }, 60_000);

  it('is the trust bundle, kept in the data dir with its key mode 0600', async () => {
    const view = (await cp.api.get<{ roots: { fingerprint: string; signing: boolean }[] }>('/api/v1/ca')).body;
    const fingerprint = new X509Certificate(operatorCa.certPem).fingerprint256;
    expect(view.roots).toEqual([expect.objectContaining({ fingerprint, signing: true })]);
    expect(new X509Certificate(await readFile(cp.caFile)).fingerprint256).toBe(fingerprint);
    expect((await stat(join(cp.dataDir, 'ca.key'))).mode & 0o777).toBe(0o600);
  });

  it('signs the leaves sidecars bootstrap with', async () => {
    const app = await startUpstream(echoHandler('orders'));
    apps.push(app);
    const orders = await startMeshSidecar(procs, cp, { service: 'orders', appPort: app.port });
    // The handshake itself proves the chain: the client trusts the operator's root only.
    const served = await servedCertificate(orders, operatorCa.certPem, makeLeaf(operatorCa, 'gateway'));
    expect(served.subjectaltname).toBe('URI:spiffe://skein.local/service/orders');
    expect(served.issuer.CN).toBe('Operator Root');
  });

  it('stays rotated after `skein ca rotate` when restarted with the same --ca-cert and --ca-key', async () => {
    type View = { roots: { fingerprint: string; signing: boolean }[]; rotation: { rotating: boolean; signingRootFingerprint: string } };
    const view = async () => (await cp.api.get<View>('/api/v1/ca')).body;
    expect((await cp.api.post('/api/v1/ca/rotate', {})).status).toBe(202);
    await waitUntil(async () => !(await view()).rotation.rotating, { what: 'the rotation to finish', timeoutMs: 60_000 });
    const rotated = await view();
    const operatorFingerprint = new X509Certificate(operatorCa.certPem).fingerprint256;
    expect(rotated.roots.map((r) => r.fingerprint)).not.toContain(operatorFingerprint);

    // Restarted as a service unit would be, with its flags unchanged.
    cp.child.kill('SIGTERM');
    await cp.child.exited;
    cp = await startControlPlane(procs, { dataDir: cp.dataDir, httpPort: cp.httpPort, grpcPort: cp.grpcPort, args: ['--ca-cert', certFile, '--ca-key', keyFile] });
    expect((await view()).roots).toEqual(rotated.roots);
    expect(new X509Certificate(await readFile(cp.caFile)).fingerprint256).toBe(rotated.rotation.signingRootFingerprint);
    // A sidecar bootstrapped now gets a leaf of the rotated root, which the one from before trusts.
    const app = await startUpstream(echoHandler('gateway'));
    apps.push(app);
    const gateway = await startMeshSidecar(procs, cp, { service: 'gateway', appPort: app.port });
    const served = await servedCertificate(gateway, await readFile(cp.caFile, 'utf8'));
    expect(served.issuer.CN).not.toBe('Operator Root');
  }, 120_000);
});

describe('a root out of its validity', () => {
  it('stops the control plane at start, saying when it expired or becomes valid', async () => {
    const day = 24 * 3_600_000;
    const cases: [string, TestCa, RegExp][] = [
      ['expired', makeCa('Expired Root', { notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) }), /expired\.crt: the CA certificate expired at /],
      ['future', makeCa('Future Root', { notBefore: new Date(Date.now() + day), notAfter: new Date(Date.now() + 10 * day) }), /future\.crt: the CA certificate is not valid before /],
    ];
    for (const [name, ca, message] of cases) {
      const { cert, key } = await writeRoot(tempDir('skein-operator-ca-dates-'), name, ca);
      const child = procs.skein(`control-plane (${name} root)`, ['control-plane', '--data-dir', tempDir('skein-cp-'), '--http-port', '0', '--grpc-port', '0', '--grpc-host', '127.0.0.1', '--ca-cert', cert, '--ca-key', key], {
        SKEIN_ADMIN_TOKEN: 'unused',
      });
      const exit = await child.exited;
      expect(exit.code, child.output()).not.toBe(0);
      expect(child.output()).toMatch(message);
    }
  }, 60_000);
});

describe('a key that is not the certificate’s', () => {
  it('stops the control plane at start, naming both files', async () => {
    const other = makeCa('Another Root');
    const { cert, key } = await writeRoot(tempDir('skein-operator-ca-bad-'), 'mismatched', operatorCa, other.keyPem);
    const child = procs.skein('control-plane (mismatched CA key)', ['control-plane', '--data-dir', tempDir('skein-cp-'), '--http-port', '0', '--grpc-port', '0', '--ca-cert', cert, '--ca-key', key], {
      SKEIN_ADMIN_TOKEN: 'unused',
    });
    const exit = await child.exited;
    expect(exit.code).not.toBe(0);
    expect(child.output()).toContain(`${key} does not match any certificate in ${cert}`);
  });
});
