// Reading gRPC streams without pinning their messages: large messages (catalog snapshots,
// config deltas) must not stay alive while a quiet stream waits for the next one.
import { GrpcError } from "./errors.js";
/**
 * The messages of a readable stream, one `read()` per `next()`, mapped by `map`. Unlike a
 * readable's own iterator or an async generator, it keeps no reference to a message once
 * handed out: those keep the last message alive while they wait for the next one, and a
 * catalog snapshot or a config delta of tens of MiB would stay in memory for as long as its
 * stream is quiet. Backpressure is the readable's: nothing is read before `next()`.
 */
export function messagesOf<T>(
  stream: NodeJS.ReadableStream & { read(): unknown },
  map: (chunk: unknown) => T,
  onReturn: () => void = () => {},
): AsyncIterableIterator<T> {
  let failure: { error: unknown } | undefined;
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  stream.on("readable", notify);
  stream.on("end", () => {
    ended = true;
    notify();
  });
  stream.on("close", () => {
    ended = true;
    notify();
  });
  stream.on("error", (error: unknown) => {
    failure ??= { error };
    notify();
  });
  const next = async (): Promise<IteratorResult<T>> => {
    for (;;) {
      const chunk = stream.read();
      if (chunk !== null) return { done: false, value: map(chunk) };
      if (failure !== undefined) throw GrpcError.from(failure.error);
      if (ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next,
    return: async () => {
      onReturn();
      return { done: true, value: undefined };
    },
  };
}

/**
 * Handles every message of a stream in order, one at a time (the next is read once `handle`
 * settled); resolves at the end of the stream, rejects with the first error of the stream or
 * of `handle`. Use it instead of a `for await` loop for streams whose messages are large: V8
 * keeps a suspended async function's locals, so such a loop pins its last message while it
 * waits for the next one; here nothing refers to a handled message.
 */
export function forEachMessage<T>(
  messages: AsyncIterable<T>,
  handle: (message: T) => unknown,
): Promise<void> {
  const it = messages[Symbol.asyncIterator]();
  return new Promise<void>((resolve, reject) => {
    const step = (): void => {
      it.next()
        .then((r) => (r.done === true ? resolve() : Promise.resolve(handle(r.value)).then(step)))
        .catch(reject);
    };
    step();
  });
}
