import { nextFireAfter } from '@ppc/lib/db';
import { addressProblem } from '@ppc/lib/mail';
import { isReportTypeId, OutputTarget, ReportParamsError, reportTypeIds, validateReportParams } from '@ppc/proto';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { BadUserInputError } from '../graphql/errors.ts';
import { type CatalogEntry, catalog, type JobKind, URLCHECK_ENTRY_ID, urlCheckOptionsSchema } from './catalog.ts';

/**
 * Job input checks that need no database: each throws BadUserInputError naming the field by its argument path
 * (`input.params.period.start`), before anything is written.
 */

/** A job's fields as the API takes them (createJob's input; updateJob's merged with the stored job). */
export interface JobFields {
  name: string;
  kind: JobKind;
  reportType?: string | null;
  params: unknown;
  output: unknown;
  cron?: string | null;
  timeZone: string;
  notify: unknown;
}

/** The same fields, checked and normalised for storing. */
export interface ValidJobFields {
  name: string;
  kind: JobKind;
  reportType: string | null;
  params: Record<string, unknown>;
  output: Record<string, unknown>;
  cron: string | null;
  timeZone: string;
  notify: Record<string, unknown>;
}

export const MAX_RECIPIENTS = 50;
const NOTIFY_KEYS = new Set(['onFailure', 'onRecovery', 'recipients']);

