export {
  APP_ROLE,
  SESSION_ORG,
  SESSION_USER,
  API_SCOPES,
  type ApiScope,
  ApiToken,
  AdAccount,
  Connection,
  entities,
  Fence,
  Job,
  Membership,
  NotificationLog,
  newId,
  Organization,
  OutboxMessage,
  PLATFORMS,
  ROLES,
  type Role,
  RUN_KINDS,
  RUN_STATUSES,
  Run,
  type RunStatus,
  Session,
  TRIGGERS,
  User,
} from './entities.ts';
export { type AccountChanges, type ConnectionRef, upsertAccounts } from './accounts.ts';
export { type TenantScope, tenantEm } from './tenant.ts';
export { FENCE_RESET_AFTER_MS, holdFence, raiseFence, StaleFencingTokenError } from './fence.ts';
export {
  addToOutbox,
  type BatchResult,
  type OutboxRelay,
  type OutboxScope,
  type RelayHooks,
  type RelayOptions,
  relayOutboxBatch,
  type StartRelayOptions,
  startOutboxRelay,
} from './outbox.ts';
export { ARGON2_DEFAULTS, hashPassword, verifyPassword } from './passwords.ts';
export {
  type Database,
  databaseConfig,
  MIGRATIONS_DIR,
  migrate,
  type OpenDatabaseOptions,
  openDatabase,
} from './orm.ts';
export {
  generateKey,
  type Keyring,
  KeyringConfigError,
  keyringFromEnv,
  needsReseal,
  openSecret,
  parseKeyring,
  SealedSecretError,
  sealedKeyId,
  sealSecret,
} from './seal.ts';
export {
  buildRunTask,
  cannotRunReason,
  nextFireAfter,
  type RunTask,
  type RunTaskSource,
  type RunTargetState,
} from './run-task.ts';
