import { type ConfigOf, envVar } from '@ppc/lib/config';
import { ConfigError } from '@ppc/lib/errors';
import { baseEnv, DEFAULT_IDLE_EXIT_MS } from '@ppc/lib/service';
import { type ConsumerSpec, consumers, pools } from '@ppc/proto';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { PoolPolicy } from './decide.ts';

export const backendNames = ['local', 'kubernetes', 'none'] as const;
export type BackendName = (typeof backendNames)[number];

const REGION = '^[a-z0-9-]{1,32}$';
const MINUTE = 60_000;

export const autoscalerEnv = {
  ...baseEnv({ port: 9104 }),
  backend: envVar({
    env: 'PPC_AUTOSCALER_BACKEND',
    schema: Type.Union(backendNames.map((b) => Type.Literal(b))),
    default: 'none' as BackendName,
    doc: 'how workers are started: local (processes on this machine), kubernetes (Jobs) or none (decide and publish only)',
  }),
  regions: envVar({
    env: 'PPC_AUTOSCALER_REGIONS',
    schema: Type.String({ pattern: `^[a-z0-9-]{1,32}(,[a-z0-9-]{1,32})*$` }),
    default: 'local',
    doc: 'comma-separated worker regions; each has the pools report-worker-<region> and url-checker-<region>',
  }),
  minWorkers: envVar({
    env: 'PPC_AUTOSCALER_MIN_WORKERS',
    schema: Type.Integer({ minimum: 0, maximum: 1000 }),
    default: 0,
    doc: 'fewest workers per pool (0-1000), unless PPC_AUTOSCALER_POOLS says otherwise',
  }),
  maxWorkers: envVar({
    env: 'PPC_AUTOSCALER_MAX_WORKERS',
    schema: Type.Integer({ minimum: 1, maximum: 1000 }),
    default: 4,
    doc: 'most workers per pool (1-1000), unless PPC_AUTOSCALER_POOLS says otherwise',
  }),
  targetDrainMs: envVar({
    env: 'PPC_AUTOSCALER_TARGET_DRAIN_MS',
    schema: Type.Integer({ minimum: 1000, maximum: 24 * 60 * MINUTE }),
    default: 2 * MINUTE,
    doc: 'how soon a pool should get through its backlog, in milliseconds (1000-86400000)',
  }),
  cooldownMs: envVar({
    env: 'PPC_AUTOSCALER_COOLDOWN_MS',
    schema: Type.Integer({ minimum: 0, maximum: 60 * MINUTE }),
    default: 30_000,
    doc: 'milliseconds after starting workers for a pool before starting more for it (0-3600000)',
  }),
  defaultTaskMs: envVar({
    env: 'PPC_AUTOSCALER_DEFAULT_TASK_MS',
    schema: Type.Integer({ minimum: 1, maximum: 24 * 60 * MINUTE }),
    default: 30_000,
    doc: 'task time assumed for a pool with no recent task stats, in milliseconds',
  }),
  pools: envVar({
    env: 'PPC_AUTOSCALER_POOLS',
    schema: Type.String(),
    default: '{}',
    doc: 'a JSON object of per-pool settings, e.g. {"report-worker-eu-west":{"min":1,"max":20,"targetDrainMs":60000,"nodeSelector":{"topology.kubernetes.io/region":"eu-west-1"}}}',
  }),
  tickIntervalMs: envVar({
    env: 'PPC_AUTOSCALER_TICK_INTERVAL_MS',
    schema: Type.Integer({ minimum: 100, maximum: 10 * MINUTE }),
    default: 5000,
    doc: 'interval of the clock’s evaluate schedule in milliseconds; a tick older than two intervals is dropped',
  }),
  workerIdleExitMs: envVar({
    env: 'PPC_AUTOSCALER_WORKER_IDLE_EXIT_MS',
    schema: Type.Integer({ minimum: 0, maximum: 24 * 60 * MINUTE }),
    default: DEFAULT_IDLE_EXIT_MS,
    doc: 'idle period after which a worker this autoscaler started stops itself (its PPC_IDLE_EXIT_MS; 0 = never)',
  }),
  localCommand: envVar({
    env: 'PPC_AUTOSCALER_LOCAL_COMMAND',
    schema: Type.String(),
    default: '["node","services/{service}/src/main.ts"]',
    doc: 'local backend: the worker command as a JSON array, run from the repository root; {service} is replaced by report-worker or url-checker, a leading "node" by this Node',
  }),
  kubeNamespace: envVar({
    env: 'PPC_AUTOSCALER_KUBE_NAMESPACE',
    schema: Type.String({ pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' }),
    default: 'ppc-robot',
    doc: 'kubernetes backend: the namespace worker Jobs are created in',
  }),
  kubeJobTemplate: envVar({
    env: 'PPC_AUTOSCALER_KUBE_JOB_TEMPLATE',
    schema: Type.String({ minLength: 1 }),
    default: '/etc/ppc-robot/worker-job.yaml',
    doc: 'kubernetes backend: path of the worker Job template (YAML, k8s/base/autoscaler/worker-job.yaml)',
  }),
  kubeconfig: envVar({
    env: 'PPC_AUTOSCALER_KUBECONFIG',
    schema: Type.String(),
    default: '',
    doc: 'kubernetes backend: a kubeconfig file; empty = KUBECONFIG, ~/.kube/config, or the pod’s service account',
  }),
};

export type AutoscalerConfig = ConfigOf<typeof autoscalerEnv>;

export const workerServices = ['report-worker', 'url-checker'] as const;
export type WorkerService = (typeof workerServices)[number];

/** One worker pool: a service in a region, the consumer whose backlog it drains, and its policy. */
export interface PoolSpec {
  name: string;
  service: WorkerService;
  region: string;
  consumer: ConsumerSpec;
  policy: PoolPolicy;
  /** Task time assumed while the pool has no recent stats. */
  defaultTaskMs: number;
  /** Kubernetes backend: where the pool's pods may run (e.g. nodes of its region). */
  nodeSelector: Readonly<Record<string, string>>;
}

const PoolOverride = Type.Object(
  {
    min: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
    max: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    targetDrainMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 24 * 60 * MINUTE })),
    cooldownMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60 * MINUTE })),
    defaultTaskMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 60 * MINUTE })),
    nodeSelector: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 317 }), Type.String({ maxLength: 63 })),
    ),
  },
  { additionalProperties: false },
);
type PoolOverride = Static<typeof PoolOverride>;
const checkOverride = TypeCompiler.Compile(PoolOverride);

