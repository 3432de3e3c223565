/**
 * Sums per key: the building block of partial aggregates. `keys[i]` owns `values[i * width .. (i + 1) * width)`.
 * Plain arrays, so a partial crosses a thread boundary as two objects (a string array and one Float64Array), not as
 * a Map of thousands of small arrays.
 */
export interface Keyed {
  width: number;
  keys: string[];
  values: Float64Array;
}

/** Key → row index of a Keyed, built lazily and kept while the Keyed is merged into (never sent across threads). */
const indexes = new WeakMap<string[], Map<string, number>>();

function indexOf(k: Keyed): Map<string, number> {
  let index = indexes.get(k.keys);
  if (!index) {
    index = new Map();
    for (let i = 0; i < k.keys.length; i++) index.set(k.keys[i]!, i);
    indexes.set(k.keys, index);
  }
  return index;
}

export function emptyKeyed(width: number): Keyed {
  return { width, keys: [], values: new Float64Array(0) };
}

/** Accumulates sums per key in a growing buffer (the map side). */
export class KeyedBuilder {
  readonly width: number;
  private readonly index = new Map<string, number>();
  private readonly keys: string[] = [];
  values: Float64Array;

  constructor(width: number, capacity = 64) {
    this.width = width;
    this.values = new Float64Array(width * capacity);
  }

  get size(): number {
    return this.keys.length;
  }

  /** The offset of `key`'s sums in `values` (added with zeros when new). Re-read `values` after a call. */
  offset(key: string): number {
    let i = this.index.get(key);
    if (i === undefined) {
      i = this.keys.length;
      this.keys.push(key);
      this.index.set(key, i);
      if ((i + 1) * this.width > this.values.length) {
        const next = new Float64Array(this.values.length * 2 + this.width);
        next.set(this.values);
        this.values = next;
      }
    }
    return i * this.width;
  }

  finish(): Keyed {
    return { width: this.width, keys: this.keys, values: this.values.slice(0, this.keys.length * this.width) };
  }
}

/** a + b, key by key. Takes ownership of both; returns `a` extended (or `b` when `a` is empty). */
export function mergeKeyed(a: Keyed, b: Keyed): Keyed {
  if (a.width !== b.width) throw new RangeError(`cannot merge sums of width ${a.width} and ${b.width}`);
  if (b.keys.length === 0) return a;
  if (a.keys.length === 0) return b;
  const w = a.width;
  const index = indexOf(a);
  const fresh: number[] = [];
  let values = a.values;
  for (let j = 0; j < b.keys.length; j++) {
    const i = index.get(b.keys[j]!);
    if (i === undefined) {
      fresh.push(j);
      continue;
    }
    const o = i * w;
    const p = j * w;
    for (let x = 0; x < w; x++) values[o + x]! += b.values[p + x]!;
  }
  if (fresh.length > 0) {
    const n = a.keys.length;
    values = new Float64Array((n + fresh.length) * w);
    values.set(a.values);
    for (let f = 0; f < fresh.length; f++) {
      const j = fresh[f]!;
      const key = b.keys[j]!;
      index.set(key, n + f);
      a.keys.push(key);
      values.set(b.values.subarray(j * w, (j + 1) * w), (n + f) * w);
    }
  }
  return { width: w, keys: a.keys, values };
}

/** Merges `b`'s labels into `a`; of two labels for one key the smaller wins, so the result does not depend on order. */
export function mergeLabels(a: Record<string, string>, b: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(b)) {
    const cur = a[k];
    if (cur === undefined || v < cur) a[k] = v;
  }
  return a;
}
