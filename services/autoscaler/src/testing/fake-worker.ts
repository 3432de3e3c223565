// A stand-in worker for the autoscaler's tests and benchmark: the real service runtime (heartbeat
// under the given service name, idle exit, graceful SIGTERM) around a consumer that takes its pool's
// tasks and acknowledges each after `taskMs`. Usage: node fake-worker.ts <report-worker|url-checker> [taskMs]
import { setTimeout as sleep } from 'node:timers/promises';
import { consume } from '@ppc/lib/nats';
import { baseEnv, idleEnv, main, regionEnv, type ServiceDefinition } from '@ppc/lib/service';
import { consumers, ReportTaskMsg, streams, UrlCheckTaskMsg } from '@ppc/proto';

const service = process.argv[2];
const taskMs = Number(process.argv[3] ?? '0');
if ((service !== 'report-worker' && service !== 'url-checker') || !Number.isInteger(taskMs) || taskMs < 0) {
  process.stderr.write('usage: fake-worker.ts <report-worker|url-checker> [taskMs]\n');
  process.exit(2);
}
const reports = service === 'report-worker';
const consumerOf = (region: string) => (reports ? consumers.reportWorker(region) : consumers.urlChecker(region));

const env = { ...baseEnv({ port: 0 }), ...regionEnv, ...idleEnv };
const worker: ServiceDefinition<typeof env> = {
  name: service,
  env,
  resources: (c) => ({
    streams: [reports ? streams.reportTasks : streams.urlCheckTasks],
    consumers: [consumerOf(c.region)],
  }),
  async start(ctx) {
    ctx.track(
      await consume(
        ctx.js,
        consumerOf(ctx.config.region),
        [ReportTaskMsg, UrlCheckTaskMsg],
        async () => {
          await sleep(taskMs);
        },
        { concurrency: 1, log: ctx.log, pullExpiresMs: 1000 },
      ),
    );
    return undefined;
  },
};

main(worker);
