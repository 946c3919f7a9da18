// Generic glue between protobuf-es service descriptors and @grpc/grpc-js: one server
// definition builder and one typed client builder for every service of the contract.
import type { PeerCertificate } from "node:tls";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { GrpcError } from "./errors.js";
import { validateMessage } from "./validation.js";

type Method = GenServiceMethods[string];
type Req<M extends Method> = MessageShape<M["input"]>;
type ReqInit<M extends Method> = MessageInitShape<M["input"]>;
type Res<M extends Method> = MessageShape<M["output"]>;
type ResInit<M extends Method> = MessageInitShape<M["output"]>;

/** What a handler knows about the call besides its messages. */
export interface CallContext {
  /** Request metadata (headers). */
  readonly metadata: grpc.Metadata;
  /** The peer's address. */
  readonly peer: string;
  /** The client certificate the peer presented, if any. It is not verified by TLS when the
   * server accepts optional client certificates: verify it before trusting it. */
  readonly peerCertificate: PeerCertificate | undefined;
  /** Aborted when the call is cancelled or the peer goes away. */
  readonly signal: AbortSignal;
}

/** The sending half of a server stream; `send` resolves when the stream can take more. */
export interface ServerStream<O extends DescMessage> {
  send(message: MessageInitShape<O>): Promise<void>;
}

/** A server's view of a bidirectional stream. */
export interface ServerBidiStream<I extends DescMessage, O extends DescMessage>
  extends ServerStream<O> {
  /** Incoming messages, decoded and validated; iteration throws INVALID_ARGUMENT on a bad one. */
  readonly requests: AsyncIterable<MessageShape<I>>;
}

/** The handlers of a service, one per method, typed from its descriptor. */
export type ServiceHandlers<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? (request: Req<S[K]>, ctx: CallContext) => Promise<ResInit<S[K]>>
    : S[K]["methodKind"] extends "server_streaming"
      ? (
          request: Req<S[K]>,
          stream: ServerStream<S[K]["output"]>,
          ctx: CallContext,
        ) => Promise<void>
      : S[K]["methodKind"] extends "client_streaming"
        ? (requests: AsyncIterable<Req<S[K]>>, ctx: CallContext) => Promise<ResInit<S[K]>>
        : (
            stream: ServerBidiStream<S[K]["input"], S[K]["output"]>,
            ctx: CallContext,
          ) => Promise<void>;
};

function decode<Desc extends DescMessage>(schema: Desc, bytes: Buffer): MessageShape<Desc> {
  let message: MessageShape<Desc>;
  try {
    message = fromBinary(schema, bytes);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new GrpcError(grpc.status.INVALID_ARGUMENT, `malformed ${schema.typeName}: ${reason}`);
  }
  validateMessage(schema, message);
  return message;
}

function encoder(schema: DescMessage): (message: unknown) => Buffer {
  return (message) => Buffer.from(toBinary(schema, message as MessageShape<DescMessage>));
}

const passThrough = (bytes: Buffer): Buffer => bytes;

type AnyServerCall =
  | grpc.ServerUnaryCall<Buffer, unknown>
  | grpc.ServerDuplexStream<Buffer, unknown>;

function callContext(call: AnyServerCall): CallContext {
  const abort = new AbortController();
  const onCancel = () => abort.abort(new GrpcError(grpc.status.CANCELLED, "call cancelled"));
  if (call.cancelled) onCancel();
  else call.once("cancelled", onCancel);
  return {
    metadata: call.metadata,
    peer: call.getPeer(),
    peerCertificate: call.getAuthContext?.()?.sslPeerCertificate,
    signal: abort.signal,
  };
}

/** The status a failed handler answers with; a GrpcError's metadata goes in the trailers
 * (e.g. the leader hint of a hub follower). */
function toStatus(err: unknown): Partial<grpc.StatusObject> {
  const e = GrpcError.from(err);
  return e.metadata === undefined
    ? { code: e.code, details: e.message }
    : { code: e.code, details: e.message, metadata: e.metadata };
}

