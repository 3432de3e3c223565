import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { GraphQLError } from 'graphql';
import mercurius, { type IResolvers } from 'mercurius';
import type { Authenticator, Caller, GatewayContext, GatewayDeps } from '../context.ts';
import { ClientError, UnauthenticatedError } from './errors.ts';
import { checkVariables, graphqlCjs, limitRules, queryLimits } from './limits.ts';
import type { Context, GraphQLModule } from './module.ts';
import { modules } from './modules.ts';
import { DateTime, JSONScalar } from './scalars.ts';

const { GraphQLError: CjsGraphQLError, specifiedRules, validate } = graphqlCjs;

// By name, not instanceof: modules may build scalars and errors with graphql's ESM copy (see `graphqlCjs`).
const isScalar = (x: unknown) => (x as { constructor?: { name?: string } })?.constructor?.name === 'GraphQLScalarType';
const isGraphQLError = (x: unknown): x is GraphQLError => x instanceof Error && x.name === 'GraphQLError';

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

const ENDED = Symbol('ended');
const REVOKED = Symbol('revoked');
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * `inner`, until the caller's session or token expires or is revoked: checked every `checkEveryMs` and at
 * `caller.expiresAt`. Then the next `next()` rejects with UNAUTHENTICATED (mercurius sends it to the client as the
 * operation's error, which ends it) and `inner.return()` is called to release its consumer.
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
  let end!: (why: typeof ENDED | typeof REVOKED) => void;
  const ending = new Promise<typeof ENDED | typeof REVOKED>((resolve) => {
    end = resolve;
  });

  const interval = setInterval(() => {
    stillValid(caller).then(
      (ok) => ok || end(REVOKED),
      (err) => opts.onCheckError?.(err),
    );
  }, opts.checkEveryMs ?? SUBSCRIPTION_CHECK_MS);
  // Longer than a timer can wait (about 25 days): the periodic check sees the expiry instead.
  const untilExpiry = caller.expiresAt ? caller.expiresAt.getTime() - Date.now() : Number.POSITIVE_INFINITY;
  const expiry = untilExpiry <= LONGEST_TIMER_MS ? setTimeout(() => end(REVOKED), Math.max(0, untilExpiry)) : null;

  function finish(): void {
    if (finished) return;
    finished = true;
    clearInterval(interval);
    if (expiry) clearTimeout(expiry);
    end(ENDED);
    // Not awaited: an async generator runs return() only after a pending next() settles.
    Promise.resolve()
      .then(() => it.return?.())
      .catch(() => {});
  }

  return {
    async next() {
      if (finished) return { done: true, value: undefined };
      const pending = it.next();
      // Abandoned when the caller's access ends first; its rejection must not go unhandled.
      pending.catch(() => {});
      const r = await Promise.race([pending, ending]);
      if (r === REVOKED) {
        finish();
        throw new UnauthenticatedError(
          'your session or API token has expired or been revoked: sign in and subscribe again',
        );
      }
      if (r === ENDED) return { done: true, value: undefined };
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

// ---------------------------------------------------------------------------------------------------------------
// Errors: only client errors keep their message.

/** A request-level refusal by mercurius or fastify (CSRF, bad body, rate limit): the client's, with its status. */
function isRequestError(err: Error): boolean {
  const status = (err as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/** The errors mercurius wraps in one request-level error (validation, method): each reported on its own. */
function expand(err: GraphQLError): GraphQLError[] {
  const original = err.originalError as (Error & { errors?: unknown; code?: string }) | undefined;
  if (!original || !Array.isArray(original.errors) || !isRequestError(original)) return [err];
  const fallback =
    original.code === 'MER_ERR_GQL_VALIDATION' ? 'GRAPHQL_VALIDATION_FAILED' : (original.code ?? 'BAD_REQUEST');
  return (original.errors as Error[]).map((inner) => {
    const gql = isGraphQLError(inner) ? inner : undefined;
    return new CjsGraphQLError(inner.message, {
      nodes: gql?.nodes,
      source: gql?.source,
      positions: gql?.positions,
      extensions: { ...gql?.extensions, code: gql?.extensions?.code ?? fallback },
    });
  });
}

/** The only codes a client sees; anything else is an internal error, logged here and reported without details. */
function formatError(err: GraphQLError, deps: GatewayDeps): GraphQLError {
  const original = err.originalError;
  if (!original || original instanceof ClientError || isGraphQLError(original) || isRequestError(original)) {
    // Validation and parse errors (no original error) are the client's: keep their message and location.
    const code =
      original instanceof ClientError
        ? original.code
        : original && isRequestError(original)
          ? String((original as { code?: string }).code ?? 'BAD_REQUEST')
          : ((err.extensions?.code as string | undefined) ?? 'GRAPHQL_VALIDATION_FAILED');
    const extensions = original instanceof ClientError ? original.extensions : err.extensions;
    return new CjsGraphQLError(err.message, {
      nodes: err.nodes,
      source: err.source,
      positions: err.positions,
      path: err.path,
      originalError: original,
      extensions: { ...extensions, code },
    });
  }
  deps.log.error({ err: original, path: err.path }, 'resolver failed');
  return new CjsGraphQLError('internal error', { path: err.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } });
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

/** What mercurius' SubscriptionConnection is when it calls `onConnect` (as a method): the upgrade request's context. */
interface ConnectionThis {
  context?: { request?: FastifyRequest };
  socket?: { close(code?: number, reason?: string): void };
}

/** Registers `/graphql` (queries, mutations; subscriptions over graphql-ws on the same path) and GraphiQL. */
export async function registerGraphQL(app: FastifyInstance, deps: GatewayDeps, auth: Authenticator): Promise<void> {
  const typeDefs = [ROOT, ...modules.map((m) => m.typeDefs)].join('\n');
  const limits = queryLimits(deps.config);
  const rules = limitRules(deps.config);
  const stillValid = sharedValidity(auth, SUBSCRIPTION_CHECK_MS / 2);
  const resolvers = guardSubscriptionFields(
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
  );
  await app.register(mercurius, {
    schema: typeDefs,
    resolvers: resolvers as IResolvers,
    graphiql: true,
    path: '/graphql',
    // mercurius' defaults, plus the WebSocket handshake's Sec-WebSocket-Key: a `Sec-` header no page script can set,
    // so it marks a real upgrade (which authenticates in connection_init, checking the Origin of cookies).
    csrfPrevention: {
      requiredHeaders: ['x-mercurius-operation-name', 'mercurius-require-preflight', 'sec-websocket-key'],
    },
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
    subscription: {
      context: (_socket, request) => ({ deps, request, caller: null }),
      // mercurius calls this as a method of the connection, whose context holds the upgrade request (cookies).
      onConnect: async function (this: ConnectionThis, data: { payload: Record<string, unknown> | undefined }) {
        const request = this?.context?.request;
        const caller = request ? await auth.fromConnectionInit(data.payload ?? undefined, request) : null;
        if (!caller) {
          // graphql-ws' close code for "Unauthorized": clients stop instead of retrying.
          this?.socket?.close(4401, 'Unauthorized');
          return false;
        }
        return { caller };
      },
      keepAlive: 15_000,
    },
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
  // mercurius does not validate subscription documents (graphql's subscribe() assumes a valid one): do it here.
  // The limits first: they are cheap, and an abusive document should not reach the costlier specified rules.
  app.graphql.addHook('preSubscriptionExecution', (schema, document) => {
    const [err] = [...validate(schema, document, rules), ...validate(schema, document, specifiedRules)];
    if (err)
      throw new CjsGraphQLError(err.message, {
        nodes: err.nodes,
        extensions: { ...err.extensions, code: err.extensions.code ?? 'GRAPHQL_VALIDATION_FAILED' },
      });
  });
}
