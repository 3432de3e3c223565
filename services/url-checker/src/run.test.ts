// Against the real demo ad platform (its Google Ads-shaped API through the real connector, and its landing-page
// server), started in this process on a free port.
import {
  type AdAccount,
  type AdPlatformConnector,
  createDemoConnector,
  type DemoPlatform,
  LANDING_PROPORTIONS,
  type LandingKind,
  landingKind,
  startDemoPlatform,
  type UrlUsage,
} from '@ppc/lib/ads';
import { PermanentError } from '@ppc/lib/errors';
import { freePort } from '@ppc/lib/infra';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Cell,
  type ReportSheet,
  runUrlCheck,
  type UrlCheckProgress,
  type UrlCheckResult,
  type UrlClass,
} from './index.ts';

/** How each documented landing-page kind must be classified. */
const EXPECTED_CLASS: Record<LandingKind, UrlClass> = {
  ok: 'ok',
  slow: 'ok',
  'redirect-301': 'redirect',
  'redirect-302-chain': 'redirect',
  'redirect-loop': 'redirect_loop',
  'not-found': 'client_error',
  gone: 'client_error',
  'server-error': 'server_error',
  timeout: 'timeout',
  'soft-404': 'soft_error',
  'out-of-stock': 'soft_error',
};
const SLOW_MS = 300;
const TIMEOUT_MS = 1200;

let platform: DemoPlatform;
let connector: AdPlatformConnector;
let medium: AdAccount;
let run: UrlCheckResult;
const progress: UrlCheckProgress[] = [];

function pageOf(url: string): number {
  const m = /\/lp\/\d+\/(\d+)\//.exec(url);
  if (!m) throw new Error(`not a demo landing page: ${url}`);
  return Number(m[1]);
}

async function rowsOf(sheet: ReportSheet): Promise<Cell[][]> {
  const out: Cell[][] = [];
  for await (const batch of sheet.rows) out.push(...batch);
  return out;
}

beforeAll(async () => {
  platform = await startDemoPlatform({ port: await freePort(), seed: 3, slowMs: SLOW_MS });
  connector = createDemoConnector({ url: platform.url });
  medium = (await connector.listAccounts()).find((a) => a.name.endsWith('— Medium'))!;
  run = await runUrlCheck(
    { options: { perHostConcurrency: 8, timeoutMs: TIMEOUT_MS } },
    {
      connector,
      account: medium,
      settings: { perHostDelayMs: 0, globalConcurrency: 64, slowMs: SLOW_MS - 50 },
      onProgress: (p) => progress.push(p),
    },
  );
});

afterAll(async () => {
  await connector?.close();
  await platform?.close();
});

