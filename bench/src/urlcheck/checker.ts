// Child process of `npm run bench -- urlcheck`: one measured run, either the URL checker's engine on the whole
// account (collect 50,000 uses, dedupe, check 10,000 URLs) or the baseline, a bare undici loop over the 10,000 unique
// URLs with the same limits. Reports its time and its own peak RSS over IPC; one process per run, so each peak is
// that run's alone.
import { readFileSync } from 'node:fs';
import type { AdPlatformConnector, UrlUsage } from '@ppc/lib/ads';
import { Agent } from 'undici';
import { runUrlCheck } from '../../../services/url-checker/src/index.ts';
import { accountUses, LIMITS, type Limits } from './shared.ts';

export interface CheckerJob {
  mode: 'engine' | 'bare';
  origins: string[];
}

export interface CheckerResult {
  mode: CheckerJob['mode'];
  urls: number;
  uses: number;
  requests: number;
  /** Final status 2xx (engine: ok, redirect and soft error; the soft errors are counted apart). */
  answered2xx: number;
  softErrors: number;
  /** Engine only: reading, normalising and deduping the 50,000 uses. */
  collectSeconds?: number;
  seconds: number;
  /** CPU time (user + system) of this process during the measured part: less noisy than wall time on a busy host. */
  cpuSeconds: number;
  vmHwmMb: number;
}

function vmHwmMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** The account as a connector yields it (only `listUrls` is used by a URL check). */
function account(origins: string[]): AdPlatformConnector {
  const unused = () => {
    throw new Error('not used by a URL check');
  };
  return {
    platform: 'bench',
    listAccounts: unused,
    streamReport: unused,
    async close() {},
    async *listUrls(): AsyncGenerator<UrlUsage[]> {
      yield* accountUses(origins);
    },
  };
}

type Measured = Omit<CheckerResult, 'vmHwmMb' | 'mode' | 'cpuSeconds'> & { cpu: NodeJS.CpuUsage };

async function engine(origins: string[]): Promise<Measured> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const { stats } = await runUrlCheck(
    {
      options: {
        perHostConcurrency: LIMITS.perHostConcurrency,
        timeoutMs: LIMITS.timeoutMs,
        maxRedirects: LIMITS.maxRedirects,
      },
    },
    {
      connector: account(origins),
      account: { id: '1' },
      settings: { globalConcurrency: LIMITS.globalConcurrency, perHostDelayMs: LIMITS.perHostDelayMs },
    },
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    cpu: process.cpuUsage(cpu),
    urls: stats.urls,
    uses: stats.uses,
    requests: stats.requests,
    answered2xx: stats.byClass.ok + stats.byClass.redirect + stats.byClass.soft_error,
    softErrors: stats.byClass.soft_error,
    collectSeconds: stats.collectMs / 1000,
    seconds,
  };
}

/**
 * The baseline: what the engine's HTTP work costs without the engine. Per host, `perHostConcurrency` workers take
 * the host's URLs in turn, each start spaced `perHostDelayMs` from the previous one on that host, under one global
 * limit; GET, body drained, redirects followed by hand; one undici Agent configured as the engine's.
 */
export async function bareLoop(urls: string[], limits: Limits): Promise<{ requests: number; answered2xx: number }> {
  const agent = new Agent({
    connections: limits.perHostConcurrency,
    pipelining: 1,
    connectTimeout: limits.timeoutMs,
    headersTimeout: limits.timeoutMs,
    bodyTimeout: limits.timeoutMs,
    keepAliveTimeout: 4_000,
  });
  const byHost = new Map<string, string[]>();
  for (const u of urls) {
    const host = new URL(u).hostname;
    const queue = byHost.get(host);
    if (queue) queue.push(u);
    else byHost.set(host, [u]);
  }
  let globalActive = 0;
  const globalWaiters: Array<() => void> = [];
  let requests = 0;
  let answered2xx = 0;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function worker(queue: string[], host: { nextAt: number }) {
    for (let url = queue.shift(); url !== undefined; url = queue.shift()) {
      if (globalActive >= limits.globalConcurrency) await new Promise<void>((r) => globalWaiters.push(r));
      globalActive++;
      try {
        for (let hop = 0; hop <= limits.maxRedirects; hop++) {
          const now = performance.now();
          const wait = host.nextAt - now;
          host.nextAt = Math.max(now, host.nextAt) + limits.perHostDelayMs;
          if (wait > 0) await sleep(wait);
          const target: URL = new URL(url);
          const res = await agent.request({
            origin: target.origin,
            path: target.pathname + target.search,
            method: 'GET',
          });
          requests++;
          await res.body.dump();
          const location = res.headers.location;
          if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
            url = new URL(location, target).href;
            continue;
          }
          if (res.statusCode >= 200 && res.statusCode < 300) answered2xx++;
          break;
        }
      } finally {
        globalActive--;
        globalWaiters.shift()?.();
      }
    }
  }

  try {
    await Promise.all(
      [...byHost.values()].flatMap((queue) => {
        const host = { nextAt: 0 };
        return Array.from({ length: limits.perHostConcurrency }, () => worker(queue, host));
      }),
    );
  } finally {
    await agent.destroy();
  }
  return { requests, answered2xx };
}

async function bare(origins: string[]): Promise<Measured> {
  const unique = new Set<string>();
  let uses = 0;
  for (const batch of accountUses(origins)) {
    uses += batch.length;
    for (const u of batch) unique.add(u.url);
  }
  const urls = [...unique];
  const started = performance.now();
  const cpu = process.cpuUsage();
  const { requests, answered2xx } = await bareLoop(urls, LIMITS);
  return {
    cpu: process.cpuUsage(cpu),
    urls: urls.length,
    uses,
    requests,
    answered2xx,
    softErrors: 0,
    seconds: (performance.now() - started) / 1000,
  };
}

process.once('message', async (job: CheckerJob) => {
  try {
    const { cpu, ...r } = job.mode === 'engine' ? await engine(job.origins) : await bare(job.origins);
    process.send?.({
      result: {
        ...r,
        mode: job.mode,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        vmHwmMb: vmHwmMb(),
      } satisfies CheckerResult,
    });
  } catch (err) {
    process.send?.({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
  process.disconnect();
});