const poolOf = (service: WorkerService, region: string) =>
  service === 'report-worker' ? pools.reportWorker(region) : pools.urlChecker(region);
const consumerOf = (service: WorkerService, region: string) =>
  service === 'report-worker' ? consumers.reportWorker(region) : consumers.urlChecker(region);

function parseJson(variable: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(variable, raw, `valid JSON (${(err as Error).message})`);
  }
}

/** The pools this autoscaler looks after, with their policies; a bad setting names its variable. */
export function loadPools(config: AutoscalerConfig): PoolSpec[] {
  const regions = [...new Set(config.regions.split(','))];
  for (const r of regions) {
    if (!new RegExp(REGION).test(r))
      throw new ConfigError(autoscalerEnv.regions.env, config.regions, autoscalerEnv.regions.doc);
  }
  const overridesRaw = parseJson(autoscalerEnv.pools.env, config.pools);
  if (typeof overridesRaw !== 'object' || overridesRaw === null || Array.isArray(overridesRaw)) {
    throw new ConfigError(autoscalerEnv.pools.env, config.pools, 'a JSON object keyed by pool name');
  }
  const overrides = overridesRaw as Record<string, unknown>;
  const specs: PoolSpec[] = regions.flatMap((region) =>
    workerServices.map((service) => {
      const name = poolOf(service, region);
      const o = (overrides[name] ?? {}) as PoolOverride;
      if (!checkOverride.Check(o)) {
        const first = checkOverride.Errors(o).First();
        throw new ConfigError(
          autoscalerEnv.pools.env,
          config.pools,
          `settings of pool ${name}: ${first?.path || '(object)'} ${first?.message ?? 'is invalid'} (allowed: min, max, targetDrainMs, cooldownMs, defaultTaskMs, nodeSelector)`,
        );
      }
      const policy: PoolPolicy = {
        min: o.min ?? config.minWorkers,
        max: o.max ?? config.maxWorkers,
        targetDrainMs: o.targetDrainMs ?? config.targetDrainMs,
        cooldownMs: o.cooldownMs ?? config.cooldownMs,
      };
      if (policy.min > policy.max) {
        const variable =
          o.min !== undefined || o.max !== undefined ? autoscalerEnv.pools.env : autoscalerEnv.minWorkers.env;
        const value = variable === autoscalerEnv.pools.env ? config.pools : String(config.minWorkers);
        throw new ConfigError(variable, value, `min (${policy.min}) at most max (${policy.max}) for pool ${name}`);
      }
      return {
        name,
        service,
        region,
        consumer: consumerOf(service, region),
        policy,
        defaultTaskMs: o.defaultTaskMs ?? config.defaultTaskMs,
        nodeSelector: o.nodeSelector ?? {},
      };
    }),
  );
  const known = new Set(specs.map((s) => s.name));
  for (const name of Object.keys(overrides)) {
    if (!known.has(name)) {
      throw new ConfigError(
        autoscalerEnv.pools.env,
        config.pools,
        `settings only for pools of PPC_AUTOSCALER_REGIONS (${[...known].join(', ')}); ${JSON.stringify(name)} is not one`,
      );
    }
  }
  return specs;
}

/** The local backend's worker command for a service: `{service}` filled in, a leading `node` made this Node. */
export function loadLocalCommand(config: AutoscalerConfig): (service: WorkerService) => string[] {
  const raw = parseJson(autoscalerEnv.localCommand.env, config.localCommand);
  if (!Array.isArray(raw) || raw.length === 0 || !raw.every((a) => typeof a === 'string' && a.length > 0)) {
    throw new ConfigError(autoscalerEnv.localCommand.env, config.localCommand, 'a non-empty JSON array of strings');
  }
  const args = raw as string[];
  return (service) =>
    args.map((a, i) => (i === 0 && a === 'node' ? process.execPath : a.replaceAll('{service}', service)));
}
