// The Kubernetes backend through the real @kubernetes/client-node against testing/kube-api.ts, a local
// stand-in for the API server that answers the BatchV1 and CoreV1 calls with the API's JSON; the Jobs
// are made from the repository's own template (k8s/base/autoscaler/worker-job.yaml) and checked
// against the Kubernetes schema (kubernetes-models).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@ppc/lib/config';
import type { V1Job } from '@kubernetes/client-node';
import { ConfigError } from '@ppc/lib/errors';
import { createLogger } from '@ppc/lib/log';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autoscalerEnv, loadPools, type PoolSpec } from '../config.ts';
import { type KubeApiStandIn, startKubeApiStandIn } from '../testing/kube-api.ts';
import { checkJobTemplate, loadJobTemplate, MANAGED_SELECTOR } from './job.ts';
import { KubernetesBackend, loadKubeConfig } from './kubernetes.ts';

const TEMPLATE = fileURLToPath(new URL('../../../../k8s/base/autoscaler/worker-job.yaml', import.meta.url));
const TOKEN = 'stand-in-service-account-token';
const NAMESPACE = 'ppc-test';
const log = createLogger({ service: 'autoscaler-test', level: 'silent' });

let api: KubeApiStandIn;
let dir: string;
let kubeconfigPath: string;
beforeAll(async () => {
  api = await startKubeApiStandIn({ token: TOKEN });
  dir = mkdtempSync(join(tmpdir(), 'ppc-kube-'));
  kubeconfigPath = join(dir, 'config');
  writeFileSync(
    kubeconfigPath,
    `apiVersion: v1
kind: Config
clusters:
  - name: stand-in
    # The client refuses plain HTTP unless TLS checks are off; the stand-in speaks plain HTTP.
    cluster: { server: "${api.url}", insecure-skip-tls-verify: true }
users:
  - name: autoscaler
    user: { token: ${TOKEN} }
contexts:
  - name: stand-in
    context: { cluster: stand-in, user: autoscaler, namespace: ${NAMESPACE} }
current-context: stand-in
`,
  );
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const pools = loadPools(
  loadConfig(autoscalerEnv, {
    PPC_AUTOSCALER_REGIONS: 'eu-west,us-east',
    PPC_AUTOSCALER_POOLS: JSON.stringify({
      'report-worker-us-east': { nodeSelector: { 'topology.kubernetes.io/region': 'us-east1' } },
    }),
  }),
);
const pool = (name: string) => pools.find((p) => p.name === name) as PoolSpec;

function backend() {
  return new KubernetesBackend({
    kubeConfig: loadKubeConfig(kubeconfigPath),
    namespace: NAMESPACE,
    template: loadJobTemplate(TEMPLATE),
    idleExitMs: 600_000,
    log,
  });
}

describe('KubernetesBackend', () => {
  it('creates one work-queue Job per start from the template, with the pool’s labels, parallelism, service and env', async () => {
    const b = backend();
    const before = api.requests.length;
    expect(await b.start(pool('report-worker-us-east'), 3)).toBe(3);
    const req = api.requests.slice(before);
    expect(req).toHaveLength(1);
    expect(req[0]).toMatchObject({
      method: 'POST',
      path: `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`,
      authorization: `Bearer ${TOKEN}`,
    });
    const body = req[0]!.body;
    // A valid batch/v1 Job by the Kubernetes schema.
    expect(() => new Job(body as never).validate()).not.toThrow();
    const job = body as V1Job;
    const metadata = job.metadata!;
    const spec = job.spec!;
    const pod = spec.template.spec!;
    expect(metadata.name).toMatch(/^report-worker-us-east-[a-z0-9]+$/);
    expect(metadata.name!.length).toBeLessThanOrEqual(63);
    const poolLabels = {
      'app.kubernetes.io/managed-by': 'ppc-autoscaler',
      'app.kubernetes.io/component': 'report-worker',
      'ppc-robot.io/pool': 'report-worker-us-east',
      'ppc-robot.io/region': 'us-east',
    };
    expect(metadata.labels).toEqual({ 'app.kubernetes.io/part-of': 'ppc-robot', ...poolLabels });
    expect(spec.parallelism).toBe(3);
    expect(spec.completions).toBeUndefined();
    expect(spec.template.metadata!.labels).toEqual({ 'app.kubernetes.io/part-of': 'ppc-robot', ...poolLabels });
    expect(pod.nodeSelector).toEqual({ 'topology.kubernetes.io/region': 'us-east1' });
    const worker = pod.containers[0]!;
    expect(worker.args).toEqual(['report-worker']);
    expect(worker.env).toEqual([
      { name: 'PORT', value: '9100' },
      { name: 'PPC_REGION', value: 'us-east' },
      { name: 'PPC_IDLE_EXIT_MS', value: '600000' },
      { name: 'PPC_INSTANCE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    ]);
    // What the template decides stays as it was.
    expect(worker.resources!.limits!.memory).toBe('512Mi');
    expect(pod.restartPolicy).toBe('OnFailure');
    expect(spec.ttlSecondsAfterFinished).toBe(600);
  });

  it('counts pods of unfinished Jobs as starting until they heartbeat, and takes the newest Job as the last start', async () => {
    const b = backend();
    const rw = pool('report-worker-eu-west');
    const uc = pool('url-checker-eu-west');
    const t0 = Date.now();
    await b.start(rw, 2);
    await b.start(uc, 1);
    const before = api.requests.length;
    const obs = await b.observe(pools, new Set());
    // One list of Jobs and one of Pods per evaluation, both by the autoscaler's label.
    expect(
      api.requests
        .slice(before)
        .map((r) => `${r.method} ${r.path} ${r.query.labelSelector}`)
        .sort(),
    ).toEqual([
      `GET /api/v1/namespaces/${NAMESPACE}/pods ${MANAGED_SELECTOR}`,
      `GET /apis/batch/v1/namespaces/${NAMESPACE}/jobs ${MANAGED_SELECTOR}`,
    ]);
    expect(obs.get(rw.name)!.starting).toBe(2);
    expect(obs.get(uc.name)!.starting).toBe(1);
    // Creation timestamps have second precision.
    expect(obs.get(rw.name)!.lastStartAt).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000);
    expect(obs.get('url-checker-us-east')).toEqual({ starting: 0, lastStartAt: null });

    const rwPods = api.pods().filter((p) => p.metadata.labels?.['ppc-robot.io/pool'] === rw.name);
    const [first, second] = rwPods.map((p) => p.metadata.name);
    // Running but silent: still starting. Running and heartbeating: live, not starting.
    api.setPodPhase(first!, 'Running');
    api.setPodPhase(second!, 'Running');
    expect((await b.observe(pools, new Set())).get(rw.name)!.starting).toBe(2);
    expect((await b.observe(pools, new Set([first!]))).get(rw.name)!.starting).toBe(1);

    // A finished Job's pods count for nothing, but it still marks the pool's last start.
    const rwJob = api.jobs().find((j) => j.metadata.labels?.['ppc-robot.io/pool'] === rw.name)!;
    api.finishJob(rwJob.metadata.name, 'Complete');
    const after = await b.observe(pools, new Set());
    expect(after.get(rw.name)!.starting).toBe(0);
    expect(after.get(rw.name)!.lastStartAt).toBe(obs.get(rw.name)!.lastStartAt);
    expect(b.details()).toMatchObject({ namespace: NAMESPACE, activeJobs: { [uc.name]: { jobs: 1, starting: 1 } } });
  });

  it('surfaces the API’s refusal (a wrong token) as an error from the client', async () => {
    const bad = join(dir, 'bad-config');
    writeFileSync(bad, (await import('node:fs')).readFileSync(kubeconfigPath, 'utf8').replace(TOKEN, 'wrong'));
    const b = new KubernetesBackend({
      kubeConfig: loadKubeConfig(bad),
      namespace: NAMESPACE,
      template: loadJobTemplate(TEMPLATE),
      idleExitMs: 1000,
      log,
    });
    await expect(b.observe(pools, new Set())).rejects.toThrow(/401|Unauthorized/);
    await expect(b.start(pool('url-checker-us-east'), 1)).rejects.toThrow(/401|Unauthorized/);
  });
});

describe('configuration of the kubernetes backend', () => {
  it('names PPC_AUTOSCALER_KUBECONFIG when the kubeconfig cannot be read', () => {
    const err = (() => {
      try {
        loadKubeConfig(join(dir, 'missing'));
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^PPC_AUTOSCALER_KUBECONFIG=".*missing": expected a readable kubeconfig/);
  });

  it('names PPC_AUTOSCALER_KUBE_JOB_TEMPLATE and the problem for a template it cannot use', () => {
    const job = loadJobTemplate(TEMPLATE);
    const broken = (f: (j: V1Job) => void) => {
      const j = structuredClone(job);
      f(j);
      try {
        checkJobTemplate(j, 'worker-job.yaml');
        return 'accepted';
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
    };
    expect(broken(() => {})).toBe('accepted');
    expect(broken((j) => (j.kind = 'Deployment'))).toMatch(/apiVersion must be batch\/v1 and kind Job/);
    expect(broken((j) => (j.spec!.template.spec!.containers[0]!.name = 'main'))).toMatch(/a container named "worker"/);
    expect(broken((j) => (j.spec!.template.spec!.restartPolicy = 'Always'))).toMatch(
      /restartPolicy must be Never or OnFailure/,
    );
    expect(broken((j) => (j.spec!.completions = 3))).toMatch(/completions must be unset/);
    const missing = (() => {
      try {
        loadJobTemplate(join(dir, 'nope.yaml'));
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(missing).toMatch(/^PPC_AUTOSCALER_KUBE_JOB_TEMPLATE=".*nope\.yaml": expected a readable file \(ENOENT\)/);
  });
});
