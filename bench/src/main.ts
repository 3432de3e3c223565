// `npm run bench -- <name>`: runs bench/src/<name>.ts, which prints one JSON line per figure.
import { existsSync, readdirSync } from 'node:fs';

const available = readdirSync(import.meta.dirname)
  .filter((f) => f.endsWith('.ts') && !['main.ts', 'harness.ts'].includes(f) && !f.endsWith('.test.ts'))
  .map((f) => f.slice(0, -3))
  .sort();
const name = process.argv[2];
if (!name || !/^[a-z][a-z0-9-]*$/.test(name) || !existsSync(new URL(`./${name}.ts`, import.meta.url))) {
  process.stderr.write(
    `usage: npm run bench -- <name>\n${name ? `unknown benchmark ${JSON.stringify(name)}; ` : ''}available: ${available.join(', ') || '(none)'}\n`,
  );
  process.exit(2);
}
const bench: { run(args: string[]): Promise<void> } = await import(`./${name}.ts`);
await bench.run(process.argv.slice(3));
process.exit(0);
