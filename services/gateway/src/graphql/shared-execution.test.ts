import type { ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { graphqlCjs } from './limits.ts';
import { SharedPayload, subscribeSharing } from './shared-execution.ts';

class Tick extends SharedPayload {
  readonly n: number;
  constructor(n: number) {
    super();
    this.n = n;
  }
}

/** A schema whose `label` resolver counts its calls; every subscriber's source yields the same payload objects. */
function fixture(payloads: unknown[]) {
  const calls = { label: 0 };
  const schema = graphqlCjs.buildSchema(/* GraphQL */ `
    type Query { _: Boolean }
    type Tick { n: Int!, label(prefix: String!): String! }
    type Subscription { ticks: Tick! }
  `);
  const tick = schema.getType('Tick') as InstanceType<typeof graphqlCjs.GraphQLObjectType>;
  tick.getFields().label!.resolve = (t, args) => {
    calls.label += 1;
    return `${(args as { prefix: string }).prefix}${(t as Tick).n}`;
  };
  const field = schema.getSubscriptionType()!.getFields().ticks!;
  field.subscribe = async function* () {
    yield* payloads;
  };
  field.resolve = (payload: unknown) => payload;
  const subscribeAs = async (query: string, variables?: Record<string, unknown>) => {
    const results: ExecutionResult[] = [];
    const stream = await subscribeSharing({ schema, document: graphqlCjs.parse(query), variableValues: variables });
    for await (const r of stream as AsyncIterable<ExecutionResult>) results.push(r);
    return results;
  };
  return { calls, subscribeAs };
}

describe('shared execution of subscription events', () => {
  const query = 'subscription($p: String!) { ticks { n label(prefix: $p) } }';

  it('executes a shared payload once for every subscriber with the same operation and variables', async () => {
    const shared = [new Tick(1), new Tick(2)];
    const { calls, subscribeAs } = fixture(shared);
    const three = await Promise.all([1, 2, 3].map(() => subscribeAs(query, { p: '#' })));
    for (const results of three) {
      expect(results.map((r) => r.data)).toEqual([{ ticks: { n: 1, label: '#1' } }, { ticks: { n: 2, label: '#2' } }]);
    }
    expect(calls.label).toBe(2);
    // The very same result objects: serialised per subscriber, computed once.
    expect(three[1]![0]).toBe(three[0]![0]);
  });

  it('executes again for other variables or another document', async () => {
    const { calls, subscribeAs } = fixture([new Tick(1)]);
    const [a, b, c] = await Promise.all([
      subscribeAs(query, { p: '#' }),
      subscribeAs(query, { p: 'n=' }),
      subscribeAs('subscription { ticks { label(prefix: "x") } }'),
    ]);
    expect(a![0]!.data).toEqual({ ticks: { n: 1, label: '#1' } });
    expect(b![0]!.data).toEqual({ ticks: { n: 1, label: 'n=1' } });
    expect(c![0]!.data).toEqual({ ticks: { label: 'x1' } });
    expect(calls.label).toBe(3);
  });

  it('executes any other payload per subscriber', async () => {
    const { calls, subscribeAs } = fixture([{ n: 7 }]);
    await Promise.all([1, 2].map(() => subscribeAs(query, { p: '' })));
    expect(calls.label).toBe(2);
  });
});
