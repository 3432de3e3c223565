/**
 * Runs a GAQL query against the synthetic world and produces Google Ads REST rows (GoogleAdsRow JSON: lowerCamelCase
 * keys, int64 as strings, unset fields omitted), one at a time, so a stream never holds more than a chunk.
 */
import { camelCase, type Condition, duringRange, type GaqlQuery, GaqlError, type Literal } from './gaql.ts';
import {
  AccountShape,
  type DemoAccount,
  type DemoWorld,
  dateOf,
  dayNumber,
  descendants,
  emptyMetrics,
  type Metrics,
  weekdayFactor,
} from './model.ts';

type Scope =
  | 'customer'
  | 'client'
  | 'campaign'
  | 'adGroup'
  | 'keyword'
  | 'ad'
  | 'sitelink'
  | 'searchTerm'
  | 'metrics'
  | 'date';
type FieldType = 'int64' | 'double' | 'string' | 'bool' | 'strings';
type Value = string | number | boolean | string[] | null;

interface Ctx {
  world: DemoWorld;
  acct: DemoAccount;
  shape: AccountShape;
  /** Base URL for landing pages. */
  base: string;
  c: number;
  g: number;
  k: number;
  a: number;
  sl: number;
  s: number;
  day: number;
  m: Metrics;
  client: { account: DemoAccount; level: number } | null;
  /** The current search term's text, computed once per row. */
  stIndex: number;
  stText: string;
  /** The current search term's resource name, computed once per search term (dated rows repeat it). */
  rnIndex: number;
  rnText: string;
  /** JSON text of the search term and its resource name, once per search term. */
  stJsonIndex: number;
  stJson: string;
  rnJsonIndex: number;
  rnJson: string;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** URL-safe base64 without padding, as in search-term-view resource names; plain JS for ASCII (no Buffer per row). */
export function base64url(s: string): string {
  let out = '';
  let i = 0;
  const n = s.length;
  for (; i + 2 < n; i += 3) {
    const a = s.charCodeAt(i);
    const b = s.charCodeAt(i + 1);
    const c = s.charCodeAt(i + 2);
    if ((a | b | c) > 127) return Buffer.from(s).toString('base64url');
    const v = (a << 16) | (b << 8) | c;
    out += B64[v >> 18]! + B64[(v >> 12) & 63]! + B64[(v >> 6) & 63]! + B64[v & 63]!;
  }
  const rest = n - i;
  if (rest > 0) {
    const a = s.charCodeAt(i);
    const b = rest === 2 ? s.charCodeAt(i + 1) : 0;
    if ((a | b) > 127) return Buffer.from(s).toString('base64url');
    const v = (a << 16) | (b << 8);
    out += B64[v >> 18]! + B64[(v >> 12) & 63]! + (rest === 2 ? B64[(v >> 6) & 63]! : '');
  }
  return out;
}

function termResourceName(x: Ctx): string {
  if (x.rnIndex !== x.s) {
    x.rnIndex = x.s;
    x.rnText = `customers/${cid(x)}/searchTermViews/${x.shape.campaignId(x.c)}~${x.shape.adGroupId(x.g)}~${base64url(termText(x))}`;
  }
  return x.rnText;
}

function termJson(x: Ctx): string {
  if (x.stJsonIndex !== x.s) {
    x.stJsonIndex = x.s;
    x.stJson = JSON.stringify(termText(x));
  }
  return x.stJson;
}

function termResourceNameJson(x: Ctx): string {
  if (x.rnJsonIndex !== x.s) {
    x.rnJsonIndex = x.s;
    x.rnJson = JSON.stringify(termResourceName(x));
  }
  return x.rnJson;
}

const DATE_JSON = new Map<number, string>();

function dateJson(day: number): string {
  let v = DATE_JSON.get(day);
  if (v === undefined) {
    v = JSON.stringify(dateOf(day));
    if (DATE_JSON.size >= 10_000) DATE_JSON.clear();
    DATE_JSON.set(day, v);
  }
  return v;
}

function termText(x: Ctx): string {
  if (x.stIndex !== x.s) {
    x.stIndex = x.s;
    x.stText = x.shape.searchTermText(x.s);
  }
  return x.stText;
}

interface FieldDef {
  type: FieldType;
  scope: Scope;
  get(x: Ctx): Value;
  /** May be unset (null), in which case the key is omitted, as Google omits unset fields. */
  nullable?: boolean;
  /** The value as JSON text, memoised where rows repeat it (the same as JSON.stringify(get(x))). */
  json?: (x: Ctx) => string;
}

const f = (type: FieldType, scope: Scope, get: (x: Ctx) => Value, nullable = false): FieldDef => ({
  type,
  scope,
  get,
  nullable,
});
const cid = (x: Ctx): string => x.acct.id;

const FIELDS: Record<string, FieldDef> = {
  'customer.id': f('int64', 'customer', cid),
  'customer.resource_name': f('string', 'customer', (x) => `customers/${x.acct.id}`),
  'customer.descriptive_name': f('string', 'customer', (x) => x.acct.name),
  'customer.currency_code': f('string', 'customer', (x) => x.acct.currency),
  'customer.time_zone': f('string', 'customer', (x) => x.acct.timeZone),
  'customer.manager': f('bool', 'customer', (x) => x.acct.manager),
  'customer.status': f('string', 'customer', (x) => x.acct.status),
  'customer.test_account': f('bool', 'customer', () => false),

  'customer_client.resource_name': f(
    'string',
    'client',
    (x) => `customers/${x.acct.id}/customerClients/${x.client!.account.id}`,
  ),
  'customer_client.client_customer': f('string', 'client', (x) => `customers/${x.client!.account.id}`),
  'customer_client.id': f('int64', 'client', (x) => x.client!.account.id),
  'customer_client.level': f('int64', 'client', (x) => x.client!.level),
  'customer_client.manager': f('bool', 'client', (x) => x.client!.account.manager),
  'customer_client.descriptive_name': f('string', 'client', (x) => x.client!.account.name),
  'customer_client.currency_code': f('string', 'client', (x) => x.client!.account.currency),
  'customer_client.time_zone': f('string', 'client', (x) => x.client!.account.timeZone),
  'customer_client.status': f('string', 'client', (x) => x.client!.account.status),
  'customer_client.hidden': f('bool', 'client', () => false),
  'customer_client.test_account': f('bool', 'client', () => false),

  'campaign.id': f('int64', 'campaign', (x) => x.shape.campaignId(x.c)),
  'campaign.resource_name': f('string', 'campaign', (x) => `customers/${cid(x)}/campaigns/${x.shape.campaignId(x.c)}`),
  'campaign.name': f('string', 'campaign', (x) => x.shape.campaignName(x.c)),
  'campaign.status': f('string', 'campaign', (x) => x.shape.campaignStatus(x.c)),
  'campaign.advertising_channel_type': f('string', 'campaign', () => 'SEARCH'),
  'campaign.bidding_strategy_type': f('string', 'campaign', (x) =>
    x.c % 3 === 0 ? 'MAXIMIZE_CONVERSIONS' : x.c % 3 === 1 ? 'TARGET_CPA' : 'MANUAL_CPC',
  ),

  'ad_group.id': f('int64', 'adGroup', (x) => x.shape.adGroupId(x.g)),
  'ad_group.resource_name': f('string', 'adGroup', (x) => `customers/${cid(x)}/adGroups/${x.shape.adGroupId(x.g)}`),
  'ad_group.name': f('string', 'adGroup', (x) => x.shape.adGroupName(x.g)),
  'ad_group.status': f('string', 'adGroup', (x) => x.shape.adGroupStatus(x.g)),
  'ad_group.type': f('string', 'adGroup', () => 'SEARCH_STANDARD'),

  'ad_group_criterion.resource_name': f(
    'string',
    'keyword',
    (x) => `customers/${cid(x)}/adGroupCriteria/${x.shape.adGroupId(x.g)}~${x.shape.criterionId(x.k)}`,
  ),
  'ad_group_criterion.criterion_id': f('int64', 'keyword', (x) => x.shape.criterionId(x.k)),
  'ad_group_criterion.type': f('string', 'keyword', () => 'KEYWORD'),
  'ad_group_criterion.negative': f('bool', 'keyword', () => false),
  'ad_group_criterion.status': f('string', 'keyword', (x) => x.shape.keywordStatus(x.k)),
  'ad_group_criterion.keyword.text': f('string', 'keyword', (x) => x.shape.keywordText(x.k)),
  'ad_group_criterion.keyword.match_type': f('string', 'keyword', (x) => x.shape.matchType(x.k)),
  'ad_group_criterion.quality_info.quality_score': f('double', 'keyword', (x) => x.shape.qualityScore(x.k), true),
  'ad_group_criterion.final_urls': f(
    'strings',
    'keyword',
    (x) => {
      const u = x.shape.keywordFinalUrl(x.k, x.base);
      return u ? [u] : null;
    },
    true,
  ),
  'keyword_view.resource_name': f(
    'string',
    'keyword',
    (x) => `customers/${cid(x)}/keywordViews/${x.shape.adGroupId(x.g)}~${x.shape.criterionId(x.k)}`,
  ),

  'ad_group_ad.resource_name': f(
    'string',
    'ad',
    (x) => `customers/${cid(x)}/adGroupAds/${x.shape.adGroupId(x.g)}~${x.shape.adId(x.a)}`,
  ),
  'ad_group_ad.status': f('string', 'ad', (x) => x.shape.adStatus(x.a)),
  'ad_group_ad.ad.id': f('int64', 'ad', (x) => x.shape.adId(x.a)),
  'ad_group_ad.ad.type': f('string', 'ad', () => 'RESPONSIVE_SEARCH_AD'),
  'ad_group_ad.ad.final_urls': f('strings', 'ad', (x) => [x.shape.landingUrl(x.base, x.a)]),
  'ad_group_ad.ad.name': f('string', 'ad', (x) => x.shape.adHeadline(x.a)),

  'campaign_asset.resource_name': f(
    'string',
    'sitelink',
    (x) => `customers/${cid(x)}/campaignAssets/${x.shape.campaignId(x.c)}~${x.shape.assetId(x.sl)}~SITELINK`,
  ),
  'campaign_asset.field_type': f('string', 'sitelink', () => 'SITELINK'),
  'campaign_asset.status': f('string', 'sitelink', () => 'ENABLED'),
  'asset.id': f('int64', 'sitelink', (x) => x.shape.assetId(x.sl)),
  'asset.resource_name': f('string', 'sitelink', (x) => `customers/${cid(x)}/assets/${x.shape.assetId(x.sl)}`),
  'asset.type': f('string', 'sitelink', () => 'SITELINK'),
  'asset.sitelink_asset.link_text': f('string', 'sitelink', (x) => x.shape.sitelinkText(x.sl)),
  'asset.final_urls': f('strings', 'sitelink', (x) => [x.shape.landingUrl(x.base, x.shape.adGroups * 2 + x.sl)]),

  'search_term_view.resource_name': { ...f('string', 'searchTerm', termResourceName), json: termResourceNameJson },
  'search_term_view.search_term': { ...f('string', 'searchTerm', termText), json: termJson },
  'search_term_view.status': f('string', 'searchTerm', (x) => x.shape.searchTermStatus(x.s)),
  'segments.keyword.info.text': f('string', 'searchTerm', (x) => x.shape.keywordText(x.k)),
  'segments.keyword.info.match_type': f('string', 'searchTerm', (x) => x.shape.matchType(x.k)),

  'segments.date': { ...f('string', 'date', (x) => dateOf(x.day)), json: (x) => dateJson(x.day) },
  'metrics.impressions': f('int64', 'metrics', (x) => x.m.impressions),
  'metrics.clicks': f('int64', 'metrics', (x) => x.m.clicks),
  'metrics.cost_micros': f('int64', 'metrics', (x) => x.m.costMicros),
  'metrics.conversions': f('double', 'metrics', (x) => Math.round(x.m.conversions * 100) / 100),
  'metrics.conversions_value': f('double', 'metrics', (x) => Math.round(x.m.conversionsValue * 100) / 100),
  'metrics.ctr': f('double', 'metrics', (x) => (x.m.impressions ? x.m.clicks / x.m.impressions : 0)),
  'metrics.average_cpc': f('double', 'metrics', (x) => (x.m.clicks ? x.m.costMicros / x.m.clicks : 0)),
};

interface ResourceDef {
  scopes: Scope[];
  /** Row entities, each followed by its metrics when asked; the context is mutated in place per row. */
  rows(x: Ctx, plan: Plan): Generator<void>;
}

interface Plan {
  days: number[];
  dated: boolean;
  metrics: boolean;
}

/** Days to sum or segment over. */
function* eachDay(x: Ctx, plan: Plan, addDay: (day: number) => void): Generator<void> {
  if (!plan.metrics) {
    yield;
    return;
  }
  if (plan.dated) {
    for (const day of plan.days) {
      x.day = day;
      resetMetrics(x.m);
      addDay(day);
      if (x.m.impressions > 0) yield;
    }
  } else {
    resetMetrics(x.m);
    for (const day of plan.days) addDay(day);
    yield;
  }
}

function resetMetrics(m: Metrics): void {
  m.impressions = 0;
  m.clicks = 0;
  m.costMicros = 0;
  m.conversions = 0;
  m.conversionsValue = 0;
}

function addKeywords(x: Ctx, from: number, to: number, day: number): void {
  for (let k = from; k < to; k++) x.shape.addKeywordDay(x.m, k, day);
}

const RESOURCES: Record<string, ResourceDef> = {
  customer: {
    scopes: ['customer', 'metrics', 'date'],
    *rows(x, plan) {
      yield* eachDay(x, plan, (day) => addKeywords(x, 0, x.shape.keywords, day));
    },
  },
  customer_client: {
    scopes: ['customer', 'client'],
    *rows(x) {
      for (const d of descendants(x.world, x.acct.id)) {
        x.client = d;
        yield;
      }
    },
  },
  campaign: {
    scopes: ['customer', 'campaign', 'metrics', 'date'],
    *rows(x, plan) {
      const per = x.shape.adGroupsPerCampaign * x.shape.keywordsPerAdGroup;
      for (let c = 0; c < x.shape.campaigns; c++) {
        x.c = c;
        yield* eachDay(x, plan, (day) => addKeywords(x, c * per, (c + 1) * per, day));
      }
    },
  },
  ad_group: {
    scopes: ['customer', 'campaign', 'adGroup', 'metrics', 'date'],
    *rows(x, plan) {
      const per = x.shape.keywordsPerAdGroup;
      for (let g = 0; g < x.shape.adGroups; g++) {
        x.g = g;
        x.c = x.shape.campaignOf(g);
        yield* eachDay(x, plan, (day) => addKeywords(x, g * per, (g + 1) * per, day));
      }
    },
  },
  ad_group_criterion: {
    scopes: ['customer', 'campaign', 'adGroup', 'keyword'],
    *rows(x) {
      for (let k = 0; k < x.shape.keywords; k++) {
        x.k = k;
        x.g = x.shape.adGroupOfKeyword(k);
        x.c = x.shape.campaignOf(x.g);
        yield;
      }
    },
  },
  keyword_view: {
    scopes: ['customer', 'campaign', 'adGroup', 'keyword', 'metrics', 'date'],
    *rows(x, plan) {
      for (let k = 0; k < x.shape.keywords; k++) {
        x.k = k;
        x.g = x.shape.adGroupOfKeyword(k);
        x.c = x.shape.campaignOf(x.g);
        yield* eachDay(x, plan, (day) => x.shape.addKeywordDay(x.m, k, day));
      }
    },
  },
  ad_group_ad: {
    scopes: ['customer', 'campaign', 'adGroup', 'ad'],
    *rows(x) {
      for (let a = 0; a < x.shape.ads; a++) {
        x.a = a;
        x.g = Math.floor(a / 2);
        x.c = x.shape.campaignOf(x.g);
        yield;
      }
    },
  },
  campaign_asset: {
    scopes: ['customer', 'campaign', 'sitelink'],
    *rows(x) {
      for (let sl = 0; sl < x.shape.sitelinks; sl++) {
        x.sl = sl;
        x.c = Math.floor(sl / 4);
        yield;
      }
    },
  },
  search_term_view: {
    scopes: ['customer', 'campaign', 'adGroup', 'searchTerm', 'metrics', 'date'],
    *rows(x, plan) {
      let weight = 0;
      for (const day of plan.days) weight += weekdayFactor(day);
      for (let s = 0; s < x.shape.searchTerms; s++) {
        x.s = s;
        x.k = x.shape.keywordOfSearchTerm(s);
        x.g = x.shape.adGroupOfKeyword(x.k);
        x.c = x.shape.campaignOf(x.g);
        if (!plan.metrics) {
          yield;
        } else if (plan.dated) {
          for (const day of plan.days) {
            x.day = day;
            resetMetrics(x.m);
            x.shape.addSearchTerm(x.m, s, weekdayFactor(day) * x.shape.campaignDayFactor(x.c, day));
            if (x.m.impressions > 0) yield;
          }
        } else {
          resetMetrics(x.m);
          x.shape.addSearchTerm(x.m, s, weight);
          yield;
        }
      }
    },
  },
};

// ---- JSON output --------------------------------------------------------------------------------------------

interface OutNode {
  key: string;
  children: Map<string, OutNode>;
  field?: FieldDef;
}

/**
 * JSON text of a string or list field, remembering the last value: consecutive rows often repeat it (a dated report
 * repeats a search term's text, resource name and date across its days), and quoting/escaping is not free.
 */
function stringEncoder(): (v: Value) => string {
  let last: Value = null;
  let lastText = 'null';
  return (v) => {
    if (v !== last || typeof v === 'object') {
      last = v;
      lastText = JSON.stringify(v);
    }
    return lastText;
  };
}

/**
 * Compiles the row serializer into one function (generated source: a flat sequence of string appends, one local per
 * JSON object), because closures per field profiled several times slower on million-row streams. The source is built
 * only from our own field table and camelCased GAQL identifiers validated against it, never from raw input.
 */
function compileRow(root: OutNode): (x: Ctx) => string {
  const getters: Array<(x: Ctx) => Value> = [];
  const strings: Array<(v: Value) => string> = [];
  const jsons: Array<(x: Ctx) => string> = [];
  let n = 0;
  const lines: string[] = [];
  const emitObject = (node: OutNode, into: string): void => {
    const local = `o${n++}`;
    lines.push(`let ${local} = '';`);
    for (const child of node.children.values()) {
      const key = JSON.stringify(`"${child.key}":`);
      if (child.field) {
        const g = getters.push(child.field.get) - 1;
        const enc =
          child.field.type === 'int64'
            ? `'"' + v + '"'`
            : child.field.type === 'double'
              ? '(Number.isFinite(v) ? v : 0)'
              : child.field.type === 'bool'
                ? "(v ? 'true' : 'false')"
                : `S[${strings.push(stringEncoder()) - 1}](v)`;
        lines.push(`v = G[${g}](x); if (v !== null) ${local} += (${local} ? ',' : '') + ${key} + ${enc};`);
      } else {
        const inner = `o${n}`;
        emitObject(child, inner);
        lines.push(
          `if (${inner}) ${local} += (${local} ? ',' : '') + ${JSON.stringify(`"${child.key}":{`)} + ${inner} + '}';`,
        );
      }
    }
    if (into !== local) lines.push(`const ${into} = ${local};`);
  };
  const encode = (t: FieldType, v: string): string =>
    t === 'int64'
      ? `'"' + ${v} + '"'`
      : t === 'double'
        ? `N(${v})`
        : t === 'bool'
          ? `(${v} ? 'true' : 'false')`
          : `S[${strings.push(stringEncoder()) - 1}](${v})`;
  const anyNullable = (node: OutNode): boolean =>
    node.field ? node.field.nullable === true : [...node.children.values()].some(anyNullable);
  if (!anyNullable(root)) {
    // Every field is always set: the row is one expression, with adjacent literal pieces merged at compile time.
    const parts: Array<{ lit: string } | { expr: string }> = [];
    const lit = (t: string): void => {
      const last = parts[parts.length - 1];
      if (last && 'lit' in last) last.lit += t;
      else parts.push({ lit: t });
    };
    const walk = (node: OutNode): void => {
      let first = true;
      for (const child of node.children.values()) {
        lit(`${first ? '' : ','}"${child.key}":`);
        first = false;
        if (child.field?.json) {
          parts.push({ expr: `J[${jsons.push(child.field.json) - 1}](x)` });
        } else if (child.field) {
          const g = getters.push(child.field.get) - 1;
          parts.push({ expr: encode(child.field.type, `G[${g}](x)`) });
        } else {
          lit('{');
          walk(child);
          lit('}');
        }
      }
    };
    walk(root);
    const expr = parts.map((p) => ('lit' in p ? JSON.stringify(p.lit) : `(${p.expr})`)).join(' + ') || "''";
    const fast = new Function('G', 'N', 'S', 'J', `return function row(x) { return ${expr}; };`) as (
      g: typeof getters,
      n: (v: Value) => number,
      s: typeof strings,
      j: typeof jsons,
    ) => (x: Ctx) => string;
    return fast(getters, (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0), strings, jsons);
  }
  const top = `o${n}`;
  emitObject(root, top);
  const body = `let v;\n${lines.join('\n')}\nreturn ${top};`;
  const fn = new Function('G', 'S', `return function row(x) {\n${body}\n};`) as (
    g: typeof getters,
    s: typeof strings,
  ) => (x: Ctx) => string;
  return fn(getters, strings);
}

/** How result chunks are framed around their rows: `open row,row,... close`, chunks separated by `sep`. */
export interface ChunkFrame {
  rowsPerChunk: number;
  /** Text before a chunk's first row, e.g. `{"results":[`. */
  open: string;
  /** Text after a chunk's last row, e.g. `],"fieldMask":"…","requestId":"…"}`. */
  close: string;
  /** Text between two chunks. */
  sep: string;
  /** Bytes per block handed out (a row never spans two blocks); default 256 KiB. */
  blockBytes?: number;
}

export interface PreparedQuery {
  /**
   * The matching rows as UTF-8 GoogleAdsRow JSON, framed into result chunks, handed out in blocks of about
   * `blockBytes` (each holding `rows` whole rows), so the server writes few large buffers instead of one string per
   * row and the text of a row is garbage while it is still young. Yields nothing when no row matches.
   */
  blocks(frame: ChunkFrame): Generator<{ bytes: Buffer; rows: number }>;
  fieldMask: string;
}

export interface QueryContext {
  world: DemoWorld;
  account: DemoAccount;
  landingBase: string;
  /** Days since the epoch of "today" in the demo's clock. */
  today: number;
}

function literalDay(v: Literal): number {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v)) {
    throw new GaqlError(
      `invalid date ${JSON.stringify(v)}; dates are 'YYYY-MM-DD'`,
      'INVALID_VALUE_WITH_BETWEEN_OPERATOR',
    );
  }
  return dayNumber(v);
}

