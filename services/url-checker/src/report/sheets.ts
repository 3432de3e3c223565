import { CLASS_LABELS, PROBLEM_CLASSES, type ResultStore, URL_CLASSES, type UrlClass } from '../check/index.ts';
import type { UrlSet } from '../urls/index.ts';

/** Column types the outputs understand. `percent` values are fractions (0.25 is 25%). */
export type SheetColumnType = 'string' | 'integer' | 'number' | 'money' | 'percent' | 'date' | 'url';

export interface SheetColumn {
  key: string;
  header: string;
  type: SheetColumnType;
}

export type Cell = string | number | null;

/** One sheet of the report: its columns, then its rows in batches, each row's cells in column order. */
export interface ReportSheet {
  name: string;
  columns: readonly SheetColumn[];
  /** Row batches; produced as they are read, so a sheet of 100,000 rows is never all in memory. */
  rows: AsyncIterable<Cell[][]>;
  /** Rows the sheet will have. */
  rowCount: number;
}

export interface SheetOptions {
  /** Rows per batch; default 500. */
  batchRows?: number;
  /** Places named in a URL's "Where used" cell before "and N more"; default 3. */
  placesListed?: number;
  signal?: AbortSignal | undefined;
}

/** Most urgent first: what is broken outright, then what misleads, then what works. */
const SEVERITY: readonly UrlClass[] = [
  'connection_error',
  'server_error',
  'client_error',
  'timeout',
  'redirect_loop',
  'invalid_url',
  'soft_error',
  'redirect',
  'ok',
];

const col = (key: string, header: string, type: SheetColumnType): SheetColumn => ({ key, header, type });

