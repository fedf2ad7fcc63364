/**
 * A promise-based client of `catalog`, dialled through the mesh (or directly in tests).
 * NOT_FOUND becomes `undefined`; any other failure an UpstreamError naming catalog.
 */
import * as grpc from '@grpc/grpc-js';
import type { Mesh } from '../shared/mesh.js';
import { UpstreamError } from '../shared/http-errors.js';
import type { TraceHeaders } from '../shared/trace.js';
import { loadCatalogProtos, type ListProductsResponse, type Product } from './proto.js';

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;

interface RawCatalogClient extends grpc.Client {
  ListProducts: Unary<object, ListProductsResponse>;
  GetProduct: Unary<{ id: string }, Product>;
}

const DEADLINE_MS = 5_000;

/**
 * grpc-js backs off up to 120 s between reconnects by default; the next hop is a local
 * sidecar that may restart, so keep the wait short.
 */
const CHANNEL_OPTIONS = { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 2_000 };

export class CatalogClient {
  private readonly raw: RawCatalogClient;

  constructor(mesh: Mesh) {
    const { target, options } = mesh.grpc('catalog');
    const { catalog } = loadCatalogProtos();
    this.raw = new catalog(target, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, ...options }) as unknown as RawCatalogClient;
  }

  async list(trace: TraceHeaders): Promise<ListProductsResponse> {
    return this.unary(this.raw.ListProducts, {}, trace) as Promise<ListProductsResponse>;
  }

  async get(id: string, trace: TraceHeaders): Promise<Product | undefined> {
    try {
      return await this.unary(this.raw.GetProduct, { id }, trace);
    } catch (err) {
      if ((err as grpc.ServiceError).code === grpc.status.NOT_FOUND) return undefined;
      throw err;
    }
  }

  close(): void {
    this.raw.close();
  }

  private unary<Req, Res>(method: Unary<Req, Res>, req: Req, trace: TraceHeaders): Promise<Res> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(trace)) md.set(k, v);
    return new Promise((resolve, reject) => {
      method.call(this.raw, req, md, { deadline: Date.now() + DEADLINE_MS }, (err, res) => {
        if (!err) return resolve(res!);
        if (err.code === grpc.status.NOT_FOUND) return reject(err);
        reject(new UpstreamError('catalog', `${grpc.status[err.code] ?? err.code}: ${err.details}`, err.code === grpc.status.DEADLINE_EXCEEDED ? 504 : 503));
      });
    });
  }
}
