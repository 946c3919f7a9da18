// The services' log lines: JSON (the default) or text, errors with their stacks, one stream.
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { createLogger, type LogFormat, parseLogFormat } from "@isthmus/logging";

/** A logger writing into a buffer, and the lines it wrote so far (after winston's tick). */
function capture(format?: LogFormat) {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (d: Buffer) => {
    text += d.toString();
  });
  const logger = createLogger({
    component: "test",
    level: "debug",
    stream,
    ...(format === undefined ? {} : { format }),
  });
  const lines = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    return text.split("\n").filter((l) => l !== "");
  };
  return { logger, lines };
}

function thrown(): Error {
  return new Error("disk full");
}

describe("logging", () => {
  it("writes JSON lines by default, an error's message as err and its stack beside it", async () => {
    const { logger, lines } = capture();
    const err = thrown();
    logger.child({ module: "store" }).error("write failed", { err, file: "state.json" });
    const [line, ...rest] = await lines();
    assert.deepEqual(rest, []);
    const record = JSON.parse(line!) as Record<string, unknown>;
    assert.equal(record.level, "error");
    assert.equal(record.message, "write failed");
    assert.equal(record.component, "test");
    assert.equal(record.module, "store");
    assert.equal(record.err, "disk full");
    assert.equal(record.stack, err.stack);
    assert.match(String(record.stack), /at thrown \(/);
    assert.match(String(record.timestamp), /^\d{4}-\d\d-\d\dT/);
  });

  it("writes text lines: time, level, message, fields as key=value, the stack indented below", async () => {
    const { logger, lines } = capture("text");
    logger.info("hub started", { port: 8443, address: "0.0.0.0:8443", names: ["a b"] });
    logger.warn("renewal failed", { err: thrown(), detail: 'said "no"' });
    const [started, failed, ...stack] = await lines();
    assert.match(
      started!,
      /^\d{4}-\d\d-\d\dT\S+ info hub started component=test port=8443 address=0\.0\.0\.0:8443 names="\[\\"a b\\"\]"$/,
    );
    assert.match(
      failed!,
      /^\S+ warn renewal failed component=test err="disk full" detail="said \\"no\\""$/,
    );
    assert.match(stack[0]!, /^ {4}Error: disk full$/);
    assert.match(stack[1]!, /^ {4}\s*at thrown \(/);
  });

  it("takes the format from ISTHMUS_LOG_FORMAT and names a bad value's source", async () => {
    const saved = process.env.ISTHMUS_LOG_FORMAT;
    try {
      process.env.ISTHMUS_LOG_FORMAT = "text";
      const stream = new PassThrough();
      let text = "";
      stream.on("data", (d: Buffer) => {
        text += d.toString();
      });
      createLogger({ component: "env", stream }).info("hello");
      await new Promise((resolve) => setImmediate(resolve));
      assert.match(text, /^\S+ info hello component=env\n$/);
      process.env.ISTHMUS_LOG_FORMAT = "xml";
      assert.throws(
        () => createLogger({ component: "env" }),
        /^Error: ISTHMUS_LOG_FORMAT: invalid log format "xml" \(expected one of json, text\)$/,
      );
    } finally {
      if (saved === undefined) delete process.env.ISTHMUS_LOG_FORMAT;
      else process.env.ISTHMUS_LOG_FORMAT = saved;
    }
    assert.equal(parseLogFormat("json", "--log-format"), "json");
    assert.throws(() => parseLogFormat("JSON", "--log-format"), /^Error: --log-format: invalid/);
  });
});
