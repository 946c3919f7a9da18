import assert from "node:assert/strict";
import { Hash64, hash64 } from "@isthmus/policy";

describe("Hash64", () => {
  it("keeps neighbouring strings apart", () => {
    const a = new Hash64().str("ab").str("c").hex();
    const b = new Hash64().str("a").str("bc").hex();
    assert.notEqual(a, b);
    assert.equal(a, new Hash64().str("ab").str("c").hex());
    assert.match(a, /^[0-9a-f]{16}$/);
  });

  it("tells integers, strings and their order apart", () => {
    const seen = new Set([
      new Hash64().int(1).int(2).hex(),
      new Hash64().int(2).int(1).hex(),
      new Hash64().str("1").str("2").hex(),
      new Hash64().str("").hex(),
      new Hash64().hex(),
    ]);
    assert.equal(seen.size, 5);
  });

  it("hash64 of a text is the hash of its characters", () => {
    const h = new Hash64();
    for (const c of "access") h.int(c.charCodeAt(0));
    assert.equal(hash64("access"), h.hex());
    assert.notEqual(hash64("access"), hash64("accesS"));
  });
});
