// `npm run dlq -- list [limit]` | `npm run dlq -- replay <seq>`: inspect and replay dead-lettered
// messages without the nats CLI. NATS_URL defaults to the local mesh.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats, listDeadLetters, replayDeadLetter } from '@ppc/lib/nats';

const [command, arg] = process.argv.slice(2);
const usage = 'usage: npm run dlq -- list [limit] | replay <seq>';
const nc = await connectNats({ servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name: 'ppc-dlq' }).catch(
  (err) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  },
);
try {
  const jsm = await jetstreamManager(nc);
  if (command === 'list') {
    const limit = arg === undefined ? 100 : Number(arg);
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`limit: expected a positive integer, got ${arg}`);
    for (const d of await listDeadLetters(jsm, { limit })) {
      process.stdout.write(
        `${d.seq}\t${d.at.toISOString()}\t${d.subject}\t${d.type ?? '-'}\t${d.deliveries}\t${d.reason}\n`,
      );
    }
  } else if (command === 'replay') {
    const seq = Number(arg);
    if (!Number.isInteger(seq) || seq < 1) throw new Error(`seq: expected a positive integer, got ${arg}\n${usage}`);
    const ack = await replayDeadLetter(jetstream(nc), jsm, seq);
    process.stdout.write(`replayed dead letter ${seq} to stream ${ack.stream} as seq ${ack.seq}\n`);
  } else {
    throw new Error(usage);
  }
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await nc.close();
}
