import { ApiToken } from '@ppc/lib/db';
import { getIntrospectionQuery, Kind, type OperationDefinitionNode, parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, startGatewayHarness } from '../testing/harness.ts';
import { checkVariables, DEFAULT_LIST_SIZE, graphqlCjs, limitRules, measureOperation, queryLimits } from './limits.ts';

const schema = graphqlCjs.buildSchema(/* GraphQL */ `
  type Query { viewer: User, users(first: Int, limit: Int): [User!]!, tags: [String!]! }
  type Mutation { rename(name: String!): User }
  type User { id: ID!, name: String, best: User, friends(first: Int): [User!]! }
`);
const config = { maxQueryDepth: 4, maxQueryCost: 1000, maxAliases: 3 };

function errorsOf(doc: string, cfg = config) {
  return graphqlCjs.validate(schema, parse(doc), limitRules(queryLimits(cfg))).map((e) => ({
    message: e.message,
    rule: e.extensions.rule,
    limit: e.extensions.limit,
    actual: e.extensions.actual,
  }));
}
function measure(doc: string, variables?: Record<string, unknown>) {
  const document = parse(doc);
  const op = document.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode;
  return measureOperation(schema, document, op, { defaultListSize: DEFAULT_LIST_SIZE }, variables);
}

describe('query limits (validation rules)', () => {
  it('counts depth through named fragments and inline fragments', () => {
    expect(measure('{ viewer { best { best { id } } } }').depth).toBe(4);
    const viaFragments = `
      { viewer { ...A } }
      fragment A on User { best { ... on User { best { ...B } } } }
      fragment B on User { best { id } }`;
    expect(measure(viaFragments).depth).toBe(5);
    expect(errorsOf(viaFragments)).toEqual([
      {
        message: expect.stringMatching(/^query depth limit: .* 5 levels deep .* limit of 4$/),
        rule: 'maxQueryDepth',
        limit: 4,
        actual: 5,
      },
    ]);
    expect(errorsOf('{ viewer { best { best { id } } } }')).toEqual([]);
  });

  it('estimates cost: each field 1, a list of objects once per item (first/limit, else the default of 50)', () => {
    expect(measure('{ viewer { id name } }').cost).toBe(3);
    expect(measure('{ users { id } }').cost).toBe(1 + DEFAULT_LIST_SIZE);
    expect(measure('{ users(first: 10) { id name } }').cost).toBe(1 + 10 * 2);
    expect(measure('{ users(limit: 2) { friends(first: 3) { id } } }').cost).toBe(1 + 2 * (1 + 3));
    // Lists of scalars cost like one field.
    expect(measure('{ tags }').cost).toBe(1);
    // A variable counts with its default, or the default list size when it has none.
    expect(measure('query($n: Int = 7) { users(first: $n) { id } }').cost).toBe(8);
    expect(measure('query($n: Int) { users(first: $n) { id } }').cost).toBe(1 + DEFAULT_LIST_SIZE);
    expect(errorsOf('{ users(first: 100) { friends(first: 100) { id } } }')).toEqual([
      expect.objectContaining({ rule: 'maxQueryCost', limit: 1000, actual: 1 + 100 * (1 + 100) }),
    ]);
  });

  it('uses a list’s known size when it takes no first/limit', () => {
    const document = parse('{ viewer { friends { id } } users { id } }');
    const op = document.definitions[0] as OperationDefinitionNode;
    const limits = { defaultListSize: DEFAULT_LIST_SIZE, listSizes: { 'User.friends': 4 } };
    expect(measureOperation(schema, document, op, limits).cost).toBe(1 + (1 + 4 * 1) + (1 + DEFAULT_LIST_SIZE * 1));
  });

  it('re-checks the cost with the actual variables of the request', () => {
    const doc = parse('query($n: Int) { users(first: $n) { friends(first: $n) { id } } }');
    const limits = queryLimits(config);
    expect(checkVariables(schema, doc, limits, { n: 5 })).toEqual([]);
    const [err] = checkVariables(schema, doc, limits, { n: 1000 });
    expect(err?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', rule: 'maxQueryCost' });
  });

  it('counts aliases in the whole document, fragments included', () => {
    expect(errorsOf('{ a: viewer { id } b: viewer { id } ...F } fragment F on Query { c: tags }')).toEqual([]);
    expect(errorsOf('{ a: viewer { id } b: viewer { id } ...F } fragment F on Query { c: tags d: tags }')).toEqual([
      expect.objectContaining({ rule: 'maxAliases', limit: 3, actual: 4 }),
    ]);
  });

  it('measures a fragment once, so nested spreads cannot make validation itself slow', () => {
    const fragments = Array.from(
      { length: 40 },
      (_, i) => `fragment F${i} on User { best { ...F${i + 1} ...F${i + 1} } }`,
    ).join('\n');
    const doc = `{ viewer { ...F0 } }\n${fragments}\nfragment F40 on User { id }`;
    const started = performance.now();
    const m = measure(doc);
    expect(performance.now() - started).toBeLessThan(200);
    expect(m.depth).toBe(42);
    expect(m.cost).toBeGreaterThan(2 ** 40);
  });

  it("lets the standard introspection query through (GraphiQL's), and refuses introspection abuse", () => {
    const standard = getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, oneOf: true });
    expect(errorsOf(standard, { ...config, maxQueryDepth: 2, maxQueryCost: 10 })).toEqual([]);
    const abuse = '{ __schema { types { fields { type { fields { type { fields { type { name } } } } } } } } }';
    expect(errorsOf(abuse).length).toBeGreaterThan(0);
    const deep = `{ __type(name: "User") { ${'ofType { '.repeat(30)}name${' }'.repeat(30)} } }`;
    expect(errorsOf(deep)).toEqual([expect.objectContaining({ rule: 'maxQueryDepth' })]);
  });
});

