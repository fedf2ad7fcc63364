/**
 * TLS to Consul: an agent serving HTTPS that requires client certificates; the sidecar
 * reaches it with CONSUL_CACERT, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, and without a
 * client certificate gets a clear error. Certificates are made with the openssl CLI.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort, Processes, tempDir, waitUntil } from '../support/index.js';
import { startConsul, type ConsulAgent } from '../support/consul.js';
import { consulConfig, consulTeardown, switchableApp, type SwitchableApp } from './fixture.js';

function makeCerts(dir: string): { ca: string; server: string; serverKey: string; client: string; clientKey: string } {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=skein-test-consul-ca');
  const leaf = (name: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  leaf('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:server.dc1.consul\nextendedKeyUsage=serverAuth,clientAuth\n');
  leaf('client', 'extendedKeyUsage=clientAuth\n');
  const p = (f: string) => join(dir, f);
  return { ca: p('ca.crt'), server: p('server.crt'), serverKey: p('server.key'), client: p('client.crt'), clientKey: p('client.key') };
}

describe('TLS to Consul', { timeout: 60_000 }, () => {
  let consul: ConsulAgent;
  let httpsUrl: string;
  let certs: ReturnType<typeof makeCerts>;
  const procs = new Processes();
  const apps: SwitchableApp[] = [];

  beforeAll(async () => {
    certs = makeCerts(tempDir('skein-consul-tls-'));
    const https = await freePort();
    httpsUrl = `https://127.0.0.1:${https}`;
    consul = await startConsul({
      hcl: `ports { https = ${https} }\ntls { defaults { ca_file = "${certs.ca}"\n cert_file = "${certs.server}"\n key_file = "${certs.serverKey}"\n verify_incoming = true } }`,
    });
  }, 60_000);
  consulTeardown(procs, apps, () => consul);

  const sidecar = async (env: NodeJS.ProcessEnv, waitFor: '/ready' | '/live') => {
    const app = await switchableApp('a');
    apps.push(app);
    return procs.sidecar({ service: 'catalog', appPort: app.port, config: consulConfig([]), waitFor, extraArgs: ['--consul', httpsUrl], env });
  };

  it('registers over HTTPS with the CA and client certificate from the environment', async () => {
    await sidecar({ CONSUL_CACERT: certs.ca, CONSUL_CLIENT_CERT: certs.client, CONSUL_CLIENT_KEY: certs.clientKey }, '/ready');
    await waitUntil(async () => (await consul.passing('catalog')).length === 1, { timeoutMs: 15_000, what: 'registered over TLS' });
  });

  it('without a client certificate the agent refuses, and the error says so', async () => {
    const sc = await sidecar({ CONSUL_CACERT: certs.ca }, '/live');
    await waitUntil(() => /cannot register catalog .* with Consul: TLS to Consul at https:\/\/127\.0\.0\.1:\d+ failed \(\w+\); check CONSUL_CACERT/.test(sc.output()), { what: 'a registration error naming TLS' });
    expect(await consul.passing('catalog')).toEqual([]);
  });
});