/** `/period/start` → `.period.start`; `/ngramSizes/1` → `.ngramSizes[1]`. */
export function pointerToPath(pointer: string): string {
  if (!pointer) return '';
  return pointer
    .split('/')
    .slice(1)
    .map((raw) => raw.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((key) =>
      /^\d+$/.test(key) ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`,
    )
    .join('');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();
function firstError(schema: TSchema, value: unknown): { path: string; message: string } | undefined {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  if (check.Check(value)) return undefined;
  const e = check.Errors(value).First();
  return { path: e?.path ?? '', message: e ? `${e.message}, got ${JSON.stringify(e.value)}` : 'invalid' };
}

/** The catalog entry a job's kind and report type name. */
export function entryOf(kind: JobKind, reportType: string | null | undefined, prefix: string): CatalogEntry {
  if (kind === 'urlcheck') {
    if (reportType != null && reportType !== URLCHECK_ENTRY_ID) {
      throw new BadUserInputError(`${prefix}.reportType`, 'a URL check has no report type; leave it out');
    }
    return catalog.find((e) => e.id === URLCHECK_ENTRY_ID)!;
  }
  if (reportType == null || reportType === '') {
    throw new BadUserInputError(`${prefix}.reportType`, `required for a report (one of ${reportTypeIds.join(', ')})`);
  }
  if (!isReportTypeId(reportType)) {
    throw new BadUserInputError(
      `${prefix}.reportType`,
      `unknown report type ${JSON.stringify(reportType)} (known: ${reportTypeIds.join(', ')})`,
    );
  }
  return catalog.find((e) => e.id === reportType)!;
}

function checkParams(entry: CatalogEntry, params: unknown, prefix: string): Record<string, unknown> {
  const value = params ?? {};
  const field = `${prefix}.params`;
  if (!isObject(value)) throw new BadUserInputError(field, 'expected an object');
  if (entry.kind === 'report') {
    try {
      validateReportParams(entry.id, value);
    } catch (err) {
      if (!(err instanceof ReportParamsError)) throw err;
      throw new BadUserInputError(`${field}${pointerToPath(err.field)}`, err.reason);
    }
  } else {
    const problem = firstError(urlCheckOptionsSchema, value);
    if (problem) {
      const unknownKey = problem.message.startsWith('Unexpected property');
      throw new BadUserInputError(
        `${field}${pointerToPath(problem.path)}`,
        unknownKey ? 'unknown option' : problem.message,
      );
    }
  }
  // Stored as given: defaults are applied by the worker when the task arrives, so a later default applies too.
  return value;
}

function checkOutput(entry: CatalogEntry, output: unknown, prefix: string): Record<string, unknown> {
  const field = `${prefix}.output`;
  if (!isObject(output)) throw new BadUserInputError(field, 'expected an object like {"kind": "xlsx"}');
  if (typeof output.kind !== 'string' || !entry.outputKinds.includes(output.kind)) {
    throw new BadUserInputError(
      `${field}.kind`,
      `expected one of ${entry.outputKinds.join(', ')}, got ${JSON.stringify(output.kind)}`,
    );
  }
  // Checked against the variant the kind names, so the error points into it rather than at "no union member".
  const variant = (OutputTarget.anyOf as TSchema[]).find((v) => v.properties?.kind?.const === output.kind);
  const problem = firstError(variant ?? OutputTarget, output);
  if (problem) {
    const unknownKey = problem.message.startsWith('Unexpected property');
    throw new BadUserInputError(
      `${field}${pointerToPath(problem.path)}`,
      unknownKey ? `not an option of a ${output.kind} output` : problem.message,
    );
  }
  return output;
}

/** True for an IANA zone name the runtime knows (`Europe/Prague`, `UTC`); offsets like `+01:00` are refused. */
export function isIanaTimeZone(zone: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function checkTimeZone(zone: string, prefix: string): string {
  const trimmed = zone.trim();
  if (!isIanaTimeZone(trimmed)) {
    throw new BadUserInputError(
      `${prefix}.timeZone`,
      `${JSON.stringify(zone)} is not an IANA time zone (like Europe/Prague or UTC)`,
    );
  }
  return trimmed;
}

/** Null for an on-demand job; else the five-field expression, checked to fire in `timeZone`. */
function checkCron(cron: string | null | undefined, timeZone: string, prefix: string): string | null {
  if (cron == null || cron.trim() === '') return null;
  const expr = cron.trim().replace(/\s+/g, ' ');
  const field = `${prefix}.cron`;
  if (expr.split(' ').length !== 5) {
    throw new BadUserInputError(
      field,
      `expected five fields (minute hour day-of-month month day-of-week), got ${JSON.stringify(cron)}`,
    );
  }
  let next: Date | null;
  try {
    next = nextFireAfter(expr, timeZone, new Date());
  } catch (err) {
    throw new BadUserInputError(
      field,
      `${JSON.stringify(cron)} is not a valid cron expression: ${(err as Error).message}`,
    );
  }
  if (next === null) throw new BadUserInputError(field, `${JSON.stringify(cron)} never fires`);
  return expr;
}

function checkNotify(notify: unknown, prefix: string): Record<string, unknown> {
  const field = `${prefix}.notify`;
  if (notify === null || notify === undefined) return {};
  if (!isObject(notify)) throw new BadUserInputError(field, 'expected an object {onFailure, onRecovery, recipients}');
  for (const key of Object.keys(notify)) {
    if (!NOTIFY_KEYS.has(key)) {
      throw new BadUserInputError(`${field}.${key}`, 'unknown setting (known: onFailure, onRecovery, recipients)');
    }
  }
  for (const flag of ['onFailure', 'onRecovery'] as const) {
    const v = notify[flag];
    if (v !== undefined && v !== null && typeof v !== 'boolean') {
      throw new BadUserInputError(`${field}.${flag}`, 'expected true or false');
    }
  }
  const list = notify.recipients;
  if (list !== undefined && list !== null) {
    if (!Array.isArray(list)) throw new BadUserInputError(`${field}.recipients`, 'expected a list of e-mail addresses');
    if (list.length > MAX_RECIPIENTS) {
      throw new BadUserInputError(`${field}.recipients`, `at most ${MAX_RECIPIENTS} addresses`);
    }
    for (const [i, address] of list.entries()) {
      const problem = addressProblem(address);
      if (problem) throw new BadUserInputError(`${field}.recipients[${i}]`, problem);
    }
  }
  return notify;
}

/** Every field-level check of a job, in the order a form shows them. */
export function validateJobFields(input: JobFields, prefix = 'input'): ValidJobFields {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 200) {
    throw new BadUserInputError(`${prefix}.name`, `must be 1 to 200 characters, got ${name.length}`);
  }
  const entry = entryOf(input.kind, input.reportType, prefix);
  const params = checkParams(entry, input.params, prefix);
  const output = checkOutput(entry, input.output, prefix);
  const timeZone = checkTimeZone(input.timeZone, prefix);
  const cron = checkCron(input.cron, timeZone, prefix);
  const notify = checkNotify(input.notify, prefix);
  return {
    name,
    kind: input.kind,
    reportType: entry.kind === 'report' ? entry.id : null,
    params,
    output,
    cron,
    timeZone,
    notify,
  };
}

/** When an enabled job with this schedule fires next (null: on demand only). */
export function nextRunFor(job: { cron?: string | null; timeZone: string }, after = new Date()): Date | null {
  return job.cron == null ? null : nextFireAfter(job.cron, job.timeZone, after);
}
