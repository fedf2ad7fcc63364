/**
 * Loads catalog.proto and health.proto at runtime for the catalog server and its clients.
 * tsc does not copy .proto files into dist/, so they are looked up beside this module first
 * and in the source tree second.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

function protoPath(file: string): string {
  for (const rel of [`./${file}`, `../../../demo-services/catalog/${file}`]) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(`catalog: ${file} not found beside demo-services/catalog`);
}

/** A product as proto-loader decodes it (camelCase, optional field absent when unset). */
export interface Product {
  id: string;
  name: string;
  description: string;
  priceCents: number;
  currency: string;
  version: string;
  discountedPriceCents?: number;
}

export interface ListProductsResponse {
  products: Product[];
  version: string;
}

const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

interface Loaded {
  catalog: grpc.ServiceClientConstructor;
  health: grpc.ServiceClientConstructor;
}

export function loadCatalogProtos(): Loaded {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync([protoPath('catalog.proto'), protoPath('health.proto')], LOADER_OPTIONS)) as unknown as {
    skein: { demo: { catalog: { v1: { Catalog: grpc.ServiceClientConstructor } } } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return { catalog: pkg.skein.demo.catalog.v1.Catalog, health: pkg.grpc.health.v1.Health };
}
