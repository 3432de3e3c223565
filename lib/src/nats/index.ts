export { type ConnectOptions, connectNats, type NatsConnection, NatsUnavailableError } from './connect.ts';
export {
  type Consumption,
  consume,
  type ConsumeOptions,
  type Handler,
  type HandlerContext,
  retryDelay,
  watchMaxDeliveries,
} from './consume.ts';
export {
  type DeadLetterReason,
  type DeadLetterSummary,
  DeadLetterNotFoundError,
  deadLetter,
  listDeadLetters,
  replayDeadLetter,
} from './dead-letter.ts';
export {
  consumerConfig,
  ensureConsumer,
  ensureKv,
  ensureObjectStore,
  ensureStream,
  type ProvisionOutcome,
  type ProvisionReport,
  provision,
  type Resources,
  streamConfig,
} from './provision.ts';
export { messageHeaders, publish, publishCore, type PublishOptions } from './publish.ts';
export { allResources } from './resources.ts';
export { childTraceparent } from './trace.ts';
