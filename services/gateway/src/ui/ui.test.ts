import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawGet } from '../artifacts/raw-get.ts';
import { type GatewayHarness, startGatewayHarness } from '../testing/harness.ts';
import { age, escapeHtml } from './status-page.ts';

const HTML = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

describe('the / page without a built SPA', () => {
  let h: GatewayHarness;
  beforeAll(async () => {
    // A directory without index.html: no SPA.
    h = await startGatewayHarness({ PPC_UI_DIST: mkdtempSync(join(tmpdir(), 'ppc-no-ui-')) });
  }, 60_000);
  afterAll(() => h?.close());

  it('is a server-rendered page of the live mesh that reloads itself and links GraphiQL', async () => {
    const res = await rawGet(`${h.url}/`, HTML);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    const html = res.body.toString();
    expect(html).toContain('<meta http-equiv="refresh" content="5">');
    expect(html).toContain('<a href="/graphiql">');
    expect(html).toMatch(
      new RegExp(`<td>gateway</td><td><code>${h.svc.ctx.instanceId}</code></td><td>local</td><td class="n">0</td>`),
    );
  });

  it('answers clients that do not ask for HTML with the instances as JSON', async () => {
    const res = await fetch(`${h.url}/`);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as { instances: { service: string; instanceId: string; ready: boolean }[] };
    expect(body.instances).toContainEqual(
      expect.objectContaining({ service: 'gateway', instanceId: h.svc.ctx.instanceId }),
    );
  });

  it('does not serve an SPA fallback for other paths', async () => {
    expect((await rawGet(`${h.url}/jobs/42`, HTML)).status).toBe(404);
  });

  it('escapes what it prints and writes ages for people', () => {
    expect(escapeHtml(`<script>"x"&'y'</script>`)).toBe('&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;');
    expect([age(4_400), age(125_000), age(3 * 3_600_000 + 60_000), age(50 * 3_600_000)]).toEqual([
      '4 s',
      '2 min',
      '3 h 1 min',
      '2 d 2 h',
    ]);
  });
});

describe('the built SPA', () => {
  let h: GatewayHarness;
  let dist: string;
  const index = '<!doctype html><html><body><div id="app"></div><script src="/assets/app.js"></script></body></html>';
  const app = `console.log(${JSON.stringify('x'.repeat(2000))});`;

  beforeAll(async () => {
    dist = mkdtempSync(join(tmpdir(), 'ppc-ui-'));
    mkdirSync(join(dist, 'assets'));
    writeFileSync(join(dist, 'index.html'), index);
    writeFileSync(join(dist, 'assets', 'app.js'), app);
    writeFileSync(join(dist, 'assets', 'app.js.br'), brotliCompressSync(app));
    h = await startGatewayHarness({ PPC_UI_DIST: dist });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    rmSync(dist, { recursive: true, force: true });
  });

  it('serves index.html at / and, for any other page a browser asks for, as the history fallback', async () => {
    for (const path of ['/', '/jobs/42', '/runs/abc?tab=events']) {
      const res = await rawGet(`${h.url}${path}`, HTML);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.body.toString()).toBe(index);
    }
  });

  it('serves the precompressed asset to a browser that accepts brotli, cached as immutable', async () => {
    const br = await rawGet(`${h.url}/assets/app.js`, { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.status).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers['content-type']).toMatch(/javascript/);
    expect(br.headers.vary).toMatch(/accept-encoding/i);
    expect(br.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(br.body.length).toBeLessThan(app.length);
    expect(brotliDecompressSync(br.body).toString()).toBe(app);

    const plain = await rawGet(`${h.url}/assets/app.js`);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(app);
  });

  it('leaves the API, health, metrics, artifacts and OAuth paths alone', async () => {
    const gql = await rawGet(`${h.url}/graphql?query=${encodeURIComponent('{ version }')}`, {
      ...HTML,
      'content-type': 'application/json',
    });
    expect(JSON.parse(gql.body.toString())).toMatchObject({ data: { version: expect.any(String) } });
    expect((await rawGet(`${h.url}/graphiql`, HTML)).body.toString()).not.toBe(index);
    expect((await rawGet(`${h.url}/healthz`, HTML)).body.toString()).toContain('"ok"');
    expect((await rawGet(`${h.url}/metrics`, HTML)).body.toString()).toContain('# HELP');
    expect((await rawGet(`${h.url}/artifacts/${crypto.randomUUID()}/x.csv`, HTML)).status).toBe(401);
    for (const path of ['/artifacts/x', '/oauth/nowhere', '/graphql/extra']) {
      const res = await rawGet(`${h.url}${path}`, HTML);
      expect(res.status).toBe(404);
      expect(res.body.toString()).not.toBe(index);
    }
  });

  it('answers 404, not the app, to a missing asset or a request that does not want HTML', async () => {
    expect((await rawGet(`${h.url}/assets/missing.js`)).status).toBe(404);
    expect((await rawGet(`${h.url}/jobs/42`, { accept: 'application/json' })).status).toBe(404);
  });
});
