/**
 * Route regexes run on node's backtracking RegExp for every request they are tried on, so a
 * pattern that backtracks exponentially (`/api/(\w+/?)+` against `/api/aaaa…a!`) would block
 * a sidecar's event loop for minutes on one crafted path. Envoy's safe_regex (RE2) cannot;
 * here the patterns that can are refused where config enters, by their shape:
 *
 * - a nested quantifier: a repeated group (`*`, `+`, `{n,}`, `{n,m}` with m > 1) holding a
 *   variable-length repeat (`+`, `*`, `{n,m}`): `(\w+/?)+`, `(a*)*`, `(?:x[0-9]{1,3})+`;
 * - overlapping alternatives under a repeat: two branches that can start with the same
 *   character, `(a|ab)+`, `(\w|-|_)*` (here `\w` holds `_`);
 * - adjacent unbounded repeats (`*`, `+`, `{n,}`) in one sequence, with only optional pieces
 *   between them, whose atoms can match the same character: `a*a*`, `\w+\w*`, `.*.*`,
 *   `[a-z]+a+`. Each such pair multiplies the ways to split a string, so `^/a*a*a*a*a*a*b$`
 *   is polynomial (90 characters took 11.8 s); `[0-9]+/.*` (a required `/` between) is not.
 *
 * This is the classic star-height / ambiguity check (as safe-regex and eslint's
 * no-super-linear-backtracking do, simplified): conservative, so a few safe patterns are
 * refused too (`(/[0-9]+)+`), always with a rewrite that is accepted (`(/[0-9]+)+` is
 * `(/[0-9]*[0-9])+`… or simply `[/0-9]+`). Polynomial backtracking through a required
 * character (`.*a.*a.*a`), or across a group's edge (`(a*)a*`), is not detected.
 */

/** Characters 0–127 one by one, and index 128 for every other character. */
type CharSet = boolean[];

const SIZE = 129;
const OTHER = 128;
const none = (): CharSet => new Array<boolean>(SIZE).fill(false);
const all = (): CharSet => new Array<boolean>(SIZE).fill(true);
const union = (a: CharSet, b: CharSet): CharSet => a.map((v, i) => v || b[i]!);
const intersects = (a: CharSet, b: CharSet): boolean => a.some((v, i) => v && b[i]!);

function ofCode(code: number): CharSet {
  const set = none();
  set[code < 128 ? code : OTHER] = true;
  return set;
}

function ofRange(from: number, to: number): CharSet {
  const set = none();
  for (let c = from; c <= Math.min(to, 127); c++) set[c] = true;
  if (to >= 128) set[OTHER] = true;
  return set;
}

const DIGIT = ofRange(48, 57);
const WORD = union(union(union(ofRange(65, 90), ofRange(97, 122)), DIGIT), ofCode(95));
const SPACE = union(union(ofRange(9, 13), ofCode(32)), ofCode(OTHER));
const negate = (set: CharSet, keepOther = true): CharSet => set.map((v, i) => (i === OTHER ? keepOther : !v));

/** What the check needs to know about a piece of the pattern. */
interface Piece {
  /** Characters it can start with. */
  first: CharSet;
  /** Whether it can match the empty string. */
  nullable: boolean;
  /** The first variable-length repeat inside it (source text), if any. */
  repeat: string | undefined;
  /** The first alternation inside it whose branches can start alike (source text), if any. */
  overlap: string | undefined;
  /** Every character it can match anywhere. */
  chars: CharSet;
  /** Set on a `*`, `+` or `{n,}` repeat: its source text. */
  unbounded?: string;
}

export interface BacktrackRisk {
  readonly kind: 'nested quantifier' | 'overlapping alternatives' | 'adjacent repeats';
  readonly message: string;
}

/**
 * Why `source` may backtrack catastrophically, or undefined when it is not of a shape that
 * can. Call only with a source `new RegExp` accepts.
 */
export function backtrackRisk(source: string): BacktrackRisk | undefined {
  const parser = new Parser(source);
  parser.alternation();
  return parser.risk;
}

class Parser {
  private at = 0;
  risk: BacktrackRisk | undefined;

