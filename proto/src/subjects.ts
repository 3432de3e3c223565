import { token } from './tokens.ts';

export const runEventKinds = ['queued', 'started', 'progress', 'succeeded', 'failed', 'cancelled'] as const;
export type RunEventKind = (typeof runEventKinds)[number];

/**
 * Every subject of the mesh. Services build subjects only through these functions:
 * each argument is checked to be one token, so user data can never form a wildcard.
 */
export const subjects = {
  reportTask: (region: string, reportType: string) =>
    `tasks.report.${token('region', region)}.${token('reportType', reportType)}`,
  reportTasksOfRegion: (region: string) => `tasks.report.${token('region', region)}.>`,
  urlCheckTask: (region: string) => `tasks.urlcheck.${token('region', region)}`,
  systemTask: (name: string) => `tasks.system.${token('name', name)}`,
  clusterTask: (name: string) => `tasks.cluster.${token('name', name)}`,

  runEvent: (runId: string, kind: RunEventKind) => `events.run.${token('runId', runId)}.${kind}`,
  runEvents: (runId: string) => `events.run.${token('runId', runId)}.>`,
  allRunEvents: 'events.run.>',
  accountEvent: (accountId: string, kind: string) =>
    `events.account.${token('accountId', accountId)}.${token('kind', kind)}`,
  scaleEvent: (pool: string) => `events.scale.${token('pool', pool)}`,
  allScaleEvents: 'events.scale.*',
  workerEvent: (instanceId: string, kind: string) =>
    `events.worker.${token('instanceId', instanceId)}.${token('kind', kind)}`,
  clockLeader: 'events.clock.leader',

  /** Dead letters keep the original subject after the prefix so an operator can see where they came from. */
  deadLetter: (originalSubject: string) => `dlq.${originalSubject}`,
  originalOfDeadLetter: (dlqSubject: string) => dlqSubject.replace(/^dlq\./, ''),

  /** Core NATS (not stored): cancel a running run on whichever worker holds it. */
  runCancel: (runId: string) => `cmd.run.${token('runId', runId)}.cancel`,
  /** Core NATS request-reply: short-lived ad-platform tokens are never written to a stream. */
  credentialsToken: 'svc.credentials.token',
} as const;

/** Pool names identify a worker pool per region: `report-worker-<region>`, `url-checker-<region>`. */
export const pools = {
  reportWorker: (region: string) => `report-worker-${token('region', region)}`,
  urlChecker: (region: string) => `url-checker-${token('region', region)}`,
} as const;

/**
 * Deterministic `Nats-Msg-Id`s: a publish retried inside the stream's duplicate window is stored once.
 * A later attempt of the same run is a new task, so it carries its attempt number.
 */
export const msgIds = {
  run: (runId: string, attempt = 1) => (attempt <= 1 ? `run.${runId}` : `run.${runId}.${attempt}`),
  tick: (schedule: string, scheduledAt: string) => `tick.${schedule}.${scheduledAt}`,
  runEvent: (runId: string, kind: RunEventKind, attempt: number, seq = 0) =>
    `ev.${runId}.${attempt}.${kind}${kind === 'progress' ? `.${seq}` : ''}`,
} as const;
