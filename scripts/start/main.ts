// `npm start`: the whole mesh on this machine (see README). Stops on Ctrl-C, SIGTERM or SIGHUP.
import { resolve } from 'node:path';
import { DEMO_LOGIN, Launcher, planFor } from './launcher.ts';

const root = resolve(import.meta.dirname, '..', '..');
let launcher: Launcher;
try {
  launcher = new Launcher(planFor(process.env, root));
} catch (err) {
  process.stderr.write(`ppc-robot: ${(err as Error).message}\n`);
  process.exit(1);
}

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  launcher.log(`${signal}: stopping`);
  const started = Date.now();
  launcher.stop().then(
    () => {
      launcher.log(`stopped in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`ppc-robot: unclean stop: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => shutdown(signal));

try {
  const url = await launcher.start();
  if (!stopping) {
    const [email, password] = [
      DEMO_LOGIN.slice(0, DEMO_LOGIN.indexOf(':')),
      DEMO_LOGIN.slice(DEMO_LOGIN.indexOf(':') + 1),
    ];
    process.stdout.write(`ppc-robot is up: ${url} (sign in as ${email} / ${password}; GraphiQL at ${url}/graphiql)\n`);
  }
} catch (err) {
  process.stderr.write(`ppc-robot: ${(err as Error).message}\n`);
  await launcher.stop().catch(() => {});
  process.exit(1);
}
