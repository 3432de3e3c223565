/**
 * Rows on their way to a processing thread. The connector hands out `RowBatch`es (arrays of JS cells); copying those
 * to a thread with the structured clone algorithm costs about as much as processing them, so the main thread packs
 * rows into one buffer that a thread reads without a copy (an ArrayBuffer *transferred*, or a recycled slot of a
 * SharedArrayBuffer, see processing/slots.ts):
 *
 * - number-like columns (integer, number, money, boolean) as Float64 column vectors, null as NaN;
 * - text-like columns (id, string, enum, date, string[]) as Int32 codes into one dictionary of distinct values per
 *   batch, kept as UTF-8 bytes with offsets; null as code -1. Names, ids, dates and statuses repeat across rows, so
 *   the dictionary also makes a batch small, and a thread decodes each distinct value at most once (or never: the
 *   n-gram counter reads the bytes).
 *
 * {@link openBatch} gives a thread a {@link ColumnBatch} over a packed batch without copying it.
 */
import type { CellValue, Column, ColumnType } from '@ppc/lib/ads';
import { PermanentError } from '@ppc/lib/errors';

export interface PackedColumn {
  /** The connector's column name (`metrics.cost`, `campaign.id`). */
  name: string;
  type: ColumnType;
  kind: 'number' | 'text';
  /** Position among the columns of its kind. */
  index: number;
}

/**
 * A batch of rows in one buffer region; plain data, so it crosses threads and files as it is. The region is
 * `buffer[byteOffset, byteOffset + byteLength)`: an ArrayBuffer of its own (moved to the thread), or a slot of a
 * SharedArrayBuffer that the run recycles once the thread is done with it (see processing/slots.ts).
 */
export interface PackedBatch {
  rows: number;
  columns: PackedColumn[];
  /** Distinct text values (dictionary entries). */
  dictSize: number;
  dictBytes: number;
  /** Float64 numbers (column-major) | Int32 codes (column-major) | Int32 dictionary offsets (dictSize + 1) | UTF-8. */
  buffer: ArrayBuffer | SharedArrayBuffer;
  /** Where the batch starts in `buffer`; a multiple of 8. */
  byteOffset: number;
  byteLength: number;
}

/** Where a packed batch goes: `bytes` bytes at an 8-aligned offset of some buffer. */
export type BatchAllocator = (bytes: number) => { buffer: ArrayBuffer | SharedArrayBuffer; byteOffset: number };

/** A fresh ArrayBuffer per batch: for batches that are transferred, or kept. */
export const ownBuffer: BatchAllocator = (bytes) => ({ buffer: new ArrayBuffer(bytes), byteOffset: 0 });

export const REPORT_COLUMN_MISSING = 'REPORT_COLUMN_MISSING';

const NUMBER_TYPES: ReadonlySet<ColumnType> = new Set(['integer', 'number', 'money', 'boolean']);

function layout(rows: number, numbers: number, texts: number, dictSize: number) {
  const codes = numbers * rows * 8;
  const offsets = codes + texts * rows * 4;
  const bytes = offsets + (dictSize + 1) * 4;
  return { codes, offsets, bytes };
}

/**
 * Packs rows of one schema into {@link PackedBatch}es of at most `capacity` rows. Reused across batches: `finish()`
 * returns the packed rows and starts an empty batch.
 */
export class BatchPacker {
  readonly columns: PackedColumn[];
  readonly capacity: number;
  private readonly numberSlots: number[] = [];
  private readonly textSlots: number[] = [];
  private nums: Float64Array;
  private codes: Int32Array;
  private dict = new Map<string, number>();
  private offsets: number[] = [0];
  private bytes: Uint8Array;
  private byteLength = 0;
  private count = 0;

