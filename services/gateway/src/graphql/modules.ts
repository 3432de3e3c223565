import type { GraphQLModule } from './module.ts';
import { authModule } from '../auth/module.ts';
import { catalogModule } from '../jobs/catalog.ts';
import { connectionsModule } from '../connections/module.ts';
import { jobsModule } from '../jobs/module.ts';
import { runsModule } from '../runs/module.ts';
import { statusModule } from '../status/module.ts';

/** Every feature's slice of the schema. */
export const modules: readonly GraphQLModule[] = [
  authModule,
  catalogModule,
  connectionsModule,
  jobsModule,
  runsModule,
  statusModule,
];
