export * from "./credentials.js";
export * from "./errors.js";
export * from "./gen/isthmus/v1/admin_service_pb.js";
export * from "./gen/isthmus/v1/agent_service_pb.js";
export * from "./gen/isthmus/v1/catalog_pb.js";
export * from "./gen/isthmus/v1/intents_pb.js";
export * from "./gen/isthmus/v1/policy_pb.js";
export * from "./grpc.js";
export { validateMessage } from "./validation.js";
