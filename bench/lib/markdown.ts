/** Markdown output: tables, and replacing a generated block between markers in a file's text. */

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function markers(block: string): { start: string; end: string } {
  return { start: `<!-- bench:${block}:start -->`, end: `<!-- bench:${block}:end -->` };
}

/** `text` with everything between the block's start and end markers replaced by `content`. */
export function replaceBetweenMarkers(text: string, block: string, content: string): string {
  const { start, end } = markers(block);
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < 0 || to < from) throw new Error(`markers ${start} … ${end} not found (in order) in the file`);
  return `${text.slice(0, from + start.length)}\n${content.trim()}\n${text.slice(to)}`;
}
