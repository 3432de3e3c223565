import type { UrlSource, UrlUsage } from '@ppc/lib/ads';
import type { NormalizedUrl } from './normalize.ts';

/** Where one URL is used, as read back from a {@link UrlSet}. */
export interface UseRecord {
  source: UrlSource;
  campaignId: string;
  campaignName: string;
  adGroupId: string | undefined;
  adGroupName: string | undefined;
  entityId: string;
  label: string;
}

/** Sizes of a set's parts: what the memory of a run grows with. */
export interface UrlSetStats {
  urls: number;
  uses: number;
  /** Uses of URLs first seen after the set was full; they are not checked. */
  skippedUses: number;
  invalid: number;
  hosts: number;
  campaigns: number;
  adGroups: number;
  labels: number;
  /** Bytes held by the columnar arrays (capacity, not length). */
  columnBytes: number;
  /** Characters held by the set's own strings (URLs, hosts, names, labels). */
  stringChars: number;
}

type Column = Int32Array | Uint8Array | Float64Array;

function grown<T extends Column>(a: T, need: number, make: (n: number) => T): T {
  if (need <= a.length) return a;
  const b = make(Math.max(need, a.length * 2, 1024));
  b.set(a);
  return b;
}
const int32 = (n: number) => new Int32Array(n);
const uint8 = (n: number) => new Uint8Array(n);
const float64 = (n: number) => new Float64Array(n);

/** Strings stored once, referred to by index. */
class Interner {
  readonly values: string[] = [];
  private readonly index = new Map<string, number>();
  chars = 0;
  id(s: string): number {
    let i = this.index.get(s);
    if (i === undefined) {
      i = this.values.length;
      this.values.push(s);
      this.index.set(s, i);
      this.chars += s.length;
    }
    return i;
  }
}

const SOURCES: readonly UrlSource[] = ['ad', 'keyword', 'sitelink'];

/**
 * The unique URLs of an account and every place each is used, stored by column so that memory is a few bytes per
 * use plus each unique URL's string once: uses are rows of typed arrays (URL, source, campaign, ad group, entity,
 * label), names and labels are interned, and each URL's uses form a linked list through `nextUse`. No object is
 * kept per use or per URL.
 */
export class UrlSet {
  readonly maxUrls: number;
  private readonly index = new Map<string, number>();
  private readonly urlList: string[] = [];
  private urlChars = 0;
  private urlHost = new Int32Array(0);
  private firstUse = new Int32Array(0);
  private lastUse = new Int32Array(0);
  private useCount = new Int32Array(0);
  private readonly invalidReasons = new Map<number, string>();

  private useUrl = new Int32Array(0);
  private useSource = new Uint8Array(0);
  private useCampaign = new Int32Array(0);
  private useAdGroup = new Int32Array(0);
  private useLabel = new Int32Array(0);
  /** Numeric entity ids as numbers (exact up to 2^53); others in `entityText`, with NaN here. */
  private useEntity = new Float64Array(0);
  private readonly entityText = new Map<number, string>();
  private nextUse = new Int32Array(0);
  private useTotal = 0;
  private skipped = 0;
  private sealed = false;

  private readonly hostNames = new Interner();
  private readonly campaignIds = new Interner();
  private readonly campaignNames: string[] = [];
  private campaignNameChars = 0;
  private readonly adGroupIds = new Interner();
  private readonly adGroupNames: string[] = [];
  private adGroupNameChars = 0;
  private readonly labels = new Interner();

  constructor(maxUrls = Number.POSITIVE_INFINITY) {
    this.maxUrls = maxUrls;
  }

  /** Unique URLs held. */
  get size(): number {
    return this.urlList.length;
  }
  get uses(): number {
    return this.useTotal;
  }

  /**
   * Records one use of a URL already in the set, given in its normalised form (normalising is idempotent, so a raw
   * URL equal to a stored one needs no normalising). Returns false when the URL is not in the set.
   */
  addKnown(url: string, use: UrlUsage): boolean {
    const u = this.index.get(url);
    if (u === undefined) return false;
    this.addUse(u, use);
    return true;
  }

  /**
   * Records one use of `url`; adds the URL when it is new and the set is not full. Returns false when the use was
   * only counted (a new URL over `maxUrls`).
   */
  add(url: NormalizedUrl, use: UrlUsage): boolean {
    if (this.sealed) throw new Error('UrlSet.add after seal()');
    let u = this.index.get(url.url);
    if (u === undefined) {
      if (this.urlList.length >= this.maxUrls) {
        this.skipped++;
        return false;
      }
      u = this.urlList.length;
      this.urlList.push(url.url);
      this.index.set(url.url, u);
      this.urlChars += url.url.length;
      const n = u + 1;
      this.urlHost = grown(this.urlHost, n, int32);
      this.firstUse = grown(this.firstUse, n, int32);
      this.lastUse = grown(this.lastUse, n, int32);
      this.useCount = grown(this.useCount, n, int32);
      this.urlHost[u] = url.ok ? this.hostNames.id(url.host) : -1;
      this.firstUse[u] = -1;
      if (!url.ok) this.invalidReasons.set(u, url.reason);
    }
    this.addUse(u, use);
    return true;
  }