describe('query limits on the running gateway', () => {
  let h: GatewayHarness;
  beforeAll(async () => {
    h = await startGatewayHarness({
      PPC_GRAPHQL_MAX_DEPTH: '3',
      PPC_GRAPHQL_MAX_COST: '100',
      PPC_GRAPHQL_MAX_ALIASES: '3',
      PPC_LOGIN_RATE_LIMIT: '1000',
    });
  }, 60_000);
  afterAll(() => h?.close());

  const tokensOf = (orgId: string) => h.orm.em.fork().count(ApiToken, { organization: orgId });

  it('refuses a mutation too deep through fragments, before running it', async () => {
    const t = await h.seedTenant();
    const res = await h.gql(
      `mutation { ...M }
       fragment M on Mutation { createApiToken(name: "deep", scopes: [read]) { ...T } }
       fragment T on CreatedApiToken { token { ... on ApiToken { owner { id } } } }`,
      {},
      t,
    );
    expect(res.status).toBe(400);
    expect(res.body.data).toBeNull();
    expect(res.body.errors).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/query depth limit: .* 4 levels deep .* limit of 3/),
        extensions: expect.objectContaining({ code: 'GRAPHQL_VALIDATION_FAILED', rule: 'maxQueryDepth', limit: 3 }),
      }),
    ]);
    expect(await tokensOf(t.orgId)).toBe(0);
  });

  it('refuses a query whose estimated cost is over the limit', async () => {
    const t = await h.seedTenant();
    const res = await h.gql('{ apiTokens { id name prefix } }', {}, t);
    expect(res.status).toBe(400);
    expect(res.body.data).toBeNull();
    expect(res.body.errors?.[0]?.extensions).toMatchObject({
      code: 'GRAPHQL_VALIDATION_FAILED',
      rule: 'maxQueryCost',
      limit: 100,
      actual: 1 + DEFAULT_LIST_SIZE * 3,
    });
  });

  it('refuses too many aliases, running none of the aliased mutations', async () => {
    const t = await h.seedTenant();
    const fields = ['a', 'b', 'c', 'd'].map((a) => `${a}: createApiToken(name: "${a}", scopes: [read]) { secret }`);
    const res = await h.gql(`mutation { ${fields.join(' ')} }`, {}, t);
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', rule: 'maxAliases' });
    expect(res.body.errors?.[0]?.message).toMatch(/alias limit: .* 4 aliases, more than the limit of 3/);
    expect(await tokensOf(t.orgId)).toBe(0);
  });

  it('serves the standard introspection query despite the small depth and cost limits', async () => {
    const res = await h.gql<{ __schema: { types: unknown[] } }>(getIntrospectionQuery({ descriptions: true }));
    expect(res.status).toBe(200);
    expect(res.body.data?.__schema.types.length).toBeGreaterThan(10);
    expect(res.body.errors).toBeUndefined();
  });

  it('validates subscription documents over WebSocket, limits included', async () => {
    const t = await h.seedTenant();
    const client = h.ws(t);
    const errorsFor = (query: string) =>
      new Promise<{ message: string; extensions?: Record<string, unknown> }[]>((resolve, reject) => {
        client.subscribe(
          { query },
          {
            next: () => reject(new Error('the subscription ran')),
            error: (err) => resolve(err as never),
            complete: () => reject(new Error('the subscription completed')),
          },
        );
      });
    try {
      const unknown = await errorsFor('subscription { noSuchField }');
      expect(unknown[0]?.message).toMatch(/Cannot query field "noSuchField"/);
      expect(unknown[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      const aliased = await errorsFor('subscription { a: _empty b: _empty c: _empty d: _empty }');
      expect(aliased[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', rule: 'maxAliases' });
    } finally {
      await client.dispose();
    }
  });
});
