/**
 * The injection webhook over real HTTPS: a serving certificate issued by Skein's own CA for
 * the webhook Service's DNS name, real AdmissionReview v1 JSON (as the API server sends it for
 * a ReplicaSet's pod), and the returned JSONPatch applied to the object.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../../control-plane/ca/authority.js';
import { createLogger } from '../../common/log.js';
import { injectText } from '../../inject/inject-text.js';
import { DEFAULT_INJECT_OPTIONS } from '../../inject/options.js';
import type { InjectWebhook } from '../../inject/webhook-server.js';
import { startCaWebhook } from '../../inject/webhook-tls.js';
import { validateKubernetesObject } from './kubernetes-schema.js';

const SERVICE_HOST = 'skein-control-plane.skein-system.svc';
const review = JSON.parse(readFileSync(join(import.meta.dirname, 'admission', 'pod-create.json'), 'utf8')) as {
  request: { uid: string; operation: string; object: Record<string, any> };
};

let dataDir: string;
let ca: CertificateAuthority;
let webhook: InjectWebhook;

interface Reply {
  status: number;
  body: any;
}

function servingCertificate(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: webhook.port, servername: SERVICE_HOST, ca: ca.bundlePem }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

function post(body: string, opts: { method?: string; path?: string; ca?: string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: webhook.port,
        servername: SERVICE_HOST,
        ca: opts.ca ?? ca.bundlePem,
        method: opts.method ?? 'POST',
        path: opts.path ?? '/api/v1/inject',
        headers: { 'content-type': 'application/json' },
        agent: opts.agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function withObject(mutate: (obj: Record<string, any>) => void, operation = 'CREATE'): string {
  const copy = structuredClone(review);
  copy.request.operation = operation;
  mutate(copy.request.object);
  return JSON.stringify(copy);
}

function decodePatch(patch: string): Operation[] {
  return JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as Operation[];
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'skein-webhook-'));
  ca = await CertificateAuthority.open({ dataDir, trustDomain: 'skein.local' });
  webhook = await startCaWebhook({
    ca,
    hosts: [SERVICE_HOST, '127.0.0.1'],
    port: 0,
    host: '127.0.0.1',
    inject: DEFAULT_INJECT_OPTIONS,
    logger: createLogger('webhook-test', 'silent'),
  });
});

afterAll(async () => {
  await webhook?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('POST /api/v1/inject (AdmissionReview v1 over TLS)', () => {
  test('patches a pod with the same change as skein inject, and the result is a valid pod', async () => {
    const reply = await post(JSON.stringify(review));
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    const response = reply.body.response;
    expect(response).toMatchObject({ uid: review.request.uid, allowed: true, patchType: 'JSONPatch' });

    const pod = structuredClone(review.request.object);
    // validateOperation: every op must apply cleanly to the object the API server sent.
    const patched = fastJsonPatch.applyPatch(pod, decodePatch(response.patch), true, false).newDocument;
    await validateKubernetesObject(patched, 'patched pod');

    const cli = injectText(stringify(review.request.object), DEFAULT_INJECT_OPTIONS);
    expect(patched).toEqual(parse(cli.output));
    const sidecar = patched.spec.initContainers[0];
    expect(sidecar).toMatchObject({ name: 'skein-sidecar', restartPolicy: 'Always', image: 'skein:0.1.0' });
    expect(sidecar.env).toContainEqual({ name: 'SKEIN_APP_PORT', value: '8080' });
    expect(sidecar.env).toContainEqual({ name: 'SKEIN_APP_HEALTH_PATH', value: '/healthz/ready' });
    // The API server's own volume stays; the bootstrap volume is added after it.
    expect(patched.spec.volumes.map((v: { name: string }) => v.name)).toEqual(['kube-api-access-x7k2p', 'skein-bootstrap']);
  });

  test('an injected pod comes back with no patch (idempotent)', async () => {
    const first = await post(JSON.stringify(review));
    const injected = fastJsonPatch.applyPatch(structuredClone(review.request.object), decodePatch(first.body.response.patch), true, false).newDocument;
    const reply = await post(withObject((obj) => Object.assign(obj, injected)));
    expect(reply.body.response).toEqual({ uid: review.request.uid, allowed: true });
  });

  test('an opted-out pod and a non-CREATE operation are allowed unchanged', async () => {
    const optedOut = await post(withObject((obj) => (obj.metadata.annotations['skein.io/inject'] = 'false')));
    expect(optedOut.body.response).toEqual({ uid: review.request.uid, allowed: true });
    const update = await post(withObject(() => {}, 'UPDATE'));
    expect(update.body.response).toEqual({ uid: review.request.uid, allowed: true });
  });

  test('a pod that cannot be injected is refused with the field at fault', async () => {
    const reply = await post(withObject((obj) => delete obj.spec.containers[0].ports));
    expect(reply.status).toBe(200);
    expect(reply.body.response.allowed).toBe(false);
    expect(reply.body.response.status.code).toBe(422);
    expect(reply.body.response.status.message).toBe(
      'skein injection: Pod shop/orders-7d9c5b8f6c-*, field spec.containers[*].ports: no container port to infer the app port from: declare one or set the annotation skein.io/app-port',
    );
    const hostNet = await post(withObject((obj) => (obj.spec.hostNetwork = true)));
    expect(hostNet.body.response.status.message).toContain('field spec.hostNetwork');
  });

  test('a misspelled opt-out ("no") is refused, as skein inject refuses it, rather than injected', async () => {
    const reply = await post(withObject((obj) => (obj.metadata.annotations['skein.io/inject'] = 'no')));
    expect(reply.body.response.allowed).toBe(false);
    expect(reply.body.response.status.message).toBe(
      'skein injection: Pod shop/orders-7d9c5b8f6c-*, field metadata.annotations.skein.io/inject: expected "true" or "false", got "no"',
    );
  });

  test('bad requests get an error body, not a crash', async () => {
    const notJson = await post('{nope');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('bad-request');
    const notReview = await post(JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: {} }));
    expect(notReview.status).toBe(400);
    expect((await post('', { method: 'GET' })).status).toBe(405);
    expect((await post('{}', { path: '/elsewhere' })).status).toBe(404);
    // Still serving after all that.
    expect((await post(JSON.stringify(review))).body.response.allowed).toBe(true);
  });

  test('an oversized review is answered 413 without breaking the next request on a kept-alive connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const huge = withObject((obj) => (obj.metadata.annotations.big = 'x'.repeat(5 * 1024 * 1024)));
      expect((await post(huge, { agent })).status).toBe(413);
      expect((await post(JSON.stringify(review), { agent })).body.response.allowed).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  test('the serving certificate is only trusted through Skein\'s CA', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'skein-other-ca-'));
    try {
      const other = await CertificateAuthority.open({ dataDir: otherDir, trustDomain: 'other.local' });
      await expect(post(JSON.stringify(review), { ca: other.bundlePem })).rejects.toThrow(/certificate/i);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  test('the serving certificate is reissued when the CA rotates its root', async () => {
    const before = await servingCertificate();
    await ca.stageNewRoot();
    await ca.switchToNextRoot();
    const deadline = Date.now() + 10_000;
    let after = before;
    while (after === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      after = await servingCertificate();
    }
    expect(after).not.toBe(before);
    expect((await post(JSON.stringify(review))).body.response.allowed).toBe(true);
  });
});
