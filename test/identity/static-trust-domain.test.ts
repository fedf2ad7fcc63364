/**
 * Static identities (files from cert-manager, Vault…) moving to another trust domain, with
 * real sidecar processes: a sidecar reissued in the new domain and one still in the old refuse
 * each other, unless each is told the other domain with `--trust-domain-alias` (in
 * control-plane mode the control plane says it: test/identity/trust-domain.test.ts).
 */
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { echoHandler, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';

const procs = new Processes();
const apps: TestUpstream[] = [];
const ca = makeCa();
const dir = tempDir('skein-static-td-');

afterEach(async () => {
  await procs.killAll();
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

/** `web` (still in skein.local) and `catalog` (reissued in new.example), web calling catalog; each with `aliases[service]`, web with `webEnv` too. */
async function mesh(aliases: Record<string, string[]>, webEnv: NodeJS.ProcessEnv = {}): Promise<SpawnedSidecar> {
  const app = async (name: string) => {
    const u = await startUpstream(echoHandler(name));
    apps.push(u);
    return u.port;
  };
  const args = (service: string) => (aliases[service] ?? []).flatMap((d) => ['--trust-domain-alias', d]);
  const catalog = await procs.sidecar({
    service: 'catalog',
    appPort: await app('catalog'),
    identity: writeIdentity(dir, 'catalog', makeLeaf(ca, 'catalog', { spiffeId: 'spiffe://new.example/service/catalog' })),
    config: writeTempConfig({}),
    extraArgs: args('catalog'),
  });
  return procs.sidecar({
    service: 'web',
    appPort: await app('web'),
    identity: writeIdentity(dir, 'web', makeLeaf(ca, 'web')),
    config: writeTempConfig({ services: { catalog: { endpoints: [{ address: '127.0.0.1', port: catalog.inboundPort }], retries: { attempts: 0 } } } }),
    extraArgs: args('web'),
    env: webEnv,
  });
}

async function call(from: SpawnedSidecar) {
  const res = await request(`${from.outboundUrl}/items`, { headers: { host: 'catalog' } });
  return { status: res.statusCode, reason: res.headers['x-skein-reason'], body: await res.body.text() };
}

describe('static identities in two trust domains', () => {
  it('refuse each other without aliases', async () => {
    const web = await mesh({});
    expect(await call(web)).toMatchObject({ status: 503, reason: 'upstream-connect-failure' });
  }, 30_000);

  it('take each other with --trust-domain-alias, inbound and outbound', async () => {
    const web = await mesh({ web: ['new.example'], catalog: ['skein.local'] });
    const r = await call(web);
    expect(r.status, r.body).toBe(200);
    // catalog's app is told the caller's identity, in its old trust domain.
    expect(r.body).toContain('URI=spiffe://skein.local/service/web');
  }, 30_000);

  it('takes several aliases from one SKEIN_TRUST_DOMAIN_ALIAS, comma-separated, as the repeated flag', async () => {
    const web = await mesh({ catalog: ['skein.local'] }, { SKEIN_TRUST_DOMAIN_ALIAS: 'old.example, new.example' });
    const r = await call(web);
    expect(r.status, r.body).toBe(200);
  }, 30_000);

  it('is a usage error without a static identity (the control plane says which trust domains to take)', async () => {
    const child = procs.skein('sidecar --trust-domain-alias', [
      'sidecar', '--service', 'web', '--app-port', '1', '--control-plane', '127.0.0.1:1', '--ca-file', '/nonexistent', '--trust-domain-alias', 'old.example',
    ]);
    expect((await child.exited).code).toBe(2);
    expect(child.output()).toContain('--trust-domain-alias goes with a static identity (--cert-file)');
  });
});
