export { addressProblem, isEmailAddress, MAX_ADDRESS_LENGTH, type Mailbox, parseMailbox } from './address.ts';
export { mailEnv } from './config.ts';
export {
  createMailer,
  type Mailer,
  type MailerConfig,
  maskSmtpUrl,
  type OutgoingMail,
  type SentMail,
  toMailError,
} from './mailer.ts';
export {
  readSinkIndex,
  SINK_INDEX,
  type SmtpSink,
  type SmtpSinkOptions,
  type StoredMessage,
  startSmtpSink,
} from './sink.ts';
