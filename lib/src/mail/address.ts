/**
 * E-mail addresses as the notifier accepts them: the WHATWG "valid e-mail address" (what an
 * `<input type=email>` accepts: no quoted local parts, no comments, no IP literals), at most 254
 * characters (the SMTP path limit), local part at most 64.
 */
const ADDRESS =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

export const MAX_ADDRESS_LENGTH = 254;

/** Why `value` is not an address we send to, or undefined when it is one. */
export function addressProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return `expected a string, got ${value === null ? 'null' : typeof value}`;
  if (value.length === 0) return 'is empty';
  if (value.length > MAX_ADDRESS_LENGTH) return `is longer than ${MAX_ADDRESS_LENGTH} characters`;
  if (!ADDRESS.test(value)) return 'is not an e-mail address like name@example.com';
  const local = value.slice(0, value.lastIndexOf('@'));
  if (local.length > 64) return 'has a local part (before @) longer than 64 characters';
  return undefined;
}

export const isEmailAddress = (value: unknown): value is string => addressProblem(value) === undefined;

/** `addr` or `Display Name <addr>`; the display name may not contain `<`, `>` or line breaks. */
const MAILBOX = /^\s*(?:([^<>\r\n]*?)\s*<([^<>\s]+)>|([^<>\s]+))\s*$/;

export interface Mailbox {
  name: string;
  address: string;
}

/** Parses a From-style mailbox; undefined when it is not one. */
export function parseMailbox(value: string): Mailbox | undefined {
  const m = MAILBOX.exec(value);
  if (!m) return undefined;
  const address = m[2] ?? m[3] ?? '';
  if (!isEmailAddress(address)) return undefined;
  return { name: (m[1] ?? '').replace(/^"(.*)"$/, '$1'), address };
}
