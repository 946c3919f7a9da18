// Type shorthands for a method's request and response messages, shared by the server and the
// client glue (not part of the package's exports).
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";

export type Method = GenServiceMethods[string];
export type Req<M extends Method> = MessageShape<M["input"]>;
export type ReqInit<M extends Method> = MessageInitShape<M["input"]>;
export type Res<M extends Method> = MessageShape<M["output"]>;
export type ResInit<M extends Method> = MessageInitShape<M["output"]>;
