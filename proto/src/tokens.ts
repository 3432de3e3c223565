/** A single NATS subject token: no dots, wildcards or whitespace, so a builder can never widen a subject. */
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

export class InvalidTokenError extends TypeError {
  override name = 'InvalidTokenError';
  readonly field: string;
  readonly value: unknown;
  constructor(field: string, value: unknown) {
    super(`${field}: ${JSON.stringify(value)} is not a valid subject token (expected 1-128 of A-Z a-z 0-9 _ -)`);
    this.field = field;
    this.value = value;
  }
}

export function token(field: string, value: string): string {
  if (typeof value !== 'string' || !TOKEN.test(value)) throw new InvalidTokenError(field, value);
  return value;
}

export const TOKEN_PATTERN = TOKEN.source;
