import { Objm } from '@nats-io/obj';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { connectNats, type NatsConnection } from '../nats/index.ts';
import { uniqueName } from '../testing/index.ts';
import { safeFileName } from './artifacts.ts';

describe('safeFileName', () => {
  it('keeps plain names and replaces what file systems and headers refuse', () => {
    expect(safeFileName('Campaigns 2026/11', 'csv')).toBe('Campaigns 2026-11.csv');
    expect(safeFileName('a:b*c?"d"<e>|f', 'xlsx')).toBe('a-b-c-d-e-f.xlsx');
    expect(safeFileName('  . ', 'csv')).toBe('report.csv');
  });

  it('drops accents and replaces characters outside Latin-1', () => {
    expect(safeFileName('Výkon kampaní – Acme', 'csv')).toBe('Vykon kampani - Acme.csv');
    expect(safeFileName('报告', 'csv')).toBe('-.csv');
  });
});

// Real nats-server (the test run's): every name safeFileName returns can be stored as an object.
describe('safeFileName in the object store', () => {
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await connectNats({ servers: inject('natsUrl'), name: 'artifacts-test' });
  });
  afterAll(() => nc?.close());

  it('yields names @nats-io/obj accepts (it keys objects with btoa)', async () => {
    const os = await new Objm(nc).create(uniqueName('names'), { storage: 'memory' });
    for (const title of ['Search terms – Acme', 'Účty čeština ěščřžýáíé', 'Ünïcödé ™ “quotes”']) {
      const name = `run/${safeFileName(title, 'csv')}`;
      await os.putBlob({ name }, new TextEncoder().encode('x'));
      expect(new TextDecoder().decode((await os.getBlob(name)) ?? undefined)).toBe('x');
    }
    await os.destroy();
  });
});
