import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Per host (local address), what the server saw. */
export interface HostStats {
  requests: number;
  active: number;
  /** Most requests in progress at once: from arrival to the response's end or the connection's close. */
  maxActive: number;
  /** Shortest time between two request arrivals, in ms. */
  minGapMs: number;
  firstArrival: number;
  lastArrival: number;
  methods: Record<string, number>;
}

export type LoopbackHandler = (req: IncomingMessage, res: ServerResponse, host: string) => void;

export interface LoopbackHosts {
  /** `http://127.0.0.<n>:<port>` for each host, in order. */
  readonly origins: string[];
  readonly stats: Map<string, HostStats>;
  /** Responses the handler left open (pages that never answer). */
  readonly open: Set<ServerResponse>;
  close(): Promise<void>;
}

/**
 * HTTP servers on loopback addresses 127.0.0.<first>..127.0.0.<first + count - 1> (on Linux all of 127/8 is the
 * loopback interface), so one machine plays many hosts and each host's load is measured where it lands: at the
 * server.
 */
export async function startLoopbackHosts(count: number, handler: LoopbackHandler, first = 2): Promise<LoopbackHosts> {
  const stats = new Map<string, HostStats>();
  const open = new Set<ServerResponse>();
  const servers: Server[] = [];
  const origins: string[] = [];
  for (let i = 0; i < count; i++) {
    const address = `127.0.0.${first + i}`;
    stats.set(address, {
      requests: 0,
      active: 0,
      maxActive: 0,
      minGapMs: Infinity,
      firstArrival: 0,
      lastArrival: 0,
      methods: {},
    });
    const server = createServer((req, res) => {
      const s = stats.get(address)!;
      const now = performance.now();
      if (s.lastArrival) s.minGapMs = Math.min(s.minGapMs, now - s.lastArrival);
      else s.firstArrival = now;
      s.lastArrival = now;
      s.requests++;
      s.methods[req.method ?? '?'] = (s.methods[req.method ?? '?'] ?? 0) + 1;
      s.active++;
      s.maxActive = Math.max(s.maxActive, s.active);
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        s.active--;
        open.delete(res);
      };
      res.on('finish', end);
      res.on('close', end);
      open.add(res);
      handler(req, res, address);
    });
    server.keepAliveTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, address, () => resolve());
    });
    servers.push(server);
    origins.push(`http://${address}:${(server.address() as AddressInfo).port}`);
  }
  return {
    origins,
    stats,
    open,
    async close() {
      for (const res of open) res.destroy();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
