import type { FastifyInstance } from 'fastify';
import type { GatewayDeps } from '../context.ts';

// PLACEHOLDER: replaced by the SPA / status page feature.
export async function registerUi(_app: FastifyInstance, _deps: GatewayDeps): Promise<void> {}
