import type { GraphQLModule } from '../graphql/module.ts';

// PLACEHOLDER: replaced by the feature's real module.
export const runsModule: GraphQLModule = { typeDefs: '', resolvers: {} };
