import { accessorFor, cellFor, jsonPath } from '../schema.ts';
import type { CellValue, Column } from '../types.ts';

/**
 * Decodes searchStream rows straight into report cells, without building GoogleAdsRow objects: the rows of one
 * stream almost always share one layout (same keys, same order, only the values differ), so the layout of a row is
 * learnt once as a template — the literal text between its values — and each following row is matched against it
 * with `startsWith` and `indexOf`, slicing out only the values of the selected columns. Object creation is what
 * makes `JSON.parse` of GoogleAdsRows slow (six objects per search-term row), so this is several times faster.
 *
 * Only rows that match exactly are decoded this way: the same keys in the same order with the same whitespace,
 * strings without escapes or control characters, numbers in JSON syntax, `true`, `false`, `null`. Anything else
 * (a field left out, an array, an escape) is not matched, and the caller parses that row with `JSON.parse` and
 * `accessorFor`, which give the same cells; a row that does not match also becomes the template for the next ones.
 */
export class RowDecoder {
  private readonly columns: Column[];
  private readonly accessors: Array<(row: unknown) => CellValue>;
  private template: Template | null = null;

  constructor(columns: Column[]) {
    this.columns = columns;
    this.accessors = columns.map(accessorFor);
  }

  /** The cells of a parsed GoogleAdsRow (the slow path). */
  cellsOf(row: unknown): CellValue[] {
    const width = this.accessors.length;
    const cells: CellValue[] = new Array(width);
    for (let j = 0; j < width; j++) cells[j] = this.accessors[j]!(row);
    return cells;
  }

  /** Learns the layout of one row's text (a complete JSON object); a row it cannot template leaves none. */
  learn(rowText: string): boolean {
    // A row split between two network reads could not be matched, but usually has the same layout: keep it then.
    const re = this.template?.re;
    if (re) {
      re.lastIndex = 0;
      if (re.test(rowText) && re.lastIndex === rowText.length) return true;
    }
    this.template = learnTemplate(rowText, this.columns);
    return this.template !== null;
  }

  /**
   * Decodes the row starting at `text[pos]` (a `{`) into `out` and returns the index just past it, or -1 when the row
   * does not match the template (or there is none); nothing is added then.
   */
  match(text: string, pos: number, out: CellValue[][]): number {
    const t = this.template;
    if (!t) return -1;
    const re = t.re;
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return -1;
    const convert = t.convert;
    const cells: CellValue[] = new Array(convert.length);
    for (let j = 0; j < convert.length; j++) cells[j] = convert[j]!(m);
    out.push(cells);
    return re.lastIndex;
  }
}

const STRING = 1;
const SCALAR_KIND = 2;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
const SPECIAL = /[\u0000-\u001f\\]/g;
const SCALAR_RE = '-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?|true|false|null';
const SCALAR = new RegExp(`^(?:${SCALAR_RE})$`);
const STRING_RE = '[^"\\\\\\u0000-\\u001f]*';

interface Template {
  /**
   * The row's literal text with a group for each value (sticky): one native regexp match checks the layout, the JSON
   * syntax of every value (strings without escapes or control characters, numbers, `true`, `false`, `null`) and
   * captures the values the columns read.
   */
  re: RegExp;
  /** Per column: its cell from the match's captures. */
  convert: Array<(m: RegExpExecArray) => CellValue>;
}

/** Tokenises one row; null when it has something a template cannot hold (arrays, escapes, odd keys). */
function learnTemplate(text: string, columns: Column[]): Template | null {
  const literals: string[] = [];
  const kinds: number[] = [];
  const paths: string[] = [];
  const stack: string[] = [];
  let lit = '';
  let i = 0;
  const n = text.length;
  const ws = (): void => {
    while (i < n && /\s/.test(text[i]!)) lit += text[i++];
  };
  const str = (): string | null => {
    const end = text.indexOf('"', i + 1);
    if (end < 0) return null;
    const s = text.slice(i + 1, end);
    SPECIAL.lastIndex = 0;
    if (SPECIAL.test(s)) return null;
    return s;
  };
  // Object members, recursively: `{` ws (key ws `:` ws value ws (`,` ws key ...)*)? `}`.
  const object = (): boolean => {
    if (text[i] !== '{') return false;
    lit += '{';
    i++;
    ws();
    if (text[i] === '}') {
      lit += '}';
      i++;
      return true;
    }
    for (;;) {
      if (text[i] !== '"') return false;
      const key = str();
      if (key === null || key === '__proto__' || key.includes('.')) return false;
      lit += `"${key}"`;
      i += key.length + 2;
      ws();
      if (text[i] !== ':') return false;
      lit += ':';
      i++;
      ws();
      stack.push(key);
      const c = text[i];
      if (c === '{') {
        if (!object()) return false;
      } else if (c === '"') {
        const v = str();
        if (v === null) return false;
        literals.push(`${lit}"`);
        kinds.push(STRING);
        paths.push(stack.join('.'));
        lit = '"';
        i += v.length + 2;
      } else {
        const m = /^[^,}\]\s]+/.exec(text.slice(i, i + 64));
        if (!m || !SCALAR.test(m[0])) return false;
        literals.push(lit);
        kinds.push(SCALAR_KIND);
        paths.push(stack.join('.'));
        lit = '';
        i += m[0].length;
      }
      stack.pop();
      ws();
      if (text[i] === ',') {
        lit += ',';
        i++;
        ws();
        continue;
      }
      if (text[i] !== '}') return false;
      lit += '}';
      i++;
      return true;
    }
  };
  if (!object() || i !== n) return null;
  literals.push(lit);
  // A key seen twice: JSON.parse keeps the last value, so the column reads the last slot.
  const slotOf = new Map<string, number>();
  for (let s = 0; s < paths.length; s++) slotOf.set(paths[s]!, s);
  const group = kinds.map(() => 0);
  const convert: Array<(m: RegExpExecArray) => CellValue> = [];
  for (const col of columns) {
    const path = jsonPath(col.field).join('.');
    // A column naming an object (not a leaf) reads as the accessor would read an object: leave that to it.
    if (paths.some((p) => p.startsWith(`${path}.`))) return null;
    const slot = slotOf.get(path);
    const cell = cellFor(col);
    if (slot === undefined) {
      convert.push(() => cell(undefined));
      continue;
    }
    group[slot] = 1;
    convert.push(
      kinds[slot] === STRING
        ? (m) => cell(m[group[slot]!])
        : (m) => {
            const v = m[group[slot]!]!;
            return cell(v === 'null' ? null : v === 'true' ? true : v === 'false' ? false : Number(v));
          },
    );
  }
  // Number the capture groups in slot order.
  let source = '';
  let groups = 0;
  for (let s = 0; s < kinds.length; s++) {
    source += escapeRe(literals[s]!);
    const body = kinds[s] === STRING ? STRING_RE : SCALAR_RE;
    if (group[s]) {
      group[s] = ++groups;
      source += `(${body})`;
    } else source += `(?:${body})`;
  }
  source += escapeRe(literals[kinds.length]!);
  return { re: new RegExp(source, 'y'), convert };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