describe('a URL check of the demo medium account', () => {
  it('checks each landing page once and classifies it as its documented kind', () => {
    const { set, results } = run;
    // Two pages per ad group (80) and four sitelinks per campaign (8): 192 pages, each once.
    expect(set.size).toBe(192);
    const pages = new Set<number>();
    for (let u = 0; u < set.size; u++) {
      const n = pageOf(set.url(u));
      pages.add(n);
      expect(results.classOf(u), `page ${n} (${landingKind(n)}) ${set.url(u)}`).toBe(EXPECTED_CLASS[landingKind(n)]);
    }
    expect(pages.size).toBe(192);
  });

  it('finds each class exactly as often as the documented proportions say, over the first 100 pages', () => {
    const expected: Partial<Record<UrlClass, number>> = {};
    for (const [kind, n] of Object.entries(LANDING_PROPORTIONS) as [LandingKind, number][]) {
      expected[EXPECTED_CLASS[kind]] = (expected[EXPECTED_CLASS[kind]] ?? 0) + n;
    }
    const found: Partial<Record<UrlClass, number>> = {};
    for (let u = 0; u < run.set.size; u++) {
      if (pageOf(run.set.url(u)) >= 100) continue;
      const cls = run.results.classOf(u);
      found[cls] = (found[cls] ?? 0) + 1;
    }
    // ok 60 + slow 4, redirects 6 + 4, not found 6 + gone 3, soft 404 4 + out of stock 5.
    expect(found).toEqual(expected);
    expect(expected).toEqual({
      ok: 64,
      redirect: 10,
      redirect_loop: 2,
      client_error: 9,
      server_error: 4,
      timeout: 2,
      soft_error: 9,
    });
  });

  it('records redirect chains, loops, soft-error phrases, timeouts and slow pages', () => {
    const { set, results } = run;
    const seen = new Set<LandingKind>();
    for (let u = 0; u < set.size; u++) {
      const kind = landingKind(pageOf(set.url(u)));
      const o = results.get(u)!;
      seen.add(kind);
      switch (kind) {
        case 'redirect-301':
          expect(o.redirects).toBe(1);
          expect(o.chain).toBe(`301 ${set.url(u)} → 200 ${set.url(u)}?hop=1`);
          expect(o.finalUrl).toBe(`${set.url(u)}?hop=1`);
          expect(o.hostChanged).toBe(false);
          break;
        case 'redirect-302-chain':
          expect(o.redirects).toBe(3);
          expect(o.chain!.split(' → ').map((h) => h.split(' ')[0])).toEqual(['302', '302', '302', '200']);
          expect(o.finalUrl).toBe(`${set.url(u)}?hop=3`);
          break;
        case 'redirect-loop':
          expect(o.status).toBe(302);
          expect(o.detail).toBe(`redirects back to ${set.url(u)}?hop=1`);
          expect(o.chain).toBe(
            `302 ${set.url(u)} → 302 ${set.url(u)}?hop=1 → 302 ${set.url(u)}?hop=0 → loop ${set.url(u)}?hop=1`,
          );
          break;
        case 'soft-404':
          expect(o.status).toBe(200);
          expect(o.detail).toBe('page says "page not found"');
          break;
        case 'out-of-stock':
          expect(o.detail).toBe('page says "out of stock"');
          break;
        case 'timeout':
          expect(o.status).toBe(0);
          expect(o.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
          expect(o.ms).toBeLessThan(TIMEOUT_MS + 1000);
          break;
        case 'slow':
          expect(o.detail).toMatch(/^slow \(\d+ ms\)$/);
          break;
        case 'not-found':
          expect(o.status).toBe(404);
          break;
        case 'gone':
          expect(o.status).toBe(410);
          break;
        case 'server-error':
          expect(o.status).toBe(500);
          break;
        case 'ok':
          // (A busy machine may make an ok page slow too; its detail then says so, and nothing else.)
          expect([o.status, o.chain, o.finalUrl, o.redirects]).toEqual([200, undefined, undefined, 0]);
          expect(o.detail ?? 'slow').toMatch(/^slow/);
          break;
      }
    }
    expect(seen.size).toBe(Object.keys(LANDING_PROPORTIONS).length);
  });

  it('keeps every use of every URL, deduped to one check per page', async () => {
    const uses: UrlUsage[] = [];
    for await (const batch of connector.listUrls(medium)) uses.push(...batch);
    expect(run.set.uses).toBe(uses.length);
    expect(run.stats.uses).toBe(uses.length);
    const stored = new Map<string, string[]>();
    for (let u = 0; u < run.set.size; u++) {
      for (let i = run.set.firstUseOf(u); i !== -1; i = run.set.nextUseOf(i)) {
        const r = run.set.use(i);
        const key = run.set.url(u);
        stored.set(key, [
          ...(stored.get(key) ?? []),
          `${r.source}:${r.entityId}:${r.campaignId}:${r.adGroupId}:${r.label}`,
        ]);
      }
    }
    const listed = new Map<string, string[]>();
    for (const x of uses) {
      listed.set(x.url, [
        ...(listed.get(x.url) ?? []),
        `${x.source}:${x.entityId}:${x.campaignId}:${x.adGroupId}:${x.label}`,
      ]);
    }
    expect(stored).toEqual(listed);
    // Keywords that override the final URL reuse their ad group's first page: those pages have more than one use.
    expect(Math.max(...[...listed.values()].map((l) => l.length))).toBeGreaterThan(2);
  });

  it('reports progress from collecting to every URL checked', () => {
    expect(progress[0]!.phase).toBe('collecting');
    const checking = progress.filter((p) => p.phase === 'checking');
    expect(checking.at(-1)).toMatchObject({ checked: 192, total: 192, percent: 100 });
    for (let i = 1; i < checking.length; i++)
      expect(checking[i]!.checked).toBeGreaterThanOrEqual(checking[i - 1]!.checked);
  });

  it('shapes the report: summary by class, by campaign, one row per URL, one row per use of a broken URL', async () => {
    const [summary, byCampaign, urls, whereUsed] = run.sheets;
    expect(run.sheets.map((s) => s.name)).toEqual(['Summary', 'By campaign', 'URLs', 'Where used']);

    const summaryRows = await rowsOf(summary!);
    expect(summaryRows.length).toBe(summary!.rowCount);
    const byLabel = Object.fromEntries(summaryRows.map((r) => [r[0], r]));
    expect(byLabel['Soft error']!.slice(1, 2)).toEqual([run.stats.byClass.soft_error]);
    expect(byLabel.Total).toEqual(['Total', 192, 1, run.set.uses]);

    const campaignRows = await rowsOf(byCampaign!);
    expect(campaignRows.length).toBe(8);
    const keys = byCampaign!.columns.map((c) => c.key);
    for (const row of campaignRows) {
      const classSum = [
        'ok',
        'redirect',
        'client_error',
        'server_error',
        'timeout',
        'connection_error',
        'soft_error',
        'redirect_loop',
        'invalid_url',
      ]
        .map((k) => row[keys.indexOf(k)] as number)
        .reduce((a, b) => a + b, 0);
      expect(classSum).toBe(row[keys.indexOf('urls')]);
    }
    expect(campaignRows.reduce((n, r) => n + (r[keys.indexOf('uses')] as number), 0)).toBe(run.set.uses);

    const urlRows = await rowsOf(urls!);
    expect(urlRows.length).toBe(192);
    for (const row of urlRows) expect(row.length).toBe(urls!.columns.length);
    const classCol = urls!.columns.findIndex((c) => c.key === 'class');
    // Most urgent first: the last rows are the working pages.
    expect(urlRows.at(-1)![classCol]).toBe('OK');
    expect(urlRows[0]![classCol]).not.toBe('OK');
    const whereCol = urls!.columns.findIndex((c) => c.key === 'whereUsed');
    expect(urlRows.every((r) => / in \d+ campaigns?: /.test(String(r[whereCol])))).toBe(true);

    const useRows = await rowsOf(whereUsed!);
    expect(useRows.length).toBe(whereUsed!.rowCount);
    let problemUses = 0;
    for (let u = 0; u < run.set.size; u++) {
      if (!['ok', 'redirect'].includes(run.results.classOf(u))) problemUses += run.set.usesOf(u);
    }
    expect(useRows.length).toBe(problemUses);
  });

  it('refuses bad options with an error naming the option', async () => {
    await expect(runUrlCheck({ options: { perHostConcurrency: 0 } }, { connector, account: medium })).rejects.toThrow(
      PermanentError,
    );
    await expect(runUrlCheck({ options: { timeoutMs: 5 } }, { connector, account: medium })).rejects.toThrow(
      /timeoutMs=5: expected an integer 100–120000/,
    );
  });
});
