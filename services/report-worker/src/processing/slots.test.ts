import { columnFor } from '@ppc/lib/ads';
import { describe, expect, it } from 'vitest';
import { BatchPacker, openBatch } from '../reports/index.ts';
import { BatchSlots } from './slots.ts';

describe('batch slots', () => {
  it('hands a released slot to the next batch instead of allocating', () => {
    const slots = new BatchSlots(2);
    const a = slots.alloc(1000);
    const b = slots.alloc(1000);
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(b.buffer).not.toBe(a.buffer);
    slots.release(a.buffer);
    expect(slots.alloc(900).buffer).toBe(a.buffer);
  });

  it('never holds more than its count of slots, whatever it is asked for', () => {
    const slots = new BatchSlots(2);
    slots.alloc(1000);
    slots.alloc(1000);
    const extra = slots.alloc(1000);
    expect(extra.buffer).toBeInstanceOf(ArrayBuffer);
    expect(slots.bytes).toBe(2 * 1256);
    // Releasing memory that is not a slot changes nothing.
    slots.release(extra.buffer);
    expect(slots.bytes).toBe(2 * 1256);
  });

  it('replaces a slot that is too small for the batch', () => {
    const slots = new BatchSlots(1);
    const small = slots.alloc(100);
    slots.release(small.buffer);
    const big = slots.alloc(10_000);
    expect(big.buffer).not.toBe(small.buffer);
    expect(big.buffer.byteLength).toBeGreaterThanOrEqual(10_000);
    expect(slots.bytes).toBe(big.buffer.byteLength);
  });

  it('carries a packed batch that a thread reads in place', () => {
    const slots = new BatchSlots(1);
    const packer = new BatchPacker([columnFor('search_term_view.search_term'), columnFor('metrics.clicks')], 4);
    packer.add(['first', 1]);
    const one = packer.finish(slots.alloc);
    expect(openBatch(one).text('search_term_view.search_term').at(0)).toBe('first');
    slots.release(one.buffer);
    packer.add(['second', 2]);
    const two = packer.finish(slots.alloc);
    expect(two.buffer).toBe(one.buffer);
    expect(openBatch(two).text('search_term_view.search_term').at(0)).toBe('second');
    expect([...openBatch(two).number('metrics.clicks')]).toEqual([2]);
  });
});