  constructor(schema: readonly Column[], capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer`);
    this.capacity = capacity;
    let n = 0;
    let t = 0;
    this.columns = schema.map((c, i) => {
      const kind = NUMBER_TYPES.has(c.type) ? 'number' : 'text';
      if (kind === 'number') this.numberSlots.push(i);
      else this.textSlots.push(i);
      return { name: c.name, type: c.type, kind, index: kind === 'number' ? n++ : t++ };
    });
    this.nums = new Float64Array(this.numberSlots.length * capacity);
    this.codes = new Int32Array(this.textSlots.length * capacity);
    this.bytes = new Uint8Array(Math.max(1024, capacity * 16));
  }

  get rows(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  /** Adds one row (cells in schema order); the caller checks `full` first. */
  add(row: readonly CellValue[]): void {
    if (this.count >= this.capacity) throw new RangeError('batch is full');
    const r = this.count++;
    const cap = this.capacity;
    const ns = this.numberSlots;
    for (let j = 0; j < ns.length; j++) {
      const v = row[ns[j]!];
      this.nums[j * cap + r] = typeof v === 'number' ? v : v === true ? 1 : v === false ? 0 : Number.NaN;
    }
    const ts = this.textSlots;
    for (let j = 0; j < ts.length; j++) {
      const v = row[ts[j]!];
      this.codes[j * cap + r] =
        v === null || v === undefined
          ? -1
          : this.code(typeof v === 'string' ? v : Array.isArray(v) ? v.join('\n') : String(v));
    }
  }

  private code(s: string): number {
    let c = this.dict.get(s);
    if (c !== undefined) return c;
    c = this.offsets.length - 1;
    const start = this.byteLength;
    this.append(s);
    // The key is a copy decoded from the bytes just written, not `s`: a connector's strings are often slices of the
    // response text, and a slice keeps its whole parent string alive (hundreds of MB over a 65,536-row task).
    this.dict.set(Buffer.from(this.bytes.buffer, start, this.byteLength - start).toString('utf8'), c);
    this.offsets.push(this.byteLength);
    return c;
  }

  /** UTF-8 of `s` at the end of the byte area; plain loop for ASCII (most of it), the encoder for the rest. */
  private append(s: string): void {
    const n = s.length;
    if (this.byteLength + n * 3 > this.bytes.length) {
      const next = new Uint8Array(Math.max(this.bytes.length * 2, this.byteLength + n * 3));
      next.set(this.bytes.subarray(0, this.byteLength));
      this.bytes = next;
    }
    const b = this.bytes;
    let o = this.byteLength;
    for (let i = 0; i < n; i++) {
      const ch = s.charCodeAt(i);
      if (ch >= 0x80) {
        o += encoder.encodeInto(s.slice(i), b.subarray(o)).written;
        this.byteLength = o;
        return;
      }
      b[o++] = ch;
    }
    this.byteLength = o;
  }

  /** The rows added since the last `finish()`, packed into memory from `alloc`; the packer is empty afterwards. */
  finish(alloc: BatchAllocator = ownBuffer): PackedBatch {
    const rows = this.count;
    const numbers = this.numberSlots.length;
    const texts = this.textSlots.length;
    const dictSize = this.offsets.length - 1;
    const at = layout(rows, numbers, texts, dictSize);
    const byteLength = at.bytes + this.byteLength;
    const { buffer, byteOffset: o } = alloc(byteLength);
    const cap = this.capacity;
    const nums = new Float64Array(buffer, o, numbers * rows);
    for (let j = 0; j < numbers; j++) nums.set(this.nums.subarray(j * cap, j * cap + rows), j * rows);
    const codes = new Int32Array(buffer, o + at.codes, texts * rows);
    for (let j = 0; j < texts; j++) codes.set(this.codes.subarray(j * cap, j * cap + rows), j * rows);
    new Int32Array(buffer, o + at.offsets, dictSize + 1).set(this.offsets);
    new Uint8Array(buffer, o + at.bytes, this.byteLength).set(this.bytes.subarray(0, this.byteLength));
    const packed: PackedBatch = {
      rows,
      columns: this.columns.map((c) => ({ ...c })),
      dictSize,
      dictBytes: this.byteLength,
      buffer,
      byteOffset: o,
      byteLength,
    };
    this.count = 0;
    this.dict = new Map();
    this.offsets = [0];
    this.byteLength = 0;
    return packed;
  }
}

const encoder = new TextEncoder();

/** Packs a whole row array at once (tests, small inputs). */
export function packRows(schema: readonly Column[], rows: readonly (readonly CellValue[])[]): PackedBatch {
  const packer = new BatchPacker(schema, Math.max(1, rows.length));
  for (const r of rows) packer.add(r);
  return packer.finish();
}

/** A text column of a batch: per-row codes into the batch's dictionary of distinct values. */
export class TextColumn {
  readonly name: string;
  /** Per row: the value's dictionary code, -1 for null. */
  readonly codes: Int32Array;
  /** The dictionary: entry `c` is `bytes[offsets[c] .. offsets[c + 1])`, UTF-8. Shared by every text column. */
  readonly bytes: Uint8Array;
  readonly offsets: Int32Array;
  private readonly decoded: Array<string | undefined>;
  private readonly buf: Buffer;

  constructor(
    name: string,
    codes: Int32Array,
    bytes: Uint8Array,
    offsets: Int32Array,
    decoded: Array<string | undefined>,
  ) {
    this.name = name;
    this.codes = codes;
    this.bytes = bytes;
    this.offsets = offsets;
    this.decoded = decoded;
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** The value of dictionary entry `code` (null for -1); decoded once per batch. */
  value(code: number): string | null {
    if (code < 0) return null;
    let v = this.decoded[code];
    if (v === undefined) {
      v = this.buf.toString('utf8', this.offsets[code]!, this.offsets[code + 1]!);
      this.decoded[code] = v;
    }
    return v;
  }

  /** The value in row `r`. */
  at(r: number): string | null {
    return this.value(this.codes[r]!);
  }
}

/** What a report's `map` reads: a batch's columns by name. */
export class ColumnBatch {
  readonly rows: number;
  private readonly packed: PackedBatch;
  private readonly byName = new Map<string, PackedColumn>();
  private readonly decoded: Array<string | undefined>;
  private readonly textColumns = new Map<string, TextColumn>();

  constructor(packed: PackedBatch) {
    this.packed = packed;
    this.rows = packed.rows;
    for (const c of packed.columns) this.byName.set(c.name, c);
    this.decoded = new Array(packed.dictSize);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private column(name: string, kind: PackedColumn['kind']): PackedColumn {
    const c = this.byName.get(name);
    if (!c || c.kind !== kind) {
      throw new PermanentError(
        `report data has no ${kind} column ${JSON.stringify(name)} (columns: ${[...this.byName.keys()].join(', ')})`,
        { code: REPORT_COLUMN_MISSING },
      );
    }
    return c;
  }

  /** A number-like column: one value per row, NaN for null (booleans as 1 and 0). */
  number(name: string): Float64Array {
    const c = this.column(name, 'number');
    return new Float64Array(this.packed.buffer, this.packed.byteOffset + c.index * this.rows * 8, this.rows);
  }

  /** A text-like column. */
  text(name: string): TextColumn {
    let t = this.textColumns.get(name);
    if (!t) {
      const c = this.column(name, 'text');
      const p = this.packed;
      const numbers = p.columns.filter((x) => x.kind === 'number').length;
      const texts = p.columns.length - numbers;
      const at = layout(p.rows, numbers, texts, p.dictSize);
      t = new TextColumn(
        name,
        new Int32Array(p.buffer, p.byteOffset + at.codes + c.index * p.rows * 4, p.rows),
        new Uint8Array(p.buffer, p.byteOffset + at.bytes, p.dictBytes),
        new Int32Array(p.buffer, p.byteOffset + at.offsets, p.dictSize + 1),
        this.decoded,
      );
      this.textColumns.set(name, t);
    }
    return t;
  }
}

export function openBatch(packed: PackedBatch): ColumnBatch {
  return new ColumnBatch(packed);
}
