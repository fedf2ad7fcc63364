/**
 * The dashboard (SPEC §5 `GET /`): a static page plus its script and stylesheet from
 * `assets/`, all served from here (no CDN). The page reads the admin API itself. tsc does
 * not copy the assets into dist/, so they are looked up beside this module first (the
 * image copies them there) and in the source tree second.
 */
import type { ServerResponse } from 'node:http';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError } from '../admin-api/errors.js';
import type { Router } from '../admin-api/router.js';

const CANDIDATES = ['./assets/', '../../../control-plane/dashboard/assets/'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export function dashboardAssetsDir(): string {
  for (const rel of CANDIDATES) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  throw new Error('skein: dashboard assets not found beside control-plane/dashboard');
}

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

/** Reads every asset once at start: they are small and never change while running. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) assets.set(name, { body: readFileSync(join(dir, name)), type });
  }
  return assets;
}

export function registerDashboardRoutes(router: Router, dir: string = dashboardAssetsDir()): void {
  const assets = loadAssets(dir);
  const asset = (name: string): Asset => {
    const found = assets.get(name);
    if (!found) throw new ApiError('not-found', `no dashboard file ${name}`);
    return found;
  };
  router
    .add({
      method: 'GET',
      path: '/',
      summary: 'The dashboard: service graph, golden metrics, canary weights, proxies, live tap, traces',
      auth: false,
      handler: async ({ res }) => send(res, asset('index.html')),
    })
    .add({
      method: 'GET',
      path: '/dashboard/{file}',
      summary: "The dashboard's script and stylesheet",
      auth: false,
      handler: async ({ res, params }) => send(res, asset(params.file!)),
    });
}

function send(res: ServerResponse, { body, type }: Asset): undefined {
  res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  res.end(body);
  return undefined;
}
