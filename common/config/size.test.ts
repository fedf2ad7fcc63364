import { describe, expect, it } from 'vitest';
import { formatSize, parseSize } from './size.js';

describe('parseSize', () => {
  it('reads plain bytes and binary or decimal units', () => {
    expect(parseSize('65536')).toBe(65536);
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('10 MiB')).toBe(10 * 1024 * 1024);
    expect(parseSize('1gb')).toBe(1e9);
    expect(parseSize('0')).toBe(0);
  });

  it('reads a bare prefix as binary, as nginx does, and a Kubernetes-style Ki/Mi/Gi one', () => {
    expect(parseSize('512k')).toBe(512 * 1024);
    expect(parseSize('1Mi')).toBe(1024 * 1024);
    expect(parseSize('2G')).toBe(2 * 1024 ** 3);
  });

  it('refuses what is not a size', () => {
    for (const bad of ['', 'ten', '1.5MiB', '-1', '10 parsecs']) expect(parseSize(bad), bad).toBeUndefined();
  });
});

describe('formatSize', () => {
  it('writes the largest binary unit that divides the size, else bytes, and reads back as the same size', () => {
    for (const [bytes, text] of [[64 * 1024, '64KiB'], [128 * 1024, '128KiB'], [1024 ** 2, '1MiB'], [3 * 1024 ** 3, '3GiB'], [1536, '1536'], [0, '0']] as const) {
      expect(formatSize(bytes)).toBe(text);
      expect(parseSize(text)).toBe(bytes);
    }
  });
});
