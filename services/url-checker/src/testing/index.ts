export { type HostStats, type LoopbackHandler, type LoopbackHosts, startLoopbackHosts } from './loopback-hosts.ts';
