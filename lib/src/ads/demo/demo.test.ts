import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError } from '../../errors/index.ts';
import { freePort } from '../../infra/ports.ts';
import { waitFor } from '../../testing/index.ts';
import { AdsErrorCode, type AdPlatformConnector, type ReportQuery, type RowBatch, type UrlUsage } from '../types.ts';
import {
  createDemoConnector,
  type DemoPlatform,
  LANDING_PROPORTIONS,
  type LandingKind,
  landingKind,
  startDemoPlatform,
} from './index.ts';
import { AccountShape, buildWorld } from './model.ts';
import { base64url } from './query.ts';

const TODAY = '2025-06-15';
let a: DemoPlatform;
let b: DemoPlatform;
let other: DemoPlatform;
const open: AdPlatformConnector[] = [];

function connect(p: DemoPlatform, refreshToken = 'demo'): AdPlatformConnector {
  const c = createDemoConnector({ url: p.url, refreshToken, retry: { maxAttempts: 1 } });
  open.push(c);
  return c;
}

async function rows(c: AdPlatformConnector, account: { id: string; loginCustomerId?: string }, q: ReportQuery) {
  const out: RowBatch['rows'] = [];
  for await (const batch of c.streamReport(account, q)) out.push(...batch.rows);
  return out;
}

beforeAll(async () => {
  a = await startDemoPlatform({ port: await freePort(), seed: 7, today: TODAY, slowMs: 400, rowsPerChunk: 1000 });
  b = await startDemoPlatform({ port: await freePort(), seed: 7, today: TODAY });
  other = await startDemoPlatform({ port: await freePort(), seed: 8, today: TODAY });
});

afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  await Promise.all([a.close(), b.close(), other.close()]);
});

const keywordQuery: ReportQuery = {
  from: 'keyword_view',
  select: [
    'campaign.name',
    'ad_group.name',
    'ad_group_criterion.keyword.text',
    'ad_group_criterion.keyword.match_type',
    'ad_group_criterion.quality_info.quality_score',
    'segments.date',
    'metrics.impressions',
    'metrics.clicks',
    'metrics.cost_micros',
    'metrics.conversions',
    'metrics.conversions_value',
  ],
  dateRange: { start: '2025-05-01', end: '2025-05-14' },
};