  private addUse(u: number, use: UrlUsage): void {
    const i = this.useTotal++;
    const n = i + 1;
    this.useUrl = grown(this.useUrl, n, int32);
    this.useSource = grown(this.useSource, n, uint8);
    this.useCampaign = grown(this.useCampaign, n, int32);
    this.useAdGroup = grown(this.useAdGroup, n, int32);
    this.useLabel = grown(this.useLabel, n, int32);
    this.useEntity = grown(this.useEntity, n, float64);
    this.nextUse = grown(this.nextUse, n, int32);

    this.useUrl[i] = u;
    const source = SOURCES.indexOf(use.source);
    this.useSource[i] = Math.max(source, 0);
    const c = this.campaignIds.id(use.campaignId);
    if (c === this.campaignNames.length) {
      this.campaignNames.push(use.campaignName);
      this.campaignNameChars += use.campaignName.length;
    }
    this.useCampaign[i] = c;
    if (use.adGroupId === undefined) this.useAdGroup[i] = -1;
    else {
      const g = this.adGroupIds.id(use.adGroupId);
      if (g === this.adGroupNames.length) {
        this.adGroupNames.push(use.adGroupName ?? '');
        this.adGroupNameChars += (use.adGroupName ?? '').length;
      }
      this.useAdGroup[i] = g;
    }
    this.useLabel[i] = this.labels.id(use.label);
    const numeric = /^(?:0|[1-9]\d{0,14})$/.test(use.entityId) ? Number(use.entityId) : Number.NaN;
    this.useEntity[i] = numeric;
    if (Number.isNaN(numeric)) this.entityText.set(i, use.entityId);

    this.nextUse[i] = -1;
    if (this.firstUse[u] === -1) this.firstUse[u] = i;
    else this.nextUse[this.lastUse[u]!] = i;
    this.lastUse[u] = i;
    this.useCount[u]!++;
  }

  /** Ends adding: drops the dedupe index, which only adding needs. */
  seal(): void {
    this.sealed = true;
    this.index.clear();
  }

  url(u: number): string {
    return this.urlList[u]!;
  }
  /** Index of the URL's host in {@link hostName}, or -1 for an invalid URL. */
  hostIndex(u: number): number {
    return this.urlHost[u]!;
  }
  hostName(h: number): string {
    return this.hostNames.values[h]!;
  }
  get hostCount(): number {
    return this.hostNames.values.length;
  }
  /** Why the URL cannot be checked, when it cannot. */
  invalidReason(u: number): string | undefined {
    return this.invalidReasons.get(u);
  }
  usesOf(u: number): number {
    return this.useCount[u]!;
  }

  /** Use indexes of URL `u`, in the order they were added. */
  *useIndexes(u: number): Generator<number> {
    for (let i = this.firstUse[u]!; i !== -1; i = this.nextUse[i]!) yield i;
  }
  /** The first use of URL `u` (every URL has one). */
  firstUseOf(u: number): number {
    return this.firstUse[u]!;
  }
  nextUseOf(i: number): number {
    return this.nextUse[i]!;
  }

  /** The URL a use belongs to. */
  useUrlOf(i: number): number {
    return this.useUrl[i]!;
  }
  useSourceOf(i: number): UrlSource {
    return SOURCES[this.useSource[i]!]!;
  }
  /** Index of the use's campaign, 0 ≤ c < {@link campaignCount}. */
  useCampaignOf(i: number): number {
    return this.useCampaign[i]!;
  }
  get campaignCount(): number {
    return this.campaignNames.length;
  }
  campaignId(c: number): string {
    return this.campaignIds.values[c]!;
  }
  campaignName(c: number): string {
    return this.campaignNames[c]!;
  }

  use(i: number): UseRecord {
    const c = this.useCampaign[i]!;
    const g = this.useAdGroup[i]!;
    const e = this.useEntity[i]!;
    return {
      source: this.useSourceOf(i),
      campaignId: this.campaignIds.values[c]!,
      campaignName: this.campaignNames[c]!,
      adGroupId: g < 0 ? undefined : this.adGroupIds.values[g],
      adGroupName: g < 0 ? undefined : this.adGroupNames[g],
      entityId: Number.isNaN(e) ? this.entityText.get(i)! : String(e),
      label: this.labels.values[this.useLabel[i]!]!,
    };
  }

  stats(): UrlSetStats {
    const columns: Column[] = [
      this.urlHost,
      this.firstUse,
      this.lastUse,
      this.useCount,
      this.useUrl,
      this.useSource,
      this.useCampaign,
      this.useAdGroup,
      this.useLabel,
      this.useEntity,
      this.nextUse,
    ];
    return {
      urls: this.urlList.length,
      uses: this.useTotal,
      skippedUses: this.skipped,
      invalid: this.invalidReasons.size,
      hosts: this.hostNames.values.length,
      campaigns: this.campaignNames.length,
      adGroups: this.adGroupNames.length,
      labels: this.labels.values.length,
      columnBytes: columns.reduce((s, c) => s + c.byteLength, 0),
      stringChars:
        this.urlChars +
        this.hostNames.chars +
        this.campaignIds.chars +
        this.campaignNameChars +
        this.adGroupIds.chars +
        this.adGroupNameChars +
        this.labels.chars,
    };
  }
}
