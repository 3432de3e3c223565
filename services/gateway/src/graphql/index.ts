import type { FastifyInstance } from 'fastify';
import { GraphQLError, GraphQLScalarType } from 'graphql';
import mercurius, { type IResolvers } from 'mercurius';
import type { Authenticator, GatewayContext, GatewayDeps } from '../context.ts';
import { ClientError } from './errors.ts';
import { limitRules } from './limits.ts';
import type { Context, GraphQLModule } from './module.ts';
import { modules } from './modules.ts';
import { DateTime, JSONScalar } from './scalars.ts';

const ROOT = /* GraphQL */ `
  scalar DateTime
  scalar JSON
  type Query { version: String! }
  type Mutation { _empty: Boolean }
  type Subscription { _empty: Boolean }
`;

function mergeResolvers(list: readonly GraphQLModule[]): IResolvers<unknown, Context> {
  const merged: Record<string, Record<string, unknown>> = {};
  for (const m of list) {
    for (const [type, fields] of Object.entries(m.resolvers)) {
      // Scalars are class instances: spreading one would drop its methods.
      if (fields instanceof GraphQLScalarType) merged[type] = fields as unknown as Record<string, unknown>;
      else merged[type] = { ...merged[type], ...(fields as Record<string, unknown>) };
    }
  }
  return merged as IResolvers<unknown, Context>;
}

/** A request-level refusal by mercurius or fastify (CSRF, bad body, rate limit): the client's, with its status. */
function isRequestError(err: Error): boolean {
  const status = (err as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/** The only codes a client sees; anything else is an internal error, logged here and reported without details. */
function formatError(err: GraphQLError, deps: GatewayDeps): GraphQLError {
  const original = err.originalError;
  if (!original || original instanceof ClientError || original instanceof GraphQLError || isRequestError(original)) {
    // Validation and parse errors (no original error) are the client's: keep their message and location.
    const code =
      original instanceof ClientError
        ? original.code
        : original && isRequestError(original)
          ? String((original as { code?: string }).code ?? 'BAD_REQUEST')
          : ((err.extensions?.code as string | undefined) ?? 'GRAPHQL_VALIDATION_FAILED');
    const extensions = original instanceof ClientError ? original.extensions : {};
    return new GraphQLError(err.message, {
      nodes: err.nodes,
      path: err.path,
      originalError: original,
      extensions: { ...extensions, code },
    });
  }
  deps.log.error({ err: original, path: err.path }, 'resolver failed');
  return new GraphQLError('internal error', { path: err.path, extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/** Registers `/graphql` (queries, mutations; subscriptions over graphql-ws on the same path) and GraphiQL. */
export async function registerGraphQL(app: FastifyInstance, deps: GatewayDeps, auth: Authenticator): Promise<void> {
  const typeDefs = [ROOT, ...modules.map((m) => m.typeDefs)].join('\n');
  await app.register(mercurius, {
    schema: typeDefs,
    resolvers: mergeResolvers([
      {
        typeDefs: '',
        resolvers: { Query: { version: (_root: unknown, _args: unknown, ctx: Context) => ctx.deps.version } },
      },
      ...modules,
    ]) as IResolvers,
    graphiql: true,
    path: '/graphql',
    csrfPrevention: true,
    allowBatchedQueries: false,
    queryDepth: deps.config.maxQueryDepth,
    validationRules: limitRules(deps.config),
    additionalRouteOptions: { bodyLimit: deps.config.bodyLimitBytes },
    context: async (request, reply): Promise<GatewayContext> => ({
      deps,
      caller: await auth.fromRequest(request),
      reply,
      request,
    }),
    subscription: {
      context: (_socket, request) => ({ deps, request, caller: null }),
      onConnect: async (data: { payload: Record<string, unknown> | undefined; context?: GatewayContext }) => {
        const request = data.context?.request;
        const caller = request ? await auth.fromConnectionInit(data.payload, request) : null;
        return { caller };
      },
      keepAlive: 15_000,
    },
    errorFormatter: (execution, context) => {
      const formatted = mercurius.defaultErrorFormatter(
        { ...execution, errors: execution.errors.map((e) => formatError(e, deps)) },
        context,
      );
      return formatted;
    },
  });
}
