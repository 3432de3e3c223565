import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NatsServerHandle, startNatsServer } from '../infra/nats-server.ts';

/**
 * Waits until `check` returns a truthy value, polling; fails with `what` after the deadline.
 * Tests wait on conditions, never on fixed sleeps.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${opts.timeoutMs ?? 10_000} ms waiting for ${opts.what ?? 'condition'}${last ? `: ${(last as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 20));
  }
}

/** A private nats-server for a test that restarts or kills it; removed with its store on dispose. */
export async function privateNatsServer(): Promise<NatsServerHandle & AsyncDisposable> {
  const dir = mkdtempSync(join(tmpdir(), 'ppc-nats-'));
  const server = await startNatsServer({ storeDir: dir });
  return {
    ...server,
    async [Symbol.asyncDispose]() {
      await server.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;
/** A unique name for a test's own stream/consumer, so tests never share state. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`.toUpperCase().replace(/-/g, '_');
}
export { type ScratchOptions, scratchResources } from './scratch-resources.ts';
export { runEventsOf } from './run-events.ts';
