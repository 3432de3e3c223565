/**
 * N-gram counting over search terms, the hot loop of the search-terms report. A term's metrics are added once to each
 * distinct 1-, 2- and 3-word phrase in it (ASCII letters folded to lower case, words split on whitespace).
 *
 * It works on the UTF-8 bytes of a batch's dictionary, without making a JS string per term or per phrase: words are
 * hashed from the bytes and interned as small integers, a 2-gram is a pair of word ids and a 3-gram a pair of
 * (2-gram id, word id), each found in an open-addressing table of Int32Arrays. Strings are made only for the distinct
 * phrases, once, when the partial is emitted. Each distinct term of a batch is tokenised once; its rows then only add
 * numbers.
 */
import type { TextColumn } from './batch.ts';

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

const isSpace = (b: number): boolean => b === 32 || b === 9 || b === 10 || b === 13;
const fold = (b: number): number => (b >= 65 && b <= 90 ? b + 32 : b);

/** Interned words: (hash, bytes) → dense id; the folded bytes live in one arena. */
class Words {
  private hashes = new Int32Array(256);
  private ids = new Int32Array(256).fill(-1);
  private mask = 255;
  private arena = new Uint8Array(4096);
  private arenaLength = 0;
  private starts: number[] = [];
  private ends: number[] = [];

  get size(): number {
    return this.starts.length;
  }

  clear(): void {
    this.ids.fill(-1);
    this.arenaLength = 0;
    this.starts.length = 0;
    this.ends.length = 0;
  }

  /** The id of the word `bytes[start, end)` (case-folded), whose folded FNV-1a hash (int32) is `h`. */
  id(bytes: Uint8Array, start: number, end: number, h: number): number {
    let i = h & this.mask;
    for (;;) {
      const id = this.ids[i]!;
      if (id < 0) return this.insert(i, bytes, start, end, h);
      if (this.hashes[i] === h && this.equals(id, bytes, start, end)) return id;
      i = (i + 1) & this.mask;
    }
  }

  private equals(id: number, bytes: Uint8Array, start: number, end: number): boolean {
    const s = this.starts[id]!;
    if (this.ends[id]! - s !== end - start) return false;
    const a = this.arena;
    for (let k = 0; k < end - start; k++) if (a[s + k] !== fold(bytes[start + k]!)) return false;
    return true;
  }

  private insert(slot: number, bytes: Uint8Array, start: number, end: number, h: number): number {
    const id = this.starts.length;
    const len = end - start;
    if (this.arenaLength + len > this.arena.length) {
      const next = new Uint8Array(Math.max(this.arena.length * 2, this.arenaLength + len));
      next.set(this.arena.subarray(0, this.arenaLength));
      this.arena = next;
    }
    for (let k = 0; k < len; k++) this.arena[this.arenaLength + k] = fold(bytes[start + k]!);
    this.starts.push(this.arenaLength);
    this.arenaLength += len;
    this.ends.push(this.arenaLength);
    this.hashes[slot] = h;
    this.ids[slot] = id;
    if ((id + 1) * 2 > this.mask) this.grow();
    return id;
  }

  private grow(): void {
    const oldHashes = this.hashes;
    const oldIds = this.ids;
    const size = oldIds.length * 2;
    this.hashes = new Int32Array(size);
    this.ids = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let i = 0; i < oldIds.length; i++) {
      const id = oldIds[i]!;
      if (id < 0) continue;
      let j = oldHashes[i]! & this.mask;
      while (this.ids[j]! >= 0) j = (j + 1) & this.mask;
      this.hashes[j] = oldHashes[i]!;
      this.ids[j] = id;
    }
  }

  strings(): string[] {
    const buf = Buffer.from(this.arena.buffer, 0, this.arenaLength);
    return this.starts.map((s, i) => buf.toString('utf8', s, this.ends[i]));
  }
}

/** (a, b) int pairs → dense ids in insertion order, with each id's pair kept. */
class Pairs {
  /** Open addressing, one slot per 4 ints [a, b, id, unused], so a probe reads one cache line. id -1: empty. */
  private table = Pairs.emptyTable(1024);
  private mask = 1023;
  first: Int32Array = new Int32Array(256);
  second: Int32Array = new Int32Array(256);
  size = 0;

  private static emptyTable(slots: number): Int32Array {
    const t = new Int32Array(slots * 4);
    for (let i = 2; i < t.length; i += 4) t[i] = -1;
    return t;
  }

  clear(): void {
    const t = this.table;
    for (let i = 2; i < t.length; i += 4) t[i] = -1;
    this.size = 0;
  }

