/**
 * The URL checker's engine: collect an account's landing-page URLs through its connector, check each over HTTP
 * (politely, per host), and shape the report. The service (main.ts) wires it to tasks, outputs and events.
 */
export {
  type UrlCheckDeps,
  type UrlCheckProgress,
  type UrlCheckResult,
  type UrlCheckStats,
  runUrlCheck,
} from './run.ts';
export {
  type CheckOptions,
  DEFAULT_OPTIONS,
  DEFAULT_SOFT_ERROR_PHRASES,
  type EngineSettings,
  resolveOptions,
  type ValueTrackMode,
} from './options.ts';
export {
  CLASS_LABELS,
  checkUrls,
  createCheckAgent,
  PROBLEM_CLASSES,
  ResultStore,
  URL_CLASSES,
  type UrlClass,
  type UrlOutcome,
} from './check/index.ts';
export { buildSheets, type Cell, type ReportSheet, type SheetColumn, type SheetColumnType } from './report/index.ts';
export { applyValueTrack, collectUrls, normalizeUrl, type TrackedUsage, UrlSet } from './urls/index.ts';