async function* batched<T>(
  items: Iterable<T>,
  toRow: (item: T) => Cell[],
  size: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<Cell[][]> {
  let batch: Cell[][] = [];
  for (const item of items) {
    batch.push(toRow(item));
    if (batch.length >= size) {
      signal?.throwIfAborted();
      yield batch;
      batch = [];
    }
  }
  signal?.throwIfAborted();
  if (batch.length) yield batch;
}

function* range(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i;
}

/**
 * The report of a URL check, as four sheets:
 * - **Summary**: URLs and uses per class, with each class's share of the URLs.
 * - **By campaign**: per campaign, its distinct URLs by class, and the share that needs fixing.
 * - **URLs**: one row per unique URL, most urgent first (then most used first): class, status, detail, final URL,
 *   host change, redirect chain, time, and where it is used (summarised: counts by kind, then the first places).
 * - **Where used**: one row per use of every URL that needs fixing (not ok, not a working redirect): the campaign,
 *   ad group and ad, keyword or sitelink to edit.
 */
export function buildSheets(set: UrlSet, results: ResultStore, opts: SheetOptions = {}): ReportSheet[] {
  const batchRows = opts.batchRows ?? 500;
  const placesListed = opts.placesListed ?? 3;
  const signal = opts.signal;
  const n = set.size;
  const classes = URL_CLASSES.length;
  const skippedUses = set.stats().skippedUses;

  // Per class and per campaign in one pass over the uses: a URL counts once per campaign it is used in.
  const usesByClass = new Float64Array(classes);
  const campaigns = set.campaignCount;
  const campaignUrls = new Int32Array(campaigns * classes);
  const campaignUses = new Float64Array(campaigns);
  const seenIn = new Int32Array(campaigns).fill(-1);
  let problemUses = 0;
  for (let u = 0; u < n; u++) {
    const c = results.classIndex(u);
    const problem = PROBLEM_CLASSES.has(URL_CLASSES[c]!);
    for (let i = set.firstUseOf(u); i !== -1; i = set.nextUseOf(i)) {
      usesByClass[c]!++;
      if (problem) problemUses++;
      const camp = set.useCampaignOf(i);
      campaignUses[camp]!++;
      if (seenIn[camp] !== u) {
        seenIn[camp] = u;
        campaignUrls[camp * classes + c]!++;
      }
    }
  }

  const summary: ReportSheet = {
    name: 'Summary',
    columns: [
      col('class', 'Class', 'string'),
      col('urls', 'URLs', 'integer'),
      col('share', 'Share of URLs', 'percent'),
      col('uses', 'Uses', 'integer'),
    ],
    rowCount: classes + 1 + (skippedUses ? 1 : 0),
    rows: batched(
      [...URL_CLASSES.map((_, c) => c), -1, ...(skippedUses ? [-2] : [])],
      (c): Cell[] => {
        if (c === -1) return ['Total', n, n ? 1 : 0, set.uses];
        if (c === -2) return ['Not checked (over the URL limit)', null, null, skippedUses];
        const cls = URL_CLASSES[c]!;
        return [CLASS_LABELS[cls], results.byClass[cls], n ? results.byClass[cls] / n : 0, usesByClass[c]!];
      },
      batchRows,
      signal,
    ),
  };

  const byCampaign: ReportSheet = {
    name: 'By campaign',
    columns: [
      col('campaignId', 'Campaign ID', 'string'),
      col('campaign', 'Campaign', 'string'),
      col('urls', 'URLs', 'integer'),
      col('uses', 'Uses', 'integer'),
      ...URL_CLASSES.map((c) => col(c, CLASS_LABELS[c], 'integer')),
      col('problems', 'URLs to fix', 'integer'),
      col('problemShare', 'Share to fix', 'percent'),
    ],
    rowCount: campaigns,
    rows: batched(
      range(campaigns),
      (camp): Cell[] => {
        let urls = 0;
        let problems = 0;
        const counts: number[] = [];
        for (let c = 0; c < classes; c++) {
          const k = campaignUrls[camp * classes + c]!;
          counts.push(k);
          urls += k;
          if (PROBLEM_CLASSES.has(URL_CLASSES[c]!)) problems += k;
        }
        return [
          set.campaignId(camp),
          set.campaignName(camp),
          urls,
          campaignUses[camp]!,
          ...counts,
          problems,
          urls ? problems / urls : 0,
        ];
      },
      batchRows,
      signal,
    ),
  };

  // Most urgent class first, then most used; an index array, not row objects.
  const rank = new Uint8Array(classes);
  SEVERITY.forEach((c, i) => {
    rank[URL_CLASSES.indexOf(c)] = i;
  });
  const order = Int32Array.from(range(n)).sort(
    (a, b) => rank[results.classIndex(a)]! - rank[results.classIndex(b)]! || set.usesOf(b) - set.usesOf(a) || a - b,
  );

  const urls: ReportSheet = {
    name: 'URLs',
    columns: [
      col('url', 'URL', 'url'),
      col('class', 'Class', 'string'),
      col('status', 'Status', 'integer'),
      col('detail', 'Detail', 'string'),
      col('finalUrl', 'Final URL', 'url'),
      col('hostChanged', 'Host changed', 'string'),
      col('redirects', 'Redirects', 'integer'),
      col('chain', 'Redirect chain', 'string'),
      col('timeMs', 'Time (ms)', 'integer'),
      col('uses', 'Uses', 'integer'),
      col('campaigns', 'Campaigns', 'integer'),
      col('whereUsed', 'Where used', 'string'),
    ],
    rowCount: n,
    rows: batched(
      order,
      (u): Cell[] => {
        const o = results.get(u);
        const where = whereUsed(set, u, placesListed);
        return [
          set.url(u),
          o ? CLASS_LABELS[o.cls] : 'Not checked',
          o?.status || null,
          o?.detail ?? null,
          o?.finalUrl ?? null,
          o?.hostChanged ? 'yes' : null,
          o?.redirects ?? null,
          o?.chain ?? null,
          o ? o.ms : null,
          set.usesOf(u),
          where.campaigns,
          where.text,
        ];
      },
      batchRows,
      signal,
    ),
  };

  const problemOrder = order.filter((u) => PROBLEM_CLASSES.has(results.classOf(u)));
  function* problemUsesOf(): Generator<number> {
    for (const u of problemOrder) for (let i = set.firstUseOf(u); i !== -1; i = set.nextUseOf(i)) yield i;
  }
  const whereUsedSheet: ReportSheet = {
    name: 'Where used',
    columns: [
      col('url', 'URL', 'url'),
      col('class', 'Class', 'string'),
      col('status', 'Status', 'integer'),
      col('source', 'Used by', 'string'),
      col('campaignId', 'Campaign ID', 'string'),
      col('campaign', 'Campaign', 'string'),
      col('adGroupId', 'Ad group ID', 'string'),
      col('adGroup', 'Ad group', 'string'),
      col('entityId', 'Ad, keyword or sitelink ID', 'string'),
      col('label', 'Ad type, keyword or sitelink text', 'string'),
    ],
    rowCount: problemUses,
    rows: batched(
      problemUsesOf(),
      (i): Cell[] => {
        const use = set.use(i);
        const u = set.useUrlOf(i);
        const o = results.get(u);
        return [
          set.url(u),
          o ? CLASS_LABELS[o.cls] : null,
          o?.status || null,
          use.source,
          use.campaignId,
          use.campaignName,
          use.adGroupId ?? null,
          use.adGroupName ?? null,
          use.entityId,
          use.label,
        ];
      },
      batchRows,
      signal,
    ),
  };

  return [summary, byCampaign, urls, whereUsedSheet];
}

const plural = (k: number, word: string) => `${k} ${word}${k === 1 ? '' : 's'}`;

/**
 * "2 ads, 9 keywords, 1 sitelink in 3 campaigns: Campaign › Ad group; Campaign › Ad group; and 1 more": counts by
 * kind, then the first distinct places (campaign and ad group).
 */
export function whereUsed(set: UrlSet, u: number, placesListed: number): { text: string; campaigns: number } {
  let ads = 0;
  let keywords = 0;
  let sitelinks = 0;
  const places: string[] = [];
  const seenPlaces = new Set<string>();
  const seenCampaigns = new Set<number>();
  for (let i = set.firstUseOf(u); i !== -1; i = set.nextUseOf(i)) {
    const source = set.useSourceOf(i);
    if (source === 'ad') ads++;
    else if (source === 'keyword') keywords++;
    else sitelinks++;
    seenCampaigns.add(set.useCampaignOf(i));
    if (seenPlaces.size <= placesListed) {
      const use = set.use(i);
      const place = use.adGroupName ? `${use.campaignName} › ${use.adGroupName}` : `${use.campaignName} (sitelink)`;
      if (!seenPlaces.has(place)) {
        seenPlaces.add(place);
        if (places.length < placesListed) places.push(place);
      }
    }
  }
  const kinds = [
    ads ? plural(ads, 'ad') : '',
    keywords ? plural(keywords, 'keyword') : '',
    sitelinks ? plural(sitelinks, 'sitelink') : '',
  ].filter(Boolean);
  const more = seenPlaces.size > places.length ? '; and more' : '';
  const text = `${kinds.join(', ')} in ${plural(seenCampaigns.size, 'campaign')}: ${places.join('; ')}${more}`;
  return { text, campaigns: seenCampaigns.size };
}