describe('demo platform', () => {
  it('lists the same accounts and hierarchy for the same seed, different ones for another seed', async () => {
    const [la, lb, lo] = await Promise.all([
      connect(a).listAccounts(),
      connect(b).listAccounts(),
      connect(other).listAccounts(),
    ]);
    expect(la).toEqual(lb);
    expect(la.map((x) => x.id)).not.toEqual(lo.map((x) => x.id));
    const agency = a.world.byKey.get('agency')!;
    const enterprise = a.world.byKey.get('enterprise')!;
    const huge = la.find((x) => x.id === a.world.byKey.get('huge')!.id)!;
    expect(huge).toMatchObject({ parentId: enterprise.id, level: 2, loginCustomerId: agency.id, manager: false });
    expect(la.find((x) => x.id === agency.id)).toMatchObject({ manager: true, parentId: null, level: 0 });
    expect(la.find((x) => x.id === a.world.byKey.get('solo')!.id)).toMatchObject({
      level: 0,
      currency: 'JPY',
      timeZone: 'Asia/Tokyo',
    });
    expect(la.find((x) => x.id === a.world.byKey.get('closed')!.id)?.status).toBe('CLOSED');
    expect(la).toHaveLength(9);
  });

  it('serves identical report rows for the same seed and different rows for another seed', async () => {
    const acct = (p: DemoPlatform) => ({
      id: p.world.byKey.get('small')!.id,
      loginCustomerId: p.world.byKey.get('agency')!.id,
    });
    const [ra, rb, ro] = await Promise.all([
      rows(connect(a), acct(a), keywordQuery),
      rows(connect(b), acct(b), keywordQuery),
      rows(connect(other), acct(other), keywordQuery),
    ]);
    expect(ra.length).toBeGreaterThan(100);
    expect(ra).toEqual(rb);
    expect(ro).not.toEqual(ra);
    for (const r of ra) {
      expect(['EXACT', 'PHRASE', 'BROAD']).toContain(r[3]);
      expect(r[4] === null || (typeof r[4] === 'number' && r[4] >= 1 && r[4] <= 10)).toBe(true);
      expect(r[5]).toMatch(/^2025-05-(0[1-9]|1[0-4])$/);
      expect(r[7] as number).toBeLessThanOrEqual(r[6] as number); // clicks ≤ impressions
      expect(typeof r[8]).toBe('number'); // cost in currency units, not micros
    }
  });

  it('has the documented sizes, from 10 keywords to 1,000,000 search terms', async () => {
    const world = buildWorld(7);
    expect(new AccountShape(world.seed, world.byKey.get('tiny')!).keywords).toBe(10);
    expect(new AccountShape(world.seed, world.byKey.get('huge')!).searchTerms).toBe(1_000_000);
    const agency = a.world.byKey.get('agency')!.id;
    const kw = await rows(
      connect(a),
      { id: a.world.byKey.get('tiny')!.id, loginCustomerId: agency },
      {
        from: 'ad_group_criterion',
        select: ['ad_group_criterion.criterion_id'],
      },
    );
    expect(kw).toHaveLength(10);
    const st = await rows(
      connect(a),
      { id: a.world.byKey.get('small')!.id, loginCustomerId: agency },
      {
        from: 'search_term_view',
        select: ['search_term_view.search_term', 'metrics.impressions'],
      },
    );
    expect(st).toHaveLength(5_000);
  });

  it('has weekday seasonality and a few anomalies in daily metrics', async () => {
    const c = connect(a);
    const daily = await rows(
      c,
      { id: a.world.byKey.get('large')!.id, loginCustomerId: a.world.byKey.get('agency')!.id },
      {
        from: 'campaign',
        select: ['campaign.id', 'segments.date', 'metrics.impressions'],
        dateRange: { start: '2025-01-01', end: '2025-04-30' },
      },
    );
    const byWeekday = Array.from({ length: 7 }, () => 0);
    const perCampaign = new Map<string, Array<[string, number]>>();
    for (const [id, date, impressions] of daily) {
      byWeekday[new Date(`${date}T00:00:00Z`).getUTCDay()]! += impressions as number;
      perCampaign.set(String(id), [...(perCampaign.get(String(id)) ?? []), [String(date), impressions as number]]);
    }
    expect(byWeekday[2]!).toBeGreaterThan(byWeekday[6]! * 1.2); // Tuesday well above Saturday
    const days = 120;
    const outages = [...perCampaign.values()].filter((d) => d.length < days).length;
    const spikes = [...perCampaign.values()].filter((d) => {
      const sorted = d.map((x) => x[1]).sort((x, y) => x - y);
      return sorted[sorted.length - 1]! > 2.5 * sorted[Math.floor(sorted.length / 2)]!;
    }).length;
    expect(outages).toBeGreaterThan(0);
    expect(spikes).toBeGreaterThan(0);
  });

  it('lists every ad, keyword and sitelink URL with where it is used, all pointing at its landing pages', async () => {
    const c = connect(a);
    const small = a.world.byKey.get('small')!;
    const usages: UrlUsage[] = [];
    for await (const batch of c.listUrls({ id: small.id, loginCustomerId: a.world.byKey.get('agency')!.id }))
      usages.push(...batch);
    const shape = new AccountShape(a.world.seed, small);
    const bySource = (s: string) => usages.filter((u) => u.source === s);
    expect(bySource('ad')).toHaveLength(shape.ads);
    expect(bySource('sitelink')).toHaveLength(shape.sitelinks);
    expect(bySource('keyword').length).toBeGreaterThan(0);
    expect(bySource('keyword').length).toBeLessThan(shape.keywords);
    for (const u of usages) {
      expect(u.url.startsWith(`${a.url}/lp/${small.id}/`)).toBe(true);
      expect(u.campaignName).toBeTruthy();
      expect(u.entityId).toMatch(/^\d+$/);
    }
    expect(bySource('keyword')[0]!.adGroupName).toBeTruthy();
    expect(bySource('sitelink')[0]!.adGroupId).toBeUndefined();
  });

  it('refuses the way Google Ads does: revoked token, missing manager, closed account, bad query', async () => {
    const tiny = a.world.byKey.get('tiny')!.id;
    const agency = a.world.byKey.get('agency')!.id;
    const fail = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        return err as PermanentError;
      }
      throw new Error('expected a failure');
    };
    const revoked = await fail(connect(a, 'revoked').listAccounts());
    expect(revoked).toBeInstanceOf(PermanentError);
    expect(revoked.code).toBe(AdsErrorCode.Auth);
    const noManager = await fail(rows(connect(a), { id: tiny }, { from: 'campaign', select: ['campaign.id'] }));
    expect(noManager.code).toBe(AdsErrorCode.NoAccess);
    expect(noManager.message).toContain('login-customer-id');
    const closed = await fail(
      rows(
        connect(a),
        { id: a.world.byKey.get('closed')!.id, loginCustomerId: agency },
        { from: 'campaign', select: ['campaign.id'] },
      ),
    );
    expect(closed.message).toContain('CUSTOMER_NOT_ENABLED');
    const bad = await fail(
      rows(connect(a), { id: tiny, loginCustomerId: agency }, { from: 'campaign', select: ['campaign.nope'] }),
    );
    expect(bad.code).toBe(AdsErrorCode.BadQuery);
    expect(bad.message).toContain('queryError.UNRECOGNIZED_FIELD');
    const manager = await fail(rows(connect(a), { id: agency }, { from: 'customer', select: ['metrics.clicks'] }));
    expect(manager.message).toContain('REQUESTED_METRICS_FOR_MANAGER');
  });

  it('streams with backpressure: a stalled reader stalls generation, and leaving stops it', async () => {
    const c = connect(a);
    const it = c
      .streamReport(
        { id: a.world.byKey.get('huge')!.id, loginCustomerId: a.world.byKey.get('agency')!.id },
        { from: 'search_term_view', select: ['search_term_view.search_term', 'metrics.clicks'] },
      )
      [Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.rows).toHaveLength(1000);
    await waitFor(() => a.stats().openStreams === 1, { what: 'the stream to be open' });
    // The reader now stalls: the socket buffers fill and the server must stop generating far short of a million.
    const deadline = Date.now() + 500;
    while (Date.now() < deadline) {
      expect(a.stats().rowsSent).toBeLessThan(200_000);
      await new Promise((r) => setTimeout(r, 50));
    }
    await it.return?.();
    await waitFor(() => a.stats().openStreams === 0, { what: 'the server to stop the abandoned stream' });
    expect(a.stats().rowsSent).toBeLessThan(200_000);
  });
});

