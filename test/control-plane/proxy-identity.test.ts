/**
 * `GET /api/v1/proxies` and `skein get proxies` name each sidecar's identity: the SPIFFE ID of
 * the leaf it reports (CertStatus), as `linkerd identity` or `istioctl proxy-config secret`
 * would. A real sidecar with an issued certificate is listed with its ID; a stream opened with
 * a bootstrap token and no certificate (a sidecar without identity) is listed with none, null
 * rather than an empty string passing for one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlaneSource } from '../../sidecar/control-plane/source.js';
import type { ProxyView } from '../../control-plane/push/proxies.js';
import { skeinCli, startMeshSidecar } from '../identity/mesh.js';
import { echoHandler, Processes, startUpstream, waitUntil, type TestUpstream } from '../support/index.js';
import { createToken, startControlPlane, testSource, type ControlPlaneProcess } from './harness.js';

const TRUST_DOMAIN = 'mesh.example';
const procs = new Processes();
let cp: ControlPlaneProcess;
let app: TestUpstream;
let plain: ControlPlaneSource;

const proxies = async () => (await cp.api.get<{ proxies: ProxyView[] }>('/api/v1/proxies')).body.proxies;

beforeAll(async () => {
  cp = await startControlPlane(procs, { args: ['--trust-domain', TRUST_DOMAIN] });
  app = await startUpstream(echoHandler('web'));
  await startMeshSidecar(procs, cp, { service: 'web', appPort: app.port });
  plain = testSource(cp, { service: 'plain', instanceId: 'plain-1', token: await createToken(cp, 'plain') });
  void plain.start(() => {});
  await waitUntil(async () => (await proxies()).length === 2 || undefined, { what: 'both sidecars connected' });
}, 60_000);

afterAll(async () => {
  await plain.close();
  await procs.killAll();
  await app.close();
});

describe('the proxies listing', () => {
  it('shows the SPIFFE ID of an issued identity, and null for a sidecar without one', async () => {
    // CertStatus follows the Hello: wait for it rather than catch the record before it.
    const listed = await waitUntil(async () => {
      const all = await proxies();
      return all.find((p) => p.service === 'web')?.spiffeId ? all : undefined;
    }, { what: 'web\'s identity reported' });
    expect(listed.find((p) => p.service === 'web')).toMatchObject({ spiffeId: `spiffe://${TRUST_DOMAIN}/service/web`, certExpiry: expect.any(String) });
    expect(listed.find((p) => p.service === 'plain')).toMatchObject({ spiffeId: null, certExpiry: null });
  });

  it('lists a sidecar older than the field, whose CertStatus has no SPIFFE ID, with none but its expiry', async () => {
    const old = testSource(cp, { service: 'old', instanceId: 'old-1', token: await createToken(cp, 'old') });
    // What a sidecar from before 2026-12-07 sends: CertStatus without field 4.
    old.sendCertStatus({ expiryUnix: '4102444800', bundleFingerprint: 'b', rootFingerprint: 'r' });
    void old.start(() => {});
    try {
      const listed = await waitUntil(async () => (await proxies()).find((p) => p.service === 'old' && p.certExpiry !== null), { what: 'the old sidecar\'s CertStatus' });
      expect(listed).toMatchObject({ spiffeId: null, certExpiry: '2100-01-01T00:00:00.000Z' });
    } finally {
      await old.close();
    }
  });

  it('skein get proxies prints it in an IDENTITY column, "-" for none; --output json as the API has it', async () => {
    const text = await skeinCli(procs, cp, ['get', 'proxies']);
    expect(text.code, text.output).toBe(0);
    const lines = text.output.split('\n');
    const header = lines.find((l) => l.startsWith('SERVICE'))!;
    const column = header.indexOf('IDENTITY');
    expect(column).toBeGreaterThan(0);
    const cell = (service: string) => lines.find((l) => l.startsWith(`${service} `))!.slice(column).split(/\s+/)[0];
    expect(cell('web')).toBe(`spiffe://${TRUST_DOMAIN}/service/web`);
    expect(cell('plain')).toBe('-');

    const json = await skeinCli(procs, cp, ['get', 'proxies', 'plain', '--output', 'json']);
    expect(json.code, json.output).toBe(0);
    expect((JSON.parse(json.output) as { proxies: ProxyView[] }).proxies).toEqual([expect.objectContaining({ service: 'plain', spiffeId: null })]);
  });
});
