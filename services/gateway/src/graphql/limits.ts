import { createRequire } from 'node:module';
import type {
  DocumentNode,
  FragmentDefinitionNode,
  GraphQLError,
  GraphQLNamedType,
  GraphQLOutputType,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionSetNode,
  ValidationRule,
  ValueNode,
} from 'graphql';
import { getIntrospectionQuery, Kind, parse } from 'graphql';
import type { GatewayConfig } from '../config.ts';

/** What one document may ask for; see `limitRules`. */
export interface QueryLimits {
  maxDepth: number;
  maxCost: number;
  maxAliases: number;
  /** Assumed length of a list field without a `first`/`limit` argument (or with a variable and no value known). */
  defaultListSize: number;
  /** Known bounds of particular lists (`Type.field`), used instead of `defaultListSize`. */
  listSizes?: Readonly<Record<string, number>>;
}

/**
 * The CommonJS build of graphql, the one mercurius `require`s. Anything that meets mercurius' schema or errors
 * (`instanceof` checks, validate) must come from it: where ESM resolves graphql to its `.mjs` build (vitest does),
 * a second copy would fail graphql's realm check. Parsing and AST kinds are plain data and work with either.
 */
export const graphqlCjs = createRequire(import.meta.url)('graphql') as typeof import('graphql');
const { getNamedType, getNullableType, isCompositeType, isInterfaceType, isListType, isObjectType } = graphqlCjs;

export const DEFAULT_LIST_SIZE = 50;
const PAGE_ARGS = ['first', 'limit'];

export function queryLimits(
  config: Pick<GatewayConfig, 'maxQueryDepth' | 'maxQueryCost' | 'maxAliases'>,
  listSizes: Readonly<Record<string, number>> = {},
): QueryLimits {
  return {
    maxDepth: config.maxQueryDepth,
    maxCost: config.maxQueryCost,
    maxAliases: config.maxAliases,
    defaultListSize: DEFAULT_LIST_SIZE,
    listSizes,
  };
}

/** `depth`: of application fields; `introspectionDepth`: below `__schema`/`__type`, which get their own allowance. */
interface Measure {
  depth: number;
  introspectionDepth: number;
  cost: number;
}
const EMPTY: Measure = { depth: 0, introspectionDepth: 0, cost: 0 };

function intValue(node: ValueNode | undefined, op: OperationDefinitionNode, variables?: Record<string, unknown>) {
  if (!node) return undefined;
  if (node.kind === Kind.INT) return Number(node.value);
  if (node.kind !== Kind.VARIABLE) return undefined;
  const name = node.name.value;
  const given = variables?.[name];
  if (typeof given === 'number') return given;
  const def = op.variableDefinitions?.find((v) => v.variable.name.value === name)?.defaultValue;
  return def?.kind === Kind.INT ? Number(def.value) : undefined;
}

/**
 * Depth and estimated cost of one operation, fragments expanded (each fragment measured once, so a document that
 * spreads fragments into fragments cannot make this walk exponential). Cost: every field 1; the selections under a
 * list of objects count once per item: `first`/`limit` when given, else the list's known size, else `defaultListSize`. Introspection
 * (`__schema`, `__type`) costs 1: its size is the schema's, not the caller's choice; its own depth allowance and
 * MaxIntrospectionDepthRule bound it.
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  op: OperationDefinitionNode,
  limits: Pick<QueryLimits, 'defaultListSize' | 'listSizes'>,
  variables?: Record<string, unknown>,
): Measure {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const memo = new Map<string, Measure>();
  const visiting = new Set<string>();

  function fieldType(parent: GraphQLNamedType | undefined, name: string): GraphQLOutputType | undefined {
    if (name === '__schema') return schema.getType('__Schema') as GraphQLOutputType | undefined;
    if (name === '__type') return schema.getType('__Type') as GraphQLOutputType | undefined;
    if (parent && (isObjectType(parent) || isInterfaceType(parent))) return parent.getFields()[name]?.type;
    return undefined;
  }

  function fragment(name: string): Measure {
    const known = memo.get(name);
    if (known) return known;
    const def = fragments.get(name);
    // Unknown and cyclic fragments are reported by the specified rules; count them as nothing here.
    if (!def || visiting.has(name)) return EMPTY;
    visiting.add(name);
    const m = selections(def.selectionSet, schema.getType(def.typeCondition.name.value));
    visiting.delete(name);
    memo.set(name, m);
    return m;
  }

  function selections(set: SelectionSetNode, parent: GraphQLNamedType | undefined): Measure {
    const out = { depth: 0, introspectionDepth: 0, cost: 0 };
    const add = (m: Measure) => {
      out.depth = Math.max(out.depth, m.depth);
      out.introspectionDepth = Math.max(out.introspectionDepth, m.introspectionDepth);
      out.cost += m.cost;
    };
    for (const sel of set.selections) {
      if (sel.kind === Kind.FRAGMENT_SPREAD) add(fragment(sel.name.value));
      else if (sel.kind === Kind.INLINE_FRAGMENT)
        add(selections(sel.selectionSet, sel.typeCondition ? schema.getType(sel.typeCondition.name.value) : parent));
      else {
        const name = sel.name.value;
        const type = fieldType(parent, name);
        const named = type ? getNamedType(type) : undefined;
        const child = sel.selectionSet ? selections(sel.selectionSet, named) : EMPTY;
        const nullable = type ? getNullableType(type) : undefined;
        let items = 1;
        if (nullable && isListType(nullable) && named && isCompositeType(named) && !named.name.startsWith('__')) {
          const arg = sel.arguments?.find((a) => PAGE_ARGS.includes(a.name.value));
          const known = parent ? limits.listSizes?.[`${parent.name}.${name}`] : undefined;
          items = Math.max(0, intValue(arg?.value, op, variables) ?? known ?? limits.defaultListSize);
        }
        const cost = 1 + items * child.cost;
        if (name === '__schema' || name === '__type') {
          // Its size is the schema's, whatever the query: bounded by depth and MaxIntrospectionDepthRule, not cost.
          add({ depth: 0, introspectionDepth: 1 + Math.max(child.depth, child.introspectionDepth), cost: 1 });
        } else {
          add({
            depth: 1 + child.depth,
            introspectionDepth: child.introspectionDepth && 1 + child.introspectionDepth,
            cost,
          });
        }
      }
    }
    return out;
  }

  const root =
    op.operation === 'query'
      ? schema.getQueryType()
      : op.operation === 'mutation'
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  return selections(op.selectionSet, root ?? undefined);
}

/** The depth of the introspection query GraphiQL and codegen tools send: introspection may always go this deep. */
const STANDARD_INTROSPECTION_DEPTH = (() => {
  const doc = parse(
    getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
      oneOf: true,
    }),
  );
  const op = doc.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode;
  return measureOperation(graphqlCjs.buildSchema('type Query { _: Boolean }'), doc, op, { defaultListSize: 1 })
    .introspectionDepth;
})();

