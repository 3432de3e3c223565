import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GaqlError, parseGaql } from './gaql.ts';
import { serveLanding } from './landing.ts';
import { ancestors, buildWorld, type DemoWorld, dayNumber, hash } from './model.ts';
import { prepareQuery } from './query.ts';

/**
 * The demo ad platform over HTTP, shaped like the Google Ads REST API so the demo takes the same client path as a
 * real platform:
 * - `POST /token`: OAuth2 token endpoint (refresh-token grant); the refresh token `revoked` gets `invalid_grant`.
 * - `GET /<version>/customers:listAccessibleCustomers`
 * - `POST /<version>/customers/<id>/googleAds:searchStream` with `{"query": "<GAQL>"}`: a JSON array of result
 *   chunks, written chunk by chunk as the socket drains, never built whole.
 * - `GET /lp/<customer>/<n>/<slug>`: the landing pages behind the ads (see landing.ts and README.md).
 * API calls need `Authorization: Bearer <token from /token>` and a `developer-token` header; a client account
 * below a manager needs `login-customer-id` naming that manager, as on Google Ads.
 */

export interface DemoPlatformOptions {
  port: number;
  host?: string;
  seed?: number | string;
  /** Base URL written into ads' final URLs; defaults to the server's own `http://host:port`. */
  publicUrl?: string;
  /** The demo clock's today (YYYY-MM-DD), for reproducible date ranges; defaults to the real date (UTC). */
  today?: string;
  /** Rows per searchStream chunk (Google sends up to 10,000). */
  rowsPerChunk?: number;
  /** How long `slow` landing pages take. */
  slowMs?: number;
  /** Access-token lifetime handed out by /token. */
  tokenTtlSeconds?: number;
}

export interface DemoPlatform {
  url: string;
  world: DemoWorld;
  /** Streams open now and rows written so far (for tests and the benchmark). */
  stats(): { openStreams: number; rowsSent: number };
  close(): Promise<void>;
}

/** Bytes of generated response a stream may have queued for its socket before generation waits. */
const SEND_AHEAD_BYTES = 1024 * 1024;
const API_VERSION_RE = /^\/(v\d+)\/customers(?::listAccessibleCustomers|\/(\d+)\/googleAds:(searchStream|search))$/;

