// `npm run bench -- urlcheck [rounds=3]`: the URL checker on 10,000 unique URLs (from 50,000 uses) over 50 local hosts
// (127.0.0.2–127.0.0.51) whose pages answer in 20–200 ms, 8 requests at once per host. Three kinds of process: the
// landing-page server (urlcheck/server.ts), one checker process per measured run (urlcheck/checker.ts; its CPU and
// peak RSS are the figures), and this one, which starts them and prints the results.
// Baseline, measured in the same run: a bare undici loop over the same unique URLs with the same limits (per-host
// concurrency and delay, global concurrency, redirects followed by hand). Each round runs both, in alternating order.
import { type ChildProcess, fork } from 'node:child_process';
import { printFigure } from './harness.ts';
import type { CheckerJob, CheckerResult } from './urlcheck/checker.ts';
import { HOSTS, LIMITS, UNIQUE_URLS, USES } from './urlcheck/shared.ts';

const TARGET_URLS_PER_S = 1500;
const TARGET_RATIO = 0.9;
const TARGET_RSS_MB = 200;

/**
 * Node flags of both checker processes, as the url-checker service runs with them (CHECKER_FLAGS in the environment
 * replaces them, for experiments). Without a cap V8 keeps growing the young generation under the steady stream of
 * short-lived request objects (heap total ~160 MB, of which ~50–70 MB in use): measured peak RSS ~230 MB for the
 * engine and ~180–205 MB for the bare loop, against ~160–170 MB for both with 16 MB semi-spaces, at the same speed and
 * CPU time.
 */
const CHECKER_FLAGS = (process.env.CHECKER_FLAGS ?? '--max-semi-space-size=16').split(' ').filter(Boolean);

interface ServerStats {
  maxActivePerHost: number;
  requests: number;
}

