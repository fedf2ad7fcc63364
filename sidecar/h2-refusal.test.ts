/** The GOAWAY debug data by which a Skein inbound refuses an HTTP/2 caller's certificate. */
import { describe, expect, it } from 'vitest';
import { refusalFrames, refusalGoAwayData, refusalLabel } from './h2-refusal.js';

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

  it('goes out as the server preface (an empty SETTINGS) and a GOAWAY: last stream 0, NO_ERROR, the marker and label', () => {
    const frames = refusalFrames('untrusted-certificate');
    // Length 0, type SETTINGS, no flags, stream 0.
    expect([...frames.subarray(0, 9)]).toEqual([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const goAway = frames.subarray(9);
    const data = refusalGoAwayData('untrusted-certificate');
    expect(goAway.readUIntBE(0, 3)).toBe(8 + data.length);
    expect([goAway[3], goAway[4], goAway.readUInt32BE(5)]).toEqual([7, 0, 0]);
    expect([goAway.readUInt32BE(9), goAway.readUInt32BE(13)]).toEqual([0, 0]);
    expect(refusalLabel(0, goAway.subarray(17))).toBe('untrusted-certificate');
    expect(goAway.length).toBe(17 + data.length);
  });
});