  static of(first: Int32Array, second: Int32Array): Pairs {
    const p = new Pairs();
    for (let i = 0; i < first.length; i++) p.id(first[i]!, second[i]!);
    return p;
  }

  id(a: number, b: number): number {
    const t = this.table;
    let i = mix(a, b) & this.mask;
    for (;;) {
      const o = i << 2;
      const id = t[o + 2]!;
      if (id < 0) break;
      if (t[o] === a && t[o + 1] === b) return id;
      i = (i + 1) & this.mask;
    }
    const id = this.size++;
    const o = i << 2;
    t[o] = a;
    t[o + 1] = b;
    t[o + 2] = id;
    if (id >= this.first.length) {
      this.first = grown(this.first, this.first.length * 2);
      this.second = grown(this.second, this.second.length * 2);
    }
    this.first[id] = a;
    this.second[id] = b;
    if (this.size * 2 > this.mask) this.grow();
    return id;
  }

  private grow(): void {
    const old = this.table;
    const slots = (this.mask + 1) * 2;
    const t = Pairs.emptyTable(slots);
    this.mask = slots - 1;
    for (let o = 0; o < old.length; o += 4) {
      if (old[o + 2]! < 0) continue;
      let j = mix(old[o]!, old[o + 1]!) & this.mask;
      while (t[(j << 2) + 2]! >= 0) j = (j + 1) & this.mask;
      t[j << 2] = old[o]!;
      t[(j << 2) + 1] = old[o + 1]!;
      t[(j << 2) + 2] = old[o + 2]!;
    }
    this.table = t;
  }
}

function grown<T extends Int32Array | Float64Array>(a: T, length: number): T {
  const next = new (a.constructor as new (n: number) => T)(length);
  next.set(a);
  return next;
}

