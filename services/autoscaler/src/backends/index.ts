import { fileURLToPath } from 'node:url';
import type { Logger } from '@ppc/lib/log';
import { type AutoscalerConfig, loadLocalCommand } from '../config.ts';
import { loadJobTemplate } from './job.ts';
import { KubernetesBackend, loadKubeConfig } from './kubernetes.ts';
import { LocalBackend } from './local.ts';
import { NoneBackend } from './none.ts';
import type { ScalingBackend } from './types.ts';

export { buildJob, checkJobTemplate, jobName, labels, loadJobTemplate, MANAGED_SELECTOR } from './job.ts';
export { KubernetesBackend, loadKubeConfig } from './kubernetes.ts';
export { LocalBackend, type LocalWorker } from './local.ts';
export { NoneBackend } from './none.ts';
export type { PoolObservation, ScalingBackend } from './types.ts';

/** The repository root: the local backend runs worker commands from here. */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** The configured backend; a bad template, kubeconfig or command stops start-up naming its variable. */
export function createBackend(config: AutoscalerConfig, log: Logger): ScalingBackend {
  switch (config.backend) {
    case 'none':
      return new NoneBackend();
    case 'local':
      return new LocalBackend({
        command: loadLocalCommand(config),
        cwd: REPO_ROOT,
        env: { NATS_URL: config.natsUrl, LOG_LEVEL: config.logLevel },
        idleExitMs: config.workerIdleExitMs,
        log: log.child({ backend: 'local' }),
      });
    case 'kubernetes':
      return new KubernetesBackend({
        kubeConfig: loadKubeConfig(config.kubeconfig),
        namespace: config.kubeNamespace,
        template: loadJobTemplate(config.kubeJobTemplate),
        idleExitMs: config.workerIdleExitMs,
        log: log.child({ backend: 'kubernetes' }),
      });
  }
}