function limitError(rule: string, message: string, limit: number, actual: number, node?: OperationDefinitionNode) {
  return new graphqlCjs.GraphQLError(message, {
    nodes: node ? [node] : undefined,
    extensions: { code: 'GRAPHQL_VALIDATION_FAILED', rule, limit, actual },
  });
}

const opName = (op: OperationDefinitionNode) => (op.name ? `operation ${op.name.value}` : 'this operation');

/** Depth and cost errors of one operation (empty when within the limits). */
export function checkOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  op: OperationDefinitionNode,
  limits: QueryLimits,
  variables?: Record<string, unknown>,
): GraphQLError[] {
  const m = measureOperation(schema, document, op, limits, variables);
  const errors: GraphQLError[] = [];
  if (m.depth > limits.maxDepth) {
    errors.push(
      limitError(
        'maxQueryDepth',
        `query depth limit: ${opName(op)} is ${m.depth} levels deep (fragments included), more than the limit of ${limits.maxDepth}`,
        limits.maxDepth,
        m.depth,
        op,
      ),
    );
  }
  const introspectionLimit = Math.max(limits.maxDepth, STANDARD_INTROSPECTION_DEPTH);
  if (m.introspectionDepth > introspectionLimit) {
    errors.push(
      limitError(
        'maxQueryDepth',
        `query depth limit: the introspection in ${opName(op)} is ${m.introspectionDepth} levels deep, more than the limit of ${introspectionLimit}`,
        introspectionLimit,
        m.introspectionDepth,
        op,
      ),
    );
  }
  if (m.cost > limits.maxCost) {
    errors.push(
      limitError(
        'maxQueryCost',
        `query cost limit: ${opName(op)} has an estimated cost of ${m.cost}, more than the limit of ${limits.maxCost} ` +
          `(each field counts 1, a list's selections count once per item: pass a smaller first/limit or select less)`,
        limits.maxCost,
        m.cost,
        op,
      ),
    );
  }
  return errors;
}

/**
 * Validation rules that bound the work one document can cause: depth counted through named and inline fragments
 * (unlike mercurius' `queryDepth`, which is not used), an estimated cost, and the number of aliases. Pure functions of
 * the document, so mercurius may cache their verdict per query text; `checkVariables` re-checks the cost once the
 * variables are known.
 */
export function limitRules(limits: QueryLimits): ValidationRule[] {
  const depthAndCost: ValidationRule = (context) => ({
    OperationDefinition(op) {
      for (const err of checkOperation(context.getSchema(), context.getDocument(), op, limits))
        context.reportError(err);
    },
  });
  const aliases: ValidationRule = (context) => {
    let count = 0;
    return {
      Field(node) {
        if (node.alias) count += 1;
      },
      Document: {
        leave() {
          if (count > limits.maxAliases) {
            context.reportError(
              limitError(
                'maxAliases',
                `alias limit: the document uses ${count} aliases, more than the limit of ${limits.maxAliases}`,
                limits.maxAliases,
                count,
              ),
            );
          }
        },
      },
    };
  };
  return [depthAndCost, aliases, graphqlCjs.MaxIntrospectionDepthRule];
}

/**
 * The cost with the actual variables (`first: $n`), for every operation that declares variables (the hook that
 * calls this does not know which operation runs): errors, or empty.
 */
export function checkVariables(
  schema: GraphQLSchema,
  document: DocumentNode,
  limits: QueryLimits,
  variables: Record<string, unknown> | undefined,
): GraphQLError[] {
  if (!variables || Object.keys(variables).length === 0) return [];
  return document.definitions
    .filter(
      (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && !!d.variableDefinitions?.length,
    )
    .flatMap((op) => checkOperation(schema, document, op, limits, variables))
    .filter((e) => e.extensions.rule === 'maxQueryCost');
}