describe('demo search-term resource names', () => {
  it('encode the term as unpadded URL-safe base64, as Buffer does, for ASCII and non-ASCII terms', () => {
    for (const t of ['', 'a', 'ab', 'abc', 'red shoes?>>', 'ski goggles wide fit uk deals', 'ünï cødé', '日本語 🎉']) {
      expect(base64url(t)).toBe(Buffer.from(t).toString('base64url'));
    }
  });
});

describe('demo landing pages', () => {
  it('keeps the documented proportions exactly over every 100 page numbers', () => {
    for (const start of [0, 100, 12_300]) {
      const counts: Partial<Record<LandingKind, number>> = {};
      for (let n = start; n < start + 100; n++) counts[landingKind(n)] = (counts[landingKind(n)] ?? 0) + 1;
      expect(counts).toEqual(LANDING_PROPORTIONS);
    }
    expect(Object.values(LANDING_PROPORTIONS).reduce((x, y) => x + y, 0)).toBe(100);
  });

  /** What a URL checker would see for page n, found over real HTTP. */
  async function observe(n: number): Promise<LandingKind> {
    let url = `${a.url}/lp/1234/${n}/running-shoes`;
    const statuses: number[] = [];
    const started = Date.now();
    for (let hop = 0; hop < 10; hop++) {
      let res: Response;
      try {
        res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(900) });
      } catch (err) {
        if ((err as Error).name === 'TimeoutError') return 'timeout';
        throw err;
      }
      statuses.push(res.status);
      if (res.status === 301 || res.status === 302) {
        await res.arrayBuffer();
        url = new URL(res.headers.get('location')!, url).toString();
        continue;
      }
      const body = await res.text();
      if (res.status === 404) return 'not-found';
      if (res.status === 410) return 'gone';
      if (res.status === 500) return 'server-error';
      expect(res.status).toBe(200);
      if (statuses[0] === 301) return 'redirect-301';
      if (statuses.length === 4 && statuses.slice(0, 3).every((s) => s === 302)) return 'redirect-302-chain';
      if (/page not found/i.test(body)) return 'soft-404';
      if (/out of stock/i.test(body)) return 'out-of-stock';
      if (Date.now() - started >= 400) return 'slow';
      return 'ok';
    }
    return 'redirect-loop';
  }

  it('behaves as documented over HTTP, in the documented proportions (pages 0–199)', async () => {
    const seen: LandingKind[] = [];
    for (let start = 0; start < 200; start += 25) {
      seen.push(...(await Promise.all(Array.from({ length: 25 }, (_, i) => observe(start + i)))));
    }
    for (const [n, kind] of seen.entries()) expect(kind, `page ${n}`).toBe(landingKind(n));
    const counts: Partial<Record<LandingKind, number>> = {};
    for (const k of seen) counts[k] = (counts[k] ?? 0) + 1;
    expect(counts).toEqual(Object.fromEntries(Object.entries(LANDING_PROPORTIONS).map(([k, v]) => [k, v * 2])));
  });
});
