/**
 * Streams, consumers, KV buckets and object stores of the mesh, with their configuration.
 * Values use the JetStream API's own wire words ('workqueue', 'file', ...) so proto needs no client
 * library; durations are milliseconds. `lib/nats/provision` turns these into server configs.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

export interface StreamSpec {
  name: string;
  subjects: readonly string[];
  retention: 'workqueue' | 'limits' | 'interest';
  storage: 'file' | 'memory';
  discard: 'old' | 'new';
  /** 0 = unlimited */
  maxAgeMs: number;
  maxMsgsPerSubject: number;
  /** -1 = unlimited */
  maxBytes: number;
  maxMsgSize: number;
  duplicateWindowMs: number;
  replicas: number;
  description: string;
}

export interface ConsumerSpec {
  stream: string;
  durable: string;
  filterSubject: string;
  ackWaitMs: number;
  maxDeliver: number;
  /** Redelivery delays after a retryable failure, by attempt (last one repeats); applied by nak(). */
  backoffMs: readonly number[];
  maxAckPending: number;
  deliverPolicy: 'all' | 'new';
  description: string;
}

export interface KvSpec {
  bucket: string;
  /** 0 = entries never expire */
  ttlMs: number;
  history: number;
  storage: 'file' | 'memory';
  replicas: number;
  description: string;
}

export interface ObjectStoreSpec {
  bucket: string;
  ttlMs: number;
  storage: 'file' | 'memory';
  replicas: number;
  description: string;
}

const taskStream = (name: string, subject: string, description: string): StreamSpec => ({
  name,
  subjects: [subject],
  retention: 'workqueue',
  storage: 'file',
  discard: 'old',
  maxAgeMs: 7 * DAY,
  maxMsgsPerSubject: -1,
  maxBytes: -1,
  maxMsgSize: 1024 * 1024,
  // Long enough to cover an outbox relay retry and a clock failover.
  duplicateWindowMs: 10 * MINUTE,
  replicas: 1,
  description,
});

export const streams = {
  reportTasks: taskStream('REPORT_TASKS', 'tasks.report.>', 'Report tasks, one message per run attempt'),
  urlCheckTasks: taskStream('URLCHECK_TASKS', 'tasks.urlcheck.>', 'URL-check tasks, one message per run attempt'),
  systemTasks: taskStream('SYSTEM_TASKS', 'tasks.system.>', 'Periodic system work fired by the clock'),
  clusterTasks: {
    ...taskStream('CLUSTER_TASKS', 'tasks.cluster.>', 'Cluster ticks; only the newest per subject matters'),
    maxMsgsPerSubject: 1,
    discard: 'old',
  },
  events: {
    name: 'EVENTS',
    subjects: ['events.>'],
    retention: 'limits',
    storage: 'file',
    discard: 'old',
    maxAgeMs: 30 * DAY,
    maxMsgsPerSubject: -1,
    maxBytes: -1,
    maxMsgSize: 256 * 1024,
    duplicateWindowMs: 2 * MINUTE,
    replicas: 1,
    description: 'Run, account, scale, worker and clock events',
  },
  deadLetters: {
    name: 'DEAD_LETTERS',
    subjects: ['dlq.>'],
    retention: 'limits',
    storage: 'file',
    discard: 'old',
    maxAgeMs: 30 * DAY,
    maxMsgsPerSubject: -1,
    maxBytes: -1,
    maxMsgSize: 1024 * 1024,
    duplicateWindowMs: 2 * MINUTE,
    replicas: 1,
    description: 'Messages that failed validation or their last delivery; inspect and replay by hand',
  },
} as const satisfies Record<string, StreamSpec>;

