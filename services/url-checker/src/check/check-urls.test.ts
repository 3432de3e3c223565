// Real HTTP over loopback: local servers on 127.0.0.2.. play distinct hosts and measure what reaches them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import type { UrlUsage } from '@ppc/lib/ads';
import { waitFor } from '@ppc/lib/testing';
import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type CheckOptions, resolveOptions } from '../options.ts';
import { type LoopbackHosts, startLoopbackHosts } from '../testing/index.ts';
import { normalizeUrl, UrlSet } from '../urls/index.ts';
import { type CheckProgress, checkUrls } from './index.ts';

const open: LoopbackHosts[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

async function hosts(count: number, handler: (req: IncomingMessage, res: ServerResponse, host: string) => void) {
  const h = await startLoopbackHosts(count, handler);
  open.push(h);
  return h;
}

function use(i: number, campaign = 1): UrlUsage {
  return {
    url: '',
    source: 'ad',
    campaignId: String(campaign),
    campaignName: `Campaign ${campaign}`,
    adGroupId: String(100 + i),
    adGroupName: `Ad group ${i}`,
    entityId: String(1000 + i),
    label: 'RESPONSIVE_SEARCH_AD',
  };
}

function urlSet(urls: string[]): UrlSet {
  const set = new UrlSet();
  urls.forEach((url, i) => {
    set.add(normalizeUrl(url), { ...use(i), url });
  });
  set.seal();
  return set;
}

function options(o: Partial<CheckOptions> = {}): CheckOptions {
  return resolveOptions({}, { perHostDelayMs: 0, retryDelayMs: 10, ...o });
}

const html = (body: string) => `<!doctype html><html><body>${body}</body></html>`;

describe('checkUrls', () => {
  it('never has more requests in flight per host than allowed, measured at the servers, redirects across hosts included', async () => {
    const h = await hosts(5, (req, res, host) => {
      const url = new URL(req.url!, 'http://x');
      // Every fifth URL redirects to the next host, so hops compete with that host's own URLs.
      const to = url.searchParams.get('to');
      setTimeout(
        () => {
          if (to) res.writeHead(302, { location: `${to}${url.pathname}` }).end();
          else res.writeHead(200, { 'content-type': 'text/html' }).end(html(`page ${url.pathname} on ${host}`));
        },
        10 + (Number(url.pathname.slice(3)) % 5) * 10,
      );
    });
    const urls: string[] = [];
    for (let i = 0; i < 400; i++) {
      const here = h.origins[i % 5]!;
      const next = h.origins[(i + 1) % 5]!;
      urls.push(i % 5 === 0 ? `${here}/p/${i}?to=${encodeURIComponent(next)}` : `${here}/p/${i}`);
    }
    // An Agent with no connection limit of its own: only the engine's scheduler keeps each host at 3.
    const agent = new Agent();
    const results = await checkUrls(urlSet(urls), options({ perHostConcurrency: 3, globalConcurrency: 100 }), {
      dispatcher: agent,
    });
    await agent.close();
    expect(results.byClass.ok + results.byClass.redirect).toBe(400);
    expect(results.byClass.redirect).toBe(80);
    for (const [host, s] of h.stats) {
      expect(s.maxActive, host).toBeLessThanOrEqual(3);
      // It did run requests side by side: the limit was the binding constraint, not idleness.
      expect(s.maxActive, host).toBe(3);
    }
    expect([...h.stats.values()].reduce((n, s) => n + s.requests, 0)).toBe(480);
  });

  it('spaces request starts on one host by the politeness delay', async () => {
    const h = await hosts(2, (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html('ok')));
    const urls = Array.from({ length: 30 }, (_, i) => `${h.origins[i % 2]}/p/${i}`);
    await checkUrls(urlSet(urls), options({ perHostConcurrency: 4, perHostDelayMs: 40 }));
    for (const [host, s] of h.stats) {
      expect(s.requests, host).toBe(15);
      // Starts are spaced at the client; arrivals at the server jitter by a few ms around that.
      expect(s.minGapMs, host).toBeGreaterThanOrEqual(30);
      expect(s.lastArrival - s.firstArrival, host).toBeGreaterThanOrEqual(14 * 40 - 10);
    }
  });

  it('falls back to GET where HEAD is refused or answered wrongly, and uses HEAD alone where it works', async () => {
    const h = await hosts(1, (req, res) => {
      const path = req.url!;
      if (path === '/head-405' && req.method === 'HEAD') return res.writeHead(405).end();
      if (path === '/head-501' && req.method === 'HEAD') return res.writeHead(501).end();
      if (path === '/head-404' && req.method === 'HEAD') return res.writeHead(404).end();
      if (path === '/gone') return res.writeHead(410).end();
      res.writeHead(200, { 'content-type': 'text/html' }).end(html('fine'));
    });
    const o = h.origins[0]!;
    const set = urlSet([`${o}/head-405`, `${o}/head-501`, `${o}/head-404`, `${o}/fine`, `${o}/gone`]);
    const results = await checkUrls(set, options({ softErrorPhrases: [] }));
    expect([0, 1, 2, 3, 4].map((u) => [results.classOf(u), results.get(u)!.status])).toEqual([
      ['ok', 200],
      ['ok', 200],
      ['ok', 200],
      ['ok', 200],
      ['client_error', 410],
    ]);
    // 3 refused HEADs + 3 GETs, 1 HEAD for /fine, HEAD + GET for /gone.
    expect(h.stats.get('127.0.0.2')!.methods).toEqual({ HEAD: 5, GET: 4 });
    expect(results.requests).toBe(9);
  });

  it('finds soft-error phrases case-insensitively, in any charset and through entities, only in the first N bytes of text', async () => {
    const h = await hosts(1, (req, res) => {
      const pages: Record<string, [string, Buffer]> = {
        '/cz-1250': [
          'text/html; charset=windows-1250',
          Buffer.from([
            ...Buffer.from('<p>Zboží je '),
            0x56,
            0x59,
            0x50,
            0x52,
            0x4f,
            0x44,
            0xc1,
            0x4e,
            0x4f,
            ...Buffer.from('</p>'),
          ]),
        ],
        '/cz-entity': ['text/html', Buffer.from(html('<p>Bohužel vyprod&aacute;no</p>'))],
        '/cz-nfd': ['text/html; charset=utf-8', Buffer.from(html('Vyproda\u0301no'))],
        '/spaced': ['text/html', Buffer.from(html('<span>Sold</span>\n  <b>OUT</b>'))],
        '/in-script': [
          'text/html',
          Buffer.from(html('<script>const t = {notFound: "Page not found"}</script><p>Welcome</p>')),
        ],
        '/late': ['text/html', Buffer.from(html(`${'x'.repeat(20_000)} out of stock`))],
        '/image': ['image/png', Buffer.from('out of stock')],
      };
      const [type, body] = pages[req.url!]!;
      res.writeHead(200, { 'content-type': type }).end(body);
    });
    const o = h.origins[0]!;
    const paths = ['/cz-1250', '/cz-entity', '/cz-nfd', '/spaced', '/in-script', '/late', '/image'];
    const results = await checkUrls(
      urlSet(paths.map((p) => o + p)),
      options({
        softErrorPhrases: ['vyprodáno', 'sold out', 'page not found', 'out of stock'],
        bodySniffBytes: 16 * 1024,
      }),
    );
    expect(paths.map((_, u) => [results.classOf(u), results.get(u)!.detail ?? null])).toEqual([
      ['soft_error', 'page says "vyprodáno"'],
      ['soft_error', 'page says "vyprodáno"'],
      ['soft_error', 'page says "vyprodáno"'],
      ['soft_error', 'page says "sold out"'],
      ['ok', null],
      ['ok', null],
      ['ok', null],
    ]);
  });

  it('follows redirects to the limit, flags a change of host, and reports a redirect to nowhere', async () => {
    const h = await hosts(2, (req, res) => {
      const url = new URL(req.url!, 'http://x');
      const n = Number(url.searchParams.get('n') ?? '0');
      if (url.pathname === '/hops') {
        if (n < 4) return res.writeHead(301, { location: `/hops?n=${n + 1}` }).end();
        return res.writeHead(200, { 'content-type': 'text/html' }).end(html('end'));
      }
      if (url.pathname === '/away')
        return res.writeHead(302, { location: `${url.searchParams.get('to')}/landing` }).end();
      if (url.pathname === '/mailto') return res.writeHead(302, { location: 'mailto:sales@example.com' }).end();
      if (url.pathname === '/nowhere') return res.writeHead(302).end();
      res.writeHead(200, { 'content-type': 'text/html' }).end(html('landing'));
    });
    const [a, b] = h.origins as [string, string];
    const set = urlSet([`${a}/hops`, `${a}/away?to=${encodeURIComponent(b)}`, `${a}/mailto`, `${a}/nowhere`]);
    const limited = await checkUrls(set, options({ maxRedirects: 3 }));
    expect(limited.get(0)).toMatchObject({ cls: 'redirect_loop', redirects: 3, detail: 'more than 3 redirects' });
    expect(limited.get(0)!.chain!.split(' → ')).toHaveLength(5);
    expect(limited.get(1)).toMatchObject({ cls: 'redirect', hostChanged: true, finalUrl: `${b}/landing`, status: 200 });
    expect(limited.get(2)).toMatchObject({ cls: 'invalid_url', finalUrl: 'mailto:sales@example.com' });
    expect(limited.get(3)).toMatchObject({ cls: 'server_error', status: 302, detail: '302 without a Location' });

    const enough = await checkUrls(urlSet([`${a}/hops`]), options({ maxRedirects: 4 }));
    expect(enough.get(0)).toMatchObject({
      cls: 'redirect',
      redirects: 4,
      finalUrl: `${a}/hops?n=4`,
      hostChanged: false,
    });
  });

  it('retries a dropped connection once, and reports refused connections and unknown hosts as connection errors', async () => {
    const seen = new Map<string, number>();
    const h = await hosts(1, (req, res) => {
      const k = (seen.get(req.url!) ?? 0) + 1;
      seen.set(req.url!, k);
      if (req.url === '/flaky' && k === 1) return req.socket.destroy();
      if (req.url === '/broken') return req.socket.destroy();
      res.writeHead(200, { 'content-type': 'text/html' }).end(html('ok'));
    });
    // A port nobody listens on: bind one, note it, close it.
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const o = h.origins[0]!;
    const set = urlSet([
      `${o}/flaky`,
      `${o}/broken`,
      `http://127.0.0.1:${closedPort}/`,
      'http://no-such-host.invalid/',
    ]);
    const results = await checkUrls(set, options());
    expect(results.get(0)).toMatchObject({ cls: 'ok', status: 200 });
    expect(seen.get('/flaky')).toBe(2);
    expect(results.get(1)).toMatchObject({ cls: 'connection_error', status: 0 });
    expect(seen.get('/broken')).toBe(2);
    expect(results.get(2)!.cls).toBe('connection_error');
    expect(results.get(2)!.detail).toMatch(/^ECONNREFUSED/);
    expect(results.get(3)!.cls).toBe('connection_error');
    expect(results.get(3)!.detail).toMatch(/^(ENOTFOUND|EAI_AGAIN)/);
    // flaky, broken and refused were retried; an unknown host only when the resolver called it temporary.
    expect(results.retries).toBe(results.get(3)!.detail!.startsWith('EAI_AGAIN') ? 4 : 3);
  });

  it('classifies a page that never answers as a timeout once the timeout has passed', async () => {
    const h = await hosts(1, (req, res) => {
      if (req.url === '/hang') return; // left open
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.write('<html><body>Out of');
      }
      res.writeHead(200, { 'content-type': 'text/html' }).end(html('ok'));
    });
    const o = h.origins[0]!;
    const started = performance.now();
    const results = await checkUrls(urlSet([`${o}/hang`, `${o}/stall-body`, `${o}/fast`]), options({ timeoutMs: 400 }));
    const elapsed = performance.now() - started;
    expect(results.get(0)).toMatchObject({
      cls: 'timeout',
      status: 0,
      detail: 'ETIMEDOUT: request timed out after 400 ms',
    });
    expect(results.get(0)!.ms).toBeGreaterThanOrEqual(395);
    // The headers came: the status stands, the page is judged on what arrived.
    expect(results.get(1)).toMatchObject({ cls: 'ok', status: 200 });
    expect(results.get(2)).toMatchObject({ cls: 'ok' });
    expect(elapsed).toBeLessThan(400 + 1500);
    await waitFor(() => h.open.size === 0, { what: 'the abandoned requests to be closed' });
  });

  it('stops within 2 s when cancelled, with requests in flight and queued, and closes their connections', async () => {
    const h = await hosts(3, () => {}); // nothing ever answers
    const urls = Array.from({ length: 300 }, (_, i) => `${h.origins[i % 3]}/p/${i}`);
    const controller = new AbortController();
    const progress: CheckProgress[] = [];
    const run = checkUrls(urlSet(urls), options({ perHostConcurrency: 4, timeoutMs: 60_000 }), {
      signal: controller.signal,
      onProgress: (p) => progress.push(p),
    });
    await waitFor(() => [...h.stats.values()].every((s) => s.active === 4), { what: 'every host busy' });
    const cancelledAt = performance.now();
    controller.abort(new Error('run cancelled'));
    await expect(run).rejects.toThrow('run cancelled');
    expect(performance.now() - cancelledAt).toBeLessThan(2000);
    await waitFor(() => h.open.size === 0, { timeoutMs: 2000, what: 'the servers to see every request dropped' });
    expect(progress[0]).toEqual({ checked: 0, total: 300 });
  });

  it('settles invalid URLs without a request', async () => {
    const set = urlSet(['mailto:someone@example.com', 'not a url', 'ftp://example.com/file']);
    const results = await checkUrls(set, options());
    expect([0, 1, 2].map((u) => results.get(u))).toMatchObject([
      { cls: 'invalid_url', detail: 'not an http(s) URL (mailto)' },
      { cls: 'invalid_url', detail: 'not a valid absolute URL' },
      { cls: 'invalid_url', detail: 'not an http(s) URL (ftp)' },
    ]);
    expect(results.requests).toBe(0);
  });
});
