import { loadConfig } from '@ppc/lib/config';
import { ConfigError } from '@ppc/lib/errors';
import { describe, expect, it } from 'vitest';
import { autoscalerEnv, loadLocalCommand, loadPools } from './config.ts';

const load = (env: Record<string, string>) => loadConfig(autoscalerEnv, env);
const errorOf = (f: () => unknown): ConfigError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
};

describe('autoscaler config', () => {
  it('has two pools per region with the default policy, overridden per pool', () => {
    const pools = loadPools(
      load({
        PPC_AUTOSCALER_REGIONS: 'eu-west,us-east',
        PPC_AUTOSCALER_MAX_WORKERS: '6',
        PPC_AUTOSCALER_POOLS:
          '{"url-checker-us-east":{"min":1,"max":2,"targetDrainMs":5000,"nodeSelector":{"zone":"a"}}}',
      }),
    );
    expect(pools.map((p) => `${p.name} ${p.consumer.durable} ${p.policy.min}..${p.policy.max}`)).toEqual([
      'report-worker-eu-west report-worker-eu-west 0..6',
      'url-checker-eu-west url-checker-eu-west 0..6',
      'report-worker-us-east report-worker-us-east 0..6',
      'url-checker-us-east url-checker-us-east 1..2',
    ]);
    const uc = pools[3]!;
    expect(uc.policy).toEqual({ min: 1, max: 2, targetDrainMs: 5000, cooldownMs: 30_000 });
    expect(uc.nodeSelector).toEqual({ zone: 'a' });
    expect(uc.defaultTaskMs).toBe(30_000);
    expect(load({}).backend).toBe('none');
  });

  it('names the variable and the reason for each bad setting', () => {
    expect(errorOf(() => load({ PPC_AUTOSCALER_BACKEND: 'docker' })).variable).toBe('PPC_AUTOSCALER_BACKEND');
    expect(errorOf(() => load({ PPC_AUTOSCALER_REGIONS: 'EU West' })).variable).toBe('PPC_AUTOSCALER_REGIONS');
    expect(errorOf(() => loadPools(load({ PPC_AUTOSCALER_POOLS: '{oops' }))).message).toMatch(
      /^PPC_AUTOSCALER_POOLS="\{oops": expected valid JSON/,
    );
    expect(errorOf(() => loadPools(load({ PPC_AUTOSCALER_POOLS: '{"report-worker-mars":{}}' }))).message).toMatch(
      /settings only for pools of PPC_AUTOSCALER_REGIONS \(report-worker-local, url-checker-local\); "report-worker-mars" is not one$/,
    );
    expect(
      errorOf(() => loadPools(load({ PPC_AUTOSCALER_POOLS: '{"report-worker-local":{"maxx":3}}' }))).message,
    ).toMatch(
      /settings of pool report-worker-local: .*allowed: min, max, targetDrainMs, cooldownMs, defaultTaskMs, nodeSelector/,
    );
    expect(
      errorOf(() => loadPools(load({ PPC_AUTOSCALER_POOLS: '{"report-worker-local":{"min":5,"max":2}}' }))).message,
    ).toMatch(/expected min \(5\) at most max \(2\) for pool report-worker-local$/);
    const e = errorOf(() => loadPools(load({ PPC_AUTOSCALER_MIN_WORKERS: '9' })));
    expect(e.variable).toBe('PPC_AUTOSCALER_MIN_WORKERS');
    expect(errorOf(() => loadLocalCommand(load({ PPC_AUTOSCALER_LOCAL_COMMAND: '[]' }))).message).toMatch(
      /expected a non-empty JSON array of strings$/,
    );
  });

  it('runs the local workers with this Node and the service filled in', () => {
    const cmd = loadLocalCommand(load({}));
    expect(cmd('url-checker')).toEqual([process.execPath, 'services/url-checker/src/main.ts']);
    const custom = loadLocalCommand(load({ PPC_AUTOSCALER_LOCAL_COMMAND: '["nice","node","x/{service}.ts"]' }));
    expect(custom('report-worker')).toEqual(['nice', 'node', 'x/report-worker.ts']);
  });
});
