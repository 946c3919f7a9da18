// The typed client side of the glue: one client per service of the contract, with unary,
// server-streaming, client-streaming and bidirectional methods.
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
import type { ReqInit, Res } from "./grpc-types.js";

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