function compare(v: Value, c: Condition): boolean {
  const norm = (x: Value | Literal): string | number | boolean =>
    typeof x === 'string' && /^-?\d+(\.\d+)?$/.test(x) ? Number(x) : Array.isArray(x) ? x.join(',') : (x ?? '');
  const a = norm(v);
  switch (c.op) {
    case '=':
      return a === norm(c.value);
    case '!=':
      return a !== norm(c.value);
    case '<':
      return a < norm(c.value);
    case '<=':
      return a <= norm(c.value);
    case '>':
      return a > norm(c.value);
    case '>=':
      return a >= norm(c.value);
    case 'LIKE': {
      const pattern = String(c.value)
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replace(/%/g, '.*');
      return new RegExp(`^${pattern}$`, 'i').test(String(a));
    }
    case 'IN':
      return c.values.some((x) => norm(x) === a);
    case 'NOT IN':
      return !c.values.some((x) => norm(x) === a);
    case 'BETWEEN':
      return a >= norm(c.low) && a <= norm(c.high);
    case 'DURING':
      return true;
  }
}

/** Validates the query for the account and returns its row generator. Throws GaqlError for a bad query. */
export function prepareQuery(q: GaqlQuery, qc: QueryContext): PreparedQuery {
  const resource = RESOURCES[q.from];
  if (!resource)
    throw new GaqlError(`unknown or unsupported resource ${JSON.stringify(q.from)}`, 'INVALID_RESOURCE_NAME');
  const check = (name: string): FieldDef => {
    const def = FIELDS[name];
    if (!def) throw new GaqlError(`unrecognized field ${JSON.stringify(name)}`, 'UNRECOGNIZED_FIELD');
    if (!resource.scopes.includes(def.scope)) {
      throw new GaqlError(
        `${name} cannot be selected with resource ${q.from}`,
        'PROHIBITED_FIELD_COMBINATION_IN_SELECT_CLAUSE',
      );
    }
    return def;
  };
  const selected = q.select.map(check);
  const conds = q.where.map((c) => ({ c, def: check(c.field) }));
  const metrics = [...selected, ...conds.map((x) => x.def)].some((d) => d.scope === 'metrics');
  if (metrics && qc.account.manager) {
    throw new GaqlError('metrics cannot be requested for a manager account', 'REQUESTED_METRICS_FOR_MANAGER');
  }
  let from = qc.today - 30;
  let to = qc.today - 1;
  for (const { c } of conds) {
    if (c.field !== 'segments.date') continue;
    if (c.op === 'DURING') [from, to] = duringRange(c.range, qc.today);
    else if (c.op === 'BETWEEN') [from, to] = [literalDay(c.low), literalDay(c.high)];
    else if (c.op === '=') from = to = literalDay(c.value);
    else if (c.op === '>=') from = literalDay(c.value);
    else if (c.op === '>') from = literalDay(c.value) + 1;
    else if (c.op === '<=') to = literalDay(c.value);
    else if (c.op === '<') to = literalDay(c.value) - 1;
    else throw new GaqlError(`unsupported operator ${c.op} on segments.date`, 'BAD_OPERATOR');
  }
  if (to - from > 3660) throw new GaqlError('date range longer than ten years', 'DATE_RANGE_TOO_WIDE');
  const days: number[] = [];
  for (let d = from; d <= to; d++) days.push(d);
  const dated = q.select.includes('segments.date');
  const filters = conds.filter(({ c }) => c.field !== 'segments.date');

  // Output tree: the FROM resource's resource_name first (Google always returns it), then the selected fields.
  const root: OutNode = { key: '', children: new Map() };
  const rn = `${q.from}.resource_name`;
  const paths = FIELDS[rn] && !q.select.includes(rn) ? [rn, ...q.select] : q.select;
  for (const p of paths) {
    let node = root;
    for (const seg of p.split('.').map(camelCase)) {
      let next = node.children.get(seg);
      if (!next) {
        next = { key: seg, children: new Map() };
        node.children.set(seg, next);
      }
      node = next;
    }
    node.field = FIELDS[p]!;
  }
  const members = compileRow(root);
  const plan: Plan = { days, dated, metrics };
  const fieldMask = q.select.map((p) => p.split('.').map(camelCase).join('.')).join(',');

  return {
    fieldMask,
    *blocks(frame: ChunkFrame) {
      const x: Ctx = {
        world: qc.world,
        acct: qc.account,
        shape: new AccountShape(qc.world.seed, qc.account),
        base: qc.landingBase,
        c: 0,
        g: 0,
        k: 0,
        a: 0,
        sl: 0,
        s: 0,
        day: from,
        m: emptyMetrics(),
        client: null,
        stIndex: -1,
        stText: '',
        rnIndex: -1,
        rnText: '',
        stJsonIndex: -1,
        stJson: '',
        rnJsonIndex: -1,
        rnJson: '',
      };
      let left = q.limit ?? Number.POSITIVE_INFINITY;
      if (left <= 0) return;
      const blockBytes = frame.blockBytes ?? 256 * 1024;
      let buf = Buffer.allocUnsafe(blockBytes);
      let off = 0;
      let blockRows = 0;
      let inChunk = 0;
      let chunks = 0;
      let ready: { bytes: Buffer; rows: number } | null = null;
      // Rows are joined into a string of about 16 KiB before being encoded into the block: one buf.write per row
      // (flattening each row's concatenation on its own) cost more than generating the row.
      let pending = '';
      let pendingRows = 0;
      // Encodes `pending` into the block; when it might not fit, the block so far becomes `ready` and a new one
      // starts. (A UTF-16 code unit is at most 3 UTF-8 bytes, so `3 × length` bytes always suffice.)
      const commit = (): void => {
        const worst = pending.length * 3;
        if (off + worst > buf.length) {
          if (off > 0) {
            ready = { bytes: buf.subarray(0, off), rows: blockRows };
            blockRows = 0;
          }
          buf = Buffer.allocUnsafe(Math.max(blockBytes, worst));
          off = 0;
        }
        off += buf.write(pending, off);
        blockRows += pendingRows;
        pending = '';
        pendingRows = 0;
      };
      const flush = (): Array<{ bytes: Buffer; rows: number }> => {
        if (inChunk) pending += frame.close;
        commit();
        const out: Array<{ bytes: Buffer; rows: number }> = [];
        if (ready) out.push(ready);
        if (off > 0) out.push({ bytes: buf.subarray(0, off), rows: blockRows });
        return out;
      };
      try {
        for (const _ of resource.rows(x, plan)) {
          let ok = true;
          for (const { c, def } of filters) {
            if (!compare(def.get(x), c)) {
              ok = false;
              break;
            }
          }
          if (!ok) continue;
          if (inChunk > 0) pending += `,{${members(x)}}`;
          else pending += `${chunks ? frame.sep : ''}${frame.open}{${members(x)}}`;
          pendingRows += 1;
          if (++inChunk >= frame.rowsPerChunk) {
            pending += frame.close;
            inChunk = 0;
            chunks += 1;
          }
          if (pending.length >= 16_384) {
            commit();
            if (ready) {
              yield ready;
              ready = null;
            }
          }
          if (--left <= 0) break;
        }
      } catch (err) {
        // Close the chunk in progress, so the error the server appends follows whole chunks, as on Google Ads.
        yield* flush();
        throw err;
      }
      yield* flush();
    },
  };
}