/**
 * The messages of a readable stream, one `read()` per `next()`, mapped by `map`. Unlike a
 * readable's own iterator or an async generator, it keeps no reference to a message once
 * handed out: those keep the last message alive while they wait for the next one, and a
 * catalog snapshot or a config delta of tens of MiB would stay in memory for as long as its
 * stream is quiet. Backpressure is the readable's: nothing is read before `next()`.
 */
function messagesOf<T>(
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

// A handler that stops reading must still be able to end the call with a status, so leaving
// the loop does not destroy the stream.
const decodeAll = <I extends DescMessage>(
  schema: I,
  call: grpc.ServerReadableStream<Buffer, unknown> | grpc.ServerDuplexStream<Buffer, unknown>,
): AsyncIterableIterator<MessageShape<I>> =>
  messagesOf(call, (bytes) => decode(schema, bytes as Buffer));

function sender<O extends DescMessage>(
  schema: O,
  stream:
    | grpc.ServerWritableStream<Buffer, MessageShape<O>>
    | grpc.ServerDuplexStream<Buffer, MessageShape<O>>,
): ServerStream<O>["send"] {
  return (message) => {
    if (stream.cancelled || stream.destroyed) {
      return Promise.reject(new GrpcError(grpc.status.CANCELLED, "stream closed"));
    }
    if (stream.write(create(schema, message))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: unknown) => {
        stream.off("drain", done);
        stream.off("close", closed);
        if (err) reject(err);
        else resolve();
      };
      const closed = () => done(new GrpcError(grpc.status.CANCELLED, "stream closed"));
      stream.once("drain", done);
      stream.once("close", closed);
    });
  };
}

function methodHandler(method: DescMethod, handler: unknown): grpc.UntypedHandleCall {
  switch (method.methodKind) {
    case "unary": {
      const fn = handler as (r: unknown, c: CallContext) => Promise<MessageInitShape<DescMessage>>;
      return (
        call: grpc.ServerUnaryCall<Buffer, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        Promise.resolve()
          .then(() => fn(decode(method.input, call.request), callContext(call)))
          .then(
            (res) => callback(null, create(method.output, res)),
            (err: unknown) => callback(toStatus(err)),
          );
      };
    }
    case "server_streaming": {
      const fn = handler as (
        r: unknown,
        s: ServerStream<DescMessage>,
        c: CallContext,
      ) => Promise<void>;
      return (call: grpc.ServerWritableStream<Buffer, MessageShape<DescMessage>>) => {
        Promise.resolve()
          .then(() =>
            fn(
              decode(method.input, call.request),
              { send: sender(method.output, call) },
              callContext(call),
            ),
          )
          .then(
            () => call.end(),
            (err: unknown) => call.emit("error", toStatus(err)),
          );
      };
    }
    case "client_streaming": {
      const fn = handler as (
        r: AsyncIterable<unknown>,
        c: CallContext,
      ) => Promise<MessageInitShape<DescMessage>>;
      return (
        call: grpc.ServerReadableStream<Buffer, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        Promise.resolve()
          .then(() =>
            fn(decodeAll(method.input, call), callContext(call as unknown as AnyServerCall)),
          )
          .then(
            (res) => callback(null, create(method.output, res)),
            (err: unknown) => callback(toStatus(err)),
          );
      };
    }
    case "bidi_streaming": {
      const fn = handler as (
        s: ServerBidiStream<DescMessage, DescMessage>,
        c: CallContext,
      ) => Promise<void>;
      return (call: grpc.ServerDuplexStream<Buffer, MessageShape<DescMessage>>) => {
        const stream = {
          requests: decodeAll(method.input, call),
          send: sender(method.output, call),
        };
        Promise.resolve()
          .then(() => fn(stream, callContext(call)))
          .then(
            () => call.end(),
            (err: unknown) => call.emit("error", toStatus(err)),
          );
      };
    }
  }
}

