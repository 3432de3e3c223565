/**
 * The e-mails, each as a subject, a plain-text part and an HTML part. Everything that comes from users or
 * ad platforms (job, organization and connection names, error messages) is escaped in HTML and folded to
 * one line in subjects.
 */
export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Safe in element content and in quoted attribute values. */
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);

/** Subjects: one line (a name with line breaks must not fold into new headers), bounded. */
const oneLine = (s: string, max = 120): string => {
  const flat = s.replace(/[\s\p{Cc}]+/gu, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

const when = (d: Date | string): string => {
  const t = new Date(d);
  return Number.isNaN(t.getTime()) ? String(d) : `${t.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
};

const FOOTER_TEXT = '\n--\nppc-robot. Who gets these e-mails is set per job (notification settings).';
const FOOTER_HTML =
  '<p style="color:#777;font-size:12px">ppc-robot. Who gets these e-mails is set per job (notification settings).</p>';

function layout(title: string, body: string): string {
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>',
    escapeHtml(title),
    '</title></head>',
    '<body style="font-family:sans-serif;line-height:1.4;color:#222">',
    body,
    FOOTER_HTML,
    '</body></html>',
  ].join('');
}

const link = (href: string, label: string) => `<a href="${escapeHtml(href)}">${escapeHtml(label)}</a>`;

export interface RunFailedView {
  orgName: string;
  jobName: string;
  accountName: string | null;
  runId: string;
  attempt: number;
  errorCode: string;
  errorMessage: string;
  failedAt: string;
  runUrl: string;
}

export function renderRunFailed(v: RunFailedView): RenderedMail {
  const subject = `Failed: ${oneLine(v.jobName)} (${oneLine(v.orgName, 60)})`;
  const account = v.accountName ? ` for the account ${v.accountName}` : '';
  const attempt = v.attempt > 1 ? ` (attempt ${v.attempt})` : '';
  const text = [
    `The job "${v.jobName}"${account} in ${v.orgName} failed at ${when(v.failedAt)}${attempt}.`,
    '',
    `Error ${v.errorCode}: ${v.errorMessage}`,
    '',
    `Run: ${v.runUrl}`,
    FOOTER_TEXT,
  ].join('\n');
  const html = layout(
    subject,
    [
      `<p>The job <b>${escapeHtml(v.jobName)}</b>${v.accountName ? ` for the account <b>${escapeHtml(v.accountName)}</b>` : ''}`,
      ` in ${escapeHtml(v.orgName)} failed at ${escapeHtml(when(v.failedAt))}${escapeHtml(attempt)}.</p>`,
      `<p>Error <code>${escapeHtml(v.errorCode)}</code>:</p>`,
      `<pre style="white-space:pre-wrap">${escapeHtml(v.errorMessage)}</pre>`,
      `<p>${link(v.runUrl, 'Open the run')}</p>`,
    ].join(''),
  );
  return { subject, text, html };
}

export interface RunRecoveredView {
  orgName: string;
  jobName: string;
  runId: string;
  /** Failed runs since the job's previous success. */
  failuresBefore: number;
  succeededAt: string;
  runUrl: string;
}

export function renderRunRecovered(v: RunRecoveredView): RenderedMail {
  const subject = `Recovered: ${oneLine(v.jobName)} (${oneLine(v.orgName, 60)})`;
  const failures = v.failuresBefore === 1 ? '1 failed run' : `${v.failuresBefore} failed runs`;
  const text = [
    `The job "${v.jobName}" in ${v.orgName} succeeded again at ${when(v.succeededAt)}, after ${failures}.`,
    '',
    `Run: ${v.runUrl}`,
    FOOTER_TEXT,
  ].join('\n');
  const html = layout(
    subject,
    [
      `<p>The job <b>${escapeHtml(v.jobName)}</b> in ${escapeHtml(v.orgName)} succeeded again at `,
      `${escapeHtml(when(v.succeededAt))}, after ${escapeHtml(failures)}.</p>`,
      `<p>${link(v.runUrl, 'Open the run')}</p>`,
    ].join(''),
  );
  return { subject, text, html };
}

export const DIGEST_STATUSES = ['succeeded', 'failed', 'cancelled', 'running', 'queued'] as const;
export type DigestStatus = (typeof DIGEST_STATUSES)[number];

export interface DigestView {
  userName: string;
  /** The day the digest is for (`yyyy-mm-dd`) and its window. */
  day: string;
  from: Date;
  to: Date;
  orgs: { name: string; counts: Record<DigestStatus, number> }[];
  totals: Record<DigestStatus, number>;
  failures: {
    jobName: string;
    orgName: string;
    errorCode: string | null;
    errorMessage: string | null;
    finishedAt: string | null;
    runUrl: string;
  }[];
  /** Failed runs not listed. */
  moreFailures: number;
  runsUrl: string;
}

const countsLine = (c: Record<DigestStatus, number>) =>
  DIGEST_STATUSES.filter((s) => c[s] > 0)
    .map((s) => `${c[s]} ${s}`)
    .join(', ') || 'no runs';

const total = (c: Record<DigestStatus, number>) => DIGEST_STATUSES.reduce((n, s) => n + c[s], 0);

export function renderDigest(v: DigestView): RenderedMail {
  const runs = total(v.totals);
  const subject = `Daily digest ${v.day}: ${runs} ${runs === 1 ? 'run' : 'runs'}, ${v.totals.failed} failed`;
  const window = `${when(v.from)} to ${when(v.to)}`;
  const text = [
    `Hello ${v.userName},`,
    '',
    `runs queued from ${window}: ${countsLine(v.totals)}.`,
    '',
    ...v.orgs.map((o) => `${o.name}: ${countsLine(o.counts)}`),
    ...(v.failures.length > 0
      ? [
          '',
          'Failed runs:',
          ...v.failures.map(
            (f) =>
              `- ${f.jobName} (${f.orgName})${f.finishedAt ? ` at ${when(f.finishedAt)}` : ''}: ${f.errorCode ?? 'error'}: ${f.errorMessage ?? ''}\n  ${f.runUrl}`,
          ),
          ...(v.moreFailures > 0 ? [`- and ${v.moreFailures} more`] : []),
        ]
      : []),
    '',
    `All runs: ${v.runsUrl}`,
    FOOTER_TEXT,
  ].join('\n');
  const rows = v.orgs
    .map((o) => {
      const cells = DIGEST_STATUSES.map((s) => `<td style="text-align:right">${o.counts[s]}</td>`).join('');
      return `<tr><td>${escapeHtml(o.name)}</td>${cells}</tr>`;
    })
    .join('');
  const head = DIGEST_STATUSES.map((s) => `<th style="text-align:right">${s}</th>`).join('');
  const failures = v.failures
    .map(
      (f) =>
        `<li>${link(f.runUrl, f.jobName)} (${escapeHtml(f.orgName)})${f.finishedAt ? ` at ${escapeHtml(when(f.finishedAt))}` : ''}: ` +
        `<code>${escapeHtml(f.errorCode ?? 'error')}</code> ${escapeHtml(f.errorMessage ?? '')}</li>`,
    )
    .join('');
  const html = layout(
    subject,
    [
      `<p>Hello ${escapeHtml(v.userName)},</p>`,
      `<p>runs queued from ${escapeHtml(window)}: ${escapeHtml(countsLine(v.totals))}.</p>`,
      `<table cellpadding="4"><tr><th style="text-align:left">organization</th>${head}</tr>${rows}</table>`,
      v.failures.length > 0
        ? `<h3>Failed runs</h3><ul>${failures}${v.moreFailures > 0 ? `<li>and ${v.moreFailures} more</li>` : ''}</ul>`
        : '',
      `<p>${link(v.runsUrl, 'All runs')}</p>`,
    ].join(''),
  );
  return { subject, text, html };
}

export interface ConnectionRevokedView {
  orgName: string;
  platform: string;
  label: string;
  reason: string;
  revokedAt: Date;
  /** Enabled jobs on the connection's accounts: they fail until it is reconnected. */
  affectedJobs: string[];
  moreJobs: number;
  connectionsUrl: string;
}

export function renderConnectionRevoked(v: ConnectionRevokedView): RenderedMail {
  const subject = `Reconnect needed: ${oneLine(v.platform, 30)} connection ${oneLine(v.label, 80)} was revoked`;
  const jobs =
    v.affectedJobs.length > 0
      ? [
          '',
          'Jobs that cannot run until it is reconnected:',
          ...v.affectedJobs.map((j) => `- ${j}`),
          ...(v.moreJobs > 0 ? [`- and ${v.moreJobs} more`] : []),
        ]
      : [];
  const text = [
    `The ${v.platform} connection "${v.label}" in ${v.orgName} stopped working at ${when(v.revokedAt)}:`,
    v.reason,
    ...jobs,
    '',
    `Reconnect it: ${v.connectionsUrl}`,
    FOOTER_TEXT,
  ].join('\n');
  const html = layout(
    subject,
    [
      `<p>The ${escapeHtml(v.platform)} connection <b>${escapeHtml(v.label)}</b> in ${escapeHtml(v.orgName)}`,
      ` stopped working at ${escapeHtml(when(v.revokedAt))}:</p>`,
      `<pre style="white-space:pre-wrap">${escapeHtml(v.reason)}</pre>`,
      v.affectedJobs.length > 0
        ? `<p>Jobs that cannot run until it is reconnected:</p><ul>${v.affectedJobs.map((j) => `<li>${escapeHtml(j)}</li>`).join('')}${v.moreJobs > 0 ? `<li>and ${v.moreJobs} more</li>` : ''}</ul>`
        : '',
      `<p>${link(v.connectionsUrl, 'Reconnect it')}</p>`,
    ].join(''),
  );
  return { subject, text, html };
}
