import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { graphqlCjs } from './limits.ts';

const { createSourceEventStream, execute } = graphqlCjs;

/**
 * A subscription event that many subscribers receive as the very same object (a run's batch of events, read once
 * per replica and handed to every watcher). Its result depends only on the event and the operation, never on who
 * subscribed (access was decided when they subscribed), so it is executed once per distinct operation text,
 * operation name and variables: a thousand watchers with the same query cost one execution, not a thousand.
 */
export class SharedPayload {
  readonly #results = new Map<string, ExecutionResult | Promise<ExecutionResult>>();
  readonly #json = new Map<string, string>();

  resultFor(
    key: string,
    run: () => ExecutionResult | Promise<ExecutionResult>,
  ): ExecutionResult | Promise<ExecutionResult> {
    let result = this.#results.get(key);
    if (!result) {
      result = run();
      this.#results.set(key, result);
    }
    return result;
  }

  /** The result as JSON, serialised once per key too. */
  jsonFor(key: string, result: ExecutionResult): string {
    let json = this.#json.get(key);
    if (json === undefined) {
      json = JSON.stringify(result);
      this.#json.set(key, json);
    }
    return json;
  }
}

export interface SharingOptions {
  /**
   * Delivers an error-free result of a shared payload, already serialised, straight to the subscriber (resolving
   * once written): the transport then adds only its envelope per subscriber instead of serialising the result
   * again. Such results are not yielded. Results with errors, and other payloads, are yielded as usual.
   */
  sendShared?: (json: string) => Promise<void>;
}

/** What makes two subscriptions' executions of one payload identical; undefined when the text is unknown. */
function operationKey(args: ExecutionArgs): string | undefined {
  const text = args.document.loc?.source.body;
  if (text === undefined) return undefined;
  return JSON.stringify([text, args.operationName ?? null, args.variableValues ?? null]);
}

/**
 * graphql's `subscribe`, except that a `SharedPayload` is executed once per operation key (see above); any other
 * payload is executed per subscriber as usual.
 */
export async function subscribeSharing(
  args: ExecutionArgs,
  opts: SharingOptions = {},
): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in source)) return source as ExecutionResult;
  const events = source as AsyncIterableIterator<unknown>;
  const key = operationKey(args);
  const run = (payload: unknown) => () => execute({ ...args, rootValue: payload });
  const { sendShared } = opts;

  const iterator: AsyncIterableIterator<ExecutionResult> = {
    async next() {
      for (;;) {
        const r = await events.next();
        if (r.done) return { done: true, value: undefined };
        const payload = r.value;
        if (key === undefined || !(payload instanceof SharedPayload))
          return { done: false, value: await run(payload)() };
        const result = await payload.resultFor(key, run(payload));
        if (!sendShared || result.errors) return { done: false, value: result };
        await sendShared(payload.jsonFor(key, result));
      }
    },
    async return() {
      await events.return?.();
      return { done: true, value: undefined };
    },
    async throw(err?: unknown) {
      if (events.throw) await events.throw(err);
      throw err;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
