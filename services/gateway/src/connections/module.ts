import type { GraphQLModule } from '../graphql/module.ts';

// PLACEHOLDER: replaced by the feature's real module.
export const connectionsModule: GraphQLModule = { typeDefs: '', resolvers: {} };
