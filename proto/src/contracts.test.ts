import { describe, expect, it } from 'vitest';
import {
  allMessages,
  consumers,
  InvalidTokenError,
  MessageValidationError,
  msgIds,
  type MessageDef,
  ReportTaskMsg,
  RunProgressMsg,
  streams,
  subjects,
  SystemTaskMsg,
  UrlCheckTaskMsg,
} from './index.ts';

// Assertion functions need an explicitly typed target.
const reportDef: MessageDef = ReportTaskMsg;

const reportTask = {
  runId: 'r1',
  jobId: 'j1',
  orgId: 'o1',
  accountId: 'a1',
  connectionId: 'c1',
  platform: 'demo' as const,
  region: 'local',
  attempt: 1,
  trigger: 'manual' as const,
  enqueuedAt: '2026-11-23T10:00:00Z',
  output: { kind: 'xlsx' as const },
  reportType: 'search-terms',
  params: {},
};

describe('subjects', () => {
  it('are built from single tokens, so user data can never widen a subject', () => {
    expect(subjects.reportTask('eu-west', 'search-terms')).toBe('tasks.report.eu-west.search-terms');
    expect(subjects.runEvent('r1', 'failed')).toBe('events.run.r1.failed');
    for (const bad of ['a.b', '*', '>', 'a b', '', 'x'.repeat(129)]) {
      expect(() => subjects.runEvent(bad, 'queued')).toThrow(InvalidTokenError);
    }
    expect(() => subjects.reportTask('eu', 'a.>')).toThrow(/reportType: "a.>" is not a valid subject token/);
  });

  it('every stream subject and consumer filter is covered by its stream', () => {
    const matches = (pattern: string, subject: string) => {
      const p = pattern.split('.');
      const s = subject.split('.');
      for (let i = 0; i < p.length; i++) {
        if (p[i] === '>') return s.length > i;
        if (p[i] !== '*' && p[i] !== s[i]) return false;
      }
      return p.length === s.length;
    };
    const byName = new Map(Object.values(streams).map((s) => [s.name, s]));
    const all = [
      consumers.reportWorker('local'),
      consumers.urlChecker('local'),
      consumers.system,
      consumers.autoscaler,
      consumers.systemRecorder,
      consumers.systemNotifierFailed,
      consumers.systemNotifierSucceeded,
    ];
    for (const c of all) {
      const stream = byName.get(c.stream);
      expect(stream, c.durable).toBeDefined();
      const probe = c.filterSubject.replace('>', 'x').replace(/\*/g, 'x');
      expect(
        stream!.subjects.some((s) => matches(s, probe)),
        `${c.durable} ${c.filterSubject}`,
      ).toBe(true);
    }
    expect(byName.get('REPORT_TASKS')!.subjects.some((s) => matches(s, ReportTaskMsg.subject(reportTask)))).toBe(true);
  });

  it('dead-letter subjects keep the original subject', () => {
    const dlq = subjects.deadLetter('tasks.report.local.x');
    expect(dlq).toBe('dlq.tasks.report.local.x');
    expect(subjects.originalOfDeadLetter(dlq)).toBe('tasks.report.local.x');
  });
});

describe('message ids', () => {
  it('are deterministic per run, attempt and tick', () => {
    expect(ReportTaskMsg.msgId!(reportTask)).toBe('run.r1');
    expect(ReportTaskMsg.msgId!({ ...reportTask, attempt: 2 })).toBe('run.r1.2');
    expect(msgIds.tick('sync-accounts', '2026-11-23T10:00:00.000Z')).toBe(
      'tick.sync-accounts.2026-11-23T10:00:00.000Z',
    );
    const tick = {
      schedule: 'enqueue-due-jobs',
      scheduledAt: '2026-11-23T10:01:00.000Z',
      firedAt: '2026-11-23T10:01:00.012Z',
      fencingToken: 7,
      leader: 'clock-1',
      payload: {},
    };
    expect(SystemTaskMsg.msgId!(tick)).toBe('tick.enqueue-due-jobs.2026-11-23T10:01:00.000Z');
  });

  it('keep distinct progress events distinct and a retried one identical', () => {
    const p = {
      runId: 'r1',
      orgId: 'o1',
      attempt: 1,
      at: '2026-11-23T10:00:00Z',
      phase: 'fetching' as const,
      rows: 10,
    };
    const a = RunProgressMsg.msgId!({ ...p, percent: 10 });
    expect(RunProgressMsg.msgId!({ ...p, percent: 10 })).toBe(a);
    expect(RunProgressMsg.msgId!({ ...p, percent: 20 })).not.toBe(a);
    expect(RunProgressMsg.msgId!({ ...p, percent: 10, rows: 11 })).not.toBe(a);
  });
});

describe('message validation', () => {
  it('accepts a valid body', () => {
    expect(ReportTaskMsg.check(reportTask)).toBe(true);
    expect(() => reportDef.assert(reportTask)).not.toThrow();
  });

  it('names the failing field and the reason', () => {
    const err = (() => {
      try {
        reportDef.assert({ ...reportTask, attempt: 0 });
      } catch (e) {
        return e;
      }
    })() as MessageValidationError;
    expect(err).toBeInstanceOf(MessageValidationError);
    expect(err.type).toBe('report.task.v1');
    expect(err.field).toBe('/attempt');
    expect(err.reason).toMatch(/greater or equal to 1/);
  });

  it('rejects unknown fields, ids that are not subject tokens, and bad timestamps', () => {
    expect(ReportTaskMsg.check({ ...reportTask, extra: 1 })).toBe(false);
    expect(ReportTaskMsg.check({ ...reportTask, runId: 'a.b' })).toBe(false);
    expect(ReportTaskMsg.check({ ...reportTask, enqueuedAt: 'yesterday' })).toBe(false);
    expect(UrlCheckTaskMsg.check({ ...reportTask, options: { perHostConcurrency: 1000 } })).toBe(false);
  });

  it('gives every message type a unique versioned Ppc-Type', () => {
    const types = allMessages.map((m) => m.type);
    expect(new Set(types).size).toBe(types.length);
    for (const t of types) expect(t).toMatch(/^[a-z]+(\.[a-z]+)+\.v\d+$/);
    expect(types).toEqual(
      expect.arrayContaining([
        'report.task.v1',
        'urlcheck.task.v1',
        'system.task.v1',
        'cluster.task.v1',
        'run.queued.v1',
        'run.started.v1',
        'run.progress.v1',
        'run.succeeded.v1',
        'run.failed.v1',
        'run.cancelled.v1',
        'scale.decision.v1',
        'worker.heartbeat.v1',
        'run.cancel.v1',
        'credentials.request.v1',
        'credentials.reply.v1',
      ]),
    );
  });
});
