import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { isEnforceableService, ServiceSchema } from "@isthmus/proto";

describe("isEnforceableService", () => {
  const service = (inMesh: boolean, selector: Record<string, string>) =>
    create(ServiceSchema, { namespace: "payments", name: "payments-api", inMesh, selector });

  it("holds for a Service in the mesh with a selector", () => {
    assert.equal(isEnforceableService(service(true, { app: "payments-api" })), true);
  });

  it("fails without the mesh or without a selector", () => {
    assert.equal(isEnforceableService(service(false, { app: "payments-api" })), false);
    assert.equal(isEnforceableService(service(true, {})), false);
    assert.equal(isEnforceableService(service(false, {})), false);
  });
});
