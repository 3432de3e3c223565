import type { RUN_KINDS } from '@ppc/lib/db';
import { reportOutputKinds, reportTypeIds, reportTypes, UrlCheckTask } from '@ppc/proto';
import type { TSchema } from '@sinclair/typebox';
import { requireCaller } from '../context.ts';
import type { Context, GraphQLModule } from '../graphql/module.ts';

export type JobKind = (typeof RUN_KINDS)[number];

/** The id of the URL check's catalog entry (URL-check jobs store no report type). */
export const URLCHECK_ENTRY_ID = 'urlcheck';

/** One thing a job can produce: a report type, or the URL check. */
export interface CatalogEntry {
  id: string;
  kind: JobKind;
  name: string;
  description: string;
  /** The parameters as plain JSON Schema (TypeBox's symbols stripped), defaults and limits included. */
  paramsSchema: Record<string, unknown>;
  outputKinds: readonly string[];
  sheets: readonly string[];
}

const plainSchema = (schema: TSchema): Record<string, unknown> => JSON.parse(JSON.stringify(schema));

/** The URL check's options, as the url-checker reads them from `urlcheck.task.v1`. */
export const urlCheckOptionsSchema: TSchema = UrlCheckTask.properties.options;

export const catalog: readonly CatalogEntry[] = [
  ...reportTypeIds.map((id) => {
    const t = reportTypes[id];
    return {
      id,
      kind: 'report' as const,
      name: t.name,
      description: t.description,
      paramsSchema: plainSchema(t.params),
      outputKinds: t.outputs,
      sheets: t.sheets,
    };
  }),
  {
    id: URLCHECK_ENTRY_ID,
    kind: 'urlcheck',
    name: 'Landing page check',
    description:
      "Crawls every landing page of the account's ads, keywords and sitelinks and reports broken, redirected, slow and out-of-stock pages.",
    paramsSchema: plainSchema(urlCheckOptionsSchema),
    outputKinds: reportOutputKinds,
    sheets: ['Summary', 'Problems', 'All URLs'],
  },
];

const typeDefs = /* GraphQL */ `
  "What a job does: a report of one of the report types, or a check of the account's landing pages."
  enum JobKind {
    report
    urlcheck
  }

  """
  One thing a job can produce. Report types have kind report and are named by id in a job's reportType; the URL
  check is the single entry of kind urlcheck (id "urlcheck"), and its jobs have no reportType.
  """
  type ReportType {
    id: ID!
    kind: JobKind!
    name: String!
    description: String!
    "JSON Schema of the job's params (defaults, limits and descriptions included; unknown keys are refused)."
    paramsSchema: JSON!
    "Output kinds a job may choose in output.kind: sheets, xlsx, csv (sheets needs a Google Ads account)."
    outputKinds: [String!]!
    "Sheets (tabs) the output contains; some only with certain parameters."
    sheets: [String!]!
  }

  extend type Query {
    "Everything a job can produce; kind narrows the list (kind: report gives the report types only)."
    reportTypes(kind: JobKind): [ReportType!]!
  }
`;

export const catalogModule: GraphQLModule = {
  typeDefs,
  resolvers: {
    Query: {
      reportTypes: (_root: unknown, args: { kind?: JobKind | null }, ctx: Context) => {
        requireCaller(ctx, 'read');
        return args.kind ? catalog.filter((e) => e.kind === args.kind) : catalog;
      },
    },
  },
};
