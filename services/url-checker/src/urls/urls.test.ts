import type { UrlUsage } from '@ppc/lib/ads';
import { describe, expect, it } from 'vitest';
import { applyValueTrack, normalizeUrl, type TrackedUsage, UrlSet } from './index.ts';

const keywordUse: UrlUsage = {
  url: '',
  source: 'keyword',
  campaignId: '111',
  campaignName: 'Shoes',
  adGroupId: '222',
  adGroupName: 'Running shoes',
  entityId: '333',
  label: 'red running shoes',
};
const adUse: UrlUsage = { ...keywordUse, source: 'ad', entityId: '444', label: 'RESPONSIVE_SEARCH_AD' };

describe('ValueTrack', () => {
  const url = 'https://shop.example/shoes?id=7&kw={keyword}&cmp={campaignid}&utm_source=google{ignore}#top';

  it('strip: drops every parameter that carries a placeholder, keeps the rest', () => {
    expect(applyValueTrack({ ...keywordUse, url }, 'strip')).toBe('https://shop.example/shoes?id=7');
    expect(applyValueTrack({ ...keywordUse, url: 'https://shop.example/{_lang}/shoes' }, 'strip')).toBe(
      'https://shop.example//shoes',
    );
    expect(applyValueTrack({ ...keywordUse, url: 'https://shop.example/?kw={keyword}' }, 'strip')).toBe(
      'https://shop.example/',
    );
  });

  it('strip ignores the tracking template and the final URL suffix', () => {
    const use: TrackedUsage = {
      ...keywordUse,
      url: 'https://shop.example/shoes',
      trackingTemplate: 'https://track.example/c?u={lpurl}',
      finalUrlSuffix: 'utm_term={keyword}',
    };
    expect(applyValueTrack(use, 'strip')).toBe('https://shop.example/shoes');
  });

  it('resolve: fills in the use’s own values, URL-encoded; what cannot be known becomes empty', () => {
    expect(applyValueTrack({ ...keywordUse, url }, 'resolve')).toBe(
      'https://shop.example/shoes?id=7&kw=red%20running%20shoes&cmp=111&utm_source=google#top',
    );
    expect(
      applyValueTrack(
        {
          ...adUse,
          url: 'https://shop.example/?ad={creative}&kw={keyword}&d={device}{ifmobile:-m}&s={ifsearch:yes}&x={_x}',
        },
        'resolve',
      ),
    ).toBe('https://shop.example/?ad=444&kw=&d=c&s=yes&x=');
  });

  it('resolve: appends the final URL suffix and wraps the result in the tracking template through {lpurl}', () => {
    const use: TrackedUsage = {
      ...keywordUse,
      url: 'https://shop.example/shoes?id=7',
      finalUrlSuffix: 'utm_term={keyword}',
      trackingTemplate: 'https://track.example/c?cid={campaignid}&u={lpurl}',
    };
    expect(applyValueTrack(use, 'resolve')).toBe(
      `https://track.example/c?cid=111&u=${encodeURIComponent('https://shop.example/shoes?id=7&utm_term=red%20running%20shoes')}`,
    );
    // At the very start of the template {lpurl} is not escaped, as on Google Ads.
    expect(applyValueTrack({ ...use, trackingTemplate: '{lpurl}&src=ppc' }, 'resolve')).toBe(
      'https://shop.example/shoes?id=7&utm_term=red%20running%20shoes&src=ppc',
    );
  });
});

