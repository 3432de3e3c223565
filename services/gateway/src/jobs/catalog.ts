import type { GraphQLModule } from '../graphql/module.ts';

// PLACEHOLDER: replaced by the feature's real module.
export const catalogModule: GraphQLModule = { typeDefs: '', resolvers: {} };
