// Generic glue between protobuf-es service descriptors and @grpc/grpc-js, the server side:
// one server definition builder for every service of the contract (the client:
// grpc-client.ts).
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
import { messagesOf } from "./grpc-streams.js";
import type { Req, ResInit } from "./grpc-types.js";
import { validateMessage } from "./validation.js";

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
