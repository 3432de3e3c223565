export * from './config/index.ts';
export * from './errors/index.ts';
export * from './http/index.ts';
export * from './log/index.ts';
export * from './nats/index.ts';
export * from './service/index.ts';
