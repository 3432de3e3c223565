// A 100,000-URL account end to end: real HTTP to loopback servers, memory measured on the heap after full
// collections. The account is synthetic (an in-process implementation of the connector contract that generates
// 150,000 uses), since the demo platform's largest account has 4,160 distinct pages.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AdPlatformConnector, UrlUsage } from '@ppc/lib/ads';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runUrlCheck } from './index.ts';
import { type LoopbackHosts, startLoopbackHosts } from './testing/index.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const URLS = 100_000;
const USES = 150_000;
const HOSTS = 10;

/** 150,000 uses of 100,000 URLs: every URL used by an ad, every other one by a keyword too. */
function syntheticAccount(origins: string[]): AdPlatformConnector {
  const unsupported = () => {
    throw new Error('not part of this synthetic account');
  };
  return {
    platform: 'synthetic',
    listAccounts: unsupported,
    streamReport: unsupported,
    async close() {},
    async *listUrls(): AsyncGenerator<UrlUsage[]> {
      let batch: UrlUsage[] = [];
      for (let i = 0; i < USES; i++) {
        const page = i < URLS ? i : (i - URLS) * 2;
        const keyword = i >= URLS;
        const campaign = page % 40;
        batch.push({
          url: `${origins[page % HOSTS]}/product/${page}?color=red&size=${page % 13}`,
          source: keyword ? 'keyword' : 'ad',
          campaignId: String(1_000_000 + campaign),
          campaignName: `Campaign ${campaign}`,
          adGroupId: String(2_000_000 + (page % 4000)),
          adGroupName: `Ad group ${page % 4000}`,
          entityId: String((keyword ? 300_000_000_000 : 400_000_000_000) + i),
          label: keyword ? `buy product ${page % 9000}` : 'RESPONSIVE_SEARCH_AD',
        });
        if (batch.length === 1000) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
    },
  };
}

let hosts: LoopbackHosts;
beforeAll(async () => {
  hosts = await startLoopbackHosts(HOSTS, (_req, res) => {
    res
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      .end('<html><body><h1>Product</h1>In stock</body></html>');
  });
});
afterAll(() => hosts?.close());

it('checks a 100,000-URL account with memory bounded per URL, not per request', async () => {
  const before = heapAfterGc();
  const result = await runUrlCheck(
    { options: { perHostConcurrency: 16, maxUrls: 1_000_000 } },
    {
      connector: syntheticAccount(hosts.origins),
      account: { id: '1' },
      settings: { perHostDelayMs: 0, globalConcurrency: 160 },
    },
  );
  const retained = heapAfterGc() - before;

  expect(result.stats).toMatchObject({ urls: URLS, uses: USES, hosts: HOSTS, campaigns: 40, problems: 0 });
  expect(result.stats.byClass.ok).toBe(URLS);
  expect([...hosts.stats.values()].reduce((n, s) => n + s.requests, 0)).toBe(URLS);
  for (const s of hosts.stats.values()) expect(s.maxActive).toBeLessThanOrEqual(16);

  // What the run keeps: each URL's string once, a few typed-array columns per URL and per use.
  const set = result.set.stats();
  expect(set.columnBytes / USES).toBeLessThan(100);
  expect(set.stringChars / URLS).toBeLessThan(80);
  // The whole retained state (URL strings, columns, interned names, results) stays within 300 bytes per URL
  // (about 120 measured).
  expect(retained / URLS).toBeLessThan(300);

  // The per-URL sheet, read batch by batch, has every URL.
  let rows = 0;
  for await (const batch of result.sheets[2]!.rows) rows += batch.length;
  expect(rows).toBe(URLS);
});