describe('normalizeUrl', () => {
  it('makes equal what a server cannot tell apart', () => {
    const forms = [
      'HTTPS://Shop.Example:443/a%7eb?x=1#frag',
      'https://shop.example./a~b?x=1',
      ' https://shop.example/a%7Eb?x=1 ',
    ];
    expect(new Set(forms.map((f) => (normalizeUrl(f) as { url: string }).url))).toEqual(
      new Set(['https://shop.example/a~b?x=1']),
    );
    expect(normalizeUrl('http://shop.example')).toEqual({
      ok: true,
      url: 'http://shop.example/',
      host: 'shop.example',
    });
    expect(normalizeUrl('http://shop.example/x?')).toMatchObject({ url: 'http://shop.example/x' });
    expect(normalizeUrl('http://bücher.example/')).toMatchObject({ host: 'xn--bcher-kva.example' });
    expect(normalizeUrl('http://shop.example/a%2fb')).toMatchObject({ url: 'http://shop.example/a%2Fb' });
  });

  it('keeps what a server may tell apart: query order, path case, trailing slash', () => {
    const distinct = [
      'https://shop.example/p?a=1&b=2',
      'https://shop.example/p?b=2&a=1',
      'https://shop.example/P?a=1&b=2',
      'https://shop.example/p/?a=1&b=2',
    ];
    expect(new Set(distinct.map((f) => (normalizeUrl(f) as { url: string }).url)).size).toBe(4);
  });

  it('says why a URL cannot be checked', () => {
    expect(normalizeUrl('')).toMatchObject({ ok: false, reason: 'empty URL' });
    expect(normalizeUrl('www.shop.example/x')).toMatchObject({ ok: false, reason: 'not a valid absolute URL' });
    expect(normalizeUrl('tel:+420123456789')).toMatchObject({ ok: false, reason: 'not an http(s) URL (tel)' });
  });
});

describe('UrlSet', () => {
  it('dedupes URLs and keeps every use, in order, with where it is', () => {
    const set = new UrlSet();
    const a = 'https://shop.example/a';
    set.add(normalizeUrl(a), { ...adUse, url: a });
    set.add(normalizeUrl('https://SHOP.example/a#x'), { ...keywordUse, url: 'https://SHOP.example/a#x' });
    set.add(normalizeUrl('https://shop.example/b'), { ...keywordUse, entityId: 'kw-x', url: 'https://shop.example/b' });
    set.add(normalizeUrl(a), {
      url: a,
      source: 'sitelink',
      campaignId: '999',
      campaignName: 'Brand',
      entityId: '555',
      label: 'Sale',
    });
    set.seal();
    expect(set.size).toBe(2);
    expect(set.uses).toBe(4);
    expect([...set.useIndexes(0)].map((i) => set.use(i))).toEqual([
      {
        source: 'ad',
        campaignId: '111',
        campaignName: 'Shoes',
        adGroupId: '222',
        adGroupName: 'Running shoes',
        entityId: '444',
        label: 'RESPONSIVE_SEARCH_AD',
      },
      {
        source: 'keyword',
        campaignId: '111',
        campaignName: 'Shoes',
        adGroupId: '222',
        adGroupName: 'Running shoes',
        entityId: '333',
        label: 'red running shoes',
      },
      {
        source: 'sitelink',
        campaignId: '999',
        campaignName: 'Brand',
        adGroupId: undefined,
        adGroupName: undefined,
        entityId: '555',
        label: 'Sale',
      },
    ]);
    expect(set.use([...set.useIndexes(1)][0]!).entityId).toBe('kw-x');
    expect(set.stats()).toMatchObject({ urls: 2, uses: 4, hosts: 1, campaigns: 2, adGroups: 1, labels: 3 });
    expect(() => set.add(normalizeUrl(a), { ...adUse, url: a })).toThrow(/after seal/);
  });

  it('counts, but does not keep, URLs over its limit', () => {
    const set = new UrlSet(2);
    for (const p of ['a', 'b', 'c', 'a', 'd', 'b']) {
      const url = `https://shop.example/${p}`;
      set.add(normalizeUrl(url), { ...adUse, url });
    }
    expect(set.stats()).toMatchObject({ urls: 2, uses: 4, skippedUses: 2 });
  });

  it('stores uses by column: a few dozen bytes per use however many there are', () => {
    const set = new UrlSet();
    const uses = 300_000;
    for (let i = 0; i < uses; i++) {
      const url = `https://shop${(i % 100_000) % 7}.example/p/${i % 100_000}`;
      set.add(normalizeUrl(url), {
        ...keywordUse,
        url,
        entityId: String(200_000_000_000 + i),
        label: `kw ${i % 5000}`,
      });
    }
    set.seal();
    const s = set.stats();
    expect(s).toMatchObject({ urls: 100_000, uses, hosts: 7, labels: 5000 });
    // 4 Int32 per URL, 5 Int32 + 1 Uint8 + 1 Float64 per use, capacity at most doubled: under 100 bytes per use.
    expect(s.columnBytes / uses).toBeLessThan(100);
    expect(s.columnBytes / uses).toBeGreaterThan(29);
  });
});
