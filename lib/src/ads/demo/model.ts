/**
 * The demo platform's synthetic world, generated from a seed. Nothing is stored: every entity and every metric is
 * a pure function of (seed, account, index, day), so any row can be produced on demand, a million-row stream holds
 * no state, and the same seed always gives the same accounts and rows. Shapes and numbers are documented in
 * `README.md` next to this file.
 */

/** The cached value at `i`, made once by `make` (called on `self`: no closure per call on the hot path). */
function memo<T, S>(cache: T[], i: number, self: S, make: (this: S, i: number) => T): T {
  let v = cache[i];
  if (v === undefined) {
    v = make.call(self, i);
    cache[i] = v;
  }
  return v;
}

// ---- deterministic randomness -------------------------------------------------------------------------------

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of up to four integers. */
export function hash(a: number, b = 0, c = 0, d = 0): number {
  let h = fmix((a ^ 0x9e3779b9) >>> 0);
  h = fmix((h ^ Math.imul(b | 0, 0x27d4eb2d)) >>> 0);
  h = fmix((h ^ Math.imul(c | 0, 0x165667b1)) >>> 0);
  h = fmix((h ^ Math.imul(d | 0, 0x1b873593)) >>> 0);
  return h;
}

/** Uniform in [0, 1). */
export function unit(h: number): number {
  return h / 4294967296;
}

/** Standard normal from two hashes (Box–Muller). */
function normal(h1: number, h2: number): number {
  const u1 = (h1 + 1) / 4294967297;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * unit(h2));
}

