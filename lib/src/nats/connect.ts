import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export type { NatsConnection };

export class NatsUnavailableError extends Error {
  override name = 'NatsUnavailableError';
  readonly servers: string;
  constructor(servers: string, cause: unknown) {
    super(`cannot reach NATS at ${servers}: ${(cause as Error)?.message ?? cause}. Is nats-server running?`, {
      cause,
    });
    this.servers = servers;
  }
}

export interface ConnectOptions {
  servers: string;
  name: string;
  log?: Logger;
  /** How long the first connection may take before we give up with NatsUnavailableError. */
  timeoutMs?: number;
}

/**
 * Connects once (a clear error when the server is down), then reconnects forever:
 * a restarted nats-server must not take a service down with it.
 */
export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await natsConnect({
      servers: opts.servers.split(',').map((s) => s.trim()),
      name: opts.name,
      timeout: opts.timeoutMs ?? 5000,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
    });
  } catch (err) {
    throw new NatsUnavailableError(opts.servers, err);
  }
  if (opts.log) {
    const log = opts.log;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
          log.warn({ nats: s.type, server: 'server' in s ? s.server : undefined }, `nats ${s.type}`);
        }
      }
    })();
  }
  return nc;
}
