import type { GatewayDeps } from '../context.ts';

// PLACEHOLDER: creates the demo user, organization and demo connection (auth work).
export async function ensureDemoLogin(_deps: GatewayDeps, _login: string): Promise<void> {}
