import type { ValidationRule } from 'graphql';
import type { GatewayConfig } from '../config.ts';

// PLACEHOLDER: depth (fragments included), cost and alias rules arrive with the auth/limits work.
export function limitRules(_config: GatewayConfig): ValidationRule[] {
  return [];
}
