/**
 * A stand-in for the Kubernetes API server, for tests that cannot reach a cluster: a local HTTP server
 * answering the BatchV1 and CoreV1 calls the autoscaler makes (create and list Jobs, list Pods) with
 * the API's own JSON shapes (JobList, PodList, Status errors), bearer-token auth and equality label
 * selectors. It plays the Job controller too: a created Job gets `parallelism` Pending pods labelled
 * like the real controller labels them; tests move pods and Jobs along with `setPodPhase`/`finishJob`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Obj = Record<string, unknown> & {
  metadata: { name: string; namespace: string; labels?: Record<string, string>; [k: string]: unknown };
  spec?: Record<string, unknown> & {
    parallelism?: number;
    template?: { metadata?: { labels?: Record<string, string> } };
  };
  status?: Record<string, unknown>;
};

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
  body: unknown;
}

export interface KubeApiStandIn extends AsyncDisposable {
  url: string;
  requests: RecordedRequest[];
  jobs(): Obj[];
  pods(): Obj[];
  setPodPhase(name: string, phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed'): void;
  finishJob(name: string, type: 'Complete' | 'Failed'): void;
  close(): Promise<void>;
}

let resourceVersion = 1000;
const nextVersion = () => String(++resourceVersion);

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Equality-based selectors only (`a=b,c=d`), which is all the autoscaler uses. */
function matches(selector: string | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return labels?.[k!] === v;
  });
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  return text ? JSON.parse(text) : undefined;
}

export async function startKubeApiStandIn(opts: { token: string }): Promise<KubeApiStandIn> {
  const jobs = new Map<string, Obj>();
  const pods = new Map<string, Obj>();
  const requests: RecordedRequest[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const body = req.method === 'POST' ? await readBody(req) : undefined;
    requests.push({
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization: req.headers.authorization,
      body,
    });
    if (req.headers.authorization !== `Bearer ${opts.token}`) {
      return status(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const selector = url.searchParams.get('labelSelector') ?? undefined;
    let m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs$/.exec(url.pathname);
    if (m && req.method === 'GET') {
      const items = [...jobs.values()].filter(
        (j) => j.metadata.namespace === m![1] && matches(selector, j.metadata.labels),
      );
      return json(res, 200, {
        kind: 'JobList',
        apiVersion: 'batch/v1',
        metadata: { resourceVersion: nextVersion() },
        items,
      });
    }
    if (m && req.method === 'POST') {
      const job = body as Obj;
      if (job?.kind !== 'Job' || job.apiVersion !== 'batch/v1' || !job.metadata?.name) {
        return status(res, 400, 'BadRequest', 'the body is not a batch/v1 Job with a name');
      }
      if (jobs.has(job.metadata.name)) {
        return status(res, 409, 'AlreadyExists', `jobs.batch "${job.metadata.name}" already exists`);
      }
      const uid = randomUUID();
      const stored: Obj = {
        ...job,
        metadata: {
          ...job.metadata,
          namespace: m[1]!,
          uid,
          resourceVersion: nextVersion(),
          creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        },
        status: { active: job.spec?.parallelism ?? 1 },
      };
      jobs.set(job.metadata.name, stored);
      for (let i = 0; i < (job.spec?.parallelism ?? 1); i++) {
        const name = `${job.metadata.name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
        pods.set(name, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name,
            namespace: m[1]!,
            uid: randomUUID(),
            labels: {
              ...job.spec?.template?.metadata?.labels,
              'batch.kubernetes.io/controller-uid': uid,
              'batch.kubernetes.io/job-name': job.metadata.name,
              'controller-uid': uid,
              'job-name': job.metadata.name,
            },
            ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid, controller: true }],
          },
          spec: (job.spec?.template as { spec?: Record<string, unknown> })?.spec ?? {},
          status: { phase: 'Pending' },
        });
      }
      return json(res, 201, stored);
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(url.pathname);
    if (m && req.method === 'GET') {
      const items = [...pods.values()].filter(
        (p) => p.metadata.namespace === m![1] && matches(selector, p.metadata.labels),
      );
      return json(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: nextVersion() }, items });
    }
    return status(
      res,
      404,
      'NotFound',
      `the server could not find the requested resource (${req.method} ${url.pathname})`,
    );
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => status(res, 500, 'InternalError', (err as Error).message));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const close = () => new Promise<void>((r) => server.close(() => r()));
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    jobs: () => [...jobs.values()],
    pods: () => [...pods.values()],
    setPodPhase(name, phase) {
      const pod = pods.get(name);
      if (!pod) throw new Error(`no pod ${name}`);
      pod.status = { ...pod.status, phase };
    },
    finishJob(name, type) {
      const job = jobs.get(name);
      if (!job) throw new Error(`no job ${name}`);
      job.status = { conditions: [{ type, status: 'True', lastTransitionTime: new Date().toISOString() }] };
      for (const p of pods.values()) {
        if (p.metadata.labels?.['job-name'] === name)
          p.status = { phase: type === 'Complete' ? 'Succeeded' : 'Failed' };
      }
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
