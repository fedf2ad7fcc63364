/**
 * Routing, pure and shared: the sidecar compiles route tables from it and the control plane's
 * `explain` reuses the same code, so both always agree on where a request goes.
 */
export * from './match.js';
export * from './split.js';
export * from './subsets.js';
export * from './table.js';
export * from './explain.js';
export * from './rewrite.js';
