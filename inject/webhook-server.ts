/**
 * HTTP around the admission function: `POST /api/v1/inject` with an AdmissionReview JSON
 * body. `injectRequestHandler` plugs into any node HTTP(S) server (the control plane's);
 * `startInjectWebhook` runs it alone over TLS, which the Kubernetes API server requires,
 * with a serving certificate from Skein's CA.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AdmissionReviewError, reviewAdmission } from './admission.js';
import type { InjectOptions } from './options.js';

export const INJECT_PATH = '/api/v1/inject';
/** Kubernetes objects are limited to about 1.5 MiB in etcd; an AdmissionReview carries one (twice for updates). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Answers POST /api/v1/inject; returns false (and sends nothing) for any other path, so a router can fall through. */
export function injectRequestHandler(options: InjectOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if ((req.url ?? '').split('?')[0] !== INJECT_PATH) return false;
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendError(res, 405, 'method-not-allowed', `${INJECT_PATH} accepts POST`);
      return true;
    }
    void (async () => {
      const body = await readBody(req);
      if (!body) {
        // The rest of the body is not read, and the connection goes with it: the client must not reuse it.
        res.setHeader('connection', 'close');
        return sendError(res, 413, 'payload-too-large', `an AdmissionReview is at most ${MAX_BODY_BYTES} bytes`);
      }
      let review: unknown;
      try {
        review = JSON.parse(body.toString('utf8'));
      } catch {
        return sendError(res, 400, 'bad-request', 'the body is not JSON');
      }
      try {
        sendJson(res, 200, reviewAdmission(review, options));
      } catch (err) {
        if (err instanceof AdmissionReviewError) return sendError(res, 400, 'bad-request', err.message);
        sendError(res, 500, 'internal', (err as Error).message);
      }
    })().catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 400, 'bad-request', (err as Error).message);
      else res.destroy();
    });
    return true;
  };
}

export interface InjectWebhook {
  readonly server: Server;
  readonly port: number;
  /** Serves new connections with a renewed certificate; open ones keep theirs. */
  setCertificate(cert: string, key: string): void;
  close(): Promise<void>;
}

export interface InjectWebhookOptions {
  /** PEM serving certificate (with the webhook Service's DNS name) and key, from Skein's CA. */
  readonly cert: string;
  readonly key: string;
  readonly port: number;
  readonly host?: string;
  readonly inject: InjectOptions;
}

/** The webhook on its own TLS listener (port 0 picks a free one). */
export async function startInjectWebhook(opts: InjectWebhookOptions): Promise<InjectWebhook> {
  const handle = injectRequestHandler(opts.inject);
  const server = createServer({ cert: opts.cert, key: opts.key, minVersion: 'TLSv1.2' }, (req, res) => {
    if (!handle(req, res)) sendError(res, 404, 'not-found', `no route for ${req.method} ${req.url}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    setCertificate: (cert, key) => server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' }),
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
