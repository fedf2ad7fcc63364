import { describe, expect, it } from 'vitest';
import { parsePortText } from './port-text.js';

describe('parsePortText', () => {
  it('takes decimal ports only, from 1 (or 0 when asked) to 65535', () => {
    expect(['1', '8080', '65535', '08080'].map((t) => parsePortText(t))).toEqual([1, 8080, 65535, 8080]);
    for (const bad of ['0', '65536', '0x1F90', '8e3', ' 80', '80 ', '', '-1', '1.5', '123456']) expect(parsePortText(bad), bad).toBeUndefined();
    expect(parsePortText('0', 0)).toBe(0);
    for (const bad of ['', '0x0', '65536', 'any']) expect(parsePortText(bad, 0), bad).toBeUndefined();
  });
});
