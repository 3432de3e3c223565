import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function toDate(value: unknown): Date {
  if (typeof value !== 'string' || !ISO.test(value) || Number.isNaN(Date.parse(value))) {
    throw new GraphQLError(
      `DateTime: expected an ISO-8601 date-time with a zone (e.g. 2026-11-23T08:00:00Z), got ${JSON.stringify(value)}`,
      {
        extensions: { code: 'BAD_USER_INPUT' },
      },
    );
  }
  return new Date(value);
}

/** ISO-8601 with a zone on the wire, `Date` in resolvers. */
export const DateTime = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  serialize(value) {
    const d = value instanceof Date ? value : new Date(value as string | number);
    if (Number.isNaN(d.getTime())) throw new TypeError(`DateTime cannot represent ${String(value)}`);
    return d.toISOString();
  },
  parseValue: toDate,
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING)
      throw new GraphQLError('DateTime: expected a string', { nodes: ast, extensions: { code: 'BAD_USER_INPUT' } });
    return toDate(ast.value);
  },
});

/** Arbitrary JSON (report parameters, output targets): validated by the resolver against its own schema. */
export const JSONScalar = new GraphQLScalarType<unknown, unknown>({
  name: 'JSON',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral(ast) {
    const read = (node: typeof ast): unknown => {
      switch (node.kind) {
        case Kind.STRING:
        case Kind.BOOLEAN:
          return node.value;
        case Kind.INT:
        case Kind.FLOAT:
          return Number(node.value);
        case Kind.NULL:
          return null;
        case Kind.LIST:
          return node.values.map(read);
        case Kind.OBJECT:
          return Object.fromEntries(node.fields.map((f) => [f.name.value, read(f.value)]));
        default:
          throw new GraphQLError(
            'JSON: variables are not allowed inside a JSON literal; pass the whole value as a variable',
            {
              nodes: node,
              extensions: { code: 'BAD_USER_INPUT' },
            },
          );
      }
    };
    return read(ast);
  },
});
