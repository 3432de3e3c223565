import type { FastifyInstance } from 'fastify';
import type { GraphQLError, GraphQLFieldResolver } from 'graphql';
import mercurius, { type IResolvers } from 'mercurius';
import { clientAddress } from '@ppc/lib/http';
import type { Authenticator, Caller, GatewayContext, GatewayDeps } from '../context.ts';
import { UnauthenticatedError } from './errors.ts';
import { expand, formatError } from './format.ts';
import { checkVariables, limitRules, queryLimits } from './limits.ts';
import type { Context, GraphQLModule } from './module.ts';
import { modules } from './modules.ts';
import { DateTime, JSONScalar } from './scalars.ts';
import { registerSubscriptionServer } from './websocket.ts';

// By name, not instanceof: modules may build scalars with graphql's ESM copy (see `graphqlCjs`).
const isScalar = (x: unknown) => (x as { constructor?: { name?: string } })?.constructor?.name === 'GraphQLScalarType';

const ROOT = /* GraphQL */ `
  scalar DateTime
  scalar JSON
  "The running gateway's version."
  type Query { version: String! }
  type Mutation
  type Subscription
`;

/** Tokens in one document: far above any real operation, far below what makes parsing costly. */
const MAX_TOKENS = 20_000;
/** How often a live subscription re-checks that its session or token still stands. */
export const SUBSCRIPTION_CHECK_MS = 5_000;

function mergeResolvers(list: readonly GraphQLModule[]): IResolvers<unknown, Context> {
  const merged: Record<string, Record<string, unknown>> = {};
  for (const m of list) {
    for (const [type, fields] of Object.entries(m.resolvers)) {
      // Scalars are class instances: spreading one would drop its methods.
      if (isScalar(fields)) merged[type] = fields as unknown as Record<string, unknown>;
      else merged[type] = { ...merged[type], ...(fields as Record<string, unknown>) };
    }
  }
  return merged as IResolvers<unknown, Context>;
}

// ---------------------------------------------------------------------------------------------------------------
// Subscriptions end when their caller's session or token does.

type StillValid = (caller: Caller) => Promise<boolean>;

/**
 * `auth.stillValid`, answered once per caller per `ttlMs`: a thousand subscriptions of one browser cost one query
 * per check period, not a thousand.
 */
export function sharedValidity(auth: Pick<Authenticator, 'stillValid'>, ttlMs: number): StillValid {
  const recent = new Map<string, { at: number; valid: Promise<boolean> }>();
  return (caller) => {
    const key = `${caller.via}:${caller.sessionId ?? caller.tokenId}:${caller.organizationId}:${caller.role}`;
    const now = Date.now();
    const hit = recent.get(key);
    if (hit && now - hit.at < ttlMs) return hit.valid;
    if (recent.size > 10_000) for (const [k, v] of recent) if (now - v.at >= ttlMs) recent.delete(k);
    const valid = auth.stillValid(caller);
    recent.set(key, { at: now, valid });
    valid.catch(() => recent.delete(key));
    return valid;
  };
}

export interface SubscriptionGuardOptions {
  /** Re-check period; default SUBSCRIPTION_CHECK_MS. */
  checkEveryMs?: number;
  /** A check that failed (database unreachable): logged, the subscription lives on until a check answers. */
  onCheckError?: (err: unknown) => void;
}

const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * `inner`, until the caller's session or token expires or is revoked: checked every `checkEveryMs` and at
 * `caller.expiresAt`. Then the next `next()` rejects with UNAUTHENTICATED (sent to the client as the operation's
 * error, which ends it) and `inner.return()` is called to release its consumer.
 */
