import assert from "node:assert/strict";
import { jsonPath } from "@isthmus/cli";

const list = {
  items: [
    { metadata: { name: "a", labels: { env: "prod" } }, ports: [80, 443] },
    { metadata: { name: "b", labels: { env: "dev" } }, ports: [8080] },
  ],
};

describe("kubectl JSONPath templates (-o jsonpath=)", () => {
  it("reads fields, indexes, wildcards, slices and recursive descent as kubectl does", () => {
    assert.equal(jsonPath("{.items[*].metadata.name}", list), "a b");
    assert.equal(jsonPath("{.items[0].metadata.name}", list), "a");
    assert.equal(jsonPath("{.items[-1].metadata.name}", list), "b");
    assert.equal(jsonPath("{.items[0:1].metadata.name}", list), "a");
    assert.equal(jsonPath("{..env}", list), "prod dev");
    assert.equal(jsonPath("{.items[1].metadata.labels['env']}", list), "dev");
    assert.equal(jsonPath("{$.items[0].ports}", list), "[80,443]");
    assert.equal(jsonPath("{.items[0].missing}", list), "");
    assert.equal(jsonPath("names: {.items[*].metadata.name}!", list), "names: a b!");
  });

  it("loops with range/end and prints string literals", () => {
    assert.equal(
      jsonPath('{range .items[*]}{.metadata.name}{"\\t"}{.ports[0]}{"\\n"}{end}', list),
      "a\t80\nb\t8080\n",
    );
  });

  it("refuses what it does not support, naming the template", () => {
    assert.throws(
      () => jsonPath("{.items[?(@.x)]}", list),
      /-o jsonpath=\{\.items\[\?\(@\.x\)\]\}: unsupported expression at "\[\?\(@\.x\)\]"/,
    );
    assert.throws(() => jsonPath("{range .items[*]}{.a}", list), /\{range\} without \{end\}/);
    assert.throws(() => jsonPath("{end}", list), /\{end\} without \{range\}/);
    assert.throws(() => jsonPath("{.a", list), /unclosed \{/);
  });
});
