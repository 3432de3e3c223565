export * from './messages.ts';
export * from './resources.ts';
export * from './schemas.ts';
export * from './subjects.ts';
export { InvalidTokenError, TOKEN_PATTERN, token } from './tokens.ts';
export { FencingGuard, StaleFencingTokenError } from './fencing.ts';
export * from './reports.ts';