export function seedNumber(seed: number | string): number {
  if (typeof seed === 'number') return seed >>> 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// ---- vocabulary ---------------------------------------------------------------------------------------------

const PRODUCTS = [
  'running shoes',
  'trail shoes',
  'hiking boots',
  'rain jacket',
  'yoga mat',
  'tennis racket',
  'bike helmet',
  'ski goggles',
  'climbing rope',
  'swim goggles',
  'camping tent',
  'sleeping bag',
  'water bottle',
  'fitness tracker',
  'hiking backpack',
  'gym bag',
] as const;
const MODIFIERS = [
  'cheap',
  'best',
  'buy',
  'womens',
  'mens',
  'kids',
  'waterproof',
  'lightweight',
  'sale',
  'discount',
  'online',
  'near me',
  'review',
  'premium',
  'used',
  'black',
  'wide fit',
  'vegan',
  'ultralight',
  'for beginners',
] as const;
const TAILS = ['2025', 'uk', 'free shipping', 'size 10', 'vs', 'how to choose', 'outlet', 'deals', 'amazon', 'price'];
const CAMPAIGN_TYPES = ['Search Generic', 'Search Brand', 'Search Competitor', 'Search Long Tail'] as const;
const AGENCIES = ['Northwind', 'Bluefin', 'Copperleaf', 'Redwood', 'Lumen', 'Harbor'];
const SHOPS = ['Summit Outfitters', 'Velora Sports', 'Kestrel Gear', 'Peak & Pine', 'Trailhead Co', 'Aqua Motion'];
const HEADLINES = ['Free Delivery Over $50', 'Official Store', 'Up To 40% Off', 'Shop The New Range', 'Top Rated'];
const SITELINKS = ['New Arrivals', 'Sale', 'Store Finder', 'Size Guide', 'Gift Cards', 'Contact Us', 'Returns'];

export const MATCH_TYPES = ['EXACT', 'PHRASE', 'BROAD'] as const;
export const SEARCH_TERM_STATUSES = ['NONE', 'ADDED', 'EXCLUDED', 'ADDED_EXCLUDED'] as const;

// ---- accounts -----------------------------------------------------------------------------------------------

export type DemoSize = 'tiny' | 'small' | 'medium' | 'large' | 'huge';

export interface SizeSpec {
  campaigns: number;
  adGroupsPerCampaign: number;
  keywordsPerAdGroup: number;
  searchTerms: number;
  /** Typical keyword's daily impressions. */
  impressionScale: number;
}

/** Sizes: tiny has 10 keywords, huge has 1,000,000 search-term rows. */
export const SIZES: Record<DemoSize, SizeSpec> = {
  tiny: { campaigns: 1, adGroupsPerCampaign: 1, keywordsPerAdGroup: 10, searchTerms: 60, impressionScale: 30 },
  small: { campaigns: 3, adGroupsPerCampaign: 4, keywordsPerAdGroup: 15, searchTerms: 5_000, impressionScale: 40 },
  medium: { campaigns: 8, adGroupsPerCampaign: 10, keywordsPerAdGroup: 20, searchTerms: 50_000, impressionScale: 60 },
  large: { campaigns: 20, adGroupsPerCampaign: 25, keywordsPerAdGroup: 40, searchTerms: 250_000, impressionScale: 80 },
  huge: {
    campaigns: 40,
    adGroupsPerCampaign: 50,
    keywordsPerAdGroup: 25,
    searchTerms: 1_000_000,
    impressionScale: 100,
  },
};

export interface DemoAccount {
  index: number;
  id: string;
  name: string;
  currency: string;
  timeZone: string;
  status: 'ENABLED' | 'CLOSED';
  manager: boolean;
  size: DemoSize | null;
  parentId: string | null;
  childIds: string[];
  /** Account-level economics. */
  cpcMicros: number;
  orderValue: number;
  /** Directly accessible with the demo credentials (what listAccessibleCustomers returns). */
  accessible: boolean;
}

interface Blueprint {
  key: string;
  manager: boolean;
  size: DemoSize | null;
  parent: string | null;
  currency: string;
  timeZone: string;
  status: 'ENABLED' | 'CLOSED';
  accessible: boolean;
}

/** The fixed shape of the demo world; names, ids and numbers vary with the seed. */
const BLUEPRINTS: Blueprint[] = [
  {
    key: 'agency',
    manager: true,
    size: null,
    parent: null,
    currency: 'USD',
    timeZone: 'America/New_York',
    status: 'ENABLED',
    accessible: true,
  },
  {
    key: 'tiny',
    manager: false,
    size: 'tiny',
    parent: 'agency',
    currency: 'USD',
    timeZone: 'America/New_York',
    status: 'ENABLED',
    accessible: false,
  },
  {
    key: 'small',
    manager: false,
    size: 'small',
    parent: 'agency',
    currency: 'EUR',
    timeZone: 'Europe/Berlin',
    status: 'ENABLED',
    accessible: false,
  },
  {
    key: 'medium',
    manager: false,
    size: 'medium',
    parent: 'agency',
    currency: 'GBP',
    timeZone: 'Europe/London',
    status: 'ENABLED',
    accessible: false,
  },
  {
    key: 'enterprise',
    manager: true,
    size: null,
    parent: 'agency',
    currency: 'USD',
    timeZone: 'America/Los_Angeles',
    status: 'ENABLED',
    accessible: false,
  },
  {
    key: 'large',
    manager: false,
    size: 'large',
    parent: 'enterprise',
    currency: 'USD',
    timeZone: 'America/Los_Angeles',
    status: 'ENABLED',
    accessible: false,
  },
  {
    key: 'huge',
    manager: false,
    size: 'huge',
    parent: 'enterprise',
    currency: 'USD',
    timeZone: 'America/Chicago',
    status: 'ENABLED',
    accessible: false,
  },
  {
    key: 'closed',
    manager: false,
    size: 'small',
    parent: 'enterprise',
    currency: 'CZK',
    timeZone: 'Europe/Prague',
    status: 'CLOSED',
    accessible: false,
  },
  {
    key: 'solo',
    manager: false,
    size: 'small',
    parent: null,
    currency: 'JPY',
    timeZone: 'Asia/Tokyo',
    status: 'ENABLED',
    accessible: true,
  },
];

export interface DemoWorld {
  seed: number;
  accounts: DemoAccount[];
  byId: Map<string, DemoAccount>;
  /** Account id by blueprint key (`tiny`, `huge`, `agency`, ...). */
  byKey: Map<string, DemoAccount>;
}

export function buildWorld(seed: number | string): DemoWorld {
  const s = seedNumber(seed);
  const accounts: DemoAccount[] = [];
  const byKey = new Map<string, DemoAccount>();
  const used = new Set<string>();
  BLUEPRINTS.forEach((bp, index) => {
    let n = 1_000_000_000 + (hash(s, 101, index) % 8_000_000_000);
    while (used.has(String(n))) n += 1;
    const id = String(n);
    used.add(id);
    const agency = AGENCIES[hash(s, 7) % AGENCIES.length]!;
    const shop = SHOPS[(hash(s, 8) + index) % SHOPS.length]!;
    const name =
      bp.key === 'agency'
        ? `${agency} Digital (MCC)`
        : bp.key === 'enterprise'
          ? `${agency} Enterprise Clients (MCC)`
          : `${shop} — ${bp.key === 'solo' ? 'Japan' : bp.size!.replace(/^./, (c) => c.toUpperCase())}`;
    const cpcBase = { USD: 0.9, EUR: 0.8, GBP: 0.7, CZK: 18, JPY: 110 }[bp.currency] ?? 1;
    const acct: DemoAccount = {
      index,
      id,
      name,
      currency: bp.currency,
      timeZone: bp.timeZone,
      status: bp.status,
      manager: bp.manager,
      size: bp.size,
      parentId: null,
      childIds: [],
      cpcMicros: Math.round(cpcBase * (0.7 + 0.6 * unit(hash(s, 102, index))) * 1e6),
      orderValue: Math.round(cpcBase * (60 + 80 * unit(hash(s, 103, index))) * 100) / 100,
      accessible: bp.accessible,
    };
    accounts.push(acct);
    byKey.set(bp.key, acct);
  });
  BLUEPRINTS.forEach((bp, i) => {
    if (!bp.parent) return;
    const parent = byKey.get(bp.parent)!;
    accounts[i]!.parentId = parent.id;
    parent.childIds.push(accounts[i]!.id);
  });
  return { seed: s, accounts, byId: new Map(accounts.map((a) => [a.id, a])), byKey };
}

/** The manager chain above an account, nearest first. */
export function ancestors(world: DemoWorld, id: string): string[] {
  const out: string[] = [];
  let cur = world.byId.get(id)?.parentId ?? null;
  while (cur) {
    out.push(cur);
    cur = world.byId.get(cur)?.parentId ?? null;
  }
  return out;
}

/** An account and everything below it, with levels relative to it (itself at 0). */
export function descendants(world: DemoWorld, id: string): Array<{ account: DemoAccount; level: number }> {
  const out: Array<{ account: DemoAccount; level: number }> = [];
  const visit = (aid: string, level: number): void => {
    const a = world.byId.get(aid);
    if (!a) return;
    out.push({ account: a, level });
    for (const c of a.childIds) visit(c, level + 1);
  };
  visit(id, 0);
  return out;
}

// ---- entities -----------------------------------------------------------------------------------------------

/** Counts and id bases of one client account's entities. */
export class AccountShape {
  readonly seed: number;
  readonly account: DemoAccount;
  readonly campaigns: number;
  readonly adGroupsPerCampaign: number;
  readonly adGroups: number;
  readonly keywordsPerAdGroup: number;
  readonly keywords: number;
  readonly ads: number;
  readonly sitelinks: number;
  readonly searchTerms: number;
  readonly impressionScale: number;
  /** Distinct landing pages: two per ad group, then four sitelinks per campaign. */
  readonly landingPages: number;
  // Per-entity memos: rows repeat entities, and names and rates are asked for on every row.
  private readonly cid: Array<string> = [];
  private readonly cname: Array<string> = [];
  private readonly gid: Array<string> = [];
  private readonly gprod: Array<string> = [];
  private readonly gname: Array<string> = [];
  private readonly kid: Array<string> = [];
  private readonly ktext: Array<string> = [];
  private readonly kmatch: Array<(typeof MATCH_TYPES)[number]> = [];
  private readonly kimpr: Array<number> = [];
  private readonly kctr: Array<number> = [];
  private readonly kcpc: Array<number> = [];
  private readonly kcvr: Array<number> = [];

  constructor(seed: number, account: DemoAccount) {
    const spec = SIZES[account.size ?? 'tiny'];
    this.seed = seed;
    this.account = account;
    this.campaigns = account.size ? spec.campaigns : 0;
    this.adGroupsPerCampaign = spec.adGroupsPerCampaign;
    this.adGroups = this.campaigns * spec.adGroupsPerCampaign;
    this.keywordsPerAdGroup = spec.keywordsPerAdGroup;
    this.keywords = this.adGroups * spec.keywordsPerAdGroup;
    this.ads = this.adGroups * 2;
    this.sitelinks = this.campaigns * 4;
    this.searchTerms = account.size ? spec.searchTerms : 0;
    this.impressionScale = spec.impressionScale;
    this.landingPages = this.adGroups * 2 + this.sitelinks;
  }

  private h(kind: number, i: number, j = 0): number {
    return hash(this.seed, this.account.index * 7919 + kind, i, j);
  }

  campaignId(c: number): string {
    return memo(this.cid, c, this, this.makeCampaignId);
  }
  private makeCampaignId(c: number): string {
    return String(10_000_000 + this.account.index * 100_000 + c);
  }
  campaignName(c: number): string {
    return memo(this.cname, c, this, this.makeCampaignName);
  }
  private makeCampaignName(c: number): string {
    const product = PRODUCTS[this.h(1, c) % PRODUCTS.length]!;
    const type = CAMPAIGN_TYPES[c % CAMPAIGN_TYPES.length]!;
    return `${type} — ${product.replace(/\b\w/g, (x) => x.toUpperCase())} #${c + 1}`;
  }
  campaignStatus(c: number): 'ENABLED' | 'PAUSED' {
    return c % 7 === 6 ? 'PAUSED' : 'ENABLED';
  }

  campaignOf(g: number): number {
    return Math.floor(g / this.adGroupsPerCampaign);
  }
  adGroupId(g: number): string {
    return memo(this.gid, g, this, this.makeAdGroupId);
  }
  private makeAdGroupId(g: number): string {
    return String(100_000_000_000 + this.account.index * 1_000_000_000 + g);
  }
  adGroupProduct(g: number): string {
    return memo(this.gprod, g, this, this.makeAdGroupProduct);
  }
  private makeAdGroupProduct(g: number): string {
    return PRODUCTS[(this.h(1, this.campaignOf(g)) + (g % this.adGroupsPerCampaign)) % PRODUCTS.length]!;
  }
  adGroupName(g: number): string {
    return memo(this.gname, g, this, this.makeAdGroupName);
  }
  private makeAdGroupName(g: number): string {
    const mod = MODIFIERS[this.h(2, g) % MODIFIERS.length]!;
    return `${mod.replace(/\b\w/g, (x) => x.toUpperCase())} ${this.adGroupProduct(g)} — ${g + 1}`;
  }
  adGroupStatus(g: number): 'ENABLED' | 'PAUSED' {
    return this.h(3, g) % 20 === 0 ? 'PAUSED' : 'ENABLED';
  }

  adGroupOfKeyword(k: number): number {
    return Math.floor(k / this.keywordsPerAdGroup);
  }
  criterionId(k: number): string {
    return memo(this.kid, k, this, this.makeCriterionId);
  }
  private makeCriterionId(k: number): string {
    return String(200_000_000_000 + this.account.index * 1_000_000_000 + k);
  }
  keywordText(k: number): string {
    return memo(this.ktext, k, this, this.makeKeywordText);
  }
  private makeKeywordText(k: number): string {
    const h = this.h(4, k);
    const product = this.adGroupProduct(this.adGroupOfKeyword(k));
    const m1 = MODIFIERS[h % MODIFIERS.length]!;
    const m2 = MODIFIERS[(h >>> 8) % MODIFIERS.length]!;
    switch ((h >>> 16) % 4) {
      case 0:
        return product;
      case 1:
        return `${m1} ${product}`;
      case 2:
        return `${product} ${m1}`;
      default:
        return m1 === m2 ? `${m1} ${product}` : `${m1} ${m2} ${product}`;
    }
  }
  /** 40% exact, 35% phrase, 25% broad. */
  matchType(k: number): (typeof MATCH_TYPES)[number] {
    return memo(this.kmatch, k, this, this.makeMatchType);
  }
  private makeMatchType(k: number): (typeof MATCH_TYPES)[number] {
    const r = this.h(5, k) % 100;
    return r < 40 ? 'EXACT' : r < 75 ? 'PHRASE' : 'BROAD';
  }
  /** 1–10, centred on 6–7; null (not enough traffic) for about one keyword in ten. */
  qualityScore(k: number): number | null {
    const h = this.h(6, k);
    if (h % 10 === 0) return null;
    const q = Math.round(6.5 + 1.8 * normal(h >>> 4, this.h(7, k)));
    return Math.max(1, Math.min(10, q));
  }
  keywordStatus(k: number): 'ENABLED' | 'PAUSED' {
    return this.h(8, k) % 25 === 0 ? 'PAUSED' : 'ENABLED';
  }
  /** About 30% of keywords override the final URL, with the ad group's first page (so the URL list dedupes). */
  keywordFinalUrl(k: number, base: string): string | null {
    return this.h(9, k) % 10 < 3 ? this.landingUrl(base, this.adGroupOfKeyword(k) * 2) : null;
  }

  adId(a: number): string {
    return String(300_000_000_000 + this.account.index * 1_000_000_000 + a);
  }
  adHeadline(a: number): string {
    return HEADLINES[this.h(10, a) % HEADLINES.length]!;
  }
  adStatus(a: number): 'ENABLED' | 'PAUSED' {
    return a % 2 === 1 && this.h(11, a) % 4 === 0 ? 'PAUSED' : 'ENABLED';
  }

  assetId(sl: number): string {
    return String(400_000_000_000 + this.account.index * 1_000_000_000 + sl);
  }
  sitelinkText(sl: number): string {
    return SITELINKS[(this.h(12, Math.floor(sl / 4)) + (sl % 4)) % SITELINKS.length]!;
  }

  /** Landing page `n` of this account; the page's behaviour follows from `n` (see landing.ts). */
  landingUrl(base: string, n: number): string {
    const g = n < this.adGroups * 2 ? Math.floor(n / 2) : -1;
    const slug = g >= 0 ? this.adGroupProduct(g).replace(/ /g, '-') : 'info';
    return `${base}/lp/${this.account.id}/${n}/${slug}`;
  }

  // ---- search terms ----
  adGroupOfSearchTerm(s: number): number {
    return this.h(13, s) % this.adGroups;
  }
  keywordOfSearchTerm(s: number): number {
    return this.adGroupOfSearchTerm(s) * this.keywordsPerAdGroup + (this.h(14, s) % this.keywordsPerAdGroup);
  }
  searchTermText(s: number): string {
    const h = this.h(15, s);
    const kw = this.keywordText(this.keywordOfSearchTerm(s));
    switch (h % 5) {
      case 0:
        return kw;
      case 1:
        return `${kw} ${TAILS[(h >>> 4) % TAILS.length]}`;
      case 2:
        return `${MODIFIERS[(h >>> 8) % MODIFIERS.length]} ${kw}`;
      case 3:
        return `${kw} ${TAILS[(h >>> 4) % TAILS.length]} ${MODIFIERS[(h >>> 12) % MODIFIERS.length]}`;
      default:
        return `${kw} ${TAILS[(h >>> 4) % TAILS.length]} ${TAILS[(h >>> 9) % TAILS.length]}`;
    }
  }
  /** 80% NONE, 10% ADDED, 8% EXCLUDED, 2% ADDED_EXCLUDED. */
  searchTermStatus(s: number): (typeof SEARCH_TERM_STATUSES)[number] {
    const r = this.h(16, s) % 50;
    return r < 40 ? 'NONE' : r < 45 ? 'ADDED' : r < 49 ? 'EXCLUDED' : 'ADDED_EXCLUDED';
  }

  // ---- metrics ----
  /** A keyword's typical daily impressions: log-normal, heavy-tailed. */
  keywordBaseImpressions(k: number): number {
    return memo(this.kimpr, k, this, this.makeKeywordBaseImpressions);
  }
  private makeKeywordBaseImpressions(k: number): number {
    return this.impressionScale * Math.exp(1.1 * normal(this.h(20, k), this.h(21, k)) - 0.6);
  }
  keywordCtr(k: number): number {
    return memo(this.kctr, k, this, this.makeKeywordCtr);
  }
  private makeKeywordCtr(k: number): number {
    const base = { EXACT: 0.075, PHRASE: 0.05, BROAD: 0.03 }[this.matchType(k)];
    const q = this.qualityScore(k) ?? 5;
    return Math.min(0.4, base * (0.5 + q / 10) * Math.exp(0.3 * normal(this.h(22, k), this.h(23, k))));
  }
  keywordCpcMicros(k: number): number {
    return memo(this.kcpc, k, this, this.makeKeywordCpcMicros);
  }
  private makeKeywordCpcMicros(k: number): number {
    const q = this.qualityScore(k) ?? 5;
    const anomaly = this.h(24, k) % 89 === 2 ? 5 : 1; // the odd runaway keyword
    return this.account.cpcMicros * (1.6 - q / 10) * Math.exp(0.35 * normal(this.h(25, k), this.h(26, k))) * anomaly;
  }
  keywordCvr(k: number): number {
    return memo(this.kcvr, k, this, this.makeKeywordCvr);
  }
  private makeKeywordCvr(k: number): number {
    return this.h(24, k) % 89 === 2 ? 0 : 0.035 * Math.exp(0.5 * normal(this.h(27, k), this.h(28, k)));
  }

  /** Campaign-level anomalies on a day: a spike (×4 traffic) about one day in 61, an outage one day in 73. */
  campaignDayFactor(c: number, day: number): number {
    const h = this.h(30, c, day);
    if (h % 73 === 1) return 0;
    if (h % 61 === 0) return 4;
    return 1;
  }

  /** Adds keyword `k`'s metrics on `day` into `m`. */
  addKeywordDay(m: Metrics, k: number, day: number): void {
    const c = this.campaignOf(this.adGroupOfKeyword(k));
    const f = weekdayFactor(day) * this.campaignDayFactor(c, day) * (0.75 + 0.5 * unit(this.h(31, k, day)));
    if (f === 0) return;
    const impressions = Math.round(this.keywordBaseImpressions(k) * f);
    if (impressions === 0) return;
    const clicks = Math.round(impressions * this.keywordCtr(k) * (0.8 + 0.4 * unit(this.h(32, k, day))));
    const cost = Math.round(clicks * this.keywordCpcMicros(k));
    const conversions = Math.round(clicks * this.keywordCvr(k) * (0.5 + unit(this.h(33, k, day))) * 100) / 100;
    m.impressions += impressions;
    m.clicks += clicks;
    m.costMicros += cost;
    m.conversions += conversions;
    m.conversionsValue += conversions * this.account.orderValue * (0.8 + 0.4 * unit(this.h(34, k, day)));
  }

  /** Adds search term `s`'s metrics over `days` (already summed weekday factors) into `m`. */
  addSearchTerm(m: Metrics, s: number, dayWeight: number): void {
    const h = this.h(40, s);
    const impressions = Math.round(
      (this.impressionScale / 25) * Math.exp(1.3 * normal(h, this.h(41, s)) - 0.8) * dayWeight,
    );
    if (impressions === 0) return;
    const k = this.keywordOfSearchTerm(s);
    const clicks = Math.round(impressions * this.keywordCtr(k) * (0.6 + 0.8 * unit(h >>> 3)));
    const conversions = Math.round(clicks * this.keywordCvr(k) * (0.5 + unit(this.h(42, s))) * 100) / 100;
    m.impressions += impressions;
    m.clicks += clicks;
    m.costMicros += Math.round(clicks * this.keywordCpcMicros(k) * (0.7 + 0.6 * unit(h >>> 11)));
    m.conversions += conversions;
    m.conversionsValue += conversions * this.account.orderValue;
  }
}

export interface Metrics {
  impressions: number;
  clicks: number;
  costMicros: number;
  conversions: number;
  conversionsValue: number;
}

export function emptyMetrics(): Metrics {
  return { impressions: 0, clicks: 0, costMicros: 0, conversions: 0, conversionsValue: 0 };
}

/** Monday-peaking weekday seasonality; weekends are quieter. Index 0 = Sunday. */
const WEEKDAY = [0.82, 1.06, 1.1, 1.08, 1.02, 0.93, 0.78];

/** `day` is days since 1970-01-01 (a Thursday). */
export function weekdayFactor(day: number): number {
  return WEEKDAY[(((day + 4) % 7) + 7) % 7]!;
}

export function dayNumber(date: string): number {
  return Math.floor(Date.parse(`${date}T00:00:00Z`) / 86_400_000);
}

const DATES = new Map<number, string>();

/** `YYYY-MM-DD` of a day number; memoised (a dated report asks for the same few days on every row). */
export function dateOf(day: number): string {
  let v = DATES.get(day);
  if (v === undefined) {
    v = new Date(day * 86_400_000).toISOString().slice(0, 10);
    if (DATES.size >= 10_000) DATES.clear();
    DATES.set(day, v);
  }
  return v;
}
