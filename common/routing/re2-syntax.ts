/**
 * RE2 (Envoy's engine) syntax that JavaScript's, on which route regexes run without the `u`
 * flag, reads as something else without a word: `\p{L}` is the letter p and `{L}`, `\A` and
 * `\z` are the letters A and z rather than anchors, `\Q…\E` quotes nothing, and a POSIX class
 * (`[[:digit:]]`) is a class of the characters `[ : d i g t` followed by a literal `]`. A rule
 * written so never matches what it means, so it is refused where config enters, with the
 * JavaScript form to write instead. (Syntax JavaScript rejects, such as `(?i)` or
 * `(?P<name>…)`, is refused as an invalid regex already.)
 */

const ESCAPES: Readonly<Record<string, string>> = {
  A: 'a start anchor in RE2, the letter "A" here: write ^, or nothing, as a route regex matches the whole value',
  z: 'an end anchor in RE2, the letter "z" here: write $, or nothing, as a route regex matches the whole value',
  Z: 'an end anchor elsewhere, the letter "Z" here: write $, or nothing, as a route regex matches the whole value',
  p: 'a Unicode class in RE2, the letter "p" here (route regexes run without the u flag): write the characters as a class, e.g. [A-Za-z] or [^/]',
  P: 'a negated Unicode class in RE2, the letter "P" here (route regexes run without the u flag): write the characters as a negated class, e.g. [^A-Za-z]',
  Q: 'the start of quoted text in RE2, the letter "Q" here: escape each special character instead (\\. for a dot)',
  E: 'the end of quoted text in RE2, the letter "E" here: escape each special character instead (\\. for a dot)',
};

/** What to write inside the brackets for each POSIX class. */
const POSIX: Readonly<Record<string, string>> = {
  alnum: 'A-Za-z0-9',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7f',
  blank: ' \\t',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\s',
  upper: 'A-Z',
  word: '\\w',
  xdigit: '0-9A-Fa-f',
};

/** Why `source` means something else to RE2 than to JavaScript, or undefined. */
export function re2OnlySyntax(source: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      const meaning = ESCAPES[next];
      if (meaning !== undefined) return `"\\${next}" is ${meaning}`;
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
      else if (c === '[' && source[i + 1] === ':') {
        const posix = /^\[:([a-z]+):\]/.exec(source.slice(i));
        if (posix !== null) {
          const inside = POSIX[posix[1]!];
          const write = inside === undefined ? 'the characters themselves' : `${inside} inside the brackets ("[${inside}]" for "[${posix[0]}]")`;
          return `"${posix[0]}" is a POSIX class in RE2; JavaScript has none, and reads it as a class of the characters "[:${posix[1]}" followed by "]": write ${write}`;
        }
      }
    } else if (c === '[') inClass = true;
  }
  return undefined;
}