  constructor(private readonly src: string) {}

  alternation(): Piece {
    const start = this.at;
    const branches = [this.sequence()];
    while (this.src[this.at] === '|') {
      this.at++;
      branches.push(this.sequence());
    }
    if (branches.length === 1) return branches[0]!;
    let overlap = branches.find((b) => b.overlap)?.overlap;
    for (let i = 0; i < branches.length && overlap === undefined; i++) {
      for (let j = i + 1; j < branches.length; j++) {
        if (intersects(branches[i]!.first, branches[j]!.first)) {
          overlap = this.src.slice(start, this.at);
          break;
        }
      }
    }
    return {
      first: branches.reduce((acc, b) => union(acc, b.first), none()),
      nullable: branches.some((b) => b.nullable),
      repeat: branches.find((b) => b.repeat)?.repeat,
      overlap,
      chars: branches.reduce((acc, b) => union(acc, b.chars), none()),
    };
  }

  private sequence(): Piece {
    const seq: Piece = { first: none(), nullable: true, repeat: undefined, overlap: undefined, chars: none() };
    // The unbounded repeats since the last required piece: their characters, and the first's text.
    let open: CharSet | undefined;
    let openText = '';
    while (this.at < this.src.length && this.src[this.at] !== '|' && this.src[this.at] !== ')') {
      const item = this.item();
      if (item.unbounded !== undefined) {
        if (open !== undefined && this.risk === undefined && intersects(open, item.chars)) {
          this.risk = { kind: 'adjacent repeats', message: `"${openText}" and "${item.unbounded}" repeat without bound, one after the other, and can match the same characters` };
        }
        if (open === undefined || !item.nullable) {
          open = item.chars;
          openText = item.unbounded;
        } else open = union(open, item.chars);
      } else if (!item.nullable) open = undefined;
      seq.chars = union(seq.chars, item.chars);
      if (seq.nullable) seq.first = union(seq.first, item.first);
      seq.nullable &&= item.nullable;
      seq.repeat ??= item.repeat;
      seq.overlap ??= item.overlap;
    }
    return seq;
  }

  private item(): Piece {
    const start = this.at;
    const atom = this.atom();
    const quantifier = this.quantifier();
    if (quantifier === undefined) return atom;
    const text = this.src.slice(start, this.at);
    const { min, max } = quantifier;
    if (max > 1 && this.risk === undefined) {
      if (atom.repeat !== undefined) {
        this.risk = { kind: 'nested quantifier', message: `"${text}" repeats a group that holds the repeat "${atom.repeat}"` };
      } else if (atom.overlap !== undefined) {
        this.risk = { kind: 'overlapping alternatives', message: `"${text}" repeats the alternation "${atom.overlap}", whose branches can start with the same character` };
      }
    }
    return {
      first: atom.first,
      nullable: atom.nullable || min === 0,
      repeat: atom.repeat ?? (max > 1 && min < max ? text : undefined),
      overlap: atom.overlap,
      chars: atom.chars,
      unbounded: max === Infinity ? text : undefined,
    };
  }

