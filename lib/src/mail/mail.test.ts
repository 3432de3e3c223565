// The mailer (nodemailer over SMTP) against real SMTP servers on loopback: the project's own sink
// (smtp-server) and a refusing smtp-server; stored messages are read back with mailparser.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, PermanentError, RetryableError } from '../errors/index.ts';
import { freePort, isPortFree } from '../infra/ports.ts';
import { startRefusingSmtpServer } from './fixtures/refusing-smtp.ts';
import { addressProblem, createMailer, isEmailAddress, readSinkIndex, startSmtpSink } from './index.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'ppc-mail-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** What the mailer rejected with. */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the promise to reject');
}

describe('mailer and SMTP sink', () => {
  it('delivers a two-part message that the sink stores as an .eml file, with an index line', async () => {
    const sink = await startSmtpSink({ dir: tempDir() });
    const mailer = createMailer({ url: sink.url, from: 'PPC Reports <reports@example.com>' });
    try {
      const sent = await mailer.send({
        to: ['ana@example.com', 'bo@example.org'],
        subject: 'Report "Weekly" failed — Überprüfung',
        text: 'Plain part\nhttp://127.0.0.1:8080/runs/r1',
        html: '<p>HTML <b>part</b> <a href="http://127.0.0.1:8080/runs/r1">run</a></p>',
        messageId: '<run-failed.r1.1@ppc-robot>',
        headers: { 'X-Ppc-Notification': 'run-failed.r1.1' },
      });
      expect(sent.accepted).toEqual(['ana@example.com', 'bo@example.org']);
      expect(sent.rejected).toEqual([]);
      expect(sent.response).toMatch(/^250 .*stored as .*\.eml/);

      const [entry, ...more] = await readSinkIndex(sink.dir);
      expect(more).toEqual([]);
      expect(entry).toMatchObject({
        from: 'reports@example.com',
        to: ['ana@example.com', 'bo@example.org'],
        subject: 'Report "Weekly" failed — Überprüfung',
        messageId: '<run-failed.r1.1@ppc-robot>',
      });
      const raw = readFileSync(join(sink.dir, entry!.file));
      expect(entry!.size).toBe(raw.length);
      const parsed = await simpleParser(raw);
      expect(parsed.from?.value).toEqual([{ name: 'PPC Reports', address: 'reports@example.com' }]);
      expect(parsed.subject).toBe('Report "Weekly" failed — Überprüfung');
      expect(parsed.text?.trim()).toBe('Plain part\nhttp://127.0.0.1:8080/runs/r1');
      expect(parsed.html).toBe('<p>HTML <b>part</b> <a href="http://127.0.0.1:8080/runs/r1">run</a></p>');
      expect(parsed.headers.get('x-ppc-notification')).toBe('run-failed.r1.1');
      expect(parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/alternative' });
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it('stores each of many concurrent messages exactly once, through two pooled connections, with a login', async () => {
    const sink = await startSmtpSink({ dir: tempDir() });
    const mailer = createMailer({
      url: sink.url.replace('smtp://', 'smtp://robot:p%40ss@'),
      from: 'robot@example.com',
      maxConnections: 2,
    });
    try {
      const n = 30;
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          mailer.send({ to: `user${i}@example.com`, subject: `message ${i}`, text: `${i}`, html: `<p>${i}</p>` }),
        ),
      );
      const index = await readSinkIndex(sink.dir);
      expect(index.map((e) => e.subject).sort()).toEqual(Array.from({ length: n }, (_, i) => `message ${i}`).sort());
      expect(new Set(index.map((e) => e.file)).size).toBe(n);
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it('turns a 5xx refusal into a PermanentError and a 4xx one into a RetryableError', async () => {
    for (const [code, kind, errorCode] of [
      [550, PermanentError, 'SMTP_REJECTED'],
      [451, RetryableError, 'SMTP_DEFERRED'],
    ] as const) {
      const server = await startRefusingSmtpServer(code);
      const mailer = createMailer({ url: server.url, from: 'robot@example.com' });
      try {
        const err = await failure(mailer.send({ to: 'ana@example.com', subject: 's', text: 't', html: '<p>t</p>' }));
        expect(err).toBeInstanceOf(kind);
        expect(err).toMatchObject({ code: errorCode });
        expect(err.message).toMatch(new RegExp(`SMTP server refused the message at RCPT TO:.*${code}`));
        expect(server.attempts).toEqual(['ana@example.com']);
      } finally {
        mailer.close();
        await server.close();
      }
    }
  });

  it('turns a refused connection and a server that never greets into a RetryableError, within the timeouts', async () => {
    const closed = createMailer({ url: `smtp://127.0.0.1:${await freePort()}`, from: 'robot@example.com' });
    const refused = await failure(closed.send({ to: 'ana@example.com', subject: 's', text: 't', html: 't' }));
    closed.close();
    expect(refused).toBeInstanceOf(RetryableError);
    expect(refused).toMatchObject({ code: 'SMTP_UNAVAILABLE' });
    expect(refused.message).toMatch(/ECONNREFUSED/);

    // Accepts the TCP connection and then says nothing, like a wedged server.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const mailer = createMailer({ url: `smtp://127.0.0.1:${port}`, from: 'robot@example.com', greetingTimeoutMs: 300 });
    try {
      const started = Date.now();
      const err = await failure(mailer.send({ to: 'ana@example.com', subject: 's', text: 't', html: 't' }));
      expect(err).toBeInstanceOf(RetryableError);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      mailer.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('refuses a message larger than the sink allows, permanently', async () => {
    const sink = await startSmtpSink({ dir: tempDir(), maxMessageBytes: 10_000 });
    const mailer = createMailer({ url: sink.url, from: 'robot@example.com' });
    try {
      const err = await failure(
        mailer.send({ to: 'ana@example.com', subject: 'big', text: 'x'.repeat(50_000), html: '<p>big</p>' }),
      );
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toMatch(/552/);
      expect(await readSinkIndex(sink.dir)).toEqual([]);
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it('frees its port on close', async () => {
    const sink = await startSmtpSink({ dir: tempDir() });
    expect(await isPortFree(sink.port)).toBe(false);
    await sink.close();
    expect(await isPortFree(sink.port)).toBe(true);
  });
});

describe('mailer configuration', () => {
  it('names the field and the reason, and never echoes the password', () => {
    const bad = (url: string, from = 'robot@example.com') => {
      try {
        createMailer({ url, from });
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error(`accepted ${url}`);
    };
    expect(bad('http://mail.example.com')).toMatchObject({ variable: 'url' });
    expect(bad('http://mail.example.com').message).toMatch(/scheme http: is not smtp: or smtps:/);
    expect(bad('smtp://user:hunter2@mail.example.com:25?verify=yes').message).toMatch(/unknown option verify/);
    expect(bad('smtp://user:hunter2@mail.example.com:25?verify=yes').message).not.toMatch(/hunter2/);
    expect(bad('smtp://mail.example.com/path').message).toMatch(/no path/);
    expect(bad('smtp://mail.example.com', 'not an address')).toMatchObject({ variable: 'from' });
    expect(bad('smtp://mail.example.com', 'not an address')).toBeInstanceOf(ConfigError);
    expect(() =>
      createMailer({ url: 'smtps://mail.example.com?rejectUnauthorized=false', from: 'a@b.c' }),
    ).not.toThrow();
    expect(createMailer({ url: 'smtp://u:secret@mail.example.com:25', from: 'a@b.c' }).describe).toBe(
      'smtp://u:***@mail.example.com:25',
    );
  });

  it('refuses a recipient that is not an address before connecting', async () => {
    const mailer = createMailer({ url: `smtp://127.0.0.1:${await freePort()}`, from: 'robot@example.com' });
    const err = await failure(
      mailer.send({ to: ['ok@example.com', 'Bob <bob@example.com>'], subject: 's', text: 't', html: 't' }),
    );
    mailer.close();
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'MAIL_INVALID' });
    expect(err.message).toMatch(/to: "Bob <bob@example.com>" is not an e-mail address/);
  });

  it('accepts ordinary addresses and says what is wrong with the others', () => {
    expect(isEmailAddress('ana.maria+reports@mail.example.co.uk')).toBe(true);
    expect(addressProblem('')).toBe('is empty');
    expect(addressProblem(42)).toBe('expected a string, got number');
    expect(addressProblem('ana@')).toMatch(/not an e-mail address/);
    expect(addressProblem('a b@example.com')).toMatch(/not an e-mail address/);
    expect(addressProblem(`${'a'.repeat(65)}@example.com`)).toMatch(/local part/);
    expect(addressProblem(`a@${'b'.repeat(250)}.com`)).toMatch(/longer than 254/);
  });
});
