export { createDemoConnector } from './client.ts';
export { LANDING_PROPORTIONS, type LandingKind, landingKind } from './landing.ts';
export { buildWorld, type DemoAccount, type DemoSize, type DemoWorld, SIZES } from './model.ts';
export { type DemoPlatform, type DemoPlatformOptions, startDemoPlatform } from './start.ts';
