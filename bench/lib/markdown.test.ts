import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { markdownTable, markers, replaceBetweenMarkers } from './markdown.js';

describe('replaceBetweenMarkers', () => {
  const text = 'intro\n<!-- bench:data-plane:start -->\nold table\n<!-- bench:data-plane:end -->\noutro\n';

  it('replaces only what is between the markers, keeping them', () => {
    expect(replaceBetweenMarkers(text, 'data-plane', '| new |\n')).toBe(
      'intro\n<!-- bench:data-plane:start -->\n| new |\n<!-- bench:data-plane:end -->\noutro\n',
    );
  });

  it('is idempotent', () => {
    const once = replaceBetweenMarkers(text, 'data-plane', 'x');
    expect(replaceBetweenMarkers(once, 'data-plane', 'x')).toBe(once);
  });

  it('fails when the block has no markers, rather than appending somewhere', () => {
    expect(() => replaceBetweenMarkers(text, 'grpc', 'x')).toThrow(/bench:grpc:start/);
  });

  it('finds the data-plane markers in the README, so --write-readme has somewhere to write', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const { start, end } = markers('data-plane');
    const benchmarks = readme.slice(readme.indexOf('## Benchmarks'));
    expect(benchmarks.indexOf(start)).toBeGreaterThan(0);
    expect(benchmarks.indexOf(end)).toBeGreaterThan(benchmarks.indexOf(start));
  });
});

describe('markdownTable', () => {
  it('writes a header, a rule and one line per row', () => {
    expect(markdownTable(['a', 'b'], [['1', '2']])).toBe('| a | b |\n| --- | --- |\n| 1 | 2 |');
  });
});
