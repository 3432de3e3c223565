export {
  findNatsServer,
  type NatsServerHandle,
  NatsServerNotInstalledError,
  type NatsServerOptions,
  startNatsServer,
} from './nats-server.ts';
export { assertPortsFree, freePort, isPortFree, PortInUseError } from './ports.ts';
export { type PostgresHandle, type PostgresOptions, startPostgres } from './postgres.ts';
