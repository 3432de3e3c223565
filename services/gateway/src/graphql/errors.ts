import mercurius from 'mercurius';

/**
 * Errors a client may see, each with its `extensions.code`. Anything else that escapes a resolver is reported as
 * INTERNAL_SERVER_ERROR with a generic message (see `formatError` in graphql/format.ts): no stack traces, no SQL.
 */
export type ClientErrorCode =
  | 'BAD_USER_INPUT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'RATE_LIMITED';

export class ClientError extends mercurius.ErrorWithProps {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string, extra: Record<string, unknown> = {}, statusCode = 200) {
    super(message, { code, ...extra }, statusCode);
    this.code = code;
  }
}

/** Invalid input; `field` is the argument path, e.g. `input.params.dateRange`. Nothing was written. */
export class BadUserInputError extends ClientError {
  readonly field: string;
  constructor(field: string, reason: string) {
    super('BAD_USER_INPUT', `${field}: ${reason}`, { field });
    this.field = field;
  }
}

export class UnauthenticatedError extends ClientError {
  constructor(message = 'sign in first: no valid session or API token') {
    super('UNAUTHENTICATED', message);
  }
}

export class ForbiddenError extends ClientError {
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}

/** Also what another organization's id gets: existence is not revealed across tenants. */
export class NotFoundError extends ClientError {
  constructor(what: string, id: string) {
    super('NOT_FOUND', `${what} ${JSON.stringify(id)} not found`, { id });
  }
}

export class ConflictError extends ClientError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}
