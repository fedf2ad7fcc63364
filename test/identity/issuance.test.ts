/**
 * Certificate issuance over the real gRPC Sign RPC, with TLS on both ends: the sidecar's
 * IssuedIdentityProvider against the CA's Sign handler and server credentials.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { createCsrPem } from '../../common/identity/csr.js';
import { generateRsaKeyPair } from '../../common/identity/keys.js';
import { loadMeshProto } from '../../common/proto/mesh.js';
import { CertificateAuthority } from '../../control-plane/ca/authority.js';
import { ControlPlaneTls } from '../../control-plane/ca/server-tls.js';
import { createSignHandler, type SignOutcome } from '../../control-plane/ca/sign-service.js';
import { SignError, controlPlaneSigner } from '../../sidecar/identity/control-plane-signer.js';
import { IssuedIdentityProvider } from '../../sidecar/identity/issued.js';
import type { TlsIdentity } from '../../sidecar/identity/provider.js';

const logger = createLogger('test', process.env.TEST_LOG ?? 'silent');
const tokens = new Map([
  ['tok-orders', 'orders'],
  ['tok-payments', 'payments'],
]);
let dir: string;
let ca: CertificateAuthority;
let tls: ControlPlaneTls;
let server: grpc.Server;
let address: string;
const outcomes: SignOutcome[] = [];
const providers: IssuedIdentityProvider[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skein-issue-'));
  ca = await CertificateAuthority.open({ dataDir: join(dir, 'cp'), trustDomain: 'skein.local', leafLifetimeMs: 5_000 });
  tls = await ControlPlaneTls.create(ca, logger);
  server = new grpc.Server();
  server.addService(loadMeshProto().service, {
    Stream: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    Sign: createSignHandler({
      ca,
      logger,
      verifyToken: async (t) => {
        const service = tokens.get(t);
        if (!service) throw new Error('bootstrap token is unknown');
        return service;
      },
      onOutcome: (o) => outcomes.push(o),
    }),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', tls.credentials, (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterEach(async () => {
  for (const p of providers.splice(0)) await p.close();
});

afterAll(async () => {
  server?.forceShutdown();
  tls?.close();
  await rm(dir, { recursive: true, force: true });
});

function provider(service: string, token: string | undefined, caFile = ca.bundlePath): IssuedIdentityProvider {
  const p = new IssuedIdentityProvider({ service, logger, sign: controlPlaneSigner({ address, caFile, token }) });
  providers.push(p);
  return p;
}

function nextIdentity(p: IssuedIdentityProvider): Promise<TlsIdentity> {
  return new Promise((resolve) => p.onChange(resolve));
}

describe('certificate issuance through the Sign RPC', () => {
  it('bootstraps with a token: a leaf for the service, chained to the bundle the CA file names', async () => {
    const p = provider('orders', 'tok-orders');
    await p.start();
    const id = p.current()!;
    expect(id.spiffeId).toBe('spiffe://skein.local/service/orders');
    const leaf = new X509Certificate(id.certPem);
    expect(leaf.verify(new X509Certificate(ca.bundlePem).publicKey)).toBe(true);
    expect(id.caPem).toBe(ca.bundlePem);
    expect(id.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(5_000);
  });

  it('refuses a wrong token with a clear, permanent error', async () => {
    const before = outcomes.length;
    const err = (await provider('orders', 'tok-nope').start().catch((e: unknown) => e)) as SignError;
    expect(err).toBeInstanceOf(SignError);
    expect(err.grpcCode).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.message).toMatch(/refused the CSR: bootstrap token is unknown/);
    expect(outcomes.slice(before)).toEqual(['unauthenticated']);
  });

  it("refuses a CSR for another service than the token's", async () => {
    const err = (await provider('orders', 'tok-payments').start().catch((e: unknown) => e)) as SignError;
    expect(err.grpcCode).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.message).toMatch(/CSR asks for service "orders" but the caller is authorised for "payments" only/);
    expect(outcomes.at(-1)).toBe('identity-mismatch');
  });

  it('refuses a renewal CSR for another service than the client certificate names', async () => {
    const p = provider('orders', 'tok-orders');
    await p.start();
    // A sidecar holding a valid orders certificate, and no token, asks for payments.
    const keys = await generateRsaKeyPair();
    const csr = createCsrPem(keys.privateKeyPem, keys.publicKeyPem, 'payments', 'spiffe://skein.local/service/payments');
    const err = (await controlPlaneSigner({ address, caFile: ca.bundlePath })(csr, p.current()).catch((e: unknown) => e)) as SignError;
    expect(err.grpcCode).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.message).toMatch(/CSR asks for service "payments" but the caller is authorised for "orders" only/);
    expect(outcomes.at(-1)).toBe('identity-mismatch');
  });

  it('does not trust a control plane outside the CA file, and keeps trying without a refusal', async () => {
    const otherCa = await CertificateAuthority.open({ dataDir: join(dir, 'other'), trustDomain: 'skein.local' });
    const wrongFile = join(dir, 'wrong-ca.crt');
    await writeFile(wrongFile, otherCa.bundlePem);
    const p = provider('orders', 'tok-orders', wrongFile);
    const err = await p.renewNow().catch((e: unknown) => e as SignError);
    expect((err as SignError).grpcCode).toBe(grpc.status.UNAVAILABLE);
    expect((err as SignError).permanent).toBe(false);
    expect((err as SignError).message).toMatch(/could not be reached: .*does --ca-file hold the control plane's ca\.crt\?/);
    expect(p.current()).toBeUndefined();
  });

  it('renews at about 2/3 of a short lifetime, authenticated by its certificate alone', async () => {
    tokens.set('tok-short', 'users');
    const p = provider('users', 'tok-short');
    await p.start();
    const first = p.current()!;
    // The token is gone: only the client certificate can authorise what follows.
    tokens.delete('tok-short');
    const started = Date.now();
    const renewed = await nextIdentity(p);
    const elapsed = Date.now() - started;
    expect(renewed.certPem).not.toBe(first.certPem);
    expect(renewed.keyPem).not.toBe(first.keyPem);
    expect(renewed.spiffeId).toBe('spiffe://skein.local/service/users');
    // 2/3 of 5 s (4-5 s, as notAfter has whole seconds) minus up to 10 % jitter: ~2.3 s to ~3.3 s.
    expect(elapsed).toBeGreaterThan(1_800);
    expect(elapsed).toBeLessThan(4_000);
  });
});
