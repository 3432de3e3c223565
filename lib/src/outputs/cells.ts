import { PermanentError } from '../errors/index.ts';
import {
  type OutputCell,
  type OutputColumn,
  type OutputColumnType,
  OutputErrorCode,
  type OutputRow,
  type SheetSpec,
} from './types.ts';

/**
 * Sheet specs and cells checked once, the same way for every target, so a report that writes a CSV also writes an
 * XLSX and a Google Sheet. Writers then only see canonical values: strings, finite numbers, booleans, `YYYY-MM-DD`
 * strings for dates, and null.
 */

export type CanonicalCell = string | number | boolean | null;

export interface CheckedSheet {
  name: string;
  columns: readonly OutputColumn[];
  currency: string | undefined;
}

const TYPES: ReadonlySet<OutputColumnType> = new Set([
  'string',
  'integer',
  'number',
  'money',
  'percent',
  'date',
  'url',
  'boolean',
]);

export function invalid(message: string): PermanentError {
  return new PermanentError(message, { code: OutputErrorCode.Invalid });
}

export function checkCurrency(currency: string | undefined, field: string): string | undefined {
  if (currency === undefined) return undefined;
  if (!/^[A-Z]{3}$/.test(currency)) throw invalid(`${field}: ${JSON.stringify(currency)} is not an ISO 4217 code`);
  return currency;
}

/** Validates a sheet spec against the sheets already in the output. */
export function checkSheet(spec: SheetSpec, taken: readonly string[], defaultCurrency?: string): CheckedSheet {
  const { name } = spec;
  const where = `sheet ${JSON.stringify(name)}`;
  if (typeof name !== 'string' || name.length < 1 || name.length > 31) {
    throw invalid(`${where}: name must be 1 to 31 characters (the XLSX limit)`);
  }
  if (/[[\]:*?/\\]/.test(name) || name.startsWith("'") || name.endsWith("'")) {
    throw invalid(`${where}: name must not contain [ ] : * ? / \\ nor start or end with '`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(name)) throw invalid(`${where}: name must not contain control characters`);
  if (name.toLowerCase() === 'history') throw invalid(`${where}: "History" is a name Excel reserves`);
  if (taken.some((t) => t.toLowerCase() === name.toLowerCase())) {
    throw invalid(`${where}: a sheet of that name (case-insensitively) is already in this output`);
  }
  if (!Array.isArray(spec.columns) || spec.columns.length < 1 || spec.columns.length > 1000) {
    throw invalid(`${where}: columns must list 1 to 1000 columns`);
  }
  const keys = new Set<string>();
  spec.columns.forEach((c, i) => {
    const at = `${where}, columns[${i}]`;
    if (typeof c.key !== 'string' || c.key.length === 0) throw invalid(`${at}: key must be a non-empty string`);
    if (keys.has(c.key)) throw invalid(`${at}: key ${JSON.stringify(c.key)} is used twice`);
    keys.add(c.key);
    if (typeof c.header !== 'string') throw invalid(`${at} (${c.key}): header must be a string`);
    if (!TYPES.has(c.type)) {
      throw invalid(`${at} (${c.key}): type ${JSON.stringify(c.type)} is not one of ${[...TYPES].join(', ')}`);
    }
    if (c.width !== undefined && !(Number.isFinite(c.width) && c.width > 0 && c.width <= 255)) {
      throw invalid(`${at} (${c.key}): width must be a number of characters from 1 to 255`);
    }
  });
  const currency = checkCurrency(spec.currency, `${where}: currency`) ?? defaultCurrency;
  return { name, columns: spec.columns, currency };
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function isCalendarDate(s: string): boolean {
  const m = DATE.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().startsWith(s);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v instanceof Date) return `Date(${Number.isNaN(v.getTime()) ? 'invalid' : v.toISOString()})`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return typeof v;
}

/**
 * The canonical value of one cell, or an error naming the sheet, the data row (1-based, header not counted), the
 * column and the reason.
 */
function canonical(sheet: string, rowNumber: number, col: OutputColumn, v: OutputCell): CanonicalCell {
  if (v === null || v === undefined) return null;
  const bad = (expected: string) =>
    invalid(
      `sheet ${JSON.stringify(sheet)}, row ${rowNumber}, column ${JSON.stringify(col.key)}: expected ${expected}, got ${describe(v)}`,
    );
  switch (col.type) {
    case 'string':
    case 'url':
      if (typeof v === 'string') return v;
      if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean') return String(v);
      throw bad('a string');
    case 'integer':
      if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
      throw bad('a whole number');
    case 'number':
    case 'money':
    case 'percent':
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      throw bad(col.type === 'percent' ? 'a finite number (a ratio: 0.25 is 25%)' : 'a finite number');
    case 'date':
      if (typeof v === 'string' && isCalendarDate(v)) return v;
      if (v instanceof Date && !Number.isNaN(v.getTime())) return v.toISOString().slice(0, 10);
      throw bad('a YYYY-MM-DD date or a Date');
    case 'boolean':
      if (typeof v === 'boolean') return v;
      throw bad('true or false');
  }
}

/** Checks a chunk of rows; `firstRowNumber` is the data row number of `rows[0]`. */
export function canonicalRows(
  sheet: CheckedSheet,
  rows: readonly OutputRow[],
  firstRowNumber: number,
): CanonicalCell[][] {
  if (!Array.isArray(rows)) throw invalid(`sheet ${JSON.stringify(sheet.name)}: append takes an array of rows`);
  const width = sheet.columns.length;
  const out: CanonicalCell[][] = new Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    const n = firstRowNumber + r;
    if (!Array.isArray(row) || row.length !== width) {
      throw invalid(
        `sheet ${JSON.stringify(sheet.name)}, row ${n}: expected an array of ${width} cells (one per column), got ${Array.isArray(row) ? `${row.length} cells` : describe(row)}`,
      );
    }
    const cells: CanonicalCell[] = new Array(width);
    for (let c = 0; c < width; c++) cells[c] = canonical(sheet.name, n, sheet.columns[c]!, row[c]);
    out[r] = cells;
  }
  return out;
}

/** Days since 1899-12-30: the serial date of spreadsheets (Excel's 1900 system as Google Sheets counts it). */
export function serialDate(isoDay: string): number {
  return Math.round(Date.parse(`${isoDay}T00:00:00Z`) / 86_400_000) + 25_569;
}

/** Cuts text to `max` characters, ending with `…` when cut; never splits a surrogate pair. */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max - 1;
  const code = s.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${s.slice(0, end)}…`;
}
