import cookie from '@fastify/cookie';
import helmet from 'helmet';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Kind, parse, visit } from 'graphql';
import type { Authenticator, GatewayDeps } from '../context.ts';
import { presentedSecret } from './authenticator.ts';

const GRAPHQL_PATH = '/graphql';
const MINUTE_MS = 60_000;
/** GraphiQL loads React and itself from this CDN (mercurius' static page). */
const GRAPHIQL_CDN = 'https://unpkg.com';

/** A refusal the client caused: answered with its status and a GraphQL-shaped body. */
export class RateLimitedError extends Error {
  readonly statusCode = 429;
  readonly code = 'RATE_LIMITED';
  constructor(message: string) {
    super(message);
    this.name = 'RateLimitedError';
  }
}

function cspFor(publicUrl: string, secure: boolean, extra: { cdn?: string } = {}) {
  const ws = new URL(publicUrl);
  ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
  const cdn = extra.cdn ? [extra.cdn] : [];
  return {
    useDefaults: true,
    directives: {
      defaultSrc: ["'self'"],
      connectSrc: ["'self'", ws.origin, ...cdn],
      scriptSrc: ["'self'", ...cdn],
      styleSrc: ["'self'", "'unsafe-inline'", ...cdn],
      imgSrc: ["'self'", 'data:', ...cdn],
      fontSrc: ["'self'", 'data:', ...cdn],
      workerSrc: ["'self'"],
      frameAncestors: ["'none'"],
      // Over plain http (the single-machine default) upgrading would break every request.
      upgradeInsecureRequests: secure ? [] : null,
    },
  };
}

/** How many `login` fields a GraphQL request carries (aliases can put several in one document). */
export function loginFieldsIn(body: unknown): number {
  const query = (body as { query?: unknown } | null)?.query;
  if (typeof query !== 'string' || !/\blogin\b/.test(query)) return 0;
  let count = 0;
  try {
    visit(parse(query, { maxTokens: 20_000 }), {
      [Kind.FIELD](node) {
        if (node.name.value === 'login') count += 1;
      },
    });
  } catch {
    return 0; // Unparsable: mercurius refuses it without running anything.
  }
  return count;
}

function sendError(reply: FastifyReply, status: number, message: string, code: string) {
  return reply.code(status).send({ data: null, errors: [{ message, extensions: { code } }] });
}

/**
 * Cookies, security headers, rate limits and the error handler of every route. Registered before every other
 * feature so their routes inherit all of it.
 */
export async function registerSecurity(app: FastifyInstance, deps: GatewayDeps, auth: Authenticator): Promise<void> {
  const { config } = deps;
  await app.register(cookie);

  // Security headers, built once: @fastify/helmet would build helmet's middleware (parse every CSP directive) on each
  // request. GraphiQL's page needs its CDN; nothing else does.
  const common = {
    strictTransportSecurity: config.secureCookies ? { maxAge: 15_552_000, includeSubDomains: false } : false,
    crossOriginEmbedderPolicy: false,
  } as const;
  const headers = helmet({ ...common, contentSecurityPolicy: cspFor(config.publicUrl, config.secureCookies) });
  const graphiqlHeaders = helmet({
    ...common,
    contentSecurityPolicy: cspFor(config.publicUrl, config.secureCookies, { cdn: GRAPHIQL_CDN }),
  });
  app.addHook('onRequest', (req, reply, done) => {
    const url = req.routeOptions.url ?? '';
    const apply = url === '/graphiql' || url.startsWith('/graphiql/') ? graphiqlHeaders : headers;
    apply(req.raw, reply.raw, (err?: unknown) => done(err as Error | undefined));
  });

  // Per replica (memory store): a ceiling against floods, not an exact quota. The key is the caller when the
  // credential is valid, else the address: random cookies cannot buy fresh buckets.
  await app.register(rateLimit, {
    global: true,
    max: config.requestsPerMinute,
    timeWindow: MINUTE_MS,
    keyGenerator: async (req: FastifyRequest) => {
      const ip = `ip:${normalizeIP(req.ip)}`;
      if (!presentedSecret(req)) return ip;
      const caller = await auth.fromRequest(req);
      return caller ? `${caller.via}:${caller.sessionId ?? caller.tokenId}` : ip;
    },
    errorResponseBuilder: (_req, ctx) =>
      new RateLimitedError(`too many requests: at most ${ctx.max} a minute; retry in ${ctx.after}`),
  });

  // mercurius serves every operation on one route: the login limit applies to requests whose document logs in,
  // once per `login` field. It runs before the resolver (and its argon2 work).
  const loginLimit = app.createRateLimit({
    max: config.loginPerMinute,
    timeWindow: MINUTE_MS,
    keyGenerator: (req: FastifyRequest) => `login:${normalizeIP(req.ip)}`,
  });
  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'POST' || req.routeOptions.url !== GRAPHQL_PATH) return;
    const logins = loginFieldsIn(req.body);
    for (let i = 0; i < logins; i += 1) {
      const verdict = await loginLimit(req);
      if (!verdict.isAllowed && verdict.isExceeded) {
        reply.header('retry-after', verdict.ttlInSeconds);
        throw new RateLimitedError(
          `too many login attempts from your address: at most ${config.loginPerMinute} a minute; retry in ${verdict.ttlInSeconds} s`,
        );
      }
    }
  });

  // Routes outside mercurius (mercurius formats its own route's errors through the GraphQL error formatter).
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) return sendError(reply, status, err.message, err.code ?? 'BAD_REQUEST');
    req.log.error({ err }, 'request failed');
    return sendError(reply, 500, 'internal error', 'INTERNAL_SERVER_ERROR');
  });
}
