/**
 * Report outputs: Google Sheets, XLSX and CSV behind one call shape. The contract lives in `types.ts`; callers use
 * `openOutput` and then only {@link Output} and {@link OutputSheet}.
 */
export * from './types.ts';
export { openOutput } from './open.ts';
export { artifactUrl, objectName, openArtifactStore } from './artifacts.ts';
export { parseRetryAfter } from './google/errors.ts';
export { type SheetsStandIn, startSheetsStandIn } from './google/stand-in.ts';
export { type ReportSheetSource, type WrittenReport, writeReport } from './write-report.ts';
