import type { IResolvers, MercuriusContext } from 'mercurius';
import type { GatewayContext } from '../context.ts';

export type Context = GatewayContext & MercuriusContext;

/** One feature's slice of the API: SDL that extends `Query`/`Mutation`/`Subscription`, and its resolvers. */
export interface GraphQLModule {
  typeDefs: string;
  resolvers: IResolvers<unknown, Context>;
  /** Bounds of the module's lists that take no `first`/`limit` (`Type.field`: items), for the query cost estimate. */
  listSizes?: Readonly<Record<string, number>>;
}
