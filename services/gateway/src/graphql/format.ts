import type { GraphQLError } from 'graphql';
import type { GatewayDeps } from '../context.ts';
import { ClientError } from './errors.ts';
import { graphqlCjs } from './limits.ts';

const { GraphQLError: CjsGraphQLError } = graphqlCjs;

// By name, not instanceof: modules may build errors with graphql's ESM copy (see `graphqlCjs`).
export const isGraphQLError = (x: unknown): x is GraphQLError => x instanceof Error && x.name === 'GraphQLError';

// Only client errors keep their message.

/** A request-level refusal by mercurius or fastify (CSRF, bad body, rate limit): the client's, with its status. */
export function isRequestError(err: Error): boolean {
  const status = (err as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/** The errors mercurius wraps in one request-level error (validation, method): each reported on its own. */
export function expand(err: GraphQLError): GraphQLError[] {
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
export function formatError(err: GraphQLError, deps: GatewayDeps): GraphQLError {
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
