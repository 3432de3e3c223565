/**
 * Notifications: e-mail on a run's failure, on a job's first success after failures, a daily digest per
 * user, and when an ad-platform connection is revoked. Every e-mail is claimed in the notification log
 * before it is sent, so none is sent twice and none is lost to a crash (see `ledger.ts`).
 */
export {
  type NotifierConfig,
  type NotifyDeps,
  notifyEnv,
  type ResolvedNotifierConfig,
  resolveNotifierConfig,
} from './config.ts';
export {
  type ConnectionRevoked,
  type ConnectionRevokedOptions,
  type ConnectionRevokedOutcome,
  notifyConnectionRevoked,
} from './connection.ts';
export { NOTIFIER_CONSUMERS, provisionNotifierConsumers } from './consumers.ts';
export { type DigestOptions, type DigestResult, sendDigests } from './digest.ts';
export { type Claim, type Delivery, keys, messageIdFor, NOTIFICATION_KINDS, type NotificationKind } from './ledger.ts';
export { type NotifierContext, type NotifierOptions, recorderFloor, startNotifier } from './notifier.ts';
export { MAX_RECIPIENTS, type NotifySettings, parseNotifySettings } from './recipients.ts';
export { notifyRunFailed, notifyRunSucceeded, type RunEventMeta, type RunEventOutcome } from './run-events.ts';
export { escapeHtml } from './templates.ts';