function nextMessage<T>(child: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${what} exited early (${code})`));
    child.once('exit', onExit);
    child.once('message', (m) => {
      child.off('exit', onExit);
      resolve(m as T);
    });
  });
}

async function measure(mode: CheckerJob['mode'], origins: string[]): Promise<CheckerResult> {
  const child = fork(new URL('./urlcheck/checker.ts', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [...process.execArgv, ...CHECKER_FLAGS],
  });
  const answer = nextMessage<{ result?: CheckerResult; error?: string }>(child, `${mode} checker`);
  child.send({ mode, origins } satisfies CheckerJob);
  const { result, error } = await answer;
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
  if (!result) throw new Error(`${mode} checker failed: ${error}`);
  return result;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

export async function run(args: string[]): Promise<void> {
  const rounds = Math.max(1, Number(args[0] ?? '3') || 3);
  const summary: { engineRate: number; bareRate: number; rss: number; cpuRatio: number }[] = [];
  const server = fork(new URL('./urlcheck/server.ts', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const { origins } = await nextMessage<{ origins: string[] }>(server, 'landing-page server');
    if (origins.length !== HOSTS) throw new Error(`expected ${HOSTS} hosts, got ${origins.length}`);
    const serverStats = async () => {
      const reply = nextMessage<ServerStats>(server, 'landing-page server');
      server.send({ type: 'stats' });
      return reply;
    };
    await serverStats(); // reset

    for (let round = 1; round <= rounds; round++) {
      const modes: CheckerJob['mode'][] = round % 2 ? ['bare', 'engine'] : ['engine', 'bare'];
      const results: Partial<Record<CheckerJob['mode'], CheckerResult & ServerStats>> = {};
      for (const mode of modes) {
        const r = await measure(mode, origins);
        results[mode] = { ...r, ...(await serverStats()) };
      }
      const bare = results.bare!;
      const engine = results.engine!;
      if (engine.urls !== UNIQUE_URLS || engine.uses !== USES) {
        throw new Error(
          `engine saw ${engine.urls} URLs from ${engine.uses} uses, expected ${UNIQUE_URLS} from ${USES}`,
        );
      }
      if (engine.requests !== bare.requests || engine.answered2xx !== bare.answered2xx) {
        throw new Error(`the two loops did different work: ${JSON.stringify({ engine, bare })}`);
      }
      const bareRate = bare.urls / bare.seconds;
      const engineRate = engine.urls / engine.seconds;
      summary.push({ engineRate, bareRate, rss: engine.vmHwmMb, cpuRatio: engine.cpuSeconds / bare.cpuSeconds });
      printFigure({
        bench: 'urlcheck',
        figure: 'baseline_bare_undici_loop',
        round,
        urls: bare.urls,
        requests: bare.requests,
        seconds: round2(bare.seconds),
        cpu_seconds: round2(bare.cpuSeconds),
        cpu_us_per_url: Math.round((bare.cpuSeconds * 1e6) / bare.urls),
        urls_per_s: Math.round(bareRate),
        peak_rss_mb: round2(bare.vmHwmMb),
        max_in_flight_per_host_at_server: bare.maxActivePerHost,
      });
      printFigure({
        bench: 'urlcheck',
        figure: 'url_checker_engine',
        round,
        uses: engine.uses,
        urls: engine.urls,
        requests: engine.requests,
        soft_errors: engine.softErrors,
        seconds: round2(engine.seconds),
        collect_seconds: round2(engine.collectSeconds ?? 0),
        cpu_seconds: round2(engine.cpuSeconds),
        cpu_us_per_url: Math.round((engine.cpuSeconds * 1e6) / engine.urls),
        cpu_ratio_vs_bare_loop: round2(engine.cpuSeconds / bare.cpuSeconds),
        urls_per_s: Math.round(engineRate),
        target_urls_per_s: TARGET_URLS_PER_S,
        meets_rate_target: engineRate >= TARGET_URLS_PER_S,
        ratio_vs_bare_loop: round2(engineRate / bareRate),
        target_ratio: TARGET_RATIO,
        meets_ratio_target: engineRate / bareRate >= TARGET_RATIO,
        peak_rss_mb: round2(engine.vmHwmMb),
        peak_rss_source: 'VmHWM of the checker process (its whole life: collect, dedupe, check)',
        target_rss_mb: TARGET_RSS_MB,
        meets_rss_target: engine.vmHwmMb <= TARGET_RSS_MB,
        max_in_flight_per_host_at_server: engine.maxActivePerHost,
        per_host_concurrency: LIMITS.perHostConcurrency,
        global_concurrency: LIMITS.globalConcurrency,
        per_host_delay_ms: LIMITS.perHostDelayMs,
        checker_node_flags: CHECKER_FLAGS.join(' ') || null,
      });
    }
    const median = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    };
    const engineRate = median(summary.map((r) => r.engineRate));
    const ratio = median(summary.map((r) => r.engineRate / r.bareRate));
    const peakRss = Math.max(...summary.map((r) => r.rss));
    printFigure({
      bench: 'urlcheck',
      figure: 'summary',
      rounds,
      median_engine_urls_per_s: Math.round(engineRate),
      median_bare_urls_per_s: Math.round(median(summary.map((r) => r.bareRate))),
      median_ratio_vs_bare_loop: round2(ratio),
      median_cpu_ratio_vs_bare_loop: round2(median(summary.map((r) => r.cpuRatio))),
      max_engine_peak_rss_mb: round2(peakRss),
      meets_rate_target: engineRate >= TARGET_URLS_PER_S,
      meets_ratio_target: ratio >= TARGET_RATIO,
      meets_rss_target: peakRss <= TARGET_RSS_MB,
      note: 'wall-clock rates share 2 cores with the page server and whatever else runs; CPU ratio is the steadier comparison',
    });
  } finally {
    server.disconnect();
    await new Promise((r) => (server.exitCode === null ? server.once('exit', r) : r(null)));
  }
}
