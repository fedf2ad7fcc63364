import { describe, expect, it } from 'vitest';
import { GRPC_UNKNOWN, grpcStatusCode, grpcStatusOfHttp } from './grpc-status.js';

describe('grpcStatusCode', () => {
  it('keeps a code from 0 to 16, header text or number', () => {
    for (let code = 0; code <= 16; code++) {
      expect(grpcStatusCode(String(code))).toBe(code);
      expect(grpcStatusCode(code)).toBe(code);
    }
    expect(grpcStatusCode('05')).toBe(5);
    expect(grpcStatusCode('014')).toBe(14);
    expect(grpcStatusCode('0000')).toBe(0);
  });

  it('reads anything else as UNKNOWN (2)', () => {
    for (const value of ['17', '32', '40', '99', '100', '-1', 'abc', '', ' 0', '0 ', '1.0', '0x1', '1e1']) expect(grpcStatusCode(value), value).toBe(GRPC_UNKNOWN);
    for (const value of [17, 32, -1, 1.5, NaN, Infinity]) expect(grpcStatusCode(value), String(value)).toBe(GRPC_UNKNOWN);
  });
});

describe('grpcStatusOfHttp', () => {
  it('reads an answer without grpc-status by its HTTP status, as gRPC clients do', () => {
    expect([400, 401, 403, 404, 429, 502, 503, 504].map(grpcStatusOfHttp)).toEqual([13, 16, 7, 12, 14, 14, 14, 14]);
    for (const status of [200, 204, 302, 500, 501]) expect(grpcStatusOfHttp(status), String(status)).toBe(GRPC_UNKNOWN);
  });
});
