/** The GOAWAY debug data by which a Skein inbound refuses an HTTP/2 caller's certificate. */
import { describe, expect, it } from 'vitest';
import { refusalGoAwayData, refusalLabel } from './h2-refusal.js';

describe('the refusal GOAWAY', () => {
  it('carries the reason label, read back from a GOAWAY that took no stream', () => {
    expect(refusalLabel(0, refusalGoAwayData('untrusted-certificate'))).toBe('untrusted-certificate');
  });

  it('is not believed from a GOAWAY that took a stream: the peer may have processed it', () => {
    expect(refusalLabel(1, refusalGoAwayData('untrusted-certificate'))).toBeUndefined();
  });

  it('is any other GOAWAY without the marker, or with a label that is not one', () => {
    expect(refusalLabel(0, undefined)).toBeUndefined();
    expect(refusalLabel(0, Buffer.alloc(0))).toBeUndefined();
    expect(refusalLabel(0, Buffer.from('untrusted-certificate'))).toBeUndefined();
    expect(refusalLabel(0, refusalGoAwayData(''))).toBeUndefined();
    expect(refusalLabel(0, refusalGoAwayData('untrusted-certificate\r\nx-evil: 1'))).toBeUndefined();
    expect(refusalLabel(0, refusalGoAwayData('client certificate refused: UNABLE_TO_GET_ISSUER_CERT'))).toBeUndefined();
  });
});
