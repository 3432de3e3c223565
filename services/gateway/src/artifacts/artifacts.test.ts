import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { jetstreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { waitFor } from '@ppc/lib/testing';
import { objectStores } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactMeta, artifactUrl } from '../../../../lib/src/outputs/artifacts.ts';
import { seedJob, seedRun } from '../runs/testing.ts';
import { type GatewayHarness, startGatewayHarness, type Tenant } from '../testing/harness.ts';
import { rawGet } from './raw-get.ts';

const XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

describe('artifact downloads', () => {
  let h: GatewayHarness;
  let store: ObjectStore;
  let a: Tenant;
  let b: Tenant;
  let runId: string;
  // Quotes and a non-ASCII letter for the header; Latin-1 only, since @nats-io/obj encodes object names with btoa.
  const file = 'Wöchentliche Suchbegriffe "Q4".xlsx';
  // Several chunks of the store (128 KiB each) and a partial last one.
  const content = randomBytes(5 * 128 * 1024 + 777);

  beforeAll(async () => {
    h = await startGatewayHarness();
    store = await new Objm(h.nc).open(objectStores.artifacts.bucket);
    a = await h.seedTenant({ name: 'Acme' });
    b = await h.seedTenant({ name: 'Globex' });
    runId = await seedRun(h, a, await seedJob(h, a), {
      status: 'succeeded',
      outputLinks: [
        { kind: 'xlsx', name: file, url: artifactUrl('x', file) },
        { kind: 'sheets', name: 'Sheet copy', url: 'https://docs.google.com/spreadsheets/d/abc/edit' },
      ],
    });
    await store.put(artifactMeta(runId, file, XLSX, 'Weekly terms'), new Blob([content]).stream());
    // In the store under the run, but not one of its outputs.
    await store.put(
      artifactMeta(runId, 'other.csv', 'text/csv; charset=utf-8', 'other'),
      new Blob(['a,b\r\n']).stream(),
    );
  }, 60_000);
  afterAll(async () => {
    await store?.delete(`${runId}/${file}`).catch(() => {});
    await store?.delete(`${runId}/other.csv`).catch(() => {});
    await h?.close();
  });

  const url = (run: string, name: string) => `${h.url}${artifactUrl(run, name)}`;
  const cookie = (t: Tenant) => h.headersFor(t);

  it('streams a run’s file from the object store with its type, name, size and digest', async () => {
    const res = await rawGet(url(runId, file), cookie(a));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(XLSX);
    expect(res.headers['content-length']).toBe(String(content.length));
    expect(res.headers['content-disposition']).toBe(
      `attachment; filename="W_chentliche Suchbegriffe _Q4_.xlsx"; filename*=UTF-8''W%C3%B6chentliche%20Suchbegriffe%20%22Q4%22.xlsx`,
    );
    expect(res.headers['cache-control']).toBe('private, no-cache');
    expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    expect(res.body.equals(content)).toBe(true);
  });

  it('answers a matching If-None-Match with 304 and HEAD with the headers alone', async () => {
    const first = await rawGet(url(runId, file), cookie(a));
    const again = await rawGet(url(runId, file), { ...cookie(a), 'if-none-match': String(first.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const head = await rawGet(url(runId, file), cookie(a), 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(content.length));
    expect(head.body.length).toBe(0);
  });

  it('is 401 without a session or token, and with an unknown one', async () => {
    expect((await rawGet(url(runId, file))).status).toBe(401);
    expect((await rawGet(url(runId, file), { authorization: 'Bearer ppct_nope' })).status).toBe(401);
    expect((await rawGet(url(runId, file), { cookie: 'ppc_session=nope' })).status).toBe(401);
  });

  it('is 404, the same answer, for another organization, for files that are not the run’s outputs and for unknown runs', async () => {
    const probes = [
      await rawGet(url(runId, file), cookie(b)), // another organization's run
      await rawGet(url(runId, 'other.csv'), cookie(a)), // stored, but not an output of the run
      await rawGet(url(runId, 'Sheet copy'), cookie(a)), // a Sheets output: no file
      await rawGet(url(crypto.randomUUID(), file), cookie(a)),
      await rawGet(url('not-a-run', file), cookie(a)),
      await rawGet(url(runId, 'Wöchentliche – Suchbegriffe.xlsx'), cookie(a)), // a name the store cannot even hold
    ];
    for (const p of probes) {
      expect(p.status).toBe(404);
      expect(p.body.toString()).toBe(probes[0]!.body.toString());
    }
  });

  it('stops reading the object when the client goes away mid-download', async () => {
    const big = randomBytes(64 * 128 * 1024);
    const name = 'big.csv';
    const run = await seedRun(h, a, await seedJob(h, a), {
      status: 'succeeded',
      outputLinks: [{ kind: 'csv', name, url: artifactUrl('x', name) }],
    });
    const info = await store.put(artifactMeta(run, name, 'text/csv; charset=utf-8', 'big'), new Blob([big]).stream());
    const jsm = await jetstreamManager(h.nc);
    const readers = async () => {
      let n = 0;
      for await (const ci of jsm.consumers.list(`OBJ_${objectStores.artifacts.bucket}`)) {
        if (ci.config.filter_subject === `$O.${objectStores.artifacts.bucket}.C.${info.nuid}`) n += 1;
      }
      return n;
    };
    const req = request(url(run, name), { headers: cookie(a) });
    const firstBytes = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        res.once('data', () => {
          res.pause();
          resolve();
        });
      });
      req.on('error', reject);
    });
    req.end();
    await firstBytes;
    expect(await readers()).toBe(1);
    req.destroy();
    await waitFor(async () => (await readers()) === 0, { what: 'the object reader to be removed' });
    await store.delete(`${run}/${name}`);
  });

  it('is 404 when the output is listed but its object is gone', async () => {
    const gone = await seedRun(h, a, await seedJob(h, a), {
      status: 'succeeded',
      outputLinks: [{ kind: 'csv', name: 'Terms.csv', url: artifactUrl('x', 'Terms.csv') }],
    });
    expect((await rawGet(url(gone, 'Terms.csv'), cookie(a))).status).toBe(404);
  });
});