  private quantifier(): { min: number; max: number } | undefined {
    const c = this.src[this.at];
    let q: { min: number; max: number } | undefined;
    if (c === '*') q = { min: 0, max: Infinity };
    else if (c === '+') q = { min: 1, max: Infinity };
    else if (c === '?') q = { min: 0, max: 1 };
    if (q) {
      this.at++;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.at));
      if (!m) return undefined; // a literal "{" outside unicode mode
      this.at += m[0].length;
      const min = Number(m[1]);
      q = { min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]) };
    } else {
      return undefined;
    }
    if (this.src[this.at] === '?') this.at++; // lazy: the same backtracking, in another order
    return q;
  }

  private atom(): Piece {
    const c = this.src[this.at]!;
    const plain = (first: CharSet): Piece => ({ first, nullable: false, repeat: undefined, overlap: undefined, chars: first });
    const empty = (): Piece => ({ first: none(), nullable: true, repeat: undefined, overlap: undefined, chars: none() });
    if (c === '(') {
      this.at++;
      let lookaround = false;
      if (this.src[this.at] === '?') {
        const rest = this.src.slice(this.at);
        const head = /^\?(:|=|!|<=|<!|<[A-Za-z_$][\w$]*>)/.exec(rest)![0];
        lookaround = /^\?(=|!|<=|<!)$/.test(head);
        this.at += head.length;
      }
      const inner = this.alternation();
      this.at++; // ')'
      return lookaround ? { ...empty(), repeat: inner.repeat, overlap: inner.overlap } : { ...inner, unbounded: undefined };
    }
    this.at++;
    if (c === '^' || c === '$') return empty();
    if (c === '.') return plain(negate(ofCode(10)));
    if (c === '[') return plain(this.charClass());
    if (c === '\\') {
      const e = this.src[this.at++]!;
      if (e === 'b' || e === 'B') return empty();
      if (/[1-9]/.test(e)) {
        while (/[0-9]/.test(this.src[this.at] ?? '')) this.at++;
        return { first: all(), nullable: true, repeat: undefined, overlap: undefined, chars: all() };
      }
      if (e === 'k' && this.src[this.at] === '<') {
        this.at = this.src.indexOf('>', this.at) + 1;
        return { first: all(), nullable: true, repeat: undefined, overlap: undefined, chars: all() };
      }
      return plain(this.escape(e));
    }
    return plain(ofCode(c.charCodeAt(0)));
  }

  /** The set of an escape whose letter (after `\`) was just read. */
  private escape(e: string): CharSet {
    switch (e) {
      case 'd': return DIGIT;
      case 'D': return negate(DIGIT);
      case 'w': return WORD;
      case 'W': return negate(WORD);
      case 's': return SPACE;
      case 'S': return negate(SPACE);
      case 'n': return ofCode(10);
      case 'r': return ofCode(13);
      case 't': return ofCode(9);
      case 'f': return ofCode(12);
      case 'v': return ofCode(11);
      case '0': return ofCode(0);
      case 'x': {
        const hex = /^[0-9a-fA-F]{2}/.exec(this.src.slice(this.at));
        if (!hex) return ofCode(120);
        this.at += 2;
        return ofCode(parseInt(hex[0], 16));
      }
      case 'u': {
        const hex = /^[0-9a-fA-F]{4}/.exec(this.src.slice(this.at));
        if (!hex) return ofCode(117);
        this.at += 4;
        return ofCode(parseInt(hex[0], 16));
      }
      case 'c': {
        const letter = /^[A-Za-z]/.exec(this.src.slice(this.at));
        if (!letter) return ofCode(92);
        this.at++;
        return ofCode(letter[0].charCodeAt(0) % 32);
      }
      default: return ofCode(e.charCodeAt(0));
    }
  }

  /** A `[...]` class whose `[` was just read. */
  private charClass(): CharSet {
    let negated = false;
    if (this.src[this.at] === '^') {
      negated = true;
      this.at++;
    }
    let set = none();
    // One member: its set, and its code when it is a single character (for ranges).
    const member = (): { set: CharSet; code: number | undefined } => {
      const c = this.src[this.at++]!;
      if (c !== '\\') return { set: ofCode(c.charCodeAt(0)), code: c.charCodeAt(0) };
      const e = this.src[this.at++]!;
      if (e === 'b') return { set: ofCode(8), code: 8 };
      if (/[dDwWsS]/.test(e)) return { set: this.escape(e), code: undefined };
      const single = this.escape(e);
      const code = single.indexOf(true);
      return { set: single, code: code === OTHER ? 0x10000 : code };
    };
    while (this.at < this.src.length && this.src[this.at] !== ']') {
      const from = member();
      if (this.src[this.at] === '-' && this.src[this.at + 1] !== undefined && this.src[this.at + 1] !== ']') {
        this.at++;
        const to = member();
        set = union(set, from.code !== undefined && to.code !== undefined ? ofRange(from.code, to.code) : union(union(from.set, to.set), ofCode(45)));
      } else {
        set = union(set, from.set);
      }
    }
    this.at++; // ']'
    return negated ? negate(set) : set;
  }
}
