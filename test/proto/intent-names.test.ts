import assert from "node:assert/strict";
import { accessIntentName, serviceOfAccessIntentName } from "@isthmus/proto";

describe("intent names", () => {
  it("names a Service's AccessIntent access/<namespace>/<service> and reads it back", () => {
    const name = accessIntentName("payments", "payments-api");
    assert.equal(name, "access/payments/payments-api");
    assert.deepEqual(serviceOfAccessIntentName(name), {
      namespace: "payments",
      service: "payments-api",
    });
  });

  it("reads no Service from other intents' names or malformed ones", () => {
    for (const name of [
      "default-access",
      "export/payments/payments-api",
      "import/payments/payments-api/prod-eu",
      "access/payments",
      "access//payments-api",
      "access/payments/",
      "access/payments/api/extra",
      "accessx/payments/api",
    ]) {
      assert.equal(serviceOfAccessIntentName(name), undefined, name);
    }
  });
});
