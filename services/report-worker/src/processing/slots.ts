/**
 * Recycled memory for packed batches. Each task's batch goes into a slot of shared memory (a SharedArrayBuffer) that
 * the thread reads in place; when the task is merged, the slot takes the next batch. Compared with a fresh
 * ArrayBuffer per task, moved to the thread and freed there, the main thread then allocates nothing per task: no
 * page faults for fresh memory, no garbage for the collector, and memory for batches is bounded by construction, at
 * `count` slots (a run never holds more batches than tasks in flight plus the one being packed).
 *
 * Slots size themselves: a batch too big for a free slot gets the slot replaced by a bigger one.
 */
import type { BatchAllocator } from '../reports/index.ts';

export class BatchSlots {
  private readonly count: number;
  private readonly free: SharedArrayBuffer[] = [];
  private readonly used = new Set<SharedArrayBuffer>();

  constructor(count: number) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError('slot count must be a positive integer');
    this.count = count;
  }

  /** Bytes of shared memory held (free and in use). */
  get bytes(): number {
    let n = 0;
    for (const s of this.free) n += s.byteLength;
    for (const s of this.used) n += s.byteLength;
    return n;
  }

  readonly alloc: BatchAllocator = (bytes) => {
    let slot = this.free.find((s) => s.byteLength >= bytes);
    if (slot) {
      this.free.splice(this.free.indexOf(slot), 1);
    } else {
      // Replace the smallest free slot, or add one while under the count; past it (which backpressure prevents),
      // the batch gets memory of its own rather than waiting.
      if (this.free.length > 0) this.free.splice(this.free.indexOf(this.smallestFree()), 1);
      else if (this.used.size >= this.count) return { buffer: new ArrayBuffer(bytes), byteOffset: 0 };
      slot = new SharedArrayBuffer(Math.ceil((bytes * 1.25) / 8) * 8);
    }
    this.used.add(slot);
    return { buffer: slot, byteOffset: 0 };
  };

  /** Gives a batch's memory back once no thread reads it any more. */
  release(buffer: ArrayBuffer | SharedArrayBuffer): void {
    if (buffer instanceof SharedArrayBuffer && this.used.delete(buffer)) this.free.push(buffer);
  }

  private smallestFree(): SharedArrayBuffer {
    return this.free.reduce((a, b) => (b.byteLength < a.byteLength ? b : a));
  }
}
