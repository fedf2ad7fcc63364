/** Response headers on their way to the caller: what hop-by-hop handling keeps. */
import { describe, expect, it } from 'vitest';
import { responseHeaders, transferCodings } from './headers.js';

describe('responseHeaders', () => {
  it('keeps transfer codings other than the final chunked (the client must undo them) and drops the rest of hop-by-hop', () => {
    const out: string[] = [];
    responseHeaders([Buffer.from('Transfer-Encoding'), Buffer.from('gzip, chunked'), 'Connection', 'x-hop', 'x-hop', '1', 'Keep-Alive', 'timeout=5', 'x-app', 'a'], out);
    expect(out).toEqual(['Transfer-Encoding', 'gzip', 'x-app', 'a']);
  });

  it('reads a Transfer-Encoding value without its final chunked, case and spacing aside', () => {
    expect(transferCodings('chunked')).toBe('');
    expect(transferCodings('Chunked')).toBe('');
    expect(transferCodings(' chunked , ')).toBe('');
    expect(transferCodings('gzip, chunked')).toBe('gzip');
    expect(transferCodings('gzip,deflate ,CHUNKED')).toBe('gzip, deflate');
    // Not ending in chunked (a body read to the close): every coding stays.
    expect(transferCodings('gzip')).toBe('gzip');
  });
});