export async function startDemoPlatform(opts: DemoPlatformOptions): Promise<DemoPlatform> {
  const host = opts.host ?? '127.0.0.1';
  const world = buildWorld(opts.seed ?? 1);
  const rowsPerChunk = opts.rowsPerChunk ?? 10_000;
  const tokenTtl = opts.tokenTtlSeconds ?? 3600;
  const hanging = new Set<ServerResponse>();
  let landingBase = opts.publicUrl ?? '';
  let requestSeq = 0;
  let openStreams = 0;
  let rowsSent = 0;

  const today = (): number => (opts.today ? dayNumber(opts.today) : Math.floor(Date.now() / 86_400_000));
  const sign = (expires: number): string =>
    (hash(world.seed, expires % 2 ** 31, Math.floor(expires / 2 ** 31)) >>> 0).toString(36);

  function adsError(
    res: ServerResponse,
    version: string,
    http: number,
    status: string,
    message: string,
    errorCode: Record<string, string>,
  ): void {
    const requestId = `demo-${++requestSeq}`;
    const body = {
      error: {
        code: http,
        message,
        status,
        details: [
          {
            '@type': `type.googleapis.com/google.ads.googleads.${version}.errors.GoogleAdsFailure`,
            errors: [{ errorCode, message }],
            requestId,
          },
        ],
      },
    };
    res.writeHead(http, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(body));
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    let size = 0;
    const parts: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > 1_000_000) throw new Error('request body too large');
      parts.push(c);
    }
    return Buffer.concat(parts).toString('utf8');
  }

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (form.get('grant_type') !== 'refresh_token' || !form.get('refresh_token')) {
      json(400, { error: 'unsupported_grant_type', error_description: 'Only the refresh_token grant is supported.' });
    } else if (form.get('refresh_token') === 'revoked') {
      json(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
    } else {
      const expires = Date.now() + tokenTtl * 1000;
      json(200, {
        access_token: `demo.${expires}.${sign(expires)}`,
        expires_in: tokenTtl,
        token_type: 'Bearer',
        scope: 'https://www.googleapis.com/auth/adwords',
      });
    }
  }

  /** Checks credentials and access the way Google Ads does; answers and returns false when refused. */
  function authorize(req: IncomingMessage, res: ServerResponse, version: string, customerId: string | null): boolean {
    const m = /^Bearer demo\.(\d+)\.(\w+)$/.exec(req.headers.authorization ?? '');
    if (!m || sign(Number(m[1])) !== m[2] || Number(m[1]) < Date.now()) {
      adsError(
        res,
        version,
        401,
        'UNAUTHENTICATED',
        'Request is missing required authentication credential. Expected OAuth 2 access token.',
        {
          authenticationError: m ? 'OAUTH_TOKEN_EXPIRED' : 'NOT_ADS_USER',
        },
      );
      return false;
    }
    if (!req.headers['developer-token']) {
      adsError(res, version, 401, 'UNAUTHENTICATED', 'The developer token is missing from the request.', {
        authenticationError: 'DEVELOPER_TOKEN_PROHIBITED',
      });
      return false;
    }
    if (customerId === null) return true;
    const login = String(req.headers['login-customer-id'] ?? customerId).replace(/-/g, '');
    const account = world.byId.get(customerId);
    const root = world.byId.get(login);
    if (!account || !root?.accessible || (login !== customerId && !ancestors(world, customerId).includes(login))) {
      adsError(
        res,
        version,
        403,
        'PERMISSION_DENIED',
        "User doesn't have permission to access customer. Note: If you're accessing a client customer, the manager's customer id must be set in the 'login-customer-id' header.",
        { authorizationError: 'USER_PERMISSION_DENIED' },
      );
      return false;
    }
    if (account.status !== 'ENABLED') {
      adsError(
        res,
        version,
        403,
        'PERMISSION_DENIED',
        "The customer account can't be accessed because it is not yet enabled or has been deactivated.",
        { authorizationError: 'CUSTOMER_NOT_ENABLED' },
      );
      return false;
    }
    return true;
  }

  async function searchStream(
    req: IncomingMessage,
    res: ServerResponse,
    version: string,
    customerId: string,
  ): Promise<void> {
    let query: string;
    try {
      const body = JSON.parse(await readBody(req)) as { query?: unknown };
      if (typeof body.query !== 'string') throw new Error('query missing');
      query = body.query;
    } catch {
      adsError(
        res,
        version,
        400,
        'INVALID_ARGUMENT',
        'Request contains an invalid argument: a JSON body with "query".',
        {
          requestError: 'INVALID_INPUT',
        },
      );
      return;
    }
    let prepared: ReturnType<typeof prepareQuery>;
    try {
      prepared = prepareQuery(parseGaql(query), {
        world,
        account: world.byId.get(customerId)!,
        landingBase,
        today: today(),
      });
    } catch (err) {
      if (!(err instanceof GaqlError)) throw err;
      adsError(res, version, 400, 'INVALID_ARGUMENT', `Error in query: ${err.message}`, { queryError: err.queryError });
      return;
    }
    const requestId = `demo-${++requestSeq}`;
    const tail = `],"fieldMask":${JSON.stringify(prepared.fieldMask)},"requestId":"${requestId}"}`;
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
    let closed = false;
    let drained: (() => void) | null = null;
    res.on('close', () => {
      closed = true;
      drained?.();
    });
    res.on('drain', () => drained?.());
    // Generating the next block while the socket still sends the last ones keeps both busy: waiting for
    // 'drain' after every block (the stream's 16 KiB mark) left the socket idle during each generation.
    const write = async (data: string | Buffer): Promise<void> => {
      if (!res.write(data) && !closed && res.writableLength > SEND_AHEAD_BYTES) {
        await new Promise<void>((resolve) => {
          drained = resolve;
        });
        drained = null;
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve)); // let other requests run between blocks
      }
    };
    let written = 0;
    openStreams += 1;
    try {
      res.write('[');
      const frame = { rowsPerChunk, open: '{"results":[', close: tail, sep: ',' };
      for (const block of prepared.blocks(frame)) {
        if (closed) return;
        written += block.bytes.length;
        rowsSent += block.rows;
        await write(block.bytes);
      }
      if (written === 0) await write(`{"fieldMask":${JSON.stringify(prepared.fieldMask)},"requestId":"${requestId}"}`);
      res.end(']');
    } catch (err) {
      // Mid-stream failure: Google reports it as an error element inside the array.
      const e = {
        error: { code: 500, message: `Internal error encountered: ${(err as Error).message}`, status: 'INTERNAL' },
      };
      res.end(`${written ? ',' : ''}${JSON.stringify(e)}]`);
    } finally {
      openStreams -= 1;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path.startsWith('/lp/')) {
      if (req.method === 'GET' || req.method === 'HEAD') {
        if (serveLanding(req, res, (req.url ?? '').slice(4), { slowMs: opts.slowMs ?? 4000, hanging })) return;
      }
    } else if (path === '/token' && req.method === 'POST') {
      return token(req, res);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
      return;
    } else if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(
        `ppc-robot demo ad platform (seed ${world.seed})\n\n${world.accounts
          .map((a) => `${a.id}  ${a.manager ? 'manager' : (a.size ?? '')}\t${a.name}`)
          .join('\n')}\n`,
      );
      return;
    } else {
      const m = API_VERSION_RE.exec(path);
      if (m) {
        const [, version, customerId, method] = m as unknown as [
          string,
          string,
          string | undefined,
          string | undefined,
        ];
        if (!customerId) {
          if (req.method !== 'GET') {
            res.writeHead(405).end();
            return;
          }
          if (!authorize(req, res, version, null)) return;
          res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
          res.end(
            JSON.stringify({
              resourceNames: world.accounts.filter((a) => a.accessible).map((a) => `customers/${a.id}`),
            }),
          );
          return;
        }
        if (req.method !== 'POST' || method !== 'searchStream') {
          adsError(res, version, 400, 'INVALID_ARGUMENT', 'The demo platform serves googleAds:searchStream only.', {
            requestError: 'INVALID_INPUT',
          });
          return;
        }
        if (!authorize(req, res, version, customerId)) return;
        return searchStream(req, res, version, customerId);
      }
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String((err as Error).message));
      } else res.destroy();
    });
  });
  server.listen(opts.port, host);
  await once(server, 'listening');
  const addr = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  if (!landingBase) landingBase = url;

  return {
    url,
    world,
    stats: () => ({ openStreams, rowsSent }),
    async close() {
      for (const res of hanging) res.destroy();
      hanging.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