export function guardSubscription<T>(
  inner: AsyncIterator<T> | AsyncIterable<T>,
  caller: Caller,
  stillValid: StillValid,
  opts: SubscriptionGuardOptions = {},
): AsyncIterableIterator<T> {
  const it: AsyncIterator<T> =
    Symbol.asyncIterator in inner ? (inner as AsyncIterable<T>)[Symbol.asyncIterator]() : (inner as AsyncIterator<T>);
  let finished = false;
  let revoked = false;
  // The pending next()'s way out when access ends or the subscription is returned while it waits. One at a time (not
  // a race against one long-lived promise, which would keep a reaction per event for the subscription's lifetime).
  let interrupt: (() => void) | undefined;

  const revoke = () => {
    revoked = true;
    interrupt?.();
  };
  const interval = setInterval(() => {
    stillValid(caller).then(
      (ok) => ok || revoke(),
      (err) => opts.onCheckError?.(err),
    );
  }, opts.checkEveryMs ?? SUBSCRIPTION_CHECK_MS);
  // Longer than a timer can wait (about 25 days): the periodic check sees the expiry instead.
  const untilExpiry = caller.expiresAt ? caller.expiresAt.getTime() - Date.now() : Number.POSITIVE_INFINITY;
  const expiry = untilExpiry <= LONGEST_TIMER_MS ? setTimeout(revoke, Math.max(0, untilExpiry)) : null;

  function finish(): void {
    if (finished) return;
    finished = true;
    clearInterval(interval);
    if (expiry) clearTimeout(expiry);
    interrupt?.();
    // Not awaited: an async generator runs return() only after a pending next() settles.
    Promise.resolve()
      .then(() => it.return?.())
      .catch(() => {});
  }

  const unauthenticated = () =>
    new UnauthenticatedError('your session or API token has expired or been revoked: sign in and subscribe again');

  return {
    async next() {
      if (revoked && !finished) {
        finish();
        throw unauthenticated();
      }
      if (finished) return { done: true, value: undefined };
      const r = await new Promise<IteratorResult<T> | undefined>((resolve, reject) => {
        interrupt = () => resolve(undefined);
        it.next().then(resolve, reject);
      }).finally(() => {
        interrupt = undefined;
      });
      if (revoked && !finished) {
        finish();
        throw unauthenticated();
      }
      if (!r || finished) return { done: true, value: undefined };
      if (r.done) finish();
      return r;
    },
    async return(value?: unknown) {
      finish();
      return { done: true, value: value as T };
    },
    async throw(err?: unknown) {
      finish();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

type SubscribeFn = (root: unknown, args: unknown, ctx: Context, info: unknown) => unknown;

/** Every Subscription field's `subscribe`, behind a check of the caller and `guardSubscription`. */
function guardSubscriptionFields(
  resolvers: IResolvers<unknown, Context>,
  stillValid: StillValid,
  deps: GatewayDeps,
): IResolvers<unknown, Context> {
  const fields = resolvers.Subscription as Record<string, { subscribe?: SubscribeFn }> | undefined;
  if (!fields) return resolvers;
  const guarded: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(fields)) {
    const subscribe = field?.subscribe;
    if (typeof subscribe !== 'function') {
      guarded[name] = field;
      continue;
    }
    guarded[name] = {
      ...field,
      subscribe: async (root: unknown, args: unknown, ctx: Context, info: unknown) => {
        const caller = ctx.caller;
        if (!caller || !(await stillValid(caller))) throw new UnauthenticatedError();
        const inner = (await subscribe(root, args, ctx, info)) as AsyncIterable<unknown>;
        return guardSubscription(inner, caller, stillValid, {
          onCheckError: (err) => deps.log.warn({ err, field: name }, 'subscription access check failed'),
        });
      },
    };
  }
  return { ...resolvers, Subscription: guarded } as IResolvers<unknown, Context>;
}

/** graphql-over-http: 200 when there is data; else the status of a lone request-level error; a bare GraphQL error is 400. */
function statusOf(execution: { data?: unknown; statusCode?: number; errors: readonly GraphQLError[] }): number {
  if (execution.data) return 200;
  if (typeof execution.statusCode === 'number') return execution.statusCode;
  if (execution.errors.length !== 1) return 200;
  const only = execution.errors[0]!;
  const status = (only.originalError as { statusCode?: unknown } | undefined)?.statusCode;
  if (typeof status === 'number') return status;
  return only.originalError ? 200 : 400;
}

// ---------------------------------------------------------------------------------------------------------------

type SubscriptionField = {
  subscribe?: GraphQLFieldResolver<unknown, unknown>;
  resolve?: GraphQLFieldResolver<unknown, unknown>;
};

/** Registers `/graphql` (queries and mutations; subscriptions over graphql-ws on the same path) and GraphiQL. */
export async function registerGraphQL(app: FastifyInstance, deps: GatewayDeps, auth: Authenticator): Promise<void> {
  const typeDefs = [ROOT, ...modules.map((m) => m.typeDefs)].join('\n');
  const limits = queryLimits(deps.config, Object.assign({}, ...modules.map((m) => m.listSizes ?? {})));
  const rules = limitRules(limits);
  const stillValid = sharedValidity(auth, SUBSCRIPTION_CHECK_MS / 2);
  const { Subscription: subscriptionFields, ...resolvers } = guardSubscriptionFields(
    mergeResolvers([
      {
        typeDefs: '',
        resolvers: {
          DateTime,
          JSON: JSONScalar,
          Query: { version: (_root: unknown, _args: unknown, ctx: Context) => ctx.deps.version },
        } as IResolvers<unknown, Context>,
      },
      ...modules,
    ]),
    stillValid,
    deps,
  ) as Record<string, unknown>;
  await app.register(mercurius, {
    schema: typeDefs,
    resolvers: resolvers as IResolvers,
    graphiql: true,
    path: '/graphql',
    csrfPrevention: true,
    allowBatchedQueries: false,
    // Compile a query to JavaScript (graphql-jit) from its second execution: the same few queries repeat all day.
    jit: 1,
    // Depth is one of `limitRules` (fragments included); mercurius' own `queryDepth` is not used.
    validationRules: rules,
    graphql: { parseOptions: { maxTokens: MAX_TOKENS } },
    additionalRouteOptions: { bodyLimit: deps.config.bodyLimitBytes },
    context: async (request, reply): Promise<GatewayContext> => ({
      deps,
      caller: await auth.fromRequest(request),
      reply,
      request,
    }),
    errorFormatter: (execution, context) => {
      const errors = execution.errors.flatMap(expand).map((e) => formatError(e, deps));
      (context.reply?.log ?? context.app.log).debug({ errors }, 'graphql errors');
      return {
        statusCode: statusOf(execution),
        response: { data: execution.data ?? null, errors: errors.map((e) => e.toJSON()) },
      };
    },
  });

  // Validation saw `first: $n` without its value: check the cost again with the variables of this request.
  app.graphql.addHook('preExecution', (schema, document, _context, variables) => {
    const [err] = checkVariables(schema, document, limits, variables);
    if (err) throw err;
  });
  // Subscriptions are served by graphql-ws' server on the same path (see websocket.ts), on mercurius' schema.
  const subscriptionType = app.graphql.schema.getSubscriptionType();
  for (const [name, field] of Object.entries((subscriptionFields ?? {}) as Record<string, SubscriptionField>)) {
    const target = subscriptionType?.getFields()[name];
    if (!target) throw new Error(`Subscription.${name} has resolvers but is not in the schema`);
    target.subscribe = field.subscribe;
    if (field.resolve) target.resolve = field.resolve;
  }
  const upgradeLimit = app.createRateLimit({
    max: deps.config.requestsPerMinute,
    timeWindow: 60_000,
    keyGenerator: (req) => `ws:${(req as unknown as { ip: string }).ip}`,
  });
  registerSubscriptionServer(app, deps, auth, {
    path: '/graphql',
    schema: app.graphql.schema,
    rules,
    limits,
    maxTokens: MAX_TOKENS,
    clientAddress: clientAddress(deps.config.trustProxy),
    allowUpgrade: async (ip) => {
      const verdict = await upgradeLimit({ ip, routeOptions: {} } as never);
      return verdict.isAllowed || !verdict.isExceeded;
    },
  });
}
