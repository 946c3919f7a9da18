import assert from "node:assert/strict";
import { splitHostPort } from "@isthmus/proto";

describe("proto: host:port addresses", () => {
  it("splits at the last colon, without an IPv6 host's brackets", () => {
    assert.deepEqual(splitHostPort("hub.example:8443"), { host: "hub.example", port: 8443 });
    assert.deepEqual(splitHostPort("[::1]:8443"), { host: "::1", port: 8443 });
    assert.deepEqual(splitHostPort("fd00::1:8443"), { host: "fd00::1", port: 8443 });
    assert.deepEqual(splitHostPort(":9090"), { host: "", port: 9090 });
    assert.deepEqual(splitHostPort("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
  });

  it("refuses an address without a colon or with a port out of 0-65535", () => {
    for (const bad of ["hub.example", "h:65536", "h:-1", "h:80x", "h:1.5"])
      assert.equal(splitHostPort(bad), undefined, bad);
  });
});
