/**
 * Replaying a dead letter from the API (`npm run dlq -- replay <seq>` does the same from a shell). Dead letters are
 * mesh-wide, so only the `admin` scope (owners) may replay, and only a letter that belongs to the caller's
 * organization (its body's `orgId`) or to no organization at all (system and cluster ticks, which carry none):
 * another tenant's letter answers NOT_FOUND like any other tenant's id.
 */
import { DeadLetterNotFoundError, replayDeadLetter as replay } from '@ppc/lib/nats';
import { headers, streams, subjects } from '@ppc/proto';
import type { Caller, GatewayDeps } from '../context.ts';
import { BadUserInputError, ConflictError, NotFoundError } from '../graphql/errors.ts';

export interface DeadLetterReplay {
  /** The dead letter's sequence in `DEAD_LETTERS` (removed from it by the replay). */
  seq: number;
  /** Where the message went: its original subject. */
  subject: string;
  type: string | null;
  /** Why it had been dead-lettered. */
  reason: string | null;
  /** The stream that stored the replayed message, and its sequence there. */
  stream: string;
  replayedSeq: number;
  duplicate: boolean;
}

const decoder = new TextDecoder();

function orgIdOf(data: Uint8Array): string | null {
  try {
    const v = (JSON.parse(decoder.decode(data)) as { orgId?: unknown }).orgId;
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

export async function replayDeadLetter(deps: GatewayDeps, caller: Caller, seq: number): Promise<DeadLetterReplay> {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new BadUserInputError('seq', 'a positive integer');
  const stored = await deps.jsm.streams.getMessage(streams.deadLetters.name, { seq }).catch(() => null);
  if (!stored) throw new NotFoundError('dead letter', String(seq));
  const orgId = orgIdOf(stored.data);
  if (orgId !== null && orgId !== caller.organizationId) throw new NotFoundError('dead letter', String(seq));
  const subject = stored.header?.get(headers.dlqSubject) || subjects.originalOfDeadLetter(stored.subject);
  let ack: Awaited<ReturnType<typeof replay>>;
  try {
    ack = await replay(deps.js, deps.jsm, seq);
  } catch (err) {
    // Replayed meanwhile by someone else (the message is deleted after its republish).
    if (err instanceof DeadLetterNotFoundError) throw new NotFoundError('dead letter', String(seq));
    const code = (err as { code?: string }).code;
    if (code === '503' || /no responders/i.test((err as Error).message)) {
      throw new ConflictError(`no stream stores ${subject} now; the dead letter is kept`);
    }
    throw err;
  }
  deps.log.info({ seq, subject, userId: caller.userId, replayedSeq: ack.seq }, 'dead letter replayed');
  return {
    seq,
    subject,
    type: stored.header?.get(headers.type) || null,
    reason: stored.header?.get(headers.dlqReason) || null,
    stream: ack.stream,
    replayedSeq: ack.seq,
    duplicate: ack.duplicate,
  };
}
