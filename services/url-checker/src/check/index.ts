export { type CheckDeps, type CheckProgress, checkUrls, createCheckAgent, PROGRESS_INTERVAL_MS } from './check-urls.ts';
export { Probe, type ProbeFailure, type ProbeRequest, type ProbeResult } from './probe.ts';
export { CLASS_LABELS, PROBLEM_CLASSES, ResultStore, URL_CLASSES, type UrlClass, type UrlOutcome } from './results.ts';
export { HostScheduler, type SchedulerLimits } from './scheduler.ts';
export { foldText, isTextual, PhraseMatcher, pageText } from './text.ts';
