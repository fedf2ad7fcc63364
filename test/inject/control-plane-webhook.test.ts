/**
 * The webhook as the control plane serves it: a real `skein control-plane --webhook-port`
 * process, its TLS certificate checked against the data dir's ca.crt under the Service's DNS
 * name, the injection settings taken from its --inject-* flags; and the same review answered
 * on the admin API's `POST /api/v1/inject`.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Processes, freePort } from '../support/index.js';
import { startControlPlane, type ControlPlaneProcess } from '../control-plane/harness.js';

const SERVICE_HOST = 'skein-control-plane.skein-system.svc';
const review = readFileSync(join(import.meta.dirname, 'admission', 'pod-create.json'), 'utf8');
const procs = new Processes();
let cp: ControlPlaneProcess;
let webhookPort: number;

function sidecarOf(answer: { response: { patch: string } }): { image: string; env: Array<{ name: string; value?: string }> } {
  const patch = JSON.parse(Buffer.from(answer.response.patch, 'base64').toString()) as Array<{ path: string; value: any }>;
  return patch.find((op) => op.path === '/spec/initContainers')!.value[0];
}

beforeAll(async () => {
  webhookPort = await freePort();
  cp = await startControlPlane(procs, {
    args: ['--webhook-port', String(webhookPort), '--tls-san', SERVICE_HOST, '--inject-image', 'registry.example.com/skein:7', '--inject-control-plane', 'cp.example:15012', '--inject-access-log', 'json'],
  });
});

afterAll(() => procs.killAll());

describe('skein control-plane --webhook-port', () => {
  test('answers AdmissionReview over TLS with a certificate from its own CA', async () => {
    const answer = await new Promise<any>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: webhookPort, servername: SERVICE_HOST, ca: readFileSync(cp.caFile), method: 'POST', path: '/api/v1/inject', headers: { 'content-type': 'application/json' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve(JSON.parse(body)));
        },
      );
      req.on('error', reject);
      req.end(review);
    });
    expect(answer.response).toMatchObject({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true, patchType: 'JSONPatch' });
    const sidecar = sidecarOf(answer);
    expect(sidecar.image).toBe('registry.example.com/skein:7');
    expect(sidecar.env).toContainEqual({ name: 'SKEIN_CONTROL_PLANE', value: 'cp.example:15012' });
    expect(sidecar.env).toContainEqual({ name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'json' });
  });

  test("a pod's skein.io/access-log overrides --inject-access-log; a value other than json, text or off denies the pod, naming the field", async () => {
    const annotated = (value: string): string => {
      const parsed = JSON.parse(review) as { request: { object: { metadata: { annotations: Record<string, string> } } } };
      parsed.request.object.metadata.annotations['skein.io/access-log'] = value;
      return JSON.stringify(parsed);
    };
    const answer = async (body: string) => (await (await fetch(`${cp.adminUrl}/api/v1/inject`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).json()) as { response: any };
    expect(sidecarOf(await answer(annotated('off'))).env.filter((e) => e.name.startsWith('SKEIN_ACCESS_LOG'))).toEqual([]);
    expect(sidecarOf(await answer(annotated('text'))).env).toContainEqual({ name: 'SKEIN_ACCESS_LOG_FORMAT', value: 'text' });
    expect((await answer(annotated('JSON'))).response).toMatchObject({
      allowed: false,
      status: { code: 422, message: 'skein injection: Pod shop/orders-7d9c5b8f6c-*, field metadata.annotations.skein.io/access-log: expected one of "json", "text", "off", got "JSON"' },
    });
  });

  test('the admin API answers the same review on POST /api/v1/inject, and describes it in OpenAPI', async () => {
    const res = await fetch(`${cp.adminUrl}/api/v1/inject`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: review });
    expect(res.status).toBe(200);
    expect(sidecarOf((await res.json()) as { response: { patch: string } }).image).toBe('registry.example.com/skein:7');
    const bad = await fetch(`${cp.adminUrl}/api/v1/inject`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"Pod"}' });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBeDefined();
    const openapi = (await (await fetch(`${cp.adminUrl}/api/v1/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(openapi.paths)).toContain('/api/v1/inject');
  });
});
