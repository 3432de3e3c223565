import { requireCaller } from '../context.ts';
import { BadUserInputError } from '../graphql/errors.ts';
import type { Context, GraphQLModule } from '../graphql/module.ts';
import { statusOf } from './collect.ts';
import { ticker } from './ticker.ts';

export const STATUS_INTERVAL = { min: 1, max: 300, default: 5 } as const;

const typeDefs = /* GraphQL */ `
  "One running process of the mesh, from its heartbeat."
  type ServiceInstance {
    service: String!
    instanceId: String!
    region: String!
    version: String!
    startedAt: DateTime!
    lastHeartbeatAt: DateTime!
    "Tasks it is working on."
    inFlight: Int!
    ready: Boolean!
  }

  type ServiceSummary {
    service: String!
    instances: Int!
    inFlight: Int!
    regions: [String!]!
  }

  type ClockStatus {
    "Instance id of the clock replica holding the lease; null when none does."
    leader: String
    since: DateTime
    renewedAt: DateTime
    fencingToken: Float
  }

  "A worker pool's queue: tasks waiting, and tasks being worked on."
  type PoolQueue {
    pool: String!
    stream: String!
    pending: Int!
    ackPending: Int!
    backlog: Int!
  }

  "The autoscaler's latest decision for a pool, with its inputs."
  type ScaleDecision {
    pool: String!
    at: DateTime!
    backlog: Int!
    live: Int!
    starting: Int!
    meanTaskMs: Float!
    targetDrainMs: Float!
    min: Int!
    max: Int!
    wanted: Int!
    started: Int!
    backend: String!
    reason: String!
  }

  type MeshStatus {
    at: DateTime!
    instances: [ServiceInstance!]!
    services: [ServiceSummary!]!
    clock: ClockStatus!
    queues: [PoolQueue!]!
    scaleDecisions: [ScaleDecision!]!
    "Messages in the DEAD_LETTERS stream."
    deadLetters: Int!
    "Parts that could not be read this time (their lists are empty)."
    unavailable: [String!]!
  }

  extend type Query {
    "The live mesh (at most a second old)."
    status: MeshStatus!
  }

  extend type Subscription {
    "The live mesh at once, then every intervalSeconds (${STATUS_INTERVAL.min}-${STATUS_INTERVAL.max})."
    status(intervalSeconds: Int = ${STATUS_INTERVAL.default}): MeshStatus!
  }
`;

export const statusModule: GraphQLModule = {
  typeDefs,
  resolvers: {
    Query: {
      status: (_root, _args, ctx: Context) => {
        requireCaller(ctx, 'read');
        return statusOf(ctx.deps);
      },
    },
    Subscription: {
      status: {
        subscribe: async (_root: unknown, args: { intervalSeconds?: number | null }, ctx: Context) => {
          requireCaller(ctx, 'read');
          const seconds = args.intervalSeconds ?? STATUS_INTERVAL.default;
          if (!Number.isInteger(seconds) || seconds < STATUS_INTERVAL.min || seconds > STATUS_INTERVAL.max) {
            throw new BadUserInputError(
              'intervalSeconds',
              `between ${STATUS_INTERVAL.min} and ${STATUS_INTERVAL.max} seconds`,
            );
          }
          return ticker(seconds * 1000, () => statusOf(ctx.deps));
        },
        resolve: (status: unknown) => status,
      },
    },
  },
};