function mix(a: number, b: number): number {
  let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Sums per n-gram: [terms, impressions, clicks, cost µ, conversions µ, value µ]. */
export const NGRAM_WIDTH = 6;

class Sums {
  values: Float64Array<ArrayBufferLike> = new Float64Array(NGRAM_WIDTH * 256);
  ensure(id: number): void {
    if ((id + 1) * NGRAM_WIDTH > this.values.length) {
      this.values = grown(this.values, Math.max(this.values.length * 2, (id + 1) * NGRAM_WIDTH));
    }
  }
}

/**
 * The partial aggregate of n-grams, keyed by ids rather than strings, so that a thread sends a few compact arrays
 * and merging is integer work: words by id; a 2-gram is a pair of word ids, a 3-gram a pair (2-gram id, word id).
 * Ids are local to a partial; a merge maps the other partial's ids into its own.
 */
export interface NgramPartial {
  words: string[];
  bigramFirst: Int32Array;
  bigramSecond: Int32Array;
  trigramFirst: Int32Array;
  trigramSecond: Int32Array;
  /** Sums by size (index 0: 1-grams by word id), NGRAM_WIDTH per id; null for sizes not asked for. */
  sums: [Float64Array | null, Float64Array | null, Float64Array | null];
}

export function emptyNgrams(sizes: readonly number[]): NgramPartial {
  return {
    words: [],
    bigramFirst: new Int32Array(0),
    bigramSecond: new Int32Array(0),
    trigramFirst: new Int32Array(0),
    trigramSecond: new Int32Array(0),
    sums: [0, 1, 2].map((i) => (sizes.includes(i + 1) ? new Float64Array(0) : null)) as NgramPartial['sums'],
  };
}

/**
 * Counts the n-grams of many terms. `sizes` says which of 1, 2, 3 to count (2-gram ids exist whenever 3-grams are
 * counted: a 3-gram is keyed by its 2-gram).
 */
export class NgramCounter {
  private readonly want: [boolean, boolean, boolean];
  private readonly words = new Words();
  private readonly bigrams = new Pairs();
  private readonly trigrams = new Pairs();
  private readonly sums = [new Sums(), new Sums(), new Sums()] as const;
  private wordIds = new Int32Array(64);
  private bigramIds = new Int32Array(64);
  /** Per term code of the current batch: where its n-gram entries start in `entries` (-1: not tokenised yet). */
  private termStart = new Int32Array(0);
  private termEnd = new Int32Array(0);
  /** Entries: `(n - 1) | (id << 2)`. */
  private entries = new Int32Array(4096);
  private entryCount = 0;
  private column: TextColumn | null = null;

  constructor(sizes: readonly number[]) {
    this.want = [sizes.includes(1), sizes.includes(2), sizes.includes(3)];
  }

  /** Forgets every n-gram but keeps the tables' capacity, for the next batch of a similar size. */
  reset(): void {
    const counts = [this.words.size, this.bigrams.size, this.trigrams.size];
    for (let i = 0; i < 3; i++) this.sums[i as 0 | 1 | 2].values.fill(0, 0, counts[i]! * NGRAM_WIDTH);
    this.words.clear();
    this.bigrams.clear();
    this.trigrams.clear();
    this.entryCount = 0;
    this.column = null;
  }

  /** Starts a batch: term codes refer to this column's dictionary. */
  batch(terms: TextColumn): void {
    this.column = terms;
    const n = terms.offsets.length - 1;
    if (this.termStart.length < n) {
      this.termStart = new Int32Array(n);
      this.termEnd = new Int32Array(n);
    }
    this.termStart.fill(-1, 0, n);
    this.entryCount = 0;
  }

  /** Adds one row's metrics (integers: counts and millionths) to every n-gram of its term. */
  add(code: number, impressions: number, clicks: number, cost: number, conversions: number, value: number): void {
    if (code < 0) return;
    if (this.termStart[code]! < 0) this.tokenise(code);
    const e = this.entries;
    for (let k = this.termStart[code]!; k < this.termEnd[code]!; k++) {
      const entry = e[k]!;
      const v = this.sums[entry & 3]!.values;
      const o = (entry >>> 2) * NGRAM_WIDTH;
      v[o]! += 1;
      v[o + 1]! += impressions;
      v[o + 2]! += clicks;
      v[o + 3]! += cost;
      v[o + 4]! += conversions;
      v[o + 5]! += value;
    }
  }

  private tokenise(code: number): void {
    const col = this.column!;
    const bytes = col.bytes;
    const end = col.offsets[code + 1]!;
    let n = 0;
    let start = -1;
    let h = FNV_OFFSET;
    for (let i = col.offsets[code]!; i <= end; i++) {
      const b = i === end ? 32 : bytes[i]!;
      if (isSpace(b)) {
        if (start >= 0) {
          if (n === this.wordIds.length) {
            this.wordIds = grown(this.wordIds, n * 2);
            this.bigramIds = grown(this.bigramIds, n * 2);
          }
          this.wordIds[n++] = this.words.id(bytes, start, i, h);
          start = -1;
          h = FNV_OFFSET;
        }
      } else {
        if (start < 0) start = i;
        h = Math.imul(h ^ fold(b), FNV_PRIME);
      }
    }
    const first = this.entryCount;
    const w = this.wordIds;
    if (this.want[0]) for (let i = 0; i < n; i++) this.entry(first, 0, w[i]!);
    if (this.want[1] || this.want[2]) {
      for (let i = 0; i + 1 < n; i++) {
        const id = this.bigrams.id(w[i]!, w[i + 1]!);
        this.bigramIds[i] = id;
        if (this.want[1]) this.entry(first, 1, id);
      }
    }
    if (this.want[2])
      for (let i = 0; i + 2 < n; i++) this.entry(first, 2, this.trigrams.id(this.bigramIds[i]!, w[i + 2]!));
    this.termStart[code] = first;
    this.termEnd[code] = this.entryCount;
  }

  /** Adds entry (size, id) to the current term unless the term already has it (a phrase counts once per term). */
  private entry(first: number, size: 0 | 1 | 2, id: number): void {
    const value = size | (id << 2);
    for (let k = first; k < this.entryCount; k++) if (this.entries[k] === value) return;
    if (this.entryCount === this.entries.length) this.entries = grown(this.entries, this.entries.length * 2);
    this.entries[this.entryCount++] = value;
    this.sums[size].ensure(id);
  }

  emit(): NgramPartial {
    const counts = [this.words.size, this.bigrams.size, this.trigrams.size];
    return {
      words: this.words.strings(),
      bigramFirst: this.bigrams.first.slice(0, this.bigrams.size),
      bigramSecond: this.bigrams.second.slice(0, this.bigrams.size),
      trigramFirst: this.trigrams.first.slice(0, this.trigrams.size),
      trigramSecond: this.trigrams.second.slice(0, this.trigrams.size),
      sums: [0, 1, 2].map((i) =>
        this.want[i] ? this.sums[i as 0 | 1 | 2].values.slice(0, counts[i]! * NGRAM_WIDTH) : null,
      ) as NgramPartial['sums'],
    };
  }
}

/** A partial being merged into: the partial's arrays with indexes over them, grown in place. */
class NgramTable {
  private readonly words: string[];
  private readonly wordIndex = new Map<string, number>();
  private readonly bigrams: Pairs;
  private readonly trigrams: Pairs;
  private readonly sums: Array<Sums | null>;

  constructor(p: NgramPartial) {
    this.words = p.words;
    for (let i = 0; i < p.words.length; i++) this.wordIndex.set(p.words[i]!, i);
    this.bigrams = Pairs.of(p.bigramFirst, p.bigramSecond);
    this.trigrams = Pairs.of(p.trigramFirst, p.trigramSecond);
    this.sums = p.sums.map((v) => {
      if (!v) return null;
      const s = new Sums();
      s.values = v;
      return s;
    });
  }

  absorb(b: NgramPartial): void {
    const words = new Int32Array(b.words.length);
    for (let i = 0; i < b.words.length; i++) {
      const w = b.words[i]!;
      let id = this.wordIndex.get(w);
      if (id === undefined) {
        id = this.words.length;
        this.words.push(w);
        this.wordIndex.set(w, id);
      }
      words[i] = id;
    }
    const bigrams = new Int32Array(b.bigramFirst.length);
    for (let i = 0; i < bigrams.length; i++) {
      bigrams[i] = this.bigrams.id(words[b.bigramFirst[i]!]!, words[b.bigramSecond[i]!]!);
    }
    const trigrams = new Int32Array(b.trigramFirst.length);
    for (let i = 0; i < trigrams.length; i++) {
      trigrams[i] = this.trigrams.id(bigrams[b.trigramFirst[i]!]!, words[b.trigramSecond[i]!]!);
    }
    const maps = [words, bigrams, trigrams];
    for (let n = 0; n < 3; n++) {
      const into = this.sums[n];
      const from = b.sums[n];
      if (!into || !from) continue;
      const map = maps[n]!;
      into.ensure(Math.max(-1, this.count(n) - 1));
      const v = into.values;
      for (let i = 0; i < map.length; i++) {
        const o = map[i]! * NGRAM_WIDTH;
        const p = i * NGRAM_WIDTH;
        for (let x = 0; x < NGRAM_WIDTH; x++) v[o + x]! += from[p + x]!;
      }
    }
  }

  private count(n: number): number {
    return n === 0 ? this.words.length : n === 1 ? this.bigrams.size : this.trigrams.size;
  }

  view(): NgramPartial {
    return {
      words: this.words,
      bigramFirst: this.bigrams.first.subarray(0, this.bigrams.size),
      bigramSecond: this.bigrams.second.subarray(0, this.bigrams.size),
      trigramFirst: this.trigrams.first.subarray(0, this.trigrams.size),
      trigramSecond: this.trigrams.second.subarray(0, this.trigrams.size),
      sums: this.sums.map((s, n) =>
        s ? s.values.subarray(0, this.count(n) * NGRAM_WIDTH) : null,
      ) as NgramPartial['sums'],
    };
  }
}

/** The table behind a merged partial, so a chain of merges keeps its indexes instead of rebuilding them. */
const tables = new WeakMap<NgramPartial, NgramTable>();

/** a + b. Takes ownership of both (may grow `a`'s arrays); ids in the result are `a`'s, then new ones. */
export function mergeNgrams(a: NgramPartial, b: NgramPartial): NgramPartial {
  const table = tables.get(a) ?? new NgramTable(a);
  table.absorb(b);
  const merged = table.view();
  tables.set(merged, table);
  return merged;
}

/**
 * The n-grams of size `n` (words joined by a space) with their sums' offset. With `top`, only those that can be among
 * the `top` largest by sum `field`: everything tied with the last one is included, so sorting the result and taking
 * `top` gives exactly what sorting them all would, while only about `top` strings are built.
 */
export function ngramEntries(
  p: NgramPartial,
  n: 1 | 2 | 3,
  top?: { count: number; field: number },
): Array<{ text: string; values: Float64Array; offset: number }> {
  const values = p.sums[n - 1];
  if (!values) return [];
  const bigram = (id: number) => `${p.words[p.bigramFirst[id]!]} ${p.words[p.bigramSecond[id]!]}`;
  const text =
    n === 1
      ? (id: number) => p.words[id]!
      : n === 2
        ? bigram
        : (id: number) => `${bigram(p.trigramFirst[id]!)} ${p.words[p.trigramSecond[id]!]}`;
  const count = values.length / NGRAM_WIDTH;
  let threshold = Number.NEGATIVE_INFINITY;
  if (top && top.count < count) {
    const sums = new Float64Array(count);
    for (let id = 0; id < count; id++) sums[id] = values[id * NGRAM_WIDTH + top.field]!;
    sums.sort();
    threshold = sums[count - top.count]!;
  }
  const out = [];
  for (let id = 0; id < count; id++) {
    const offset = id * NGRAM_WIDTH;
    if (top && values[offset + top.field]! < threshold) continue;
    out.push({ text: text(id), values, offset });
  }
  return out;
}
