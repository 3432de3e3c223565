import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NatsServerHandle, startNatsServer } from '@ppc/lib/infra';

/** One figure of a benchmark run, printed as one JSON line. */
export function printFigure(figure: Record<string, unknown> & { bench: string }): void {
  process.stdout.write(`${JSON.stringify(figure)}\n`);
}

/** A nats-server with JetStream in a temp dir on a free port, removed afterwards. */
export async function withNatsServer<T>(fn: (server: NatsServerHandle) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'ppc-bench-'));
  const server = await startNatsServer({ storeDir: dir });
  try {
    return await fn(server);
  } finally {
    await server.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
