// The answers of admin calls to store and policy errors, and resource versions read from
// requests.
import { isPolicyError } from "@isthmus/policy";
import { Code, GrpcError } from "@isthmus/proto";
import { StoreError } from "../store.js";

export function storeError(err: unknown, what: string): never {
  if (err instanceof StoreError && err.code === "conflict") {
    throw new GrpcError(Code.ABORTED, `${what}: ${err.message}; read it again and retry`);
  }
  if (err instanceof StoreError && err.code === "not-found")
    throw new GrpcError(Code.NOT_FOUND, `${what}: not found`);
  if (err instanceof StoreError && err.code === "too-large")
    throw new GrpcError(Code.FAILED_PRECONDITION, `${what}: not written: ${err.message}`);
  if (err instanceof StoreError && err.code === "unavailable")
    throw new GrpcError(Code.UNAVAILABLE, `${what}: not written: ${err.message}`);
  throw err;
}

export function policyError(err: unknown): never {
  if (isPolicyError(err)) {
    throw new GrpcError(
      err.code === "not-found" ? Code.NOT_FOUND : Code.INVALID_ARGUMENT,
      err.message,
    );
  }
  throw err;
}

export function expectedVersion(resourceVersion: string, what: string): number | undefined {
  if (resourceVersion === "") return undefined;
  const v = Number(resourceVersion);
  if (!Number.isSafeInteger(v) || v <= 0)
    throw new GrpcError(
      Code.INVALID_ARGUMENT,
      `${what}: invalid resource_version "${resourceVersion}"`,
    );
  return v;
}
