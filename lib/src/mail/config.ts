import { Type } from '@sinclair/typebox';
import { envVar } from '../config/index.ts';

/**
 * The variables a service that sends mail reads (`createMailer({ url: config.smtpUrl, from: config.mailFrom })`).
 * The defaults reach the local sink that `npm start` runs.
 */
export const mailEnv = {
  smtpUrl: envVar({
    env: 'SMTP_URL',
    schema: Type.String({ pattern: '^smtps?://[^/?#]+/?(\\?.*)?$' }),
    default: 'smtp://127.0.0.1:2525',
    doc: 'SMTP server, smtp://[user:password@]host[:port] (STARTTLS when offered) or smtps://… (TLS); options ?requireTLS=true, ?rejectUnauthorized=false',
    secret: true,
  }),
  mailFrom: envVar({
    env: 'MAIL_FROM',
    schema: Type.String({ minLength: 3, maxLength: 320 }),
    default: 'ppc-robot <ppc-robot@localhost>',
    doc: 'the From of every e-mail: an address or "Display Name <address>"',
  }),
};