/** The grpc-js service definition of a protobuf-es service descriptor. */
export function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream:
        method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream:
        method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      // Requests are decoded by the handler wrapper, so that a malformed or invalid
      // message is answered with INVALID_ARGUMENT and a clear message.
      requestSerialize: encoder(method.input),
      requestDeserialize: passThrough,
      responseSerialize: encoder(method.output),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/** Registers typed handlers for every method of `service` on a grpc-js server. */
export function addService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  handlers: ServiceHandlers<S>,
): void {
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = (handlers as Record<string, unknown>)[method.localName];
    if (typeof handler !== "function") {
      throw new Error(`addService ${service.typeName}: no handler for ${method.name}`);
    }
    implementation[method.name] = methodHandler(method, handler.bind(handlers));
  }
  server.addService(serviceDefinition(service), implementation);
}

/** Per-call options of a client. */
export interface CallOptions {
  /** Request metadata, e.g. `{ authorization: "Bearer …" }`. */
  metadata?: Record<string, string> | grpc.Metadata;
  /** Deadline in milliseconds from now. */
  timeoutMs?: number;
  /** Cancels the call when aborted. */
  signal?: AbortSignal;
}

/** A client's view of a bidirectional stream. */
export interface ClientBidiStream<I extends DescMessage, O extends DescMessage> {
  /** Sends one message; resolves when the stream can take more (backpressure). */
  send(message: MessageInitShape<I>): Promise<void>;
  /** Half-closes the stream: no more messages from this side. */
  end(): void;
  /** Cancels the call. */
  cancel(): void;
  /** Messages from the server; iteration throws a GrpcError when the call fails. */
  readonly responses: AsyncIterable<MessageShape<O>>;
}

/** A typed client: one function per method, typed from the service descriptor. */
export type ServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? (request: ReqInit<S[K]>, options?: CallOptions) => Promise<Res<S[K]>>
    : S[K]["methodKind"] extends "server_streaming"
      ? (request: ReqInit<S[K]>, options?: CallOptions) => AsyncIterable<Res<S[K]>>
      : S[K]["methodKind"] extends "client_streaming"
        ? (requests: AsyncIterable<ReqInit<S[K]>>, options?: CallOptions) => Promise<Res<S[K]>>
        : (options?: CallOptions) => ClientBidiStream<S[K]["input"], S[K]["output"]>;
} & {
  /** Closes the channel. */
  close(): void;
  /** The underlying grpc-js client, e.g. for waitForReady. */
  readonly grpcClient: grpc.Client;
};

function metadataOf(options: CallOptions | undefined): grpc.Metadata {
  const given = options?.metadata;
  if (given instanceof grpc.Metadata) return given;
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(given ?? {})) metadata.set(key, value);
  return metadata;
}

function grpcCallOptions(options: CallOptions | undefined): grpc.CallOptions {
  return options?.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
}

function cancelOnAbort(call: { cancel(): void }, signal: AbortSignal | undefined): void {
  if (signal === undefined) return;
  if (signal.aborted) call.cancel();
  else signal.addEventListener("abort", () => call.cancel(), { once: true });
}

/** The responses of a client call; leaving the loop early cancels the call. */
const responsesOf = <T>(call: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>) =>
  messagesOf(
    call,
    (m) => m as T,
    () => call.cancel(),
  );

function writeWithBackpressure<T>(stream: grpc.ClientWritableStream<T>, message: T): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.destroyed || stream.writableEnded) {
      reject(new GrpcError(grpc.status.CANCELLED, "stream closed"));
      return;
    }
    const ok = stream.write(message, (err: unknown) => {
      if (err) reject(GrpcError.from(err));
    });
    if (ok) resolve();
    else stream.once("drain", () => resolve());
  });
}

type Init = MessageInitShape<DescMessage>;