export const consumers = {
  reportWorker: (region: string): ConsumerSpec => ({
    stream: streams.reportTasks.name,
    durable: `report-worker-${region}`,
    filterSubject: `tasks.report.${region}.>`,
    // A crashed worker's task is redelivered after this; a live one extends it with working() every third of it.
    ackWaitMs: 30 * SECOND,
    maxDeliver: 5,
    backoffMs: [10 * SECOND, MINUTE, 5 * MINUTE, 15 * MINUTE],
    maxAckPending: 1000,
    deliverPolicy: 'all',
    description: `Report workers of region ${region}`,
  }),
  urlChecker: (region: string): ConsumerSpec => ({
    stream: streams.urlCheckTasks.name,
    durable: `url-checker-${region}`,
    filterSubject: `tasks.urlcheck.${region}`,
    // A crashed worker's task is redelivered after this; a live one extends it with working() every third of it.
    ackWaitMs: 30 * SECOND,
    maxDeliver: 5,
    backoffMs: [10 * SECOND, MINUTE, 5 * MINUTE, 15 * MINUTE],
    maxAckPending: 1000,
    deliverPolicy: 'all',
    description: `URL checkers of region ${region}`,
  }),
  system: {
    stream: streams.systemTasks.name,
    durable: 'system',
    filterSubject: 'tasks.system.>',
    ackWaitMs: 60 * SECOND,
    maxDeliver: 5,
    backoffMs: [5 * SECOND, 30 * SECOND, 2 * MINUTE],
    maxAckPending: 1000,
    deliverPolicy: 'all',
    description: 'System replicas share the periodic work',
  },
  autoscaler: {
    stream: streams.clusterTasks.name,
    durable: 'autoscaler',
    filterSubject: 'tasks.cluster.>',
    ackWaitMs: 10 * SECOND,
    maxDeliver: 2,
    backoffMs: [SECOND],
    maxAckPending: 10,
    deliverPolicy: 'all',
    description: 'One autoscaler replica acts on each cluster tick',
  },
  systemRecorder: {
    stream: streams.events.name,
    durable: 'system-recorder',
    filterSubject: 'events.run.>',
    ackWaitMs: 30 * SECOND,
    maxDeliver: 10,
    backoffMs: [SECOND, 5 * SECOND, 30 * SECOND],
    maxAckPending: 10000,
    deliverPolicy: 'all',
    description: 'Projects run events into the runs table',
  },
  // The notifier reads only the events that can cause mail. Two durables, because nats-server 2.9 has no
  // consumer with several filter subjects (2.10 does) and a durable's filter cannot change.
  systemNotifierFailed: {
    stream: streams.events.name,
    durable: 'system-notifier-failed',
    filterSubject: 'events.run.*.failed',
    ackWaitMs: 30 * SECOND,
    maxDeliver: 10,
    backoffMs: [SECOND, 5 * SECOND, 30 * SECOND],
    maxAckPending: 1000,
    deliverPolicy: 'all',
    description: 'Sends e-mail on run failures',
  },
  systemNotifierSucceeded: {
    stream: streams.events.name,
    durable: 'system-notifier-succeeded',
    filterSubject: 'events.run.*.succeeded',
    ackWaitMs: 30 * SECOND,
    maxDeliver: 10,
    backoffMs: [SECOND, 5 * SECOND, 30 * SECOND],
    maxAckPending: 1000,
    deliverPolicy: 'all',
    description: 'Sends e-mail on recoveries (a success after failures)',
  },
  /**
   * Retired: the notifier's former durable, which read every run event. Nothing consumes or provisions it; where it
   * still exists, the system service hands its position to `systemNotifierFailed`/`systemNotifierSucceeded` and
   * deletes it at start.
   */
  retiredSystemNotifier: {
    stream: streams.events.name,
    durable: 'system-notifier',
    filterSubject: 'events.run.>',
    ackWaitMs: 30 * SECOND,
    maxDeliver: 10,
    backoffMs: [SECOND, 5 * SECOND, 30 * SECOND],
    maxAckPending: 1000,
    deliverPolicy: 'all',
    description: 'Retired: replaced by system-notifier-failed and system-notifier-succeeded',
  },
} as const;

export const kvBuckets = {
  clockLease: {
    bucket: 'clock-lease',
    ttlMs: 3 * SECOND,
    history: 1,
    storage: 'file',
    replicas: 1,
    description: 'Leader lease of the clock; the revision is the fencing token',
  },
  clockState: {
    bucket: 'clock-state',
    ttlMs: 0,
    history: 1,
    storage: 'file',
    replicas: 1,
    description: 'Last fired time per schedule',
  },
  workers: {
    bucket: 'workers',
    ttlMs: 30 * SECOND,
    history: 1,
    // File, not memory: a restarted server keeps the bucket, so a second start provisions nothing.
    storage: 'file',
    replicas: 1,
    description: 'Heartbeats of every running instance',
  },
  taskStats: {
    bucket: 'task-stats',
    // A task type nobody has run for a week no longer says anything about the next burst.
    ttlMs: 7 * DAY,
    history: 1,
    storage: 'file',
    replicas: 1,
    description: 'Recent task time per worker pool and task type (key <pool>.<taskType>), written by system',
  },
} as const satisfies Record<string, KvSpec>;

export const objectStores = {
  artifacts: {
    bucket: 'artifacts',
    ttlMs: 90 * DAY,
    storage: 'file',
    replicas: 1,
    description: 'Report files (XLSX, CSV) under <runId>/<name>',
  },
} as const satisfies Record<string, ObjectStoreSpec>;

/** How often an instance writes its heartbeat; the bucket TTL removes it after a few missed beats. */
export const HEARTBEAT_INTERVAL_MS = 5 * SECOND;