function clientMethod(client: grpc.Client, service: DescService, method: DescMethod): unknown {
  const path = `/${service.typeName}/${method.name}`;
  const serialize = (init: MessageInitShape<DescMessage>) =>
    Buffer.from(toBinary(method.input, create(method.input, init)));
  const deserialize = (bytes: Buffer) => fromBinary(method.output, bytes);
  switch (method.methodKind) {
    case "unary":
      return (request: MessageInitShape<DescMessage>, options?: CallOptions) =>
        new Promise((resolve, reject) => {
          const call = client.makeUnaryRequest(
            path,
            serialize,
            deserialize,
            request,
            metadataOf(options),
            grpcCallOptions(options),
            (err, response) => (err ? reject(GrpcError.from(err)) : resolve(response)),
          );
          cancelOnAbort(call, options?.signal);
        });
    case "server_streaming":
      return (request: MessageInitShape<DescMessage>, options?: CallOptions) => {
        const call = client.makeServerStreamRequest(
          path,
          serialize,
          deserialize,
          request,
          metadataOf(options),
          grpcCallOptions(options),
        );
        cancelOnAbort(call, options?.signal);
        return responsesOf(call);
      };
    case "client_streaming":
      return (requests: AsyncIterable<MessageInitShape<DescMessage>>, options?: CallOptions) =>
        new Promise((resolve, reject) => {
          const call = client.makeClientStreamRequest(
            path,
            serialize,
            deserialize,
            metadataOf(options),
            grpcCallOptions(options),
            (err, response) => (err ? reject(GrpcError.from(err)) : resolve(response)),
          );
          cancelOnAbort(call, options?.signal);
          (async () => {
            for await (const request of requests) await writeWithBackpressure<Init>(call, request);
            call.end();
          })().catch((err: unknown) => {
            call.cancel();
            reject(GrpcError.from(err));
          });
        });
    case "bidi_streaming":
      return (options?: CallOptions): ClientBidiStream<DescMessage, DescMessage> => {
        const call = client.makeBidiStreamRequest(
          path,
          serialize,
          deserialize,
          metadataOf(options),
          grpcCallOptions(options),
        );
        cancelOnAbort(call, options?.signal);
        return {
          send: (message) => writeWithBackpressure<Init>(call, message),
          end: () => call.end(),
          cancel: () => call.cancel(),
          responses: responsesOf(call as grpc.ClientDuplexStream<Init, MessageShape<DescMessage>>),
        };
      };
  }
}

/** Options of a client channel. */
export interface ClientOptions {
  /** Largest message accepted from the server, in bytes (default 32 MiB). */
  maxReceiveMessageBytes?: number;
  /** Largest message sent, in bytes (default 32 MiB). */
  maxSendMessageBytes?: number;
  /** TLS server name to verify instead of the address host. */
  serverNameOverride?: string;
  /** Keepalive ping interval in ms (default 30 s). */
  keepaliveMs?: number;
}

const MiB = 1024 * 1024;

/** Creates a typed client of `service` at `address` ("host:port"). */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  credentials: grpc.ChannelCredentials,
  options: ClientOptions = {},
): ServiceClient<S> {
  const channelOptions: grpc.ChannelOptions = {
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 32 * MiB,
    "grpc.max_send_message_length": options.maxSendMessageBytes ?? 32 * MiB,
    "grpc.keepalive_time_ms": options.keepaliveMs ?? 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
  };
  if (options.serverNameOverride !== undefined) {
    channelOptions["grpc.ssl_target_name_override"] = options.serverNameOverride;
    channelOptions["grpc.default_authority"] = options.serverNameOverride;
  }
  const grpcClient = new grpc.Client(address, credentials, channelOptions);
  const client: Record<string, unknown> = { close: () => grpcClient.close(), grpcClient };
  for (const method of service.methods)
    client[method.localName] = clientMethod(grpcClient, service, method);
  return client as ServiceClient<S>;
}
